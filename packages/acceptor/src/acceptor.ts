import { setup } from 'xstate';
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
  EXECUTED_META,
  ballotEq,
  decodeSlotMeta,
  encodeSlotMeta,
  compareBallots,
  ensures,
  invariant,
  requires,
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
  /** TEST ONLY: forget the promised ballot (a deliberately broken acceptor for the simulator's self-test) */
  brokenForgetPromise?: boolean;
  /** value bytes in one promise message; a longer log's promise goes in pages (default 512 KiB) */
  maxPromiseBytes?: number;
}

/** The acceptor's data; mutated in place by the machine's actions (see docs/decisions/0004-role-machines.md). */
export interface AcceptorData {
  readonly ring: RingId;
  readonly self: ReplicaId;
  promised: Ballot;
  accepted: Map<Slot, StoredAccept>;
  truncatedBelow: Slot;
  /** the executed slot last recorded (meta `executed`) */
  markedUpTo: Slot;
  /** records waiting for the next group commit, and the replies that wait for them */
  pendingRecords: StoreRecord[];
  pendingReplies: Message[];
  writing: boolean;
  failed: Error | null;
  stats: { prepares: number; accepts: number; nacks: number; writes: number; refused: number };
  readonly input: AcceptorInput;
}

export type AcceptorEvent =
  | MessageOf<'prepare'>
  | MessageOf<'accept'>
  | MessageOf<'read-confirm'>
  | MessageOf<'exec-mark'>
  | { type: 'persisted'; replies: Message[]; err: Error | null }
  | { type: 'truncate'; below: Slot }
  | { type: 'stop' };

function header(d: AcceptorData, to: ReplicaId) {
  return { ring: d.ring, from: d.self, to };
}

/** Starts a group commit of what is pending, unless one is in flight (then it follows that one). */
function flush(d: AcceptorData, self: { send: (e: AcceptorEvent) => void }): void {
  if (d.writing || d.failed) return;
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
  d.input.store.append(records, (err) => self.send({ type: 'persisted', replies, err }));
}

function raisePromise(d: AcceptorData, b: Ballot): void {
  if (compareBallots(b, d.promised) > 0) {
    d.promised = b;
    d.pendingRecords.push({ t: 'promise', ballot: b });
  }
}

export function handlePrepare(d: AcceptorData, m: MessageOf<'prepare'>): void {
  CONTRACTS && requires(m.ballot.round > 0 && m.ballot.leader === m.from, 'prepare: a ballot is the sender\'s, round > 0');
  d.stats.prepares++;
  if (d.input.acceptMessageFrom && !d.input.acceptMessageFrom(m.from, m.cookie)) {
    d.stats.refused++;
    return;
  }
  if (d.input.brokenForgetPromise) d.promised = { round: 0, leader: '' };
  if (compareBallots(m.ballot, d.promised) < 0) {
    d.stats.nacks++;
    d.pendingReplies.push({ type: 'nack', ...header(d, m.from), ballot: m.ballot, promised: d.promised });
    return;
  }
  raisePromise(d, m.ballot);
  const accepted: AcceptedEntry[] = [];
  for (const [slot, a] of d.accepted) if (slot >= m.fromSlot) accepted.push({ slot, ballot: a.ballot, value: a.value });
  accepted.sort((x, y) => x.slot - y.slot);
  // pages that each fit a transport frame (a long log after a restart would not)
  const budget = d.input.maxPromiseBytes ?? 512 << 10;
  const pages: AcceptedEntry[][] = [[]];
  let bytes = 0;
  for (const e of accepted) {
    const size = slotValueSize(e.value);
    if (pages.at(-1)!.length > 0 && bytes + size > budget) {
      pages.push([]);
      bytes = 0;
    }
    pages.at(-1)!.push(e);
    bytes += size;
  }
  for (let i = 0; i < pages.length; i++)
    d.pendingReplies.push({
      type: 'promise',
      ...header(d, m.from),
      ballot: m.ballot,
      fromSlot: m.fromSlot,
      accepted: pages[i]!,
      truncatedBelow: d.truncatedBelow,
      ...(pages.length > 1 ? { page: i, pages: pages.length } : {}),
    });
  CONTRACTS && ensures(compareBallots(d.promised, m.ballot) >= 0, 'prepare: promised >= ballot after a promise');
}

export function handleAccept(d: AcceptorData, m: MessageOf<'accept'>): void {
  CONTRACTS && requires(m.slot > 0, 'accept: slot > 0');
  CONTRACTS && requires(m.ballot.leader === m.from, 'accept: the ballot is the sender\'s');
  d.stats.accepts++;
  // A leader we promised was vetted at its Prepare; one we never saw prepare is vetted here (without a cookie).
  if (d.input.acceptMessageFrom && compareBallots(m.ballot, d.promised) > 0 && !d.input.acceptMessageFrom(m.from, undefined)) {
    d.stats.refused++;
    return;
  }
  if (d.input.brokenForgetPromise) d.promised = { round: 0, leader: '' };
  if (compareBallots(m.ballot, d.promised) < 0) {
    d.stats.nacks++;
    d.pendingReplies.push({ type: 'nack', ...header(d, m.from), ballot: m.ballot, promised: d.promised, slot: m.slot });
    return;
  }
  raisePromise(d, m.ballot);
  if (m.slot >= d.truncatedBelow) {
    const cur = d.accepted.get(m.slot);
    if (cur && ballotEq(cur.ballot, m.ballot)) {
      // A proposer never sends two values for one slot in one ballot: a different value is a bug upstream.
      if (!slotValueEquals(cur.value, m.value)) {
        CONTRACTS && invariant(false, `accept: slot ${m.slot} already holds another value at ballot ${m.ballot.round}.${m.ballot.leader}`);
        return; // production: keep the first value, never replace it
      }
      // a retransmission: durable already (or about to be); answer again
    } else if (!cur || compareBallots(m.ballot, cur.ballot) > 0) {
      d.accepted.set(m.slot, { ballot: m.ballot, value: m.value });
      d.pendingRecords.push({ t: 'accept', slot: m.slot, ballot: m.ballot, value: m.value });
    }
    // the local learner hears of the value at once; it executes only once the slot is decided
    d.input.send({ type: 'learn', ...header(d, d.self), ballot: m.ballot, slot: m.slot, value: m.value, decidedUpTo: m.decidedUpTo });
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
    prepare: ({ context, event, self }) => {
      handlePrepare(context, event as MessageOf<'prepare'>);
      flush(context, self);
    },
    accept: ({ context, event, self }) => {
      handleAccept(context, event as MessageOf<'accept'>);
      flush(context, self);
    },
    /** read-index: ok while we promise nothing higher than the asking leader's ballot (in memory, so conservative) */
    readConfirm: ({ context: d, event }) => {
      const m = event as MessageOf<'read-confirm'>;
      const ok = compareBallots(d.promised, m.ballot) <= 0;
      d.input.send({ type: 'read-ack', ring: d.ring, from: d.self, to: m.from, ballot: m.ballot, seq: m.seq, ok });
    },
    /** the learner's executed mark (and the values it got from peers), for an offline replay */
    execMark: ({ context: d, event, self }) => {
      const m = event as MessageOf<'exec-mark'>;
      for (const f of m.fills) d.pendingRecords.push({ t: 'chosen', slot: f.slot, value: f.value });
      if (m.upTo > d.markedUpTo) {
        d.markedUpTo = m.upTo;
        const rec: StoreRecord = { t: 'meta', key: EXECUTED_META, value: encodeSlotMeta(m.upTo) };
        // one pending mark is enough: a newer one replaces it
        const i = d.pendingRecords.findIndex((r) => r.t === 'meta' && r.key === EXECUTED_META);
        if (i >= 0) d.pendingRecords[i] = rec;
        else d.pendingRecords.push(rec);
      }
      if (m.flush) flush(d, self);
    },
    persisted: ({ context, event, self }) => {
      const e = event as Extract<AcceptorEvent, { type: 'persisted' }>;
      context.writing = false;
      if (e.err) {
        context.failed = e.err;
        context.input.onStoreError?.(e.err);
        return;
      }
      for (const m of e.replies) context.input.send(m);
      flush(context, self);
    },
    truncate: ({ context, event }) => {
      const below = (event as Extract<AcceptorEvent, { type: 'truncate' }>).below;
      if (below <= context.truncatedBelow) return;
      context.truncatedBelow = below;
      for (const s of context.accepted.keys()) if (s < below) context.accepted.delete(s);
      context.input.store.truncateBelow(below);
    },
  },
  guards: {
    healthy: ({ context }) => context.failed === null,
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
    pendingRecords: [],
    pendingReplies: [],
    writing: false,
    failed: null,
    stats: { prepares: 0, accepts: 0, nacks: 0, writes: 0, refused: 0 },
    input,
  }),
  initial: 'serving',
  states: {
    serving: {
      on: {
        prepare: { actions: 'prepare' },
        accept: { actions: 'accept' },
        'read-confirm': { actions: 'readConfirm' },
        'exec-mark': { actions: 'execMark' },
        persisted: [
          { guard: ({ event }) => (event as { err: Error | null }).err !== null, target: 'failed', actions: 'persisted' },
          { actions: 'persisted' },
        ],
        truncate: { actions: 'truncate' },
        stop: 'stopped',
      },
    },
    /** the store failed: this acceptor no longer votes (it could not keep its promises) */
    failed: { on: { stop: 'stopped' } },
    stopped: { type: 'final' },
  },
});
