import { assertEvent, setup } from 'xstate';
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
  packedBatch,
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
  /**
   * commands waiting to be proposed, at most (count and bytes): beyond, submissions are refused as
   * busy
   */
  maxQueuedCommands: number;
  maxQueuedBytes: number;
  /**
   * pack each batch when it is proposed, and keep it packed (decision 0016): right when its bytes go to
   * a disk or another process anyway; a cluster whose messages and stores stay in memory turns it off
   */
  packProposals: boolean;
}

export const DEFAULT_PROPOSER_OPTIONS: ProposerOptions = {
  maxInflightSlots: 16,
  maxBatchCmds: 4096,
  maxBatchBytes: 512 << 10,
  retransmitMs: 50,
  maxRetransmitMs: 1000,
  maxQueuedCommands: 1 << 20,
  maxQueuedBytes: 256 << 20,
  packProposals: true,
};

export interface ProposerInput {
  ring: RingId;
  self: ReplicaId;
  /** this replica's incarnation (changes every start): tags the batches it proposes */
  inc: number;
  members: readonly ReplicaId[];
  send: (msg: Message) => void;
  now: () => number;
  /** the wall clock (ms since the epoch) stamped on each batch it cuts (SlotValue `at`); absent: none */
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
  /**
   * a config value in flight (stall rule: no slot above it until it is chosen); the leader is in
   * leading.reconfiguring.config-in-flight exactly while it is set
   */
  pendingConfig: PendingConfig | undefined;
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
  /** promises that come in pages (a long log), pulled one page at a time: what arrived so far, per member */
  promisePages: Map<ReplicaId, PartialPromise>;
  /**
   * A promise said its replica executed up to here (>= fromSlot): the candidate's learner catches up
   * to it, then phase 1 runs again from the slot after it, with the same ballot.
   */
  awaitingCatchup: Slot;
  prepareSentAt: number;
  /** when the last Decide went out to the other replicas: idle Decides at most every retransmitMs */
  decideSentAt: number;
  /**
   * How far the other replicas have been told the log is chosen, by a Decide or carried by an Accept
   * to every member (`decidedUpTo`). A choice is told to this replica's own learner at once and to
   * the others lazily: on the next Accept, or at the next tick (see sendChosen).
   */
  remoteDecidedUpTo: Slot;
  // phase 2
  nextSlot: Slot;
  chosenUpTo: Slot;
  slots: Map<Slot, InflightSlot>;
  recoveryEnd: Slot;
  /** the values phase 1 found for the open slots up to recoveryEnd: re-proposed through the window */
  recoveryValues: Map<Slot, SlotValue>;
  /**
   * `recovered` went out for this leadership. A flag, not a state: it follows the learner's progress
   * (executedUpTo reaching recoveryEnd), which may come before or after recoveryEnd is chosen, and a
   * leadership that re-prepares after a configuration change does not send it again.
   */
  recoveredSent: boolean;
  queue: SubmitItem[];
  queueHead: number;
  /** bytes of the commands in queue[queueHead..] */
  queuedBytes: number;
  /**
   * This leadership proposed its `last` (step-down) value: nothing more is taken from the queue. A
   * flag, not a state: the value is cut inside tryPropose by whichever event drains the queue, and it
   * only closes the queue (recovered slots, retransmission and the chosen prefix go on as in
   * leading.recovering or leading.steady, either of which it can be in), so a state would be a second
   * region beside those. Its slot chosen takes the leader through leading.stepping-down.
   */
  lastProposed: boolean;
  /** the executed slot last told to the elector (a follower's heartbeat acks carry it to the leader) */
  announcedExecuted: Slot;
  peers: Map<ReplicaId, PeerProgress>;
  stats: {
    slotsProposed: number;
    commandsProposed: number;
    slotsChosen: number;
    votingMs: number;
    elections: number;
    leaderships: number;
    acceptResends: number;
    promisePagesPulled: number;
    busyRefusals: number;
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

/** What the elector hears: the top-level state, and whether a follower stepped down of its own accord. */
function leaderState(d: ProposerData, state: 'follower' | 'preparing' | 'leading', relinquished = false): void {
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
    ...(relinquished ? { relinquished: true } : {}),
    config: d.config,
    ...(d.observers.length ? { observers: d.observers } : {}),
  });
}

const decide = (d: ProposerData, to: ReplicaId) =>
  d.input.send({ type: 'decide', ...hdr(d, to), ballot: d.ballot, upTo: d.chosenUpTo });

/** Decides go to the members, to the observers catching up, and to this replica's own learner. */
function sendDecide(d: ProposerData): void {
  d.decideSentAt = d.input.now();
  d.remoteDecidedUpTo = d.chosenUpTo;
  for (const mm of d.members) decide(d, mm);
  for (const o of d.observers) if (!d.members.includes(o)) decide(d, o);
  if (!d.members.includes(d.self) && !d.observers.includes(d.self)) decide(d, d.self);
}

/**
 * A choice: this replica's learner hears it at once (it executes and the client gets its reply);
 * the other replicas hear it on the next Accept, which carries `decidedUpTo`, or at the next tick.
 * Under load the Accepts carry every choice, and with one client at a time the Decide rides on the
 * next command's Accept: no message and no wake-up of its own on the path to the reply
 * (issue #19 point 3). A chosen configuration, and observers, are told at once.
 */
function sendChosen(d: ProposerData): void {
  // a configuration value (the leader may step down at once) and observers catching up: everyone now
  if (d.observers.length || configChosen(d)) sendDecide(d);
  else decide(d, d.self);
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

/** A new ballot of this proposer: always higher than its last (checked in production too: issue #17). */
function setBallot(d: ProposerData, b: Ballot): void {
  safety(
    compareBallots(b, d.ballot) > 0,
    `proposer ${d.self}: ballot ${b.round}.${b.leader} not above ${d.ballot.round}.${d.ballot.leader}`,
  );
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

/**
 * Phase 1 with a new ballot (round, self) from `fromSlot`: the round is above every round known
 * (maxRound + 1, or a higher one asked for). Used by a campaign (preparing), by a candidate whose
 * learner executed a configuration change (preparing again), and by a leader whose own change took
 * effect (leading.reconfiguring.re-preparing).
 */
function beginPhase1(d: ProposerData, fromSlot: Slot, round = d.maxRound + 1): void {
  d.maxRound = round;
  setBallot(d, { round, leader: d.self });
  d.fromSlot = fromSlot;
  sendPrepares(d);
}

/** The campaign its elector asked for: phase 1 from the first slot it has not executed. */
function startPrepare(d: ProposerData, e: MessageOf<'campaign'>): void {
  d.cookie = e.cookie;
  d.stats.elections++;
  beginPhase1(d, prepareFrom(d), Math.max(e.round, d.maxRound + 1));
}

/**
 * Entry of leading.reconfiguring.re-preparing: phase 1 again, with a new ballot, among the members of
 * the configuration that just took effect, from its first slot (see specs/config-change).
 */
function beginReprepare(d: ProposerData): void {
  CONTRACTS && requires(d.pendingConfig === undefined && d.slots.size === 0, 'reprepare: nothing in flight');
  beginPhase1(d, Math.max(d.config.startSlot, d.chosenUpTo + 1));
  d.stats.elections++;
  leaderState(d, 'leading');
}

/** The config value in flight is chosen: the slots after it belong to the configuration it names. */
const configChosen = (d: ProposerData): boolean =>
  d.pendingConfig !== undefined && d.chosenUpTo >= d.pendingConfig.slot;

function adoptChosenConfig(d: ProposerData): void {
  const pc = d.pendingConfig!;
  d.pendingConfig = undefined;
  adoptConfig(d, { epoch: pc.epoch, members: pc.members, startSlot: pc.slot + 1 });
}

function sendPrepare(d: ProposerData, to: ReplicaId, pageFrom?: Slot): void {
  d.input.send({
    type: 'prepare',
    ...hdr(d, to),
    ballot: d.ballot,
    fromSlot: d.fromSlot,
    ...(d.cookie ? { cookie: d.cookie } : {}),
    ...(pageFrom !== undefined ? { pageFrom } : {}),
  });
}

function sendAccept(d: ProposerData, to: ReplicaId, slot: Slot, value: SlotValue): void {
  d.input.send({ type: 'accept', ...hdr(d, to), ballot: d.ballot, slot, value, decidedUpTo: d.chosenUpTo });
}

function propose(d: ProposerData, slot: Slot, value: SlotValue): void {
  CONTRACTS && requires(!d.slots.has(slot) && slot > d.chosenUpTo, `propose: slot ${slot} is free`);
  CONTRACTS &&
    requires(
      d.pendingConfig === undefined || slot <= d.pendingConfig.slot,
      `propose: slot ${slot} above a config value in flight`,
    );
  if (value.k === 'config') d.pendingConfig = { slot, epoch: value.epoch, members: value.members };
  const now = d.input.now();
  d.slots.set(slot, { value, acks: new Set(), firstSentAt: now, sentAt: now, resends: 0, chosen: false });
  d.stats.slotsProposed++;
  for (const m of d.members) sendAccept(d, m, slot, value);
  // observers get no Accepts: a choice is theirs to hear by a Decide at the next tick
  if (!d.observers.length) d.remoteDecidedUpTo = d.chosenUpTo;
}

/**
 * Batches queued commands into slot values while the pipeline has room (adaptive batching). Runs
 * in the states that propose (leading.recovering, leading.steady) and at the end of a phase 1; a
 * config value it cuts stops it (the leader goes to leading.reconfiguring), and so does a `last` one.
 */
export function tryPropose(d: ProposerData): void {
  // the open slots phase 1 found come first, through the same window
  while (
    d.nextSlot <= d.recoveryEnd &&
    d.nextSlot - d.chosenUpTo - 1 < d.opts.maxInflightSlots &&
    d.pendingConfig === undefined
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
    !d.lastProposed &&
    d.pendingConfig === undefined
  ) {
    const first = q[d.queueHead]!;
    if (first.config) {
      // a configuration change: alone in its slot, and nothing above it until it is chosen
      d.queueHead++;
      const c = first.config;
      propose(d, d.nextSlot++, {
        k: 'config',
        epoch: d.config.epoch + 1,
        members: c.members,
        origin: d.self,
        inc: d.inc,
        firstId: first.id,
        ...(c.cookie ? { cookie: c.cookie } : {}),
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
    const built: Extract<SlotValue, { k: 'batch' }> = first.excl
      ? {
          k: 'batch',
          origin: d.self,
          inc: d.inc,
          firstId: first.id,
          cmds,
          excl: true,
          ...(first.last ? { last: true } : {}),
          ...at,
        }
      : { k: 'batch', origin: d.self, inc: d.inc, firstId: first.id, cmds, ...at };
    d.stats.commandsProposed += cmds.length;
    if (first.excl && first.last) d.lastProposed = true;
    // packed once here: the slot keeps one buffer, not a view per command (decision 0016)
    propose(d, d.nextSlot++, d.opts.packProposals ? packedBatch(built) : built);
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
    type: 'catchup-rep',
    ring: d.ring,
    from: m.from,
    to: d.self,
    entries: [],
    truncatedBelow: Math.min(m.truncatedBelow, d.executedUpTo + 1),
    chosenUpTo: upTo,
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

/** The slot this Accepted makes chosen (the vote that completes its quorum), if any. */
export function choosesSlot(d: ProposerData, m: MessageOf<'accepted'>): InflightSlot | undefined {
  if (!ballotEq(m.ballot, d.ballot)) return undefined;
  const s = d.slots.get(m.slot);
  if (!s || s.chosen || !d.members.includes(m.from)) return undefined;
  return s.acks.size + (s.acks.has(m.from) ? 0 : 1) >= d.quorum ? s : undefined;
}

/** The `last` value of a command this replica submitted: once it is chosen, the leader steps down. */
const ownLast = (d: ProposerData, v: SlotValue): boolean => v.k === 'batch' && !!v.last && v.origin === d.self;

/**
 * Counts an Accepted: a majority makes its slot chosen, the chosen prefix advances and a Decide
 * goes out. What follows is the state's: propose more (leading.recovering, leading.steady), step
 * down (the own `last` value chosen) or prepare in the new configuration (the config value chosen).
 */
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
  const before = d.chosenUpTo;
  for (;;) {
    const n = d.slots.get(d.chosenUpTo + 1);
    if (!n || !n.chosen) break;
    d.slots.delete(d.chosenUpTo + 1);
    d.chosenUpTo++;
  }
  if (d.chosenUpTo > before) sendChosen(d);
  CONTRACTS &&
    ensures(
      d.nextSlot - d.chosenUpTo - 1 <= Math.max(d.opts.maxInflightSlots, d.recoveryEnd - d.chosenUpTo),
      'accepted: window bound',
    );
}

/** Leaving leadership: queued commands were never proposed; in-flight ones may still be chosen. */
function abortAll(d: ProposerData, hint: ReplicaId | undefined): void {
  const h = hint !== undefined && hint !== d.self ? { leaderHint: hint } : {};
  const queued: number[] = [];
  for (let i = d.queueHead; i < d.queue.length; i++) {
    const it = d.queue[i]!;
    if (it.config) {
      d.input.send({
        type: 'config-refused',
        ...hdr(d, d.self),
        id: it.id,
        maybeChosen: false,
        reason: 'the leadership was lost before the change was proposed',
        ...h,
      });
    } else queued.push(it.id);
  }
  const flying: number[] = [];
  for (const s of d.slots.values()) {
    const v = s.value;
    if (!s.chosen && v.k === 'batch' && v.origin === d.self && v.inc === d.inc)
      for (let i = 0; i < v.cmds.length; i++) flying.push(v.firstId + i);
    if (!s.chosen && v.k === 'config' && v.origin === d.self && v.inc === d.inc) {
      d.input.send({
        type: 'config-refused',
        ...hdr(d, d.self),
        id: v.firstId,
        maybeChosen: true,
        reason: 'the leadership was lost while the change was in flight',
        ...h,
      });
    }
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
}

function refuseConfig(d: ProposerData, e: MessageOf<'config-proposal'>, reason: string): void {
  const h = d.leaderHint !== undefined && d.leaderHint !== d.self ? { leaderHint: d.leaderHint } : {};
  d.input.send({ type: 'config-refused', ...hdr(d, d.self), id: e.id, maybeChosen: false, reason, ...h });
}

const PENDING_CHANGE = 'another configuration change is pending';

/**
 * A configuration change to propose behind the commands already queued (leading.recovering,
 * leading.steady; leading.reconfiguring refuses every change).
 */
function enqueueConfig(d: ProposerData, e: MessageOf<'config-proposal'>): void {
  for (let i = d.queueHead; i < d.queue.length; i++) {
    if (d.queue[i]!.config) {
      refuseConfig(d, e, PENDING_CHANGE);
      return;
    }
  }
  d.queue.push({
    id: e.id,
    cmd: new Uint8Array(0),
    config: { members: [...e.members], ...(e.cookie ? { cookie: e.cookie } : {}) },
  });
}

/** Queues submitted commands (the state proposes them when it may), or refuses them all as busy. */
function enqueue(d: ProposerData, e: MessageOf<'submit'>): void {
  let bytes = 0;
  for (const it of e.items) bytes += it.cmd.length;
  const queued = d.queue.length - d.queueHead;
  const full = queued + e.items.length > d.opts.maxQueuedCommands || d.queuedBytes + bytes > d.opts.maxQueuedBytes;
  if (queued > 0 && full) {
    // back-pressure: the pipeline is stalled (a full store, a slow majority); refuse, never queue without bound
    d.stats.busyRefusals += e.items.length;
    const ids = e.items.map((i) => i.id);
    d.input.send({ type: 'aborted', ...hdr(d, d.self), ids, maybeChosen: false, busy: true });
    return;
  }
  const q = d.queue;
  for (const it of e.items) q.push(it);
  d.queuedBytes += bytes;
}

/** A newer configuration in the learner's progress. */
const newerConfig = (d: ProposerData, e: MessageOf<'progress'>): Configuration | undefined =>
  e.config && e.config.epoch > d.config.epoch ? e.config : undefined;

/**
 * The learner's progress; it carries the configuration as of the executed slot. A newer one is
 * adopted at once by a follower; a candidate prepares again in it (or, not a member, gives way); a
 * leader that did not choose it itself steps down (it was leading slots whose configuration it did
 * not know). The stepping down is the transition's (guards configWithoutMe, foreignConfig).
 */
function onProgress(
  d: ProposerData,
  e: MessageOf<'progress'>,
  state: 'follower' | 'preparing' | 'leading',
  relinquished = false,
): void {
  if (e.executedUpTo > d.executedUpTo) d.executedUpTo = e.executedUpTo;
  const c = newerConfig(d, e);
  if (!c) {
    if (state === 'preparing' && d.awaitingCatchup > 0 && d.executedUpTo >= d.awaitingCatchup) resumePhase1(d);
    return;
  }
  if (state === 'leading') {
    if (d.pendingConfig && d.pendingConfig.epoch === c.epoch) return; // our own change: the config value's chosen
    adoptConfig(d, c);
    return;
  }
  adoptConfig(d, c);
  if (state === 'preparing') {
    if (!c.members.includes(d.self)) return;
    // prepare again among the new members, from the slot the new configuration starts at
    beginPhase1(d, prepareFrom(d));
  }
  leaderState(d, state, relinquished);
}

function rejectSubmit(d: ProposerData, e: MessageOf<'submit'>): void {
  const h = d.leaderHint !== undefined && d.leaderHint !== d.self ? { leaderHint: d.leaderHint } : {};
  d.input.send({ type: 'aborted', ...hdr(d, d.self), ids: e.items.map((i) => i.id), maybeChosen: false, ...h });
}

function observeNack(d: ProposerData, m: MessageOf<'nack'>): void {
  if (m.promised.round > d.maxRound) d.maxRound = m.promised.round;
  if (compareBallots(m.promised, d.ballot) > 0) d.leaderHint = m.promised.leader;
}

const higherNack = (d: ProposerData, m: MessageOf<'nack'>) =>
  ballotEq(m.ballot, d.ballot) && compareBallots(m.promised, d.ballot) > 0;

/** The promise completes a quorum that includes the local acceptor's (when it is a member). */
function completesQuorum(d: ProposerData, m: MessageOf<'promise'>): boolean {
  if (!completesPromise(d, m)) return false;
  if (d.promises.size + (d.promises.has(m.from) ? 0 : 1) < d.quorum) return false;
  // The local acceptor's promise must be among them: it is the durable record that this ballot
  // was used, so a restarted replica never campaigns with the same ballot again.
  return !d.members.includes(d.self) || m.from === d.self || d.promises.has(d.self);
}

/** Phase 1 (preparing, re-preparing): resend Prepares and page pulls that went unanswered. */
function retransmitPrepares(d: ProposerData): void {
  const now = d.input.now();
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
}

/** Phase 2 (leading): resend unanswered Accepts (backing off), and an idle Decide. */
function retransmitAccepts(d: ProposerData): void {
  const now = d.input.now();
  for (const [slot, s] of d.slots) {
    if (s.chosen) continue;
    const wait = Math.min(d.opts.retransmitMs * 2 ** s.resends, Math.max(d.opts.retransmitMs, d.opts.maxRetransmitMs));
    if (now - s.sentAt < wait) continue;
    s.sentAt = now;
    s.resends++;
    d.stats.acceptResends++;
    for (const m of d.members) if (!s.acks.has(m)) sendAccept(d, m, slot, s.value);
  }
  // a choice no Accept carried yet goes out now (sendChosen); and an idle Decide lets lagging or
  // restarted learners know how far the log is chosen, at most every retransmitMs (not every
  // tick: an idle cluster would wake every follower 100 times a second)
  if (d.chosenUpTo > d.remoteDecidedUpTo || now - d.decideSentAt >= d.opts.retransmitMs) sendDecide(d);
}

function setMembers(d: ProposerData, members: readonly ReplicaId[]): void {
  d.members = [...members];
  d.quorum = quorumOf(members.length);
  for (const m of members) if (!d.peers.has(m)) d.peers.set(m, { lastAcceptedSlot: 0, lastHeardAt: 0 });
}

/** The relinquished flag of a follower's reports: the substate it is in (follower.relinquished or not). */
type Relinquished = { relinquished: boolean };

export const proposerMachine = setup({
  types: {
    context: {} as ProposerData,
    events: {} as ProposerEvent,
    input: {} as ProposerInput,
  },
  actions: {
    announceFollower: ({ context }, p: Relinquished) => leaderState(context, 'follower', p.relinquished),
    /** a follower tells its elector how far it executed (at most once a tick): the leader sees it in heartbeat acks */
    announceProgress: ({ context: d }, p: Relinquished) => {
      if (d.executedUpTo !== d.announcedExecuted) leaderState(d, 'follower', p.relinquished);
    },
    announcePreparing: ({ context }) => leaderState(context, 'preparing'),
    announceLeading: ({ context }) => leaderState(context, 'leading'),
    startPrepare: ({ context, event }) => {
      assertEvent(event, 'campaign');
      startPrepare(context, event);
    },
    recordPromise: ({ context, event }) => {
      assertEvent(event, 'promise');
      recordPromise(context, event);
    },
    awaitCatchup: ({ context, event }) => {
      assertEvent(event, 'promise');
      awaitCatchup(context, event);
    },
    becomeLeader: ({ context }) => becomeLeader(context),
    recordAccepted: ({ context, event }) => {
      assertEvent(event, 'accepted');
      onAccepted(context, event);
    },
    propose: ({ context }) => tryPropose(context),
    enqueue: ({ context, event }) => {
      assertEvent(event, 'submit');
      enqueue(context, event);
    },
    rejectSubmit: ({ context, event }) => {
      assertEvent(event, 'submit');
      rejectSubmit(context, event);
    },
    observeNack: ({ context, event }) => {
      assertEvent(event, 'nack');
      observeNack(context, event);
    },
    progressFollower: ({ context, event }, p: Relinquished) => {
      assertEvent(event, 'progress');
      onProgress(context, event, 'follower', p.relinquished);
    },
    progressPreparing: ({ context, event }) => {
      assertEvent(event, 'progress');
      onProgress(context, event, 'preparing');
    },
    progressLeading: ({ context, event }) => {
      assertEvent(event, 'progress');
      onProgress(context, event, 'leading');
    },
    refuseConfig: ({ context, event }) => {
      assertEvent(event, 'config-proposal');
      refuseConfig(context, event, 'this replica is not the leader');
    },
    refusePendingConfig: ({ context, event }) => {
      assertEvent(event, 'config-proposal');
      refuseConfig(context, event, PENDING_CHANGE);
    },
    enqueueConfig: ({ context, event }) => {
      assertEvent(event, 'config-proposal');
      enqueueConfig(context, event);
    },
    setObservers: ({ context, event }) => {
      assertEvent(event, 'set-observers');
      context.observers = event.observers.filter((o) => !context.members.includes(o));
    },
    /**
     * The promise says its sender executed every slot below its truncation point: tell the local
     * learner, as that peer's catch-up answer would, so that it fetches the peer's snapshot.
     */
    hintCatchup: ({ context: d, event: m }) => {
      assertEvent(m, 'promise');
      const chosenUpTo = Math.max(m.truncatedBelow - 1, m.executedUpTo ?? 0);
      d.input.send({
        type: 'catchup-rep',
        ring: d.ring,
        from: m.from,
        to: d.self,
        entries: [],
        truncatedBelow: m.truncatedBelow,
        chosenUpTo,
      });
    },
    adoptChosenConfig: ({ context }) => adoptChosenConfig(context),
    beginReprepare: ({ context }) => beginReprepare(context),
    /**
     * One Accepted chose both the own `last` value and, above it, the config value in flight (both
     * recovered from an earlier leadership): as before, the configuration is adopted and, a member,
     * phase 1 begins in it; the leader then steps down.
     */
    settleChosenConfig: ({ context: d }) => {
      if (!configChosen(d)) return;
      const stays = d.pendingConfig!.members.includes(d.self);
      adoptChosenConfig(d);
      if (stays) beginReprepare(d);
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
    retransmitPrepares: ({ context }) => retransmitPrepares(context),
    retransmitAccepts: ({ context }) => retransmitAccepts(context),
    abort: ({ context, event }) => {
      // exit actions run before the transition's own: learn the new leader from the nack first,
      // so the aborted submissions carry its hint
      if (event.type === 'nack') observeNack(context, event);
      abortAll(context, context.leaderHint);
    },
    setMembers: ({ context, event }) => {
      assertEvent(event, 'set-members');
      setMembers(context, event.members);
    },
  },
  guards: {
    /**
     * A promise from a replica that executed a few slots this candidate lacks: it fetches them and
     * runs phase 1 again, same ballot (a cluster restarted as a whole differs by a pipeline or so).
     */
    lagging: ({ context: d, event: m }) => {
      assertEvent(m, 'promise');
      const upTo = m.executedUpTo ?? 0;
      return forThisPhase1(d, m) && upTo >= d.fromSlot && upTo - d.fromSlot < catchupInPlaceSlots(d);
    },
    /** far behind (or truncated above fromSlot): give way for an election timeout and catch up as a follower */
    farBehind: ({ context: d, event: m }) => {
      assertEvent(m, 'promise');
      if (!forThisPhase1(d, m)) return false;
      return m.truncatedBelow > d.fromSlot || (m.executedUpTo ?? 0) - d.fromSlot >= catchupInPlaceSlots(d);
    },
    completesQuorum: ({ context: d, event: m }) => {
      assertEvent(m, 'promise');
      return forThisPhase1(d, m) && d.awaitingCatchup === 0 && completesQuorum(d, m);
    },
    forThisBallot: ({ context: d, event: m }) => {
      assertEvent(m, 'promise');
      return ballotEq(m.ballot, d.ballot) && m.fromSlot === d.fromSlot;
    },
    higherNack: ({ context, event }) => {
      assertEvent(event, 'nack');
      return higherNack(context, event);
    },
    isMember: ({ context: d }) => d.config.members.includes(d.self),
    /** a candidate's learner executed a configuration that does not name it: it gives way */
    configWithoutMe: ({ context: d, event }) => {
      assertEvent(event, 'progress');
      const c = newerConfig(d, event);
      return c !== undefined && !c.members.includes(d.self);
    },
    /** a leader's learner executed a configuration this leader did not choose: it steps down */
    foreignConfig: ({ context: d, event }) => {
      assertEvent(event, 'progress');
      const c = newerConfig(d, event);
      return c !== undefined && !(d.pendingConfig && d.pendingConfig.epoch === c.epoch);
    },
    /** the Accepted chooses the `last` value of a command this replica submitted */
    choosesOwnLast: ({ context: d, event }) => {
      assertEvent(event, 'accepted');
      const s = choosesSlot(d, event);
      return s !== undefined && ownLast(d, s.value);
    },
    /** the slots phase 1 found are all chosen */
    recoveryChosen: ({ context: d }) => d.chosenUpTo >= d.recoveryEnd,
    configInFlight: ({ context: d }) => d.pendingConfig !== undefined,
    configChosen: ({ context: d }) => configChosen(d),
    /** the configuration chosen does not name this replica */
    configChosenWithoutMe: ({ context: d }) => configChosen(d) && !d.pendingConfig!.members.includes(d.self),
    /**
     * While re-preparing, a member's log is truncated above the prepared slot, or it executed past
     * the slots this leader chose (another leader was here): step down and catch up.
     */
    reprepareBehind: ({ context: d, event: m }) => {
      assertEvent(m, 'promise');
      return forThisPhase1(d, m) && (m.truncatedBelow > d.fromSlot || (m.executedUpTo ?? 0) >= d.fromSlot);
    },
    reprepareCompletes: ({ context: d, event: m }) => {
      assertEvent(m, 'promise');
      return forThisPhase1(d, m) && completesQuorum(d, m);
    },
  },
}).createMachine({
  id: 'proposer',
  context: ({ input }) => {
    const opts = { ...DEFAULT_PROPOSER_OPTIONS, ...input.options };
    const c = input.configuration;
    const d: ProposerData = {
      ring: input.ring,
      self: input.self,
      inc: input.inc,
      members: [],
      quorum: 1,
      opts,
      ballot: { round: 0, leader: input.self },
      maxRound: input.maxRound ?? 0,
      config: c
        ? { epoch: c.epoch, members: [...c.members], startSlot: c.startSlot }
        : { epoch: 1, members: [...input.members], startSlot: 1 },
      pendingConfig: undefined,
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
      remoteDecidedUpTo: 0,
      nextSlot: 1,
      chosenUpTo: 0,
      slots: new Map(),
      recoveryEnd: 0,
      recoveryValues: new Map(),
      recoveredSent: false,
      queue: [],
      queueHead: 0,
      queuedBytes: 0,
      lastProposed: false,
      announcedExecuted: 0,
      peers: new Map(),
      stats: {
        slotsProposed: 0,
        commandsProposed: 0,
        slotsChosen: 0,
        votingMs: 0,
        elections: 0,
        leaderships: 0,
        acceptResends: 0,
        promisePagesPulled: 0,
        busyRefusals: 0,
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
      description: 'not leading - submissions and changes are refused with the leader hint',
      initial: 'following',
      on: {
        submit: { actions: 'rejectSubmit' },
        nack: { actions: 'observeNack' },
        'config-proposal': { actions: 'refuseConfig' },
      },
      states: {
        following: {
          entry: { type: 'announceFollower', params: { relinquished: false } },
          on: {
            // an elector that has not heard of the newest configuration may ask a replica that is no
            // longer a member to campaign: the proposer knows better and tells it (leader-state)
            campaign: [
              { guard: 'isMember', target: '#proposer.preparing', actions: 'startPrepare' },
              { actions: { type: 'announceFollower', params: { relinquished: false } } },
            ],
            progress: { actions: { type: 'progressFollower', params: { relinquished: false } } },
            tick: { actions: { type: 'announceProgress', params: { relinquished: false } } },
          },
        },
        /** stepped down of its own accord: its reports say so, and its elector holds back an election timeout */
        relinquished: {
          description: 'stepped down of its own accord - its elector holds back an election timeout',
          entry: { type: 'announceFollower', params: { relinquished: true } },
          on: {
            campaign: [
              { guard: 'isMember', target: '#proposer.preparing', actions: 'startPrepare' },
              { actions: { type: 'announceFollower', params: { relinquished: true } } },
            ],
            progress: { actions: { type: 'progressFollower', params: { relinquished: true } } },
            tick: { actions: { type: 'announceProgress', params: { relinquished: true } } },
          },
        },
      },
    },
    preparing: {
      description: 'phase 1 - Prepare to the members until a majority (its own acceptor among them) promised',
      entry: 'announcePreparing',
      on: {
        campaign: [
          { guard: 'isMember', target: 'preparing', reenter: true, actions: 'startPrepare' },
          { target: 'follower' },
        ],
        progress: [
          { guard: 'configWithoutMe', target: 'follower.relinquished', actions: 'progressPreparing' },
          { actions: 'progressPreparing' },
        ],
        'config-proposal': { actions: 'refuseConfig' },
        promise: [
          { guard: 'farBehind', target: 'follower.relinquished', actions: 'hintCatchup' },
          { guard: 'lagging', actions: 'awaitCatchup' },
          { guard: 'completesQuorum', target: 'leading', actions: ['recordPromise', 'becomeLeader'] },
          { guard: 'forThisBallot', actions: 'recordPromise' },
        ],
        nack: [{ guard: 'higherNack', target: 'follower', actions: 'observeNack' }, { actions: 'observeNack' }],
        submit: { actions: 'rejectSubmit' },
        resign: 'follower.relinquished',
        tick: { actions: 'retransmitPrepares' },
      },
    },
    leading: {
      entry: ['announceLeading', 'checkRecovered'],
      exit: 'abort',
      initial: 'recovering',
      on: {
        nack: [{ guard: 'higherNack', target: 'follower', actions: 'observeNack' }, { actions: 'observeNack' }],
        progress: [
          { guard: 'foreignConfig', target: '.stepping-down', actions: ['progressLeading', 'checkRecovered'] },
          { actions: ['progressLeading', 'checkRecovered'] },
        ],
        tick: { actions: ['retransmitAccepts', 'announceLeading'] },
        resign: '.stepping-down',
      },
      states: {
        recovering: {
          description: 'phase 2 of the values phase 1 found (no-ops in holes), ahead of commands, until all are chosen',
          always: [
            { guard: 'configInFlight', target: 'reconfiguring' },
            { guard: 'recoveryChosen', target: 'steady' },
          ],
          on: {
            submit: { actions: ['enqueue', 'propose'] },
            accepted: [
              { guard: 'choosesOwnLast', target: 'stepping-down', actions: 'recordAccepted' },
              { actions: ['recordAccepted', 'propose'] },
            ],
            'config-proposal': { actions: ['enqueueConfig', 'propose'] },
          },
        },
        steady: {
          description: 'phase 2 - commands batched into slots, up to maxInflightSlots in flight',
          always: { guard: 'configInFlight', target: 'reconfiguring' },
          on: {
            submit: { actions: ['enqueue', 'propose'] },
            accepted: [
              { guard: 'choosesOwnLast', target: 'stepping-down', actions: 'recordAccepted' },
              { actions: ['recordAccepted', 'propose'] },
            ],
            'config-proposal': { actions: ['enqueueConfig', 'propose'] },
          },
        },
        reconfiguring: {
          description: 'a membership change (specs/config-change), no other change is taken meanwhile',
          initial: 'config-in-flight',
          on: {
            submit: { actions: 'enqueue' },
            'config-proposal': { actions: 'refusePendingConfig' },
          },
          states: {
            'config-in-flight': {
              description: 'the config value in flight at slot e - nothing above e is proposed until it is chosen',
              always: [
                {
                  guard: 'configChosenWithoutMe',
                  target: '#proposer.leading.stepping-down',
                  actions: 'adoptChosenConfig',
                },
                { guard: 'configChosen', target: 're-preparing', actions: 'adoptChosenConfig' },
              ],
              on: {
                accepted: [
                  {
                    guard: 'choosesOwnLast',
                    target: '#proposer.leading.stepping-down',
                    actions: ['recordAccepted', 'settleChosenConfig'],
                  },
                  { actions: 'recordAccepted' },
                ],
              },
            },
            're-preparing': {
              description: 'e chosen - phase 1 again (new ballot) among the new members from e+1, commands wait',
              entry: 'beginReprepare',
              on: {
                promise: [
                  { guard: 'reprepareBehind', target: '#proposer.follower.relinquished', actions: 'hintCatchup' },
                  {
                    guard: 'reprepareCompletes',
                    target: '#proposer.leading.recovering',
                    actions: ['recordPromise', 'finishReprepare'],
                  },
                  { guard: 'forThisBallot', actions: 'recordPromise' },
                ],
                accepted: { actions: 'recordAccepted' },
                tick: { actions: ['retransmitPrepares', 'announceLeading'] },
              },
            },
          },
        },
        'stepping-down': {
          description: 'leaving of its own accord - resign, its last value chosen, a configuration without it',
          always: { target: '#proposer.follower.relinquished' },
        },
      },
    },
    stopped: { type: 'final' },
  },
});
