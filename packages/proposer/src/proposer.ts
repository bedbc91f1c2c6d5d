import { setup } from 'xstate';
import {
  type AcceptedEntry,
  type Ballot,
  type Configuration,
  type Message,
  type MessageOf,
  type ReplicaId,
  type RingId,
  type Slot,
  type SlotValue,
  type SubmitItem,
  CONTRACTS,
  NOOP,
  ballotEq,
  compareBallots,
  ensures,
  invariant,
  requires,
  safety,
  slotValueEquals,
} from '@decree/protocol';

export interface ProposerOptions {
  /** slots in flight at once (pipelining depth) */
  maxInflightSlots: number;
  /** most commands in one slot value */
  maxBatchCmds: number;
  /** most command bytes in one slot value */
  maxBatchBytes: number;
  /**
   * resend an unanswered Accept or Prepare after this long; an Accept's next resends back off
   * (doubling up to maxRetransmitMs), so a slow peer is not flooded with copies of large values
   */
  retransmitMs: number;
  maxRetransmitMs: number;
  /** commands waiting to be proposed, at most (count and bytes): beyond, submissions are refused as busy */
  maxQueuedCommands: number;
  maxQueuedBytes: number;
}

export const DEFAULT_PROPOSER_OPTIONS: ProposerOptions = {
  maxInflightSlots: 16,
  maxBatchCmds: 4096,
  maxBatchBytes: 512 << 10,
  retransmitMs: 50,
  maxRetransmitMs: 1000,
  maxQueuedCommands: 1 << 20,
  maxQueuedBytes: 256 << 20,
};

export interface ProposerInput {
  ring: RingId;
  self: ReplicaId;
  /** this replica's incarnation (changes every start): tags the batches it proposes */
  inc: number;
  members: readonly ReplicaId[];
  send: (msg: Message) => void;
  now: () => number;
  /** the wall clock (ms since the epoch) stamped on each batch it cuts (SlotValue `at`); absent: no stamp */
  wallNow?: () => number;
  options?: Partial<ProposerOptions>;
  /** the slot the local learner has executed up to at start */
  executedUpTo?: Slot;
  /** the highest round known at start (the local acceptor's durable promise): never reuse a ballot */
  maxRound?: number;
  /** the configuration as of `executedUpTo` (default: epoch 1 of `members` from slot 1) */
  configuration?: Configuration;
}

/** A configuration value in flight at `slot`: nothing above it is proposed until it is chosen. */
export interface PendingConfig {
  slot: Slot;
  epoch: number;
  members: readonly ReplicaId[];
}

export interface InflightSlot {
  value: SlotValue;
  acks: Set<ReplicaId>;
  firstSentAt: number;
  sentAt: number;
  /** resends so far (the next one waits retransmitMs * 2^resends, at most maxRetransmitMs) */
  resends: number;
  chosen: boolean;
}

/** A promise that comes in pages, pulled one at a time: the entries so far and the next page's first slot. */
export interface PartialPromise {
  ballot: Ballot;
  fromSlot: Slot;
  entries: AcceptedEntry[];
  next: Slot;
  askedAt: number;
}

export interface PeerProgress {
  lastAcceptedSlot: Slot;
  lastHeardAt: number;
}

export interface ProposerData {
  readonly ring: RingId;
  readonly self: ReplicaId;
  readonly inc: number;
  members: readonly ReplicaId[];
  quorum: number;
  /** the configuration this proposer works in: it prepares from its startSlot at the earliest */
  config: Configuration;
  /** a config value in flight (stall rule: no slot above it until it is chosen) */
  pendingConfig: PendingConfig | undefined;
  /** leading, but phase 1 runs again in a configuration that took effect (see specs/config-change) */
  reprepare: boolean;
  /** non-voting replicas catching up before a change: they get Decides */
  observers: readonly ReplicaId[];
  opts: ProposerOptions;
  ballot: Ballot;
  maxRound: number;
  leaderHint: ReplicaId | undefined;
  executedUpTo: Slot;
  cookie: Uint8Array | undefined;
  // phase 1
  fromSlot: Slot;
  promises: Map<ReplicaId, MessageOf<'promise'>>;
  /** promises that come in pages (a long log), pulled one page at a time: what arrived so far, per acceptor */
  promisePages: Map<ReplicaId, PartialPromise>;
  /**
   * A promise said its replica executed up to here (>= fromSlot): the candidate's learner catches up
   * to it, then phase 1 runs again from the slot after it, with the same ballot.
   */
  awaitingCatchup: Slot;
  prepareSentAt: number;
  /** when the last Decide went out (after a choice or idle): idle Decides go at most every retransmitMs */
  decideSentAt: number;
  // phase 2
  nextSlot: Slot;
  chosenUpTo: Slot;
  slots: Map<Slot, InflightSlot>;
  recoveryEnd: Slot;
  /** the values phase 1 found for the open slots up to recoveryEnd: re-proposed through the window */
  recoveryValues: Map<Slot, SlotValue>;
  recoveredSent: boolean;
  queue: SubmitItem[];
  queueHead: number;
  /** bytes of the commands in queue[queueHead..] */
  queuedBytes: number;
  stepDownNow: boolean;
  /** a `last` (step-down) value is in flight: nothing more is proposed behind it */
  lastProposed: boolean;
  relinquished: boolean;
  /** the executed slot last told to the elector (a follower's heartbeat acks carry it to the leader) */
  announcedExecuted: Slot;
  peers: Map<ReplicaId, PeerProgress>;
  stats: {
    slotsProposed: number; commandsProposed: number; slotsChosen: number; votingMs: number; elections: number;
    leaderships: number; acceptResends: number; promisePagesPulled: number; busyRefusals: number;
  };
  readonly input: ProposerInput;
}

export type ProposerEvent =
  | MessageOf<'campaign'>
  | MessageOf<'resign'>
  | MessageOf<'promise'>
  | MessageOf<'accepted'>
  | MessageOf<'nack'>
  | MessageOf<'progress'>
  | MessageOf<'submit'>
  | MessageOf<'config-proposal'>
  | MessageOf<'set-observers'>
  | { type: 'tick' }
  | { type: 'set-members'; members: readonly ReplicaId[] }
  | { type: 'stop' };

const hdr = (d: ProposerData, to: ReplicaId) => ({ ring: d.ring, from: d.self, to });

export const quorumOf = (n: number) => Math.floor(n / 2) + 1;

function leaderState(d: ProposerData, state: 'follower' | 'preparing' | 'leading'): void {
  d.announcedExecuted = d.executedUpTo;
  d.input.send({
    type: 'leader-state',
    ...hdr(d, d.self),
    state,
    ballot: d.ballot,
    maxRound: d.maxRound,
    decidedUpTo: d.chosenUpTo,
    executedUpTo: d.executedUpTo,
    ...(d.leaderHint !== undefined ? { leaderHint: d.leaderHint } : {}),
    ...(d.relinquished ? { relinquished: true } : {}),
    config: d.config,
    ...(d.observers.length ? { observers: d.observers } : {}),
  });
}

/** Decides go to the members, to the observers catching up, and to this replica's own learner. */
function sendDecide(d: ProposerData): void {
  d.decideSentAt = d.input.now();
  for (const mm of d.members) d.input.send({ type: 'decide', ...hdr(d, mm), ballot: d.ballot, upTo: d.chosenUpTo });
  for (const o of d.observers) if (!d.members.includes(o)) d.input.send({ type: 'decide', ...hdr(d, o), ballot: d.ballot, upTo: d.chosenUpTo });
  if (!d.members.includes(d.self) && !d.observers.includes(d.self)) d.input.send({ type: 'decide', ...hdr(d, d.self), ballot: d.ballot, upTo: d.chosenUpTo });
}

/** Works in `config` from now on (members, quorum). */
export function adoptConfig(d: ProposerData, config: Configuration): void {
  CONTRACTS && requires(config.epoch >= d.config.epoch, 'adoptConfig: configurations only move forward');
  d.config = { epoch: config.epoch, members: [...config.members], startSlot: config.startSlot };
  setMembers(d, config.members);
  if (d.observers.length) d.observers = d.observers.filter((o) => !config.members.includes(o));
}

/** The first slot this proposer may prepare: it never leads slots whose configuration it does not know. */
const prepareFrom = (d: ProposerData): Slot => Math.max(d.executedUpTo + 1, d.config.startSlot);

/** Phase 1 again, with a new ballot, among the members of a configuration that just took effect. */
function startReprepare(d: ProposerData): void {
  CONTRACTS && requires(d.pendingConfig === undefined && d.slots.size === 0, 'reprepare: nothing in flight');
  d.reprepare = true;
  d.maxRound++;
  setBallot(d, { round: d.maxRound, leader: d.self });
  d.fromSlot = Math.max(d.config.startSlot, d.chosenUpTo + 1);
  sendPrepares(d);
  d.stats.elections++;
  leaderState(d, 'leading');
}

/** A new ballot of this proposer: always higher than its last (checked in production too: issue #17). */
function setBallot(d: ProposerData, b: Ballot): void {
  safety(compareBallots(b, d.ballot) > 0, `proposer ${d.self}: ballot ${b.round}.${b.leader} not above ${d.ballot.round}.${d.ballot.leader}`);
  d.ballot = b;
}

/** Phase 1 (again) for d.ballot from d.fromSlot: forgets the promises so far, asks every member. */
function sendPrepares(d: ProposerData): void {
  d.promises = new Map();
  d.promisePages = new Map();
  d.awaitingCatchup = 0;
  d.prepareSentAt = d.input.now();
  for (const m of d.members) sendPrepare(d, m);
}

/** A config value chosen at pc.slot: the new configuration governs the slots after it. */
function configChosen(d: ProposerData): void {
  const pc = d.pendingConfig!;
  d.pendingConfig = undefined;
  adoptConfig(d, { epoch: pc.epoch, members: pc.members, startSlot: pc.slot + 1 });
  if (!pc.members.includes(d.self)) {
    // not a member any more: step down (queued commands were never proposed); the new members elect
    d.stepDownNow = true;
    return;
  }
  startReprepare(d);
}

function sendPrepare(d: ProposerData, to: ReplicaId, pageFrom?: Slot): void {
  d.input.send({
    type: 'prepare', ...hdr(d, to), ballot: d.ballot, fromSlot: d.fromSlot,
    ...(d.cookie ? { cookie: d.cookie } : {}), ...(pageFrom !== undefined ? { pageFrom } : {}),
  });
}

function sendAccept(d: ProposerData, to: ReplicaId, slot: Slot, value: SlotValue): void {
  d.input.send({ type: 'accept', ...hdr(d, to), ballot: d.ballot, slot, value, decidedUpTo: d.chosenUpTo });
}

function propose(d: ProposerData, slot: Slot, value: SlotValue): void {
  CONTRACTS && requires(!d.slots.has(slot) && slot > d.chosenUpTo, `propose: slot ${slot} is free`);
  CONTRACTS && requires(d.pendingConfig === undefined || slot <= d.pendingConfig.slot, `propose: slot ${slot} above a config value in flight`);
  if (value.k === 'config') d.pendingConfig = { slot, epoch: value.epoch, members: value.members };
  const now = d.input.now();
  d.slots.set(slot, { value, acks: new Set(), firstSentAt: now, sentAt: now, resends: 0, chosen: false });
  d.stats.slotsProposed++;
  for (const m of d.members) sendAccept(d, m, slot, value);
}

/** Batches queued commands into slot values while the pipeline has room (adaptive batching). */
export function tryPropose(d: ProposerData): void {
  // the open slots phase 1 found come first, through the same window
  while (
    d.nextSlot <= d.recoveryEnd &&
    d.nextSlot - d.chosenUpTo - 1 < d.opts.maxInflightSlots &&
    !d.stepDownNow &&
    d.pendingConfig === undefined &&
    !d.reprepare
  ) {
    const slot = d.nextSlot++;
    const v = d.recoveryValues.get(slot) ?? NOOP;
    d.recoveryValues.delete(slot);
    propose(d, slot, v);
  }
  if (d.nextSlot <= d.recoveryEnd) return;
  const q = d.queue;
  while (
    d.queueHead < q.length &&
    d.nextSlot - d.chosenUpTo - 1 < d.opts.maxInflightSlots &&
    !d.stepDownNow &&
    !d.lastProposed &&
    d.pendingConfig === undefined &&
    !d.reprepare
  ) {
    const first = q[d.queueHead]!;
    if (first.config) {
      // a configuration change: alone in its slot, and nothing above it until it is chosen
      d.queueHead++;
      const c = first.config;
      propose(d, d.nextSlot++, {
        k: 'config', epoch: d.config.epoch + 1, members: c.members, origin: d.self, inc: d.inc, firstId: first.id, ...(c.cookie ? { cookie: c.cookie } : {}),
      });
      continue;
    }
    const cmds: Uint8Array[] = [first.cmd];
    let bytes = first.cmd.length;
    let i = d.queueHead + 1;
    if (!first.excl) {
      while (i < q.length && cmds.length < d.opts.maxBatchCmds) {
        const it = q[i]!;
        if (it.excl || it.config || it.id !== q[i - 1]!.id + 1 || bytes + it.cmd.length > d.opts.maxBatchBytes) break;
        cmds.push(it.cmd);
        bytes += it.cmd.length;
        i++;
      }
    }
    d.queueHead = i;
    d.queuedBytes -= bytes;
    const at = d.input.wallNow ? { at: Math.floor(d.input.wallNow()) } : {};
    const value: SlotValue = first.excl
      ? { k: 'batch', origin: d.self, inc: d.inc, firstId: first.id, cmds, excl: true, ...(first.last ? { last: true } : {}), ...at }
      : { k: 'batch', origin: d.self, inc: d.inc, firstId: first.id, cmds, ...at };
    d.stats.commandsProposed += cmds.length;
    if (first.excl && first.last) d.lastProposed = true;
    propose(d, d.nextSlot++, value);
  }
  if (d.queueHead === q.length) {
    d.queue = [];
    d.queueHead = 0;
    d.queuedBytes = 0;
  } else if (d.queueHead > 4096 && d.queueHead * 2 > q.length) {
    d.queue = q.slice(d.queueHead);
    d.queueHead = 0;
  }
}

function startPrepare(d: ProposerData, e: MessageOf<'campaign'>): void {
  const round = Math.max(e.round, d.maxRound + 1);
  d.maxRound = round;
  setBallot(d, { round, leader: d.self });
  d.cookie = e.cookie;
  d.fromSlot = prepareFrom(d);
  d.relinquished = false;
  d.stepDownNow = false;
  d.stats.elections++;
  sendPrepares(d);
}

/** A promise (or page) for the ballot and range being prepared, from a member. */
export function forThisPhase1(d: ProposerData, m: MessageOf<'promise'>): boolean {
  return ballotEq(m.ballot, d.ballot) && m.fromSlot === d.fromSlot && d.members.includes(m.from);
}

/** Whether this message completes its sender's promise: a last page that is the one awaited. */
export function completesPromise(d: ProposerData, m: MessageOf<'promise'>): boolean {
  if (m.more !== undefined || d.promises.has(m.from)) return false;
  const p = d.promisePages.get(m.from);
  if (m.pageFrom === undefined) return p === undefined;
  return p !== undefined && ballotEq(p.ballot, m.ballot) && p.fromSlot === m.fromSlot && p.next === m.pageFrom;
}

/**
 * Records a promise or one page of it. A page with more to come is kept, and the next page is
 * pulled at once (one page in flight per acceptor); the last page completes the promise.
 */
export function recordPromise(d: ProposerData, m: MessageOf<'promise'>): void {
  CONTRACTS && requires(ballotEq(m.ballot, d.ballot), 'promise: for the ballot being prepared');
  CONTRACTS && requires(m.fromSlot === d.fromSlot, 'promise: for the slot range asked');
  if (!d.members.includes(m.from) || d.promises.has(m.from)) return;
  let p = d.promisePages.get(m.from);
  if (m.pageFrom === undefined) {
    if (m.more === undefined) {
      d.promisePages.delete(m.from);
      d.promises.set(m.from, m);
      return;
    }
    // the first page of a long promise (again, if the first one was retransmitted)
    p = { ballot: m.ballot, fromSlot: m.fromSlot, entries: [...m.accepted], next: m.more, askedAt: d.input.now() };
    d.promisePages.set(m.from, p);
  } else {
    if (!p || p.next !== m.pageFrom) return; // a late copy of a page already taken
    for (const e of m.accepted) p.entries.push(e);
    if (m.more === undefined) {
      d.promisePages.delete(m.from);
      d.promises.set(m.from, { ...m, accepted: p.entries, pageFrom: undefined });
      return;
    }
    p.next = m.more;
    p.askedAt = d.input.now();
  }
  d.stats.promisePagesPulled++;
  sendPrepare(d, m.from, p.next);
}

/**
 * The promise says its replica executed slots this candidate has not (>= fromSlot): those are
 * chosen, and may change the configuration. The candidate keeps its ballot, has its learner fetch
 * them, and runs phase 1 again from after them once it executed them (see onProgress).
 */
export function awaitCatchup(d: ProposerData, m: MessageOf<'promise'>): void {
  const upTo = m.executedUpTo ?? 0;
  CONTRACTS && requires(upTo >= d.fromSlot, 'awaitCatchup: the acceptor executed past fromSlot');
  if (upTo <= d.awaitingCatchup) return;
  if (d.executedUpTo >= upTo) {
    // the learner got there already (its progress came before this promise): phase 1 again at once
    resumePhase1(d);
    return;
  }
  d.awaitingCatchup = upTo;
  // as that peer's catch-up answer would: slots up to upTo are chosen, ask it for them
  d.input.send({
    type: 'catchup-rep', ring: d.ring, from: m.from, to: d.self, entries: [],
    truncatedBelow: Math.min(m.truncatedBelow, d.executedUpTo + 1), chosenUpTo: upTo,
  });
}

/** How far behind a promise's replica a candidate may be and still catch up without giving way. */
const catchupInPlaceSlots = (d: ProposerData): number => 4 * d.opts.maxInflightSlots;

/** The learner caught up to what a promise said was executed: phase 1 again from after it, same ballot. */
function resumePhase1(d: ProposerData): void {
  d.fromSlot = prepareFrom(d);
  sendPrepares(d);
}

/**
 * Whether the promises say the log is truncated above the slot this proposer prepares from: a
 * snapshot covers slots it never executed (which may hold configuration changes), so it must catch
 * up before it leads.
 */
export function truncatedAhead(d: ProposerData, extra?: MessageOf<'promise'>): boolean {
  if (extra && extra.truncatedBelow > d.fromSlot) return true;
  for (const p of d.promises.values()) if (p.truncatedBelow > d.fromSlot) return true;
  return false;
}

/**
 * Phase 1 done: re-propose the highest-ballot value of every open slot, fill holes with no-ops. The
 * re-proposals stop at the first config value: the slots after it belong to the new configuration,
 * whose members are asked again once it is chosen. `keepQueue`: phase 1 ran again after a
 * configuration change and the commands queued meanwhile go on.
 */
export function becomeLeader(d: ProposerData, keepQueue = false): void {
  CONTRACTS && requires(d.promises.size >= d.quorum, 'becomeLeader: a quorum of promises');
  CONTRACTS && requires(!truncatedAhead(d), 'becomeLeader: no promise is truncated above the prepared slot');
  const start = d.fromSlot;
  const best = new Map<Slot, { ballot: Ballot; value: SlotValue }>();
  let maxSlot = start - 1;
  for (const p of d.promises.values()) {
    for (const e of p.accepted) {
      if (e.slot < start) continue;
      const cur = best.get(e.slot);
      if (!cur || compareBallots(e.ballot, cur.ballot) > 0) best.set(e.slot, { ballot: e.ballot, value: e.value });
      else if (CONTRACTS && ballotEq(cur.ballot, e.ballot))
        invariant(slotValueEquals(cur.value, e.value), `promise: two values for slot ${e.slot} at one ballot`);
      if (e.slot > maxSlot) maxSlot = e.slot;
    }
  }
  for (let s = start; s <= maxSlot; s++) {
    if (best.get(s)?.value.k === 'config') {
      maxSlot = s; // stop at the first config value (rule 4 of specs/config-change)
      break;
    }
  }
  d.slots = new Map();
  d.chosenUpTo = start - 1;
  d.nextSlot = start;
  d.pendingConfig = undefined;
  d.reprepare = false;
  if (keepQueue) {
    d.recoveryEnd = Math.max(d.recoveryEnd, maxSlot);
  } else {
    d.recoveryEnd = maxSlot;
    d.recoveredSent = false;
    d.queue = [];
    d.queueHead = 0;
    d.queuedBytes = 0;
    d.lastProposed = false;
    d.stats.leaderships++;
  }
  d.stepDownNow = false;
  d.leaderHint = d.self;
  // the open slots are re-proposed through the pipeline window (tryPropose), not all at once
  d.recoveryValues = new Map();
  for (let s = start; s <= maxSlot; s++) {
    const v = best.get(s)?.value;
    if (v) d.recoveryValues.set(s, v);
  }
  d.nextSlot = start;
  d.promises = new Map();
  d.promisePages = new Map();
  d.awaitingCatchup = 0;
  tryPropose(d);
  CONTRACTS && ensures(d.nextSlot > d.chosenUpTo, 'becomeLeader: next slot above the chosen prefix');
}

export function onAccepted(d: ProposerData, m: MessageOf<'accepted'>): void {
  if (!ballotEq(m.ballot, d.ballot)) return; // a late answer to an older ballot
  CONTRACTS && requires(m.slot > 0, 'accepted: slot > 0');
  const peer = d.peers.get(m.from);
  if (peer) {
    if (m.slot > peer.lastAcceptedSlot) peer.lastAcceptedSlot = m.slot;
    peer.lastHeardAt = d.input.now();
  }
  const s = d.slots.get(m.slot);
  if (!s || s.chosen || !d.members.includes(m.from)) return;
  s.acks.add(m.from);
  if (s.acks.size < d.quorum) return;
  s.chosen = true;
  d.stats.slotsChosen++;
  d.stats.votingMs += d.input.now() - s.firstSentAt;
  if (s.value.k === 'batch' && s.value.last && s.value.origin === d.self) d.stepDownNow = true;
  const before = d.chosenUpTo;
  for (;;) {
    const n = d.slots.get(d.chosenUpTo + 1);
    if (!n || !n.chosen) break;
    d.slots.delete(d.chosenUpTo + 1);
    d.chosenUpTo++;
  }
  if (d.chosenUpTo > before) {
    sendDecide(d);
    if (d.pendingConfig && d.chosenUpTo >= d.pendingConfig.slot) configChosen(d);
    tryPropose(d);
  }
  CONTRACTS && ensures(d.nextSlot - d.chosenUpTo - 1 <= Math.max(d.opts.maxInflightSlots, d.recoveryEnd - d.chosenUpTo), 'accepted: window bound');
}

/** Leaving leadership: queued commands were never proposed; in-flight ones may still be chosen. */
function abortAll(d: ProposerData, hint: ReplicaId | undefined): void {
  const h = hint !== undefined && hint !== d.self ? { leaderHint: hint } : {};
  const queued: number[] = [];
  for (let i = d.queueHead; i < d.queue.length; i++) {
    const it = d.queue[i]!;
    if (it.config) d.input.send({ type: 'config-refused', ...hdr(d, d.self), id: it.id, maybeChosen: false, reason: 'the leadership was lost before the change was proposed', ...h });
    else queued.push(it.id);
  }
  const flying: number[] = [];
  for (const s of d.slots.values()) {
    const v = s.value;
    if (!s.chosen && v.k === 'batch' && v.origin === d.self && v.inc === d.inc) for (let i = 0; i < v.cmds.length; i++) flying.push(v.firstId + i);
    if (!s.chosen && v.k === 'config' && v.origin === d.self && v.inc === d.inc)
      d.input.send({ type: 'config-refused', ...hdr(d, d.self), id: v.firstId, maybeChosen: true, reason: 'the leadership was lost while the change was in flight', ...h });
  }
  if (queued.length) d.input.send({ type: 'aborted', ...hdr(d, d.self), ids: queued, maybeChosen: false, ...h });
  if (flying.length) d.input.send({ type: 'aborted', ...hdr(d, d.self), ids: flying, maybeChosen: true, ...h });
  d.queue = [];
  d.queueHead = 0;
  d.queuedBytes = 0;
  d.slots = new Map();
  d.recoveryValues = new Map();
  d.promises = new Map();
  d.promisePages = new Map();
  d.awaitingCatchup = 0;
  d.pendingConfig = undefined;
  d.reprepare = false;
}

function refuseConfig(d: ProposerData, e: MessageOf<'config-proposal'>, reason: string): void {
  const h = d.leaderHint !== undefined && d.leaderHint !== d.self ? { leaderHint: d.leaderHint } : {};
  d.input.send({ type: 'config-refused', ...hdr(d, d.self), id: e.id, maybeChosen: false, reason, ...h });
}

/** A configuration change to propose behind the commands already queued (leader). */
function enqueueConfig(d: ProposerData, e: MessageOf<'config-proposal'>): void {
  let queued = false;
  for (let i = d.queueHead; i < d.queue.length; i++) if (d.queue[i]!.config) queued = true;
  if (queued || d.pendingConfig || d.reprepare) {
    refuseConfig(d, e, 'another configuration change is pending');
    return;
  }
  d.queue.push({ id: e.id, cmd: new Uint8Array(0), config: { members: [...e.members], ...(e.cookie ? { cookie: e.cookie } : {}) } });
  tryPropose(d);
}

/**
 * The learner's progress; it carries the configuration as of the executed slot. A newer one is
 * adopted at once by a follower; a candidate prepares again in it; a leader that did not choose it
 * itself steps down (it was leading slots whose configuration it did not know).
 */
function onProgress(d: ProposerData, e: MessageOf<'progress'>, state: 'follower' | 'preparing' | 'leading'): void {
  if (e.executedUpTo > d.executedUpTo) d.executedUpTo = e.executedUpTo;
  const c = e.config;
  if (!c || c.epoch <= d.config.epoch) {
    if (state === 'preparing' && d.awaitingCatchup > 0 && d.executedUpTo >= d.awaitingCatchup) resumePhase1(d);
    return;
  }
  if (state === 'leading') {
    if (d.pendingConfig && d.pendingConfig.epoch === c.epoch) return; // our own change: configChosen handles it
    adoptConfig(d, c);
    d.stepDownNow = true;
    return;
  }
  adoptConfig(d, c);
  if (state === 'preparing') {
    if (!c.members.includes(d.self)) {
      d.stepDownNow = true;
      return;
    }
    // prepare again among the new members, from the slot the new configuration starts at
    d.maxRound++;
    setBallot(d, { round: d.maxRound, leader: d.self });
    d.fromSlot = prepareFrom(d);
    sendPrepares(d);
  }
  leaderState(d, state);
}

function rejectSubmit(d: ProposerData, e: MessageOf<'submit'>): void {
  const h = d.leaderHint !== undefined && d.leaderHint !== d.self ? { leaderHint: d.leaderHint } : {};
  d.input.send({ type: 'aborted', ...hdr(d, d.self), ids: e.items.map((i) => i.id), maybeChosen: false, ...h });
}

function observeNack(d: ProposerData, m: MessageOf<'nack'>): void {
  if (m.promised.round > d.maxRound) d.maxRound = m.promised.round;
  if (compareBallots(m.promised, d.ballot) > 0) d.leaderHint = m.promised.leader;
}

const higherNack = (d: ProposerData, m: MessageOf<'nack'>) => ballotEq(m.ballot, d.ballot) && compareBallots(m.promised, d.ballot) > 0;

function retransmit(d: ProposerData, phase: 'preparing' | 'leading'): void {
  const now = d.input.now();
  if (phase === 'preparing' || d.reprepare) {
    if (d.awaitingCatchup > 0) return; // the learner is catching up; phase 1 resumes after
    // a page pull in flight is asked again after a longer wait (a page may be large and slow)
    for (const [m, p] of d.promisePages) {
      if (now - p.askedAt < 4 * d.opts.retransmitMs) continue;
      p.askedAt = now;
      sendPrepare(d, m, p.next);
    }
    if (now - d.prepareSentAt < d.opts.retransmitMs) return;
    d.prepareSentAt = now;
    for (const m of d.members) if (!d.promises.has(m) && !d.promisePages.has(m)) sendPrepare(d, m);
    return;
  }
  for (const [slot, s] of d.slots) {
    if (s.chosen) continue;
    const wait = Math.min(d.opts.retransmitMs * 2 ** s.resends, Math.max(d.opts.retransmitMs, d.opts.maxRetransmitMs));
    if (now - s.sentAt < wait) continue;
    s.sentAt = now;
    s.resends++;
    d.stats.acceptResends++;
    for (const m of d.members) if (!s.acks.has(m)) sendAccept(d, m, slot, s.value);
  }
  // idle Decide: lets lagging or restarted learners know how far the log is chosen; at most every
  // retransmitMs (not every tick: an idle cluster would wake every follower 100 times a second)
  if (now - d.decideSentAt >= d.opts.retransmitMs) sendDecide(d);
}

function setMembers(d: ProposerData, members: readonly ReplicaId[]): void {
  d.members = [...members];
  d.quorum = quorumOf(members.length);
  for (const m of members) if (!d.peers.has(m)) d.peers.set(m, { lastAcceptedSlot: 0, lastHeardAt: 0 });
}

export const proposerMachine = setup({
  types: {
    context: {} as ProposerData,
    events: {} as ProposerEvent,
    input: {} as ProposerInput,
  },
  actions: {
    announceFollower: ({ context }) => leaderState(context, 'follower'),
    /** a follower tells its elector how far it executed (at most once a tick): the leader sees it in heartbeat acks */
    announceProgress: ({ context: d }) => {
      if (d.executedUpTo !== d.announcedExecuted) leaderState(d, 'follower');
    },
    announcePreparing: ({ context }) => leaderState(context, 'preparing'),
    announceLeading: ({ context }) => leaderState(context, 'leading'),
    startPrepare: ({ context, event }) => startPrepare(context, event as MessageOf<'campaign'>),
    recordPromise: ({ context, event }) => recordPromise(context, event as MessageOf<'promise'>),
    awaitCatchup: ({ context, event }) => awaitCatchup(context, event as MessageOf<'promise'>),
    becomeLeader: ({ context }) => becomeLeader(context),
    onAccepted: ({ context, event }) => onAccepted(context, event as MessageOf<'accepted'>),
    enqueue: ({ context: d, event }) => {
      const e = event as MessageOf<'submit'>;
      let bytes = 0;
      for (const it of e.items) bytes += it.cmd.length;
      const queued = d.queue.length - d.queueHead;
      if (queued > 0 && (queued + e.items.length > d.opts.maxQueuedCommands || d.queuedBytes + bytes > d.opts.maxQueuedBytes)) {
        // back-pressure: the pipeline is stalled (a full store, a slow majority); refuse, never queue without bound
        d.stats.busyRefusals += e.items.length;
        d.input.send({ type: 'aborted', ...hdr(d, d.self), ids: e.items.map((i) => i.id), maybeChosen: false, busy: true });
        return;
      }
      const q = d.queue;
      for (const it of e.items) q.push(it);
      d.queuedBytes += bytes;
      tryPropose(d);
    },
    rejectSubmit: ({ context, event }) => rejectSubmit(context, event as MessageOf<'submit'>),
    observeNack: ({ context, event }) => observeNack(context, event as MessageOf<'nack'>),
    progressFollower: ({ context, event }) => onProgress(context, event as MessageOf<'progress'>, 'follower'),
    progressPreparing: ({ context, event }) => onProgress(context, event as MessageOf<'progress'>, 'preparing'),
    progressLeading: ({ context, event }) => onProgress(context, event as MessageOf<'progress'>, 'leading'),
    refuseConfig: ({ context, event }) => refuseConfig(context, event as MessageOf<'config-proposal'>, 'this replica is not the leader'),
    enqueueConfig: ({ context, event }) => enqueueConfig(context, event as MessageOf<'config-proposal'>),
    setObservers: ({ context, event }) => {
      const e = event as MessageOf<'set-observers'>;
      context.observers = e.observers.filter((o) => !context.members.includes(o));
    },
    /**
     * The promise says its sender executed every slot below its truncation point: tell the local
     * learner, as that peer's catch-up answer would, so that it fetches the peer's snapshot.
     */
    hintCatchup: ({ context: d, event }) => {
      const m = event as MessageOf<'promise'>;
      const chosenUpTo = Math.max(m.truncatedBelow - 1, m.executedUpTo ?? 0);
      d.input.send({ type: 'catchup-rep', ring: d.ring, from: m.from, to: d.self, entries: [], truncatedBelow: m.truncatedBelow, chosenUpTo });
    },
    finishReprepare: ({ context: d }) => {
      becomeLeader(d, true);
      leaderState(d, 'leading');
      tryPropose(d);
    },
    checkRecovered: ({ context: d }) => {
      if (!d.recoveredSent && d.executedUpTo >= d.recoveryEnd) {
        d.recoveredSent = true;
        d.input.send({ type: 'recovered', ...hdr(d, d.self), ballot: d.ballot, upTo: d.recoveryEnd });
      }
    },
    retransmitPrepare: ({ context }) => retransmit(context, 'preparing'),
    retransmitAccepts: ({ context }) => retransmit(context, 'leading'),
    abort: ({ context, event }) => {
      // exit actions run before the transition's own: learn the new leader from the nack first,
      // so the aborted submissions carry its hint
      if (event.type === 'nack') observeNack(context, event as MessageOf<'nack'>);
      abortAll(context, context.leaderHint);
    },
    markRelinquished: ({ context }) => {
      context.relinquished = true;
    },
    setMembers: ({ context, event }) => setMembers(context, (event as { members: readonly ReplicaId[] }).members),
  },
  guards: {
    /**
     * A promise from a replica that executed a few slots this candidate lacks: it fetches them and
     * runs phase 1 again, same ballot (a cluster restarted as a whole differs by a pipeline or so).
     */
    lagging: ({ context: d, event }) => {
      const m = event as MessageOf<'promise'>;
      const upTo = m.executedUpTo ?? 0;
      return forThisPhase1(d, m) && upTo >= d.fromSlot && upTo - d.fromSlot < catchupInPlaceSlots(d);
    },
    /** far behind (or truncated above fromSlot): give way for an election timeout and catch up as a follower */
    farBehind: ({ context: d, event }) => {
      const m = event as MessageOf<'promise'>;
      if (!forThisPhase1(d, m)) return false;
      return m.truncatedBelow > d.fromSlot || (m.executedUpTo ?? 0) - d.fromSlot >= catchupInPlaceSlots(d);
    },
    completesQuorum: ({ context: d, event }) => {
      const m = event as MessageOf<'promise'>;
      if (!forThisPhase1(d, m) || d.awaitingCatchup > 0) return false;
      if (!completesPromise(d, m)) return false;
      if (d.promises.size + (d.promises.has(m.from) ? 0 : 1) < d.quorum) return false;
      // The local acceptor's promise must be among them: it is the durable record that this ballot
      // was used, so a restarted replica never campaigns with the same ballot again.
      return !d.members.includes(d.self) || m.from === d.self || d.promises.has(d.self);
    },
    forThisBallot: ({ context: d, event }) => {
      const m = event as MessageOf<'promise'>;
      return ballotEq(m.ballot, d.ballot) && m.fromSlot === d.fromSlot;
    },
    higherNack: ({ context, event }) => higherNack(context, event as MessageOf<'nack'>),
    stepDownNow: ({ context }) => context.stepDownNow,
    isMember: ({ context: d }) => d.config.members.includes(d.self),
    /**
     * While re-preparing, a member's log is truncated above the prepared slot, or it executed past
     * the slots this leader chose (another leader was here): step down and catch up.
     */
    reprepareBehind: ({ context: d, event }) => {
      const m = event as MessageOf<'promise'>;
      return d.reprepare && forThisPhase1(d, m) && (m.truncatedBelow > d.fromSlot || (m.executedUpTo ?? 0) >= d.fromSlot);
    },
    reprepareCompletes: ({ context: d, event }) => {
      const m = event as MessageOf<'promise'>;
      if (!d.reprepare || !forThisPhase1(d, m)) return false;
      if (!completesPromise(d, m)) return false;
      if (d.promises.size + (d.promises.has(m.from) ? 0 : 1) < d.quorum) return false;
      return !d.members.includes(d.self) || m.from === d.self || d.promises.has(d.self);
    },
    repreparePromise: ({ context: d, event }) => {
      const m = event as MessageOf<'promise'>;
      return d.reprepare && ballotEq(m.ballot, d.ballot) && m.fromSlot === d.fromSlot;
    },
  },
}).createMachine({
  id: 'proposer',
  context: ({ input }) => {
    const opts = { ...DEFAULT_PROPOSER_OPTIONS, ...input.options };
    const d: ProposerData = {
      ring: input.ring,
      self: input.self,
      inc: input.inc,
      members: [],
      quorum: 1,
      opts,
      ballot: { round: 0, leader: input.self },
      maxRound: input.maxRound ?? 0,
      config: input.configuration
        ? { epoch: input.configuration.epoch, members: [...input.configuration.members], startSlot: input.configuration.startSlot }
        : { epoch: 1, members: [...input.members], startSlot: 1 },
      pendingConfig: undefined,
      reprepare: false,
      observers: [],
      leaderHint: undefined,
      executedUpTo: input.executedUpTo ?? 0,
      cookie: undefined,
      fromSlot: 1,
      promises: new Map(),
      promisePages: new Map(),
      awaitingCatchup: 0,
      prepareSentAt: 0,
      decideSentAt: 0,
      nextSlot: 1,
      chosenUpTo: 0,
      slots: new Map(),
      recoveryEnd: 0,
      recoveryValues: new Map(),
      recoveredSent: false,
      queue: [],
      queueHead: 0,
      queuedBytes: 0,
      stepDownNow: false,
      lastProposed: false,
      relinquished: false,
      announcedExecuted: 0,
      peers: new Map(),
      stats: {
        slotsProposed: 0, commandsProposed: 0, slotsChosen: 0, votingMs: 0, elections: 0, leaderships: 0,
        acceptResends: 0, promisePagesPulled: 0, busyRefusals: 0,
      },
      input,
    };
    setMembers(d, d.config.members);
    return d;
  },
  initial: 'follower',
  on: {
    'set-members': { actions: 'setMembers' },
    'set-observers': { actions: 'setObservers' },
    stop: '.stopped',
  },
  states: {
    follower: {
      entry: 'announceFollower',
      on: {
        // an elector that has not heard of the newest configuration may ask a replica that is no
        // longer a member to campaign: the proposer knows better and tells it (leader-state)
        campaign: [{ guard: 'isMember', target: 'preparing', actions: 'startPrepare' }, { actions: 'announceFollower' }],
        submit: { actions: 'rejectSubmit' },
        nack: { actions: 'observeNack' },
        progress: { actions: 'progressFollower' },
        'config-proposal': { actions: 'refuseConfig' },
        tick: { actions: 'announceProgress' },
      },
    },
    preparing: {
      entry: 'announcePreparing',
      always: { guard: 'stepDownNow', target: 'follower', actions: 'markRelinquished' },
      on: {
        campaign: [{ guard: 'isMember', target: 'preparing', reenter: true, actions: 'startPrepare' }, { target: 'follower' }],
        progress: { actions: 'progressPreparing' },
        'config-proposal': { actions: 'refuseConfig' },
        promise: [
          { guard: 'farBehind', target: 'follower', actions: ['markRelinquished', 'hintCatchup'] },
          { guard: 'lagging', actions: 'awaitCatchup' },
          { guard: 'completesQuorum', target: 'leading', actions: ['recordPromise', 'becomeLeader'] },
          { guard: 'forThisBallot', actions: 'recordPromise' },
        ],
        nack: [{ guard: 'higherNack', target: 'follower', actions: 'observeNack' }, { actions: 'observeNack' }],
        submit: { actions: 'rejectSubmit' },
        resign: { target: 'follower', actions: 'markRelinquished' },
        tick: { actions: 'retransmitPrepare' },
      },
    },
    leading: {
      entry: ['announceLeading', 'checkRecovered'],
      exit: 'abort',
      always: { guard: 'stepDownNow', target: 'follower', actions: 'markRelinquished' },
      on: {
        submit: { actions: 'enqueue' },
        accepted: { actions: 'onAccepted' },
        nack: [{ guard: 'higherNack', target: 'follower', actions: 'observeNack' }, { actions: 'observeNack' }],
        progress: { actions: ['progressLeading', 'checkRecovered'] },
        'config-proposal': { actions: 'enqueueConfig' },
        promise: [
          { guard: 'reprepareBehind', target: 'follower', actions: ['markRelinquished', 'hintCatchup'] },
          { guard: 'reprepareCompletes', actions: ['recordPromise', 'finishReprepare'] },
          { guard: 'repreparePromise', actions: 'recordPromise' },
        ],
        tick: { actions: ['retransmitAccepts', 'announceLeading'] },
        resign: { target: 'follower', actions: 'markRelinquished' },
      },
    },
    stopped: { type: 'final' },
  },
});
