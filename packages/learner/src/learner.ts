import { assertEvent, fromPromise, setup } from 'xstate';
import {
  type Ballot,
  type ChosenEntry,
  type Configuration,
  type Message,
  type MessageOf,
  type ReplicaId,
  type RingId,
  type Slot,
  type SlotValue,
  type StateMachine,
  BIN_LEN,
  BIN_OFF,
  CONTRACTS,
  collectSnapshot,
  commandCount,
  compareBallots,
  ensures,
  firstCommandAt,
  invariant,
  readBin,
  requires,
  safety,
  slotValueEquals,
  slotValueSize,
  wireCommands,
} from '@decree/protocol';

export interface LearnerOptions {
  /** most slots in one catch-up reply */
  catchupBatchSlots: number;
  /**
   * most value bytes in one catch-up reply (at least one slot is always sent): a reply must fit a
   * transport frame (TCP 16 MiB, NATS max_payload 1 MiB by default)
   */
  catchupMaxBytes: number;
  /** executed slots kept in memory to serve peers' catch-up */
  retainSlots: number;
  retainBytes: number;
  /** ask again for a missing slot after this long */
  catchupIntervalMs: number;
  /**
   * how often the snapshotter hears how far it executed (`snap-executed`), besides each tick: at once
   * after a pause of snapProgressMs, else every snapProgressSlots slots or snapProgressBytes of values
   * (the replica sets them at most its snapshot interval)
   */
  snapProgressSlots: number;
  snapProgressBytes: number;
  snapProgressMs: number;
  /**
   * How often the local proposer (`progress`) and the local acceptor (`exec-mark`) hear how far it
   * executed: at once after a pause of reportMs or when the configuration changes, else every
   * reportSlots executed slots or reportFillBytes of values from peers, and at each tick. Neither
   * needs every slot: the proposer acts on a new configuration (sent at once) and on catch-up and
   * recovery milestones, the acceptor records the mark for an offline replay (docs/decisions/0011).
   */
  reportMs: number;
  reportSlots: number;
  reportFillBytes: number;
}

export const DEFAULT_LEARNER_OPTIONS: LearnerOptions = {
  catchupBatchSlots: 256,
  catchupMaxBytes: 512 << 10,
  retainSlots: 100_000,
  retainBytes: 256 << 20,
  catchupIntervalMs: 50,
  snapProgressSlots: 256,
  snapProgressBytes: 1 << 20,
  snapProgressMs: 5,
  reportMs: 5,
  reportSlots: 256,
  reportFillBytes: 1 << 20,
};

export interface LearnerInput {
  ring: RingId;
  self: ReplicaId;
  inc: number;
  members: readonly ReplicaId[];
  stateMachine: StateMachine;
  send: (msg: Message) => void;
  now: () => number;
  options?: Partial<LearnerOptions>;
  /** the slot the state machine holds at start (a snapshot, then the local log replayed); 0 for empty */
  executedUpTo?: Slot;
  /**
   * Slots replayed from the local log at start (ascending, ending at executedUpTo): kept to serve
   * peers' catch-up as if executed here, and counted in appliedBytes (the snapshot byte interval).
   */
  replayed?: readonly { readonly slot: Slot; readonly value: SlotValue }[];
  /** the configuration as of executedUpTo (default: epoch 1 of `members`); epoch 0: none known yet (joining) */
  configuration?: Configuration;
  /** every replica of the ring this learner may ask for missing slots when its configuration names none */
  peers?: readonly ReplicaId[];
  /** called when the state machine throws: the replica reports it (the command's result is undefined) */
  onApplyError?: (err: unknown, slot: Slot) => void;
  /**
   * Where the snapshotter runs (its replica id; default this replica): the learner tells it how far it
   * executed (`snap-executed`) and when a peer no longer has the slots it misses (`snap-need`), and
   * answers its `snap-take` (a copy of the state machine) and `snap-install` (replace the state).
   */
  snapshotter?: ReplicaId;
}

export interface LearnerData {
  readonly ring: RingId;
  readonly self: ReplicaId;
  readonly inc: number;
  members: readonly ReplicaId[];
  /** the configuration as of executedUpTo: it governs the slots after it */
  config: Configuration;
  opts: LearnerOptions;
  pending: Map<Slot, { ballot: Ballot; value: SlotValue }>;
  chosen: Map<Slot, SlotValue>;
  executedUpTo: Slot;
  /** the highest slot known chosen (from a Decide, or from a peer's catch-up reply) */
  decidedUpTo: Slot;
  /**
   * The latest Decide(decideBallot, decideBallotUpTo): a value accepted at a ballot >= decideBallot
   * for a slot <= decideBallotUpTo is the chosen one. Slots known chosen only through a catch-up
   * reply (decidedUpTo > decideBallotUpTo) come with no ballot: a learn there proves nothing.
   */
  decideBallot: Ballot;
  decideBallotUpTo: Slot;
  leaderGuess: ReplicaId | undefined;
  retained: Map<Slot, SlotValue>;
  retainedBytes: number;
  /** the size counted for each retained slot (computed once) */
  retainedSizes: Map<Slot, number>;
  retainFrom: Slot;
  catchupAskedAt: number;
  catchupAskedFor: Slot;
  /** a peer said it no longer holds the slots we miss: only a snapshot can help */
  needsSnapshot: { from: ReplicaId; below: Slot } | null;
  progressDirty: boolean;
  /** a new configuration or an install: the proposer hears of it at once, not at the next report */
  progressUrgent: boolean;
  /** when the last report went out, and the executed slot its exec-mark carried */
  reportSentAt: number;
  markSentUpTo: Slot;
  /** executed values that came from peers, not yet in an exec-mark (and their bytes) */
  fills: ChosenEntry[];
  fillBytes: number;
  /**
   * The slot of a snapshot installed from a peer that its snapshotter has not yet saved (0: none). No
   * exec-mark goes out meanwhile: a mark says the local log proves every slot up to it, and the slots
   * the install covered are not in the local log (a crash before the save would replay the acceptor's
   * stale values for them on top of the older local snapshot). Cleared by its snap-saved.
   */
  installUnsaved: Slot;
  /**
   * nothing is applied while set: a snapshot of a state machine
   * that is not copy-on-call is being read, or one is installed
   */
  paused: boolean;
  /** the copy being read (capturing state): who asked, as of which slot, with which configuration */
  capture:
    | { seq: number; slot: Slot; config: Configuration; requested: boolean; data: Promise<Uint8Array> }
    | undefined;
  /** the install in progress (installing state) */
  install: { seq: number; slot: Slot; config: Configuration | undefined; done: Promise<void> } | undefined;
  /** bytes of slot values applied since start (the snapshotter's byte interval) */
  appliedBytes: number;
  /** the last slot handed to the state machine (in-order execution check) */
  lastExecuted: Slot;
  /** the state machine asked for a snapshot after the current slot */
  snapshotRequest: { requested: boolean };
  /** chosen slots whose value came from a peer (the local acceptor does not hold it): recorded for replay */
  fetched: Set<Slot>;
  /** the executed slot last marked durable with flush, and when the last slot executed */
  markFlushed: Slot;
  lastExecAt: number;
  /** what the snapshotter last heard (snap-executed): slot, applied bytes, time */
  snapSentSlot: Slot;
  snapSentBytes: number;
  snapSentAt: number;
  stats: {
    slotsExecuted: number;
    commandsExecuted: number;
    catchupRequests: number;
    catchupEntries: number;
    applyErrors: number;
  };
  readonly input: LearnerInput;
}

export type LearnerEvent =
  | MessageOf<'learn'>
  | MessageOf<'decide'>
  | MessageOf<'catchup-req'>
  | MessageOf<'catchup-rep'>
  | MessageOf<'snap-take'>
  | MessageOf<'snap-install'>
  | MessageOf<'snap-saved'>
  /** the snapshotter: drop retained slots below `below` (a snapshot covers them) */
  | MessageOf<'retain-truncate'>
  | { type: 'tick' }
  | { type: 'set-members'; members: readonly ReplicaId[] }
  /** the first configuration (bootstrap): taken only by a learner with none that executed nothing */
  | { type: 'bootstrap'; config: Configuration }
  | { type: 'stop' };

const hdr = (d: LearnerData, to: ReplicaId) => ({ ring: d.ring, from: d.self, to });

/**
 * Marks `slot` chosen with `v`. Always on (issue #17): a slot already known chosen with another value
 * means two values were chosen for it (or a Decide was wrong), so the replica stops.
 */
function choose(d: LearnerData, slot: Slot, v: SlotValue): void {
  const cur = d.chosen.get(slot);
  if (cur !== undefined && cur !== v)
    safety(slotValueEquals(cur, v), `learner ${d.self}: slot ${slot} chosen with two different values`);
  d.chosen.set(slot, v);
}

/** A Decide(b, upTo): every slot <= upTo is chosen; a value accepted at a ballot >= b is the chosen one. */
export function onDecide(d: LearnerData, b: Ballot, upTo: Slot, from: ReplicaId): void {
  if (upTo > d.decidedUpTo) d.decidedUpTo = upTo;
  if (upTo > d.decideBallotUpTo || (upTo === d.decideBallotUpTo && compareBallots(b, d.decideBallot) > 0)) {
    d.decideBallotUpTo = upTo;
    d.decideBallot = b;
  }
  if (from !== d.self || d.leaderGuess === undefined) d.leaderGuess = b.leader;
  const lo = d.executedUpTo + 1;
  if (upTo < lo) return;
  if (d.pending.size < upTo - lo + 1) {
    for (const [s, p] of d.pending) {
      if (s >= lo && s <= upTo && compareBallots(p.ballot, b) >= 0) {
        choose(d, s, p.value);
        d.pending.delete(s);
      }
    }
  } else {
    for (let s = lo; s <= upTo; s++) {
      const p = d.pending.get(s);
      if (p && compareBallots(p.ballot, b) >= 0) {
        choose(d, s, p.value);
        d.pending.delete(s);
      }
    }
  }
}

export function onLearn(d: LearnerData, m: MessageOf<'learn'>): void {
  CONTRACTS && requires(m.from === d.self, 'learn: only from the local acceptor');
  if (m.slot > d.executedUpTo && !d.chosen.has(m.slot)) {
    const cur = d.pending.get(m.slot);
    if (!cur || compareBallots(m.ballot, cur.ballot) > 0) d.pending.set(m.slot, { ballot: m.ballot, value: m.value });
    if (m.slot <= d.decideBallotUpTo && compareBallots(m.ballot, d.decideBallot) >= 0) {
      choose(d, m.slot, m.value);
      d.pending.delete(m.slot);
    }
  }
  if (m.decidedUpTo > d.executedUpTo) onDecide(d, m.ballot, m.decidedUpTo, m.ballot.leader);
}

/** The state machine's prefetch hint for every command of a batch, before the first is applied. */
function prefetch(
  sm: StateMachine,
  v: SlotValue & { k: 'batch' },
  wire: ReturnType<typeof wireCommands>,
  count: number,
): void {
  const pf = sm.prefetchAt!.bind(sm);
  if (wire !== undefined) {
    let p = firstCommandAt(wire);
    for (let i = 0; i < count; i++) {
      p = readBin(wire.buf, p);
      pf(wire.buf, BIN_OFF, BIN_OFF + BIN_LEN);
    }
  } else {
    const cmds = v.cmds;
    for (let i = 0; i < count; i++) pf(cmds[i]!, 0, cmds[i]!.length);
  }
}

function retain(d: LearnerData, slot: Slot, v: SlotValue, size: number): void {
  if (d.opts.retainSlots <= 0) return;
  if (d.retained.size === 0) d.retainFrom = slot;
  d.retained.set(slot, v);
  d.retainedSizes.set(slot, size);
  d.retainedBytes += size;
  while (d.retained.size > d.opts.retainSlots || d.retainedBytes > d.opts.retainBytes) {
    const old = d.retained.get(d.retainFrom);
    if (old) d.retainedBytes -= d.retainedSizes.get(d.retainFrom) ?? 0;
    d.retainedSizes.delete(d.retainFrom);
    d.retained.delete(d.retainFrom);
    d.retainFrom++;
  }
}

/** Executes chosen slots strictly in slot order. */
export function execute(d: LearnerData): void {
  const sm = d.input.stateMachine;
  const from = d.executedUpTo;
  while (!d.paused && !d.snapshotRequest.requested) {
    const slot = d.executedUpTo + 1;
    const v = d.chosen.get(slot);
    if (v === undefined) break;
    // always on: strictly in slot order, each slot once
    safety(slot > d.lastExecuted, `learner ${d.self}: slot ${slot} executed out of order (after ${d.lastExecuted})`);
    d.lastExecuted = slot;
    d.chosen.delete(slot);
    d.pending.delete(slot);
    const fetched = d.fetched.size > 0 && d.fetched.delete(slot);
    if (v.k === 'batch') {
      const mine = v.origin === d.self && v.inc === d.inc;
      const count = commandCount(v);
      const results: (Uint8Array | undefined)[] | undefined = mine ? new Array(count) : undefined;
      sm.beforeBatch?.(slot, v.at);
      const wire = sm.applyAt ? wireCommands(v) : undefined;
      if (sm.prefetchAt !== undefined && count > 1) prefetch(sm, v, wire, count);
      if (wire !== undefined) {
        // a follower's batch: each command read where it arrived, no view per command
        let p = firstCommandAt(wire);
        for (let i = 0; i < count; i++) {
          p = readBin(wire.buf, p);
          let r: Uint8Array | undefined;
          try {
            r = sm.applyAt!(wire.buf, BIN_OFF, BIN_OFF + BIN_LEN, slot);
          } catch (err) {
            d.stats.applyErrors++;
            d.input.onApplyError?.(err, slot);
            r = undefined;
          }
          if (results) results[i] = r;
        }
      } else {
        const cmds = v.cmds;
        for (let i = 0; i < count; i++) {
          let r: Uint8Array | undefined;
          try {
            r = sm.apply(cmds[i]!, slot);
          } catch (err) {
            d.stats.applyErrors++;
            d.input.onApplyError?.(err, slot);
            r = undefined;
          }
          if (results) results[i] = r;
        }
      }
      sm.afterBatch?.(slot);
      d.stats.commandsExecuted += count;
      if (results) d.input.send({ type: 'executed', ...hdr(d, d.self), slot, inc: v.inc, firstId: v.firstId, results });
    } else if (v.k === 'config') {
      CONTRACTS &&
        invariant(
          d.config.epoch === 0 || v.epoch === d.config.epoch + 1,
          `execute: config epoch ${v.epoch} follows ${d.config.epoch}`,
        );
      setConfig(d, { epoch: v.epoch, members: v.members, startSlot: slot + 1 });
      d.input.send({
        type: 'reconfigured',
        ...hdr(d, d.self),
        slot,
        config: d.config,
        origin: v.origin,
        inc: v.inc,
        firstId: v.firstId,
        ...(v.cookie ? { cookie: v.cookie } : {}),
      });
    }
    d.executedUpTo = slot;
    d.stats.slotsExecuted++;
    d.progressDirty = true;
    const size = slotValueSize(v); // one pass over the commands for both
    d.appliedBytes += size;
    retain(d, slot, v, size);
    if (fetched) {
      d.fills.push({ slot, value: v });
      d.fillBytes += size;
    }
    // the state machine asked for a snapshot after this slot: the loop stops here, the machine captures
  }
  if (d.executedUpTo > from) {
    d.lastExecAt = d.input.now();
    report(d, false);
    snapProgress(d, false);
  }
  CONTRACTS &&
    ensures(
      d.paused || d.snapshotRequest.requested || !d.chosen.has(d.executedUpTo + 1),
      'execute: stops only at a gap or a pause',
    );
}

const snapshotterOf = (d: LearnerData): ReplicaId => d.input.snapshotter ?? d.self;

/** The latest Decide, when it proves more than the executed prefix (a restart replays up to it). */
function decidedMark(d: LearnerData): { decided?: { ballot: Ballot; upTo: Slot } } {
  return d.decideBallotUpTo > d.executedUpTo ? { decided: { ballot: d.decideBallot, upTo: d.decideBallotUpTo } } : {};
}

function setConfig(d: LearnerData, c: Configuration): void {
  d.config = { epoch: c.epoch, members: [...c.members], startSlot: c.startSlot };
  d.members = d.config.members;
  d.progressDirty = true;
  d.progressUrgent = true;
}

/**
 * A snapshot as of `slot` (with the configuration of the slots
 * after it) replaced the state machine's state: go on at slot+1.
 */
export function onInstalled(d: LearnerData, slot: Slot, config?: Configuration): void {
  if (slot > d.executedUpTo) {
    d.executedUpTo = slot;
    if (config && config.epoch >= d.config.epoch && config.epoch > 0) {
      const changed = config.epoch !== d.config.epoch;
      setConfig(d, config);
      if (changed) d.input.send({ type: 'reconfigured', ...hdr(d, d.self), slot, config: d.config });
    }
    for (const s of d.chosen.keys()) if (s <= slot) d.chosen.delete(s);
    for (const s of d.pending.keys()) if (s <= slot) d.pending.delete(s);
    if (d.decidedUpTo < slot) d.decidedUpTo = slot;
    d.retained.clear();
    d.retainedSizes.clear();
    d.retainedBytes = 0;
    d.retainFrom = slot + 1;
    d.needsSnapshot = null;
    d.catchupAskedFor = 0;
    d.progressDirty = true;
    d.progressUrgent = true;
    for (const s of d.fetched) if (s <= slot) d.fetched.delete(s);
  }
  CONTRACTS && ensures(d.executedUpTo >= slot, 'installed: executed up to the snapshot');
}

/** Drops retained slots below `below`. */
export function truncateRetained(d: LearnerData, below: Slot): void {
  while (d.retained.size > 0 && d.retainFrom < below) {
    d.retainedBytes -= d.retainedSizes.get(d.retainFrom) ?? 0;
    d.retainedSizes.delete(d.retainFrom);
    d.retained.delete(d.retainFrom);
    d.retainFrom++;
  }
}

/**
 * The peer to ask: the leader it knows first; when it asks again for the same slot (the last
 * answer did not help), the other members in turn, so a peer lacking the slot is not asked forever.
 */
function pickPeer(d: LearnerData, retry: boolean): ReplicaId | undefined {
  // the leader it heard of first, member of its configuration or not: a lagging replica may not know
  // yet the newer configuration that leader belongs to
  if (!retry && d.leaderGuess && d.leaderGuess !== d.self) return d.leaderGuess;
  // then the members in turn, and every peer of the ring: the slots it misses may be held only by the
  // members of a configuration it has not executed yet
  let others = d.members.filter((m) => m !== d.self);
  const extra = [...(d.leaderGuess && d.leaderGuess !== d.self ? [d.leaderGuess] : []), ...(d.input.peers ?? [])];
  for (const p of extra) if (p !== d.self && !others.includes(p)) others = [...others, p];
  if (others.length === 0) return undefined;
  return others[Math.floor((d.executedUpTo + d.stats.catchupRequests) % others.length)];
}

/** Asks a peer for the first missing slots when the log is decided beyond what we hold. */
export function maybeCatchup(d: LearnerData, force = false): void {
  if (d.decidedUpTo <= d.executedUpTo) return;
  const want = d.executedUpTo + 1;
  if (d.chosen.has(want)) return;
  const now = d.input.now();
  if (!force && d.catchupAskedFor === want && now - d.catchupAskedAt < d.opts.catchupIntervalMs) return;
  const peer = pickPeer(d, d.catchupAskedFor === want);
  if (!peer) return;
  d.catchupAskedAt = now;
  d.catchupAskedFor = want;
  d.stats.catchupRequests++;
  d.input.send({
    type: 'catchup-req',
    ...hdr(d, peer),
    fromSlot: want,
    toSlot: Math.min(d.decidedUpTo, want + d.opts.catchupBatchSlots - 1),
  });
}

export function serveCatchup(d: LearnerData, m: MessageOf<'catchup-req'>): void {
  const entries: ChosenEntry[] = [];
  const to = Math.min(m.toSlot, m.fromSlot + d.opts.catchupBatchSlots - 1);
  let bytes = 0;
  for (let s = m.fromSlot; s <= to; s++) {
    const v = s <= d.executedUpTo ? d.retained.get(s) : d.chosen.get(s);
    if (v === undefined) break;
    const size = d.retainedSizes.get(s) ?? slotValueSize(v);
    if (entries.length > 0 && bytes + size > d.opts.catchupMaxBytes) break;
    bytes += size;
    entries.push({ slot: s, value: v });
  }
  const truncatedBelow = d.retained.size > 0 ? d.retainFrom : d.executedUpTo + 1;
  d.input.send({ type: 'catchup-rep', ...hdr(d, m.from), entries, truncatedBelow, chosenUpTo: d.executedUpTo });
}

export function onCatchupReply(d: LearnerData, m: MessageOf<'catchup-rep'>): void {
  for (const e of m.entries) {
    if (e.slot > d.executedUpTo && !d.chosen.has(e.slot)) {
      d.chosen.set(e.slot, e.value);
      d.fetched.add(e.slot);
    }
    d.stats.catchupEntries++;
  }
  if (m.chosenUpTo > d.decidedUpTo) {
    // the peer executed further than any Decide we saw: those slots are chosen (at a ballot we do
    // not know, so decideBallot/decideBallotUpTo stay as they are)
    d.decidedUpTo = m.chosenUpTo;
  }
  const want = d.executedUpTo + 1;
  if (m.entries.length === 0 && m.truncatedBelow > want && !d.chosen.has(want)) {
    d.needsSnapshot = { from: m.from, below: m.truncatedBelow };
    d.input.send({ type: 'snap-need', ...hdr(d, snapshotterOf(d)), peer: m.from, below: m.truncatedBelow });
  }
}

/**
 * Tells the snapshotter how far it executed (`snap-executed`): at once after a pause of
 * snapProgressMs, else every snapProgressSlots slots or snapProgressBytes, and at each tick
 * (`force`). One message per executed run cost the one-client path ~10 CPU µs per command; a
 * snapshot is then at most that far behind its interval (docs/snapshots.md).
 */
function snapProgress(d: LearnerData, force: boolean): void {
  if (d.executedUpTo <= d.snapSentSlot) return;
  const now = d.input.now();
  if (
    !force &&
    now - d.snapSentAt < d.opts.snapProgressMs &&
    d.executedUpTo - d.snapSentSlot < d.opts.snapProgressSlots &&
    d.appliedBytes - d.snapSentBytes < d.opts.snapProgressBytes
  )
    return;
  d.snapSentSlot = d.executedUpTo;
  d.snapSentBytes = d.appliedBytes;
  d.snapSentAt = now;
  d.input.send({
    type: 'snap-executed',
    ...hdr(d, snapshotterOf(d)),
    slot: d.executedUpTo,
    bytes: d.appliedBytes,
    requested: false,
  });
}

/**
 * How far it executed, to the local acceptor (exec-mark: recorded with its next write, with the values
 * that came from peers, for an offline replay) and to the local proposer (progress). Coalesced: see
 * LearnerOptions.reportMs.
 */
function report(d: LearnerData, force: boolean): void {
  const now = d.input.now();
  if (
    !force &&
    !d.progressUrgent &&
    now - d.reportSentAt < d.opts.reportMs &&
    d.executedUpTo - d.markSentUpTo < d.opts.reportSlots &&
    d.fillBytes < d.opts.reportFillBytes
  )
    return;
  if (d.installUnsaved === 0 && (d.executedUpTo > d.markSentUpTo || d.fills.length > 0)) {
    d.input.send({ type: 'exec-mark', ...hdr(d, d.self), upTo: d.executedUpTo, fills: d.fills, ...decidedMark(d) });
    d.markSentUpTo = d.executedUpTo;
    d.fills = [];
    d.fillBytes = 0;
    d.reportSentAt = now;
  }
  if (d.progressDirty) {
    sendProgress(d);
    d.reportSentAt = now;
  }
}

function sendProgress(d: LearnerData): void {
  if (!d.progressDirty) return;
  d.progressDirty = false;
  d.progressUrgent = false;
  d.input.send({
    type: 'progress',
    ...hdr(d, d.self),
    executedUpTo: d.executedUpTo,
    chosenUpTo: d.decidedUpTo,
    config: d.config,
  });
}

/** chosen slots it lacks are asked of a peer: a catch-up request for a slot not executed yet */
const catchingUp = (d: LearnerData): boolean => d.decidedUpTo > d.executedUpTo && d.catchupAskedFor > d.executedUpTo;

export const learnerMachine = setup({
  types: {
    context: {} as LearnerData,
    events: {} as LearnerEvent,
    input: {} as LearnerInput,
  },
  actors: {
    /** the copy's bytes (the state machine was called at the capture point: this only waits for them) */
    readCopy: fromPromise<Uint8Array, Promise<Uint8Array>>(({ input }) => input),
    /** the state machine's restore, started at the install point */
    restore: fromPromise<void, Promise<void>>(({ input }) => input),
  },
  guards: {
    snapshotRequested: ({ context }) => context.snapshotRequest.requested,
    /** chosen slots it lacks are asked of a peer (a catch-up request for a slot not yet executed) */
    catchingUp: ({ context: d }) => catchingUp(d),
    caughtUp: ({ context: d }) => !catchingUp(d),
    /** a peer no longer holds the slots it misses: only a snapshot install can help */
    needsSnapshot: ({ context: d }) => d.needsSnapshot !== null,
    snapshotNotNeeded: ({ context: d }) => d.needsSnapshot === null,
    /** an automatic snapshot the state machine refuses (RSL trySnapshot) */
    refuses: ({ context, event }) => {
      assertEvent(event, 'snap-take');
      const sm = context.input.stateMachine;
      return !event.forced && sm.trySnapshot !== undefined && !sm.trySnapshot();
    },
    installBehind: ({ context, event }) => {
      assertEvent(event, 'snap-install');
      return event.slot <= context.executedUpTo;
    },
  },
  actions: {
    learn: ({ context: d, event }) => {
      assertEvent(event, 'learn');
      onLearn(d, event);
      execute(d);
      maybeCatchup(d);
    },
    decide: ({ context: d, event }) => {
      assertEvent(event, 'decide');
      const m = event;
      CONTRACTS && requires(m.ballot.leader === m.from, "decide: sent by the ballot's leader");
      onDecide(d, m.ballot, m.upTo, m.from);
      execute(d);
      maybeCatchup(d);
    },
    serve: ({ context, event }) => {
      assertEvent(event, 'catchup-req');
      serveCatchup(context, event);
    },
    catchupReply: ({ context: d, event }) => {
      assertEvent(event, 'catchup-rep');
      const m = event;
      onCatchupReply(d, m);
      execute(d);
      // ask for the next run at once only when this reply helped; an empty one waits for the
      // retry interval (two learners lacking the same slot would otherwise ping-pong without end)
      maybeCatchup(d, m.entries.length > 0);
    },
    tick: ({ context: d }) => {
      maybeCatchup(d);
      report(d, true);
      snapProgress(d, true);
      // idle for 100 ms: make the executed mark durable now (while busy it rides with the acceptor's writes)
      if (d.installUnsaved === 0 && d.executedUpTo > d.markFlushed && d.input.now() - d.lastExecAt >= 100) {
        d.markFlushed = d.executedUpTo;
        d.input.send({
          type: 'exec-mark',
          ...hdr(d, d.self),
          upTo: d.executedUpTo,
          fills: [],
          flush: true,
          ...decidedMark(d),
        });
      }
    },
    truncate: ({ context, event }) => {
      assertEvent(event, 'retain-truncate');
      truncateRetained(context, event.below);
    },
    /**
     * A copy of the state machine as of the executed slot, between two slots: for a snapshotter's
     * snap-take, or right after the slot whose commands asked for one. A copy-on-call state machine
     * copies inside snapshot() and execution goes on; any other is paused until its stream was read.
     */
    beginCapture: ({ context: d, event }) => {
      const requested = event.type !== 'snap-take';
      const seq = event.type === 'snap-take' ? event.seq : 0;
      d.snapshotRequest.requested = false;
      const sm = d.input.stateMachine;
      let p: Promise<Uint8Array | AsyncIterable<Uint8Array>>;
      try {
        p = sm.snapshot();
      } catch (err) {
        p = Promise.reject(err);
      }
      d.capture = { seq, slot: d.executedUpTo, config: d.config, requested, data: p.then(collectSnapshot) };
      d.paused = !sm.snapshotIsCopy;
    },
    sendSnapData: ({ context: d, event }) => {
      const c = d.capture!;
      const data = (event as { output?: Uint8Array }).output ?? new Uint8Array(0);
      d.input.send({
        type: 'snap-data',
        ...hdr(d, snapshotterOf(d)),
        seq: c.seq,
        slot: c.slot,
        data,
        config: c.config,
        ...(c.requested ? { requested: true } : {}),
      });
    },
    sendSnapError: ({ context: d, event }) => {
      const c = d.capture!;
      const err = (event as { error?: unknown }).error;
      d.input.send({
        type: 'snap-data',
        ...hdr(d, snapshotterOf(d)),
        seq: c.seq,
        slot: c.slot,
        data: new Uint8Array(0),
        error: err instanceof Error ? err.message : String(err),
      });
    },
    /** trySnapshot() said no to an automatic snapshot (RSL: a refused checkpoint) */
    sendRefused: ({ context: d, event }) => {
      assertEvent(event, 'snap-take');
      d.input.send({
        type: 'snap-data',
        ...hdr(d, event.from),
        seq: event.seq,
        slot: d.executedUpTo,
        data: new Uint8Array(0),
        error: 'the state machine refused the snapshot',
        refused: true,
      });
    },
    sendBusy: ({ context: d, event }) => {
      if (event.type === 'snap-take')
        d.input.send({
          type: 'snap-data',
          ...hdr(d, event.from),
          seq: event.seq,
          slot: d.executedUpTo,
          data: new Uint8Array(0),
          error: 'busy',
        });
      else if (event.type === 'snap-install')
        d.input.send({ type: 'snap-installed', ...hdr(d, event.from), seq: event.seq, ok: false, error: 'busy' });
    },
    /** restores the state machine from a verified snapshot; nothing is applied meanwhile */
    beginInstall: ({ context: d, event }) => {
      assertEvent(event, 'snap-install');
      let done: Promise<void>;
      try {
        done = d.input.stateMachine.restore(pieces(event.data));
      } catch (err) {
        done = Promise.reject(err);
      }
      d.install = { seq: event.seq, slot: event.slot, config: event.config, done };
      d.paused = true;
    },
    installed: ({ context: d }) => {
      const i = d.install!;
      if (i.slot > d.executedUpTo) d.installUnsaved = Math.max(d.installUnsaved, i.slot);
      onInstalled(d, i.slot, i.config);
      d.input.send({ type: 'snap-installed', ...hdr(d, snapshotterOf(d)), seq: i.seq, ok: true });
    },
    installFailed: ({ context: d, event }) => {
      const i = d.install!;
      const err = (event as { error?: unknown }).error;
      d.input.send({
        type: 'snap-installed',
        ...hdr(d, snapshotterOf(d)),
        seq: i.seq,
        ok: false,
        error: err instanceof Error ? err.message : String(err),
      });
    },
    /** the install's slot is not ahead of this learner any more (it executed past it meanwhile) */
    refuseBehind: ({ context: d, event }) => {
      assertEvent(event, 'snap-install');
      d.input.send({
        type: 'snap-installed',
        ...hdr(d, event.from),
        seq: event.seq,
        ok: false,
        error: `behind: executed up to ${d.executedUpTo}`,
      });
    },
    /** out of capturing or installing (after its answer): apply what was chosen meanwhile */
    resume: ({ context: d }) => {
      d.paused = false;
      execute(d);
      maybeCatchup(d, true);
      report(d, true);
    },
    notifySaved: ({ context: d, event }) => {
      assertEvent(event, 'snap-saved');
      // the installed state is durable now: the exec-marks held since the install go out
      if (d.installUnsaved > 0 && event.slot >= d.installUnsaved) d.installUnsaved = 0;
      if (event.copied) d.input.stateMachine.stateCopied?.(event.slot, event.name);
      else d.input.stateMachine.stateSaved?.(event.slot, event.name);
    },
    bootstrap: ({ context: d, event }) => {
      assertEvent(event, 'bootstrap');
      const c = event.config;
      if (d.config.epoch !== 0 || d.executedUpTo !== 0 || c.epoch < 1) return;
      setConfig(d, c);
      d.input.send({ type: 'reconfigured', ...hdr(d, d.self), slot: 0, config: d.config });
      sendProgress(d);
    },
    setMembers: ({ context, event }) => {
      assertEvent(event, 'set-members');
      context.members = [...event.members];
    },
  },
}).createMachine({
  id: 'learner',
  context: ({ input }) => {
    const d: LearnerData = {
      ring: input.ring,
      self: input.self,
      inc: input.inc,
      members: input.configuration ? [...input.configuration.members] : [...input.members],
      config: input.configuration
        ? {
            epoch: input.configuration.epoch,
            members: [...input.configuration.members],
            startSlot: input.configuration.startSlot,
          }
        : { epoch: 1, members: [...input.members], startSlot: 1 },
      opts: { ...DEFAULT_LEARNER_OPTIONS, ...input.options },
      pending: new Map(),
      chosen: new Map(),
      executedUpTo: input.executedUpTo ?? 0,
      decidedUpTo: input.executedUpTo ?? 0,
      decideBallot: { round: 0, leader: '' },
      decideBallotUpTo: 0,
      leaderGuess: undefined,
      retained: new Map(),
      retainedBytes: 0,
      retainedSizes: new Map(),
      retainFrom: (input.executedUpTo ?? 0) + 1,
      catchupAskedAt: -Infinity,
      catchupAskedFor: 0,
      needsSnapshot: null,
      progressDirty: false,
      progressUrgent: false,
      reportSentAt: -Infinity,
      markSentUpTo: input.executedUpTo ?? 0,
      fills: [],
      fillBytes: 0,
      installUnsaved: 0,
      paused: false,
      capture: undefined,
      install: undefined,
      appliedBytes: 0,
      lastExecuted: input.executedUpTo ?? 0,
      snapshotRequest: { requested: false },
      fetched: new Set(),
      markFlushed: input.executedUpTo ?? 0,
      lastExecAt: 0,
      snapSentSlot: 0,
      snapSentBytes: 0,
      snapSentAt: -Infinity,
      stats: { slotsExecuted: 0, commandsExecuted: 0, catchupRequests: 0, catchupEntries: 0, applyErrors: 0 },
      input,
    };
    // slots replayed from the local log: served to peers as if executed here
    for (const { slot, value } of input.replayed ?? []) {
      const size = slotValueSize(value);
      d.appliedBytes += size;
      retain(d, slot, value, size);
    }
    // RSL's checkpoint request: a command may ask for a snapshot right after its slot (a holder object:
    // the actor's context is a copy of `d`, the holder is shared)
    const request = d.snapshotRequest;
    input.stateMachine.setSnapshotRequester?.(() => {
      request.requested = true;
    });
    return d;
  },
  initial: 'learning',
  on: {
    learn: { actions: 'learn' },
    decide: { actions: 'decide' },
    'catchup-req': { actions: 'serve' },
    'catchup-rep': { actions: 'catchupReply' },
    tick: { actions: 'tick' },
    'set-members': { actions: 'setMembers' },
    'retain-truncate': { actions: 'truncate' },
    bootstrap: { actions: 'bootstrap' },
    'snap-saved': { actions: 'notifySaved' },
    // a copy or an install is under way: the snapshotter asks again later
    'snap-take': { actions: 'sendBusy' },
    'snap-install': { actions: 'sendBusy' },
    stop: '.stopped',
  },
  states: {
    learning: {
      description: 'chosen values learned and executed in slot order',
      initial: 'current',
      always: { guard: 'snapshotRequested', target: 'capturing' },
      on: {
        'snap-take': [{ guard: 'refuses', actions: 'sendRefused' }, { target: 'capturing' }],
        'snap-install': [{ guard: 'installBehind', actions: 'refuseBehind' }, { target: 'installing' }],
      },
      states: {
        current: {
          description: 'executes chosen slots in order; nothing chosen is missing',
          always: [
            { guard: 'needsSnapshot', target: 'awaitingSnapshot' },
            { guard: 'catchingUp', target: 'catchingUp' },
          ],
        },
        catchingUp: {
          description: 'chosen slots it lacks are fetched from peers (catchup-req, asked again at the interval)',
          always: [
            { guard: 'needsSnapshot', target: 'awaitingSnapshot' },
            { guard: 'caughtUp', target: 'current' },
          ],
        },
        awaitingSnapshot: {
          description: 'the peers truncated what it misses - its snapshotter fetches a snapshot (snap-need)',
          always: { guard: 'snapshotNotNeeded', target: 'current' },
        },
      },
    },
    capturing: {
      description: 'held - a copy of the state machine as of one slot is read, nothing applied meanwhile',
      entry: 'beginCapture',
      invoke: {
        src: 'readCopy',
        input: ({ context }) => context.capture!.data,
        onDone: { target: 'learning', actions: ['sendSnapData', 'resume'] },
        onError: { target: 'learning', actions: ['sendSnapError', 'resume'] },
      },
    },
    installing: {
      description: 'a snapshot from a peer replaces the state - the learner goes on at its slot + 1',
      entry: 'beginInstall',
      invoke: {
        src: 'restore',
        input: ({ context }) => context.install!.done,
        // the install's slot first, then what was chosen meanwhile (above it) is applied
        onDone: { target: 'learning', actions: ['installed', 'resume'] },
        onError: { target: 'learning', actions: ['installFailed', 'resume'] },
      },
    },
    stopped: { type: 'final' },
  },
});

/** A snapshot handed to the state machine in bounded pieces. */
async function* pieces(data: Uint8Array): AsyncGenerator<Uint8Array> {
  const piece = 1 << 20;
  for (let o = 0; o < data.length; o += piece) yield data.subarray(o, Math.min(data.length, o + piece));
}
