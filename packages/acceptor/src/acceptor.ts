import { assertEvent, setup } from 'xstate';
import {
  type AcceptorStore,
  type AcceptedEntry,
  type Ballot,
  type Message,
  type MessageOf,
  type RecoveredState,
  type ReplicaId,
  type RingId,
  type Slot,
  type StoreRecord,
  type StoredAccept,
  CONTRACTS,
  DECIDED_META,
  EXECUTED_META,
  ballotEq,
  encodeDecidedMeta,
  isStoreFullError,
  decodeSlotMeta,
  encodeSlotMeta,
  compareBallots,
  ensures,
  invariant,
  requires,
  safety,
  slotValueEquals,
  slotValueSize,
} from '@decree/protocol';

export interface AcceptorInput {
  ring: RingId;
  self: ReplicaId;
  store: AcceptorStore;
  recovered: RecoveredState;
  send: (msg: Message) => void;
  /** RSL AcceptMessageFromReplica: a refused leader gets no promise and no accept */
  acceptMessageFrom?: (leader: ReplicaId, cookie: Uint8Array | undefined) => boolean;
  /** called when the store fails: the acceptor stops voting (it cannot keep its word) */
  onStoreError?: (err: Error) => void;
  /** called when the store is full: the acceptor holds its writes (and replies) and retries */
  onStoreFull?: (err: Error) => void;
  /** the slot this replica executed up to at start (a snapshot and the local log replayed) */
  executedUpTo?: Slot;
  /** value bytes in one promise page; a longer log's promise is pulled page by page (default 512 KiB) */
  maxPromiseBytes?: number;
  /** a full store is tried again after this long (and at once after a truncation); default 1000 ms */
  fullRetryMs?: number;
  /** a store of fixed capacity this full (fraction) asks the snapshotter for room; default 0.5 */
  pressureFraction?: number;
  now?: () => number;
}

/** replies held while the store is full, at most (the rest are dropped: proposers retransmit) */
export const MAX_HELD_REPLIES = 4096;

/** The acceptor's data; mutated in place by the machine's actions (see docs/decisions/0004-role-machines.md). */
export interface AcceptorData {
  readonly ring: RingId;
  readonly self: ReplicaId;
  promised: Ballot;
  accepted: Map<Slot, StoredAccept>;
  truncatedBelow: Slot;
  /** the executed slot last recorded (meta `executed`) */
  markedUpTo: Slot;
  /**
   * How far this replica's learner executed in this run (from its exec-marks; at start, what the
   * snapshot and the local replay gave it): promises report it. Not the durable mark, which may
   * be ahead of what this run can serve.
   */
  executedUpTo: Slot;
  /** records waiting for the next group commit, and the replies that wait for them */
  pendingRecords: StoreRecord[];
  pendingReplies: Message[];
  writing: boolean;
  failed: Error | null;
  /** the store said it is full: writes wait for room (a truncation, or the retry timer) */
  full: Error | null;
  /** when a log-full request last went to the snapshotter */
  pressureSentAt: number;
  stats: {
    prepares: number;
    accepts: number;
    nacks: number;
    writes: number;
    refused: number;
    /** writes refused because the store was full, and replies dropped while it was */
    fullWrites: number;
    droppedReplies: number;
    promisePages: number;
  };
  readonly input: AcceptorInput;
}

export type AcceptorEvent =
  | MessageOf<'prepare'>
  | MessageOf<'accept'>
  | MessageOf<'read-confirm'>
  | MessageOf<'exec-mark'>
  | MessageOf<'log-truncate'>
  | { type: 'persisted'; records: StoreRecord[]; replies: Message[]; err: Error | null }
  /** graceful: write the records taken in but not yet written before stopping (a crash: not) */
  | { type: 'stop'; graceful?: boolean };

function header(d: AcceptorData, to: ReplicaId) {
  return { ring: d.ring, from: d.self, to };
}

/** Starts a group commit of what is pending, unless one is in flight (then it follows that one). */
function flush(d: AcceptorData, self: { send: (e: AcceptorEvent) => void }): void {
  if (d.writing || d.failed || d.full) return;
  if (d.pendingRecords.length === 0) {
    // nothing to make durable: replies go now (everything before them is already durable)
    const r = d.pendingReplies;
    d.pendingReplies = [];
    for (const m of r) d.input.send(m);
    return;
  }
  const records = d.pendingRecords;
  const replies = d.pendingReplies;
  d.pendingRecords = [];
  d.pendingReplies = [];
  d.writing = true;
  d.stats.writes++;
  d.input.store.append(records, (err) => self.send({ type: 'persisted', records, replies, err }));
}

/** The store had no room: the batch goes back in front of what came since, its replies held. */
function holdFull(d: AcceptorData, e: { records: StoreRecord[]; replies: Message[]; err: Error | null }): void {
  d.full = e.err;
  d.stats.fullWrites++;
  d.pendingRecords = e.records.concat(d.pendingRecords);
  d.pendingReplies = e.replies.concat(d.pendingReplies);
  if (d.pendingReplies.length > MAX_HELD_REPLIES) {
    // only replies go (a proposer retransmits); never records
    const drop = d.pendingReplies.length - MAX_HELD_REPLIES;
    d.stats.droppedReplies += drop;
    d.pendingReplies = d.pendingReplies.slice(drop);
  }
}

/** Asks the snapshotter for room (a snapshot and a truncation below it), at most once a second. */
function askForRoom(d: AcceptorData, force: boolean): void {
  const now = d.input.now?.() ?? 0;
  const usage = d.input.store.usage?.();
  const high = usage !== undefined && usage.usedBytes >= usage.capacityBytes * (d.input.pressureFraction ?? 0.5);
  if (!force && !high) return;
  if (now - d.pressureSentAt < 1000 && d.pressureSentAt !== 0) return;
  d.pressureSentAt = now || 1;
  d.input.send({
    type: 'log-full',
    ...header(d, d.self),
    usedBytes: usage?.usedBytes ?? 0,
    capacityBytes: usage?.capacityBytes ?? 0,
  });
}

/**
 * Records `b` as the promised ballot: kept in memory and written with the next group commit. The
 * caller has checked that `b` is higher than the promise (`keepPromise`); never lower it elsewhere.
 */
export function recordPromise(d: AcceptorData, b: Ballot): void {
  d.promised = b;
  d.pendingRecords.push({ t: 'promise', ballot: b });
}

/**
 * The promise step of a Prepare or an Accept (the machine's `keepPromise` action): a ballot above
 * the promise becomes the promise. After it, the ballot is refused (nacked) iff it is below the
 * promise. Tools that need a deliberately broken acceptor replace this action through
 * `acceptorMachine.provide({ actions: { keepPromise } })` (the testkit's forgetful acceptor).
 */
export function keepPromise(d: AcceptorData, m: MessageOf<'prepare'> | MessageOf<'accept'>): void {
  requireWellFormed(m);
  if (compareBallots(m.ballot, d.promised) > 0) recordPromise(d, m.ballot);
}

function requireWellFormed(m: MessageOf<'prepare'> | MessageOf<'accept'>): void {
  if (!CONTRACTS) return;
  if (m.type === 'prepare') {
    requires(m.ballot.round > 0 && m.ballot.leader === m.from, "prepare: a ballot is the sender's, round > 0");
  } else {
    requires(m.slot > 0, 'accept: slot > 0');
    requires(m.ballot.leader === m.from, "accept: the ballot is the sender's");
  }
}

/**
 * RSL AcceptMessageFromReplica: whether the state machine refuses the sender (a refused leader
 * gets no promise, no nack and no vote). A leader we promised was vetted at its Prepare; one we
 * never saw prepare is vetted at its Accept (without a cookie).
 */
export function refusesLeader(d: AcceptorData, m: MessageOf<'prepare'> | MessageOf<'accept'>): boolean {
  const ok = d.input.acceptMessageFrom;
  if (!ok) return false;
  if (m.type === 'prepare') return !ok(m.from, m.cookie);
  return compareBallots(m.ballot, d.promised) > 0 && !ok(m.from, undefined);
}

function refuse(d: AcceptorData, m: MessageOf<'prepare'> | MessageOf<'accept'>): void {
  requireWellFormed(m);
  if (m.type === 'prepare') d.stats.prepares++;
  else d.stats.accepts++;
  d.stats.refused++;
}

/**
 * A Prepare, as the machine runs it in three steps (the refusesLeader guard, the keepPromise
 * action, then the answer), in one call for tests.
 */
export function handlePrepare(d: AcceptorData, m: MessageOf<'prepare'>): void {
  if (refusesLeader(d, m)) return refuse(d, m);
  keepPromise(d, m);
  answerPrepare(d, m);
}

/** An Accept, in the machine's three steps (see handlePrepare), in one call for tests. */
export function handleAccept(d: AcceptorData, m: MessageOf<'accept'>): void {
  if (refusesLeader(d, m)) return refuse(d, m);
  keepPromise(d, m);
  answerAccept(d, m);
}

/** The answer to a Prepare after the promise step: a nack below the promise, else a promise (one page). */
function answerPrepare(d: AcceptorData, m: MessageOf<'prepare'>): void {
  d.stats.prepares++;
  if (compareBallots(m.ballot, d.promised) < 0) {
    d.stats.nacks++;
    d.pendingReplies.push({ type: 'nack', ...header(d, m.from), ballot: m.ballot, promised: d.promised });
    return;
  }
  const executedUpTo = d.executedUpTo;
  const start = Math.max(m.fromSlot, m.pageFrom ?? m.fromSlot);
  const accepted: AcceptedEntry[] = [];
  let more: Slot | undefined;
  // A replica that executed slots the candidate asks about sends none: the candidate lacks chosen
  // slots (they may change the configuration) and catches up first (Promise.executedUpTo).
  if (executedUpTo < m.fromSlot) {
    const slots: Slot[] = [];
    for (const slot of d.accepted.keys()) if (slot >= start) slots.push(slot);
    slots.sort((x, y) => x - y);
    // one page of at most maxPromiseBytes; the candidate pulls the next one (flow control)
    const budget = d.input.maxPromiseBytes ?? 512 << 10;
    let bytes = 0;
    for (const slot of slots) {
      const a = d.accepted.get(slot)!;
      const size = slotValueSize(a.value);
      if (accepted.length > 0 && bytes + size > budget) {
        more = slot;
        break;
      }
      accepted.push({ slot, ballot: a.ballot, value: a.value });
      bytes += size;
    }
  }
  if (m.pageFrom !== undefined) d.stats.promisePages++;
  d.pendingReplies.push({
    type: 'promise',
    ...header(d, m.from),
    ballot: m.ballot,
    fromSlot: m.fromSlot,
    accepted,
    truncatedBelow: d.truncatedBelow,
    executedUpTo,
    ...(m.pageFrom !== undefined ? { pageFrom: m.pageFrom } : {}),
    ...(more !== undefined ? { more } : {}),
  });
  CONTRACTS && ensures(compareBallots(d.promised, m.ballot) >= 0, 'prepare: promised >= ballot after a promise');
}

/** The answer to an Accept after the promise step: a nack below the promise, else the record and accepted. */
function answerAccept(d: AcceptorData, m: MessageOf<'accept'>): void {
  d.stats.accepts++;
  if (compareBallots(m.ballot, d.promised) < 0) {
    d.stats.nacks++;
    d.pendingReplies.push({ type: 'nack', ...header(d, m.from), ballot: m.ballot, promised: d.promised, slot: m.slot });
    return;
  }
  if (m.slot >= d.truncatedBelow) {
    const cur = d.accepted.get(m.slot);
    if (cur && ballotEq(cur.ballot, m.ballot)) {
      // A proposer never sends two values for one slot in one ballot: a different value is a bug upstream.
      if (!slotValueEquals(cur.value, m.value)) {
        CONTRACTS &&
          invariant(
            false,
            `accept: slot ${m.slot} already holds another value at ballot ${m.ballot.round}.${m.ballot.leader}`,
          );
        return; // production: keep the first value, never replace it
      }
      // a retransmission: durable already (or about to be); answer again
    } else if (!cur || compareBallots(m.ballot, cur.ballot) > 0) {
      // always on: an acceptor accepts only at its promised ballot (never below a promise it made)
      safety(
        ballotEq(d.promised, m.ballot),
        `acceptor ${d.self}: accept at ${m.ballot.round}.${m.ballot.leader} ` +
          `below promise ${d.promised.round}.${d.promised.leader}`,
      );
      d.accepted.set(m.slot, { ballot: m.ballot, value: m.value });
      d.pendingRecords.push({ t: 'accept', slot: m.slot, ballot: m.ballot, value: m.value });
    }
    // the local learner hears of the value at once; it executes only once the slot is decided
    d.input.send({
      type: 'learn',
      ...header(d, d.self),
      ballot: m.ballot,
      slot: m.slot,
      value: m.value,
      decidedUpTo: m.decidedUpTo,
    });
  }
  d.pendingReplies.push({ type: 'accepted', ...header(d, m.from), ballot: m.ballot, slot: m.slot });
  CONTRACTS && ensures(compareBallots(d.promised, m.ballot) >= 0, 'accept: promised >= ballot after accepting');
}

export const acceptorMachine = setup({
  types: {
    context: {} as AcceptorData,
    events: {} as AcceptorEvent,
    input: {} as AcceptorInput,
  },
  actions: {
    /** a refused leader's Prepare or Accept: counted, not answered */
    refuse: ({ context, event }) => {
      assertEvent(event, ['prepare', 'accept']);
      refuse(context, event);
    },
    /** the promise step (see keepPromise); the testkit's forgetful acceptor replaces it */
    keepPromise: ({ context, event }) => {
      assertEvent(event, ['prepare', 'accept']);
      keepPromise(context, event);
    },
    prepare: ({ context, event, self }) => {
      assertEvent(event, 'prepare');
      answerPrepare(context, event);
      flush(context, self);
    },
    accept: ({ context, event, self }) => {
      assertEvent(event, 'accept');
      answerAccept(context, event);
      flush(context, self);
    },
    /** read-index: ok while we promise nothing higher than the asking leader's ballot (in memory, so conservative) */
    readConfirm: ({ context: d, event }) => {
      assertEvent(event, 'read-confirm');
      const ok = compareBallots(d.promised, event.ballot) <= 0;
      d.input.send({
        type: 'read-ack',
        ring: d.ring,
        from: d.self,
        to: event.from,
        ballot: event.ballot,
        seq: event.seq,
        ok,
      });
    },
    /** the learner's executed mark (and the values it got from peers), for an offline replay */
    execMark: ({ context: d, event, self }) => {
      assertEvent(event, 'exec-mark');
      const m = event;
      for (const f of m.fills) d.pendingRecords.push({ t: 'chosen', slot: f.slot, value: f.value });
      if (m.upTo > d.executedUpTo) d.executedUpTo = m.upTo;
      if (m.upTo > d.markedUpTo) {
        d.markedUpTo = m.upTo;
        setMeta(d, { t: 'meta', key: EXECUTED_META, value: encodeSlotMeta(m.upTo) });
      }
      if (m.decided && m.decided.upTo > m.upTo)
        setMeta(d, { t: 'meta', key: DECIDED_META, value: encodeDecidedMeta(m.decided) });
      if (m.flush) flush(d, self);
    },
    persisted: ({ context, event, self }) => {
      assertEvent(event, 'persisted');
      context.writing = false;
      if (event.err) {
        context.failed = event.err;
        context.input.onStoreError?.(event.err);
        return;
      }
      context.full = null;
      for (const m of event.replies) context.input.send(m);
      askForRoom(context, false);
      // only the learner's marks are waiting: they ride with the next write (or the learner's idle flush)
      // instead of a write of their own, which the next accept would have to wait for
      if (onlyMarks(context.pendingRecords)) {
        const r = context.pendingReplies;
        context.pendingReplies = [];
        for (const m of r) context.input.send(m);
        return;
      }
      flush(context, self);
    },
    holdFull: ({ context: d, event }) => {
      assertEvent(event, 'persisted');
      d.writing = false;
      holdFull(d, event);
      d.input.onStoreFull?.(event.err!);
      askForRoom(d, true);
    },
    /** try the held writes again (room may have come back: a truncation, or the operator) */
    retryWrite: ({ context: d, self }) => {
      if (!d.full) return;
      d.full = null;
      flush(d, self);
      askForRoom(d, true);
    },
    /** the snapshotter lets the log go below `below` (a snapshot covers it) */
    truncate: ({ context, event }) => {
      assertEvent(event, 'log-truncate');
      const below = event.below;
      if (below <= context.truncatedBelow) return;
      context.truncatedBelow = below;
      for (const s of context.accepted.keys()) if (s < below) context.accepted.delete(s);
      context.input.store.truncateBelow(below);
    },
    /**
     * A graceful stop writes what it took in but had not written yet (queued behind a write in
     * flight): never acknowledged, but the replica may have executed those slots. No replies go out.
     */
    writeRest: ({ context: d, self }) => {
      d.pendingReplies = [];
      if (d.writing || d.pendingRecords.length === 0) return;
      const records = d.pendingRecords;
      d.pendingRecords = [];
      d.writing = true;
      d.input.store.append(records, (err) => self.send({ type: 'persisted', records, replies: [], err }));
    },
    doneWriting: ({ context: d }) => {
      d.writing = false;
    },
  },
  guards: {
    refusesLeader: ({ context, event }) => {
      assertEvent(event, ['prepare', 'accept']);
      return refusesLeader(context, event);
    },
    storeFull: ({ event }) => isStoreFullError((event as { err: Error | null }).err),
    storeFailed: ({ event }) => (event as { err: Error | null }).err !== null,
    /** a graceful stop with records to write (or a write in flight to wait for) */
    gracefulWithWork: ({ context: d, event }) =>
      (event as { graceful?: boolean }).graceful === true &&
      d.failed === null &&
      (d.writing || d.pendingRecords.length > 0),
    moreToWrite: ({ context: d }) => d.pendingRecords.length > 0,
  },
  delays: {
    fullRetry: ({ context }) => context.input.fullRetryMs ?? 1000,
  },
}).createMachine({
  id: 'acceptor',
  context: ({ input }) => ({
    ring: input.ring,
    self: input.self,
    promised: input.recovered.promised,
    accepted: new Map(input.recovered.accepted),
    truncatedBelow: input.recovered.truncatedBelow,
    markedUpTo: decodeSlotMeta(input.recovered.meta.get(EXECUTED_META)),
    executedUpTo: input.executedUpTo ?? decodeSlotMeta(input.recovered.meta.get(EXECUTED_META)),
    pendingRecords: [],
    pendingReplies: [],
    writing: false,
    failed: null,
    full: null,
    pressureSentAt: 0,
    stats: {
      prepares: 0,
      accepts: 0,
      nacks: 0,
      writes: 0,
      refused: 0,
      fullWrites: 0,
      droppedReplies: 0,
      promisePages: 0,
    },
    input,
  }),
  initial: 'serving',
  on: {
    // the promise step is an action of its own so that `provide` can replace it (a broken acceptor for tests)
    prepare: [{ guard: 'refusesLeader', actions: 'refuse' }, { actions: ['keepPromise', 'prepare'] }],
    accept: [{ guard: 'refusesLeader', actions: 'refuse' }, { actions: ['keepPromise', 'accept'] }],
    'read-confirm': { actions: 'readConfirm' },
    'exec-mark': { actions: 'execMark' },
    stop: [{ guard: 'gracefulWithWork', target: '.stopping' }, { target: '.stopped' }],
  },
  states: {
    /** promises and accepts; each batch of records is group-committed before its replies go out */
    serving: {
      // A group commit in flight is the `writing` flag, not a substate: two XState state changes per
      // write cost the one-client path 0.03 ms p50 and ~40 CPU µs per command (docs/decisions/0010)
      on: {
        persisted: [
          { guard: 'storeFull', target: 'full', actions: 'holdFull' },
          { guard: 'storeFailed', target: 'failed', actions: 'persisted' },
          { actions: 'persisted' },
        ],
        'log-truncate': { actions: 'truncate' },
      },
    },
    /**
     * The store had no room: records and replies are held (nothing is lost, nothing acknowledged),
     * the snapshotter was asked for a snapshot and a truncation; the write is tried again after the
     * truncation or the retry delay. The proposer's pipeline fills, and it slows down.
     */
    full: {
      after: { fullRetry: { target: 'full', reenter: true, actions: 'retryWrite' } },
      on: {
        persisted: [
          { guard: 'storeFull', target: 'full', reenter: true, actions: 'holdFull' },
          { guard: 'storeFailed', target: 'failed', actions: 'persisted' },
          { target: 'serving', actions: 'persisted' },
        ],
        'log-truncate': { actions: ['truncate', 'retryWrite'] },
      },
    },
    /** a graceful stop: the records taken in are written (no replies), then it stops */
    stopping: {
      entry: 'writeRest',
      on: {
        prepare: {},
        accept: {},
        'read-confirm': {},
        'exec-mark': {},
        stop: {},
        persisted: [
          { guard: 'storeFailed', target: 'stopped', actions: 'doneWriting' },
          { guard: 'moreToWrite', actions: ['doneWriting', 'writeRest'] },
          { target: 'stopped', actions: 'doneWriting' },
        ],
      },
    },
    /** the store failed: this acceptor no longer votes (it could not keep its promises) */
    failed: { on: { prepare: {}, accept: {}, 'read-confirm': {}, 'exec-mark': {} } },
    stopped: { type: 'final' },
  },
});

/** One pending record per meta key is enough: a newer one replaces it. */
/** The pending records are only the learner's executed / decided marks (nothing a reply waits for). */
function onlyMarks(records: readonly StoreRecord[]): boolean {
  return (
    records.length > 0 && records.every((r) => r.t === 'meta' && (r.key === EXECUTED_META || r.key === DECIDED_META))
  );
}

function setMeta(d: AcceptorData, rec: Extract<StoreRecord, { t: 'meta' }>): void {
  const i = d.pendingRecords.findIndex((r) => r.t === 'meta' && r.key === rec.key);
  if (i >= 0) d.pendingRecords[i] = rec;
  else d.pendingRecords.push(rec);
}
