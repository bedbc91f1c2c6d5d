import { setup } from 'xstate';
import {
  type Configuration,
  type Message,
  type MessageOf,
  type ReplicaId,
  type RingId,
  type Slot,
  type StateMachine,
  CONTRACTS,
  requires,
} from '@decree/protocol';
import { type Snapshot, type SnapshotMeta, type SnapshotStore, crc32cOf, loadLatestValid } from './store.ts';

export interface SnapshotterOptions {
  /** take a snapshot once this many slots were applied since the last one (0: never by slots) */
  everySlots: number;
  /** or once this many bytes of slot values were applied since the last one (0: never by bytes) */
  everyBytes: number;
  /** snapshots kept in the store */
  keep: number;
  /**
   * the log is truncated below (oldest kept snapshot's slot - margin): peers that far behind still
   * catch up by log, and a fallback to an older snapshot still finds its log suffix locally. The
   * margin is at most truncateMargin slots and at most truncateMarginBytes of slot values.
   */
  truncateMargin: number;
  truncateMarginBytes: number;
  /** payload bytes per transfer chunk */
  chunkBytes: number;
  /** chunks in flight (sent, not yet acknowledged) per transfer */
  window: number;
  /** a receiver asks again when nothing arrived for this long */
  retryMs: number;
  /** a receiver tries another peer after this many retries without progress */
  retriesPerPeer: number;
  /** a sender forgets a transfer nobody asked about for this long */
  sessionIdleMs: number;
}

export const DEFAULT_SNAPSHOTTER_OPTIONS: SnapshotterOptions = {
  everySlots: 10_000,
  everyBytes: 64 << 20,
  keep: 2,
  truncateMargin: 1_000,
  truncateMarginBytes: 8 << 20,
  chunkBytes: 256 << 10,
  window: 8,
  retryMs: 200,
  retriesPerPeer: 5,
  sessionIdleMs: 10_000,
};

export interface SnapshotterInput {
  ring: RingId;
  self: ReplicaId;
  members: () => readonly ReplicaId[];
  /** the configuration as of the executed slot (stored in each snapshot); default: epoch 1 of members() */
  configuration?: () => Configuration;
  /** every replica of the ring: a replica outside the configuration (joining) fetches from them */
  peers?: () => readonly ReplicaId[];
  stateMachine: StateMachine;
  store: SnapshotStore;
  send: (msg: Message) => void;
  now: () => number;
  options?: Partial<SnapshotterOptions>;
  /** the snapshot the replica started from, if any */
  initial?: SnapshotMeta;
  /** the learner's executed slot, and the bytes of slot values it applied since start */
  executedUpTo: () => Slot;
  appliedBytes: () => number;
  /** stop applying now (synchronously); `release` undoes one hold */
  holdLearner: () => void;
  releaseLearner: () => void;
  /** the state machine now holds the state as of `slot` (configuration `config` after it): the learner goes on at slot+1 (and releases one hold) */
  installed: (slot: Slot, config?: Configuration) => void;
  /** the log below `below` may go (acceptor store and the learner's retained slots) */
  truncate: (below: Slot) => void;
  /**
   * The learner and the state machine live in another process (roles as processes): a copy is asked
   * for and comes back with the slot it is as of (not the slot of the `executed` event that prompted
   * it); an install is done there, atomically (hold, restore, go on at slot+1). Without these the
   * snapshotter calls the state machine and the learner directly.
   */
  remote?: {
    capture: () => Promise<{ slot: Slot; data: Uint8Array; config?: Configuration }>;
    install: (slot: Slot, data: Uint8Array, config: Configuration) => Promise<void>;
  };
  log?: (msg: string, err?: unknown) => void;
}

interface ServeSession {
  to: ReplicaId;
  xfer: number;
  snap: Snapshot;
  count: number;
  acked: number;
  sent: number;
  lastAt: number;
}

interface Fetch {
  peer: ReplicaId;
  xfer: number;
  /** the snapshot being received (0 until the first chunk names it) */
  slot: Slot;
  crc: number;
  length: number;
  count: number;
  members: readonly ReplicaId[];
  /** the configuration number the sender named (undefined: an older sender) */
  epoch?: number | undefined;
  /** set at install: the configuration after the snapshot's slot */
  config?: Configuration;
  chunks: Map<number, Uint8Array>;
  next: number;
  lastProgressAt: number;
  retries: number;
  /** peers tried in turn */
  tried: number;
  waiters: { resolve(slot: Slot): void; reject(e: Error): void }[];
  installing: boolean;
  /** peers that answered they have no snapshot */
  none: Set<ReplicaId>;
  /** the whole payload, verified, waiting to be installed */
  ready: Uint8Array | undefined;
}

export interface SnapshotterStats {
  taken: number;
  saved: number;
  refused: number;
  failed: number;
  truncatedBelow: Slot;
  chunksSent: number;
  chunksReceived: number;
  badChunks: number;
  transfersServed: number;
  transfersStartedOver: number;
  installed: number;
  bytesReceived: number;
  /** the acceptor's store asked for room */
  logFull: number;
}

export interface SnapshotterData {
  readonly ring: RingId;
  readonly self: ReplicaId;
  opts: SnapshotterOptions;
  /** paused by the API or by a refusing trySnapshot */
  paused: boolean;
  /** a snapshot was asked for (by the state machine or the API) regardless of the interval */
  requested: boolean;
  /** the learner is held for the capture in progress */
  holding: boolean;
  lastSlot: Slot;
  lastBytes: number;
  /** applied bytes at each kept snapshot's slot (for the byte margin) */
  keptBytes: Map<Slot, number>;
  /** (slot, applied bytes) every truncateMarginBytes/16 applied, ascending: where the byte margin falls */
  samples: { slot: Slot; bytes: number }[];
  /** the store asked for room (log-full): the next truncation goes below the newest snapshot, no margin */
  pressure: boolean;
  /** the slot the applied bytes count from (the snapshot this replica started from) */
  readonly startSlot: Slot;
  capturingSlot: Slot;
  /** the configuration as of capturingSlot, read at the capture (the learner goes on before the save) */
  capturingConfig: Configuration | undefined;
  latest: SnapshotMeta | undefined;
  /** slots of the snapshots kept in the store, newest first */
  kept: Slot[];
  sessions: Map<string, ServeSession>;
  fetch: Fetch | undefined;
  nextXfer: number;
  stats: SnapshotterStats;
  nowWaiters: { resolve(m: SnapshotMeta | undefined): void; reject(e: Error): void }[];
  stopped: boolean;
  /** snapshot store writes in progress */
  writes: Set<Promise<unknown>>;
  readonly input: SnapshotterInput;
}

export type SnapshotterEvent =
  | MessageOf<'snap-req'>
  | MessageOf<'snap-chunk'>
  | { type: 'executed'; slot: Slot; bytes: number; requested: boolean }
  | { type: 'captured'; slot: Slot; data: Uint8Array; config?: Configuration }
  | { type: 'capture-failed'; err: unknown }
  | { type: 'saved'; meta: SnapshotMeta }
  | { type: 'save-failed'; err: unknown }
  | { type: 'serve-loaded'; to: ReplicaId; xfer: number; snap: Snapshot | undefined; next: number; slot: Slot; crc: number }
  | { type: 'install-done'; meta: SnapshotMeta | undefined; slot: Slot; err?: unknown }
  | { type: 'need-snapshot'; from: ReplicaId; below: Slot }
  | MessageOf<'log-full'>
  | { type: 'copy-from'; peer: ReplicaId | undefined; resolve(slot: Slot): void; reject(e: Error): void }
  | { type: 'snapshot-now'; resolve(m: SnapshotMeta | undefined): void; reject(e: Error): void }
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'tick' }
  | { type: 'stop' };

const hdr = (d: SnapshotterData, to: ReplicaId) => ({ ring: d.ring, from: d.self, to });
/** async work reports back only while the actor runs */
const post = (d: SnapshotterData, self: { send(e: SnapshotterEvent): void }, e: SnapshotterEvent): void => {
  if (!d.stopped) self.send(e);
};
const log = (d: SnapshotterData, msg: string, err?: unknown) => d.input.log?.(msg, err);

/** Remembers a store write in progress, so a stop can wait for it (no file written after a stop returns). */
function track<T>(d: SnapshotterData, p: Promise<T>): Promise<T> {
  d.writes.add(p);
  const forget = () => d.writes.delete(p);
  p.then(forget, forget);
  return p;
}

/** Resolves once every snapshot store write started so far has ended (for a replica's stop). */
export function snapshotWritesDone(d: SnapshotterData): Promise<void> {
  return Promise.allSettled([...d.writes]).then(() => undefined);
}

/** Reads a snapshot stream (or buffer) to one buffer. */
export async function collect(s: Uint8Array | AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  if (s instanceof Uint8Array) return s;
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const p of s) {
    parts.push(p);
    n += p.length;
  }
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

async function* once(data: Uint8Array): AsyncGenerator<Uint8Array> {
  // hand the state machine bounded pieces (a real transfer would stream them)
  const piece = 1 << 20;
  for (let o = 0; o < data.length; o += piece) yield data.subarray(o, Math.min(data.length, o + piece));
}

// ------------------------------------------------------------------ taking snapshots

function due(d: SnapshotterData, slot: Slot, bytes: number): boolean {
  if (slot <= d.lastSlot) return false;
  if (d.fetch?.installing) return false; // the state is being replaced
  if (d.requested) return true;
  if (d.paused) return false;
  const o = d.opts;
  return (o.everySlots > 0 && slot - d.lastSlot >= o.everySlots) || (o.everyBytes > 0 && bytes - d.lastBytes >= o.everyBytes);
}

function dueAndAccepted(d: SnapshotterData, slot: Slot, bytes: number): boolean {
  if (!due(d, slot, bytes)) return false;
  const sm = d.input.stateMachine;
  if (!d.requested && sm.trySnapshot && !sm.trySnapshot()) {
    d.paused = true;
    d.stats.refused++;
    return false;
  }
  return true;
}

/**
 * Called synchronously by the learner between two slots (its `onExecuted` hook): the state machine
 * holds exactly the state as of `slot`. A copy-on-call state machine copies inside `snapshot()`;
 * any other is held (nothing applied) until its stream has been read.
 */
function capture(d: SnapshotterData, slot: Slot, bytes: number, self: { send(e: SnapshotterEvent): void }): void {
  const sm = d.input.stateMachine;
  d.requested = false;
  d.capturingSlot = slot;
  d.capturingConfig = d.input.configuration?.();
  d.lastBytes = bytes;
  d.stats.taken++;
  const remote = d.input.remote;
  if (remote) {
    remote.capture().then(
      (c) => post(d, self, { type: 'captured', slot: c.slot, data: c.data, ...(c.config ? { config: c.config } : {}) }),
      (err) => post(d, self, { type: 'capture-failed', err }),
    );
    return;
  }
  if (!sm.snapshotIsCopy) {
    d.input.holdLearner();
    d.holding = true;
  }
  let p: Promise<Uint8Array | AsyncIterable<Uint8Array>>;
  try {
    p = sm.snapshot();
  } catch (err) {
    p = Promise.reject(err);
  }
  p.then(collect).then(
    (data) => post(d, self, { type: 'captured', slot, data }),
    (err) => post(d, self, { type: 'capture-failed', err }),
  );
}

function releaseHold(d: SnapshotterData): void {
  if (!d.holding) return;
  d.holding = false;
  d.input.releaseLearner();
}

/**
 * A snapshot of `slot` is stored: keep the newest K, and let the log go below the OLDEST kept one
 * (minus the margin), so that falling back to it (the newest is found corrupt at a restart) still
 * finds the log suffix after it.
 */
function kept(d: SnapshotterData, slot: Slot, bytes: number): void {
  if (!d.kept.includes(slot)) d.kept.push(slot);
  if (!d.keptBytes.has(slot)) d.keptBytes.set(slot, bytes);
  d.kept.sort((a, b) => b - a);
  d.kept.length = Math.min(d.kept.length, Math.max(1, d.opts.keep));
  for (const s of d.keptBytes.keys()) if (!d.kept.includes(s)) d.keptBytes.delete(s);
  d.input.store.prune(d.opts.keep).catch((e) => log(d, 'snapshot prune failed', e));
  truncate(d);
}

/**
 * Lets the log go below the oldest kept snapshot minus the margin (slots and bytes), or below the
 * newest one when the store asked for room. The log then holds about
 * (keep - 1)·everyBytes + truncateMarginBytes + what was applied since the newest snapshot.
 */
export function truncationPoint(d: SnapshotterData): Slot {
  if (d.kept.length === 0) return 0;
  if (d.pressure) return d.kept[0]!;
  const oldest = d.kept[d.kept.length - 1]!;
  const at = d.keptBytes.get(oldest) ?? -1;
  // the bytes below a snapshot this replica did not take in this run are unknown: no margin there
  if (at < 0) return oldest;
  let below = oldest - d.opts.truncateMargin;
  const floorBytes = at - d.opts.truncateMarginBytes;
  if (floorBytes > 0) {
    // the lowest sampled slot at most truncateMarginBytes below the oldest snapshot
    const s = d.samples.find((x) => x.bytes >= floorBytes && x.slot <= oldest);
    below = Math.max(below, s ? s.slot : oldest);
  } else below = Math.max(below, d.startSlot); // applied bytes count from the start: nothing older is known
  return Math.max(0, Math.min(below, oldest));
}

function truncate(d: SnapshotterData): void {
  const below = truncationPoint(d);
  d.pressure = false;
  if (below > d.stats.truncatedBelow) {
    d.stats.truncatedBelow = below;
    d.input.truncate(below);
    while (d.samples.length > 0 && d.samples[0]!.slot < below) d.samples.shift();
  }
}

/** Remembers where the applied bytes stood, every truncateMarginBytes/16 (bounded: the log is). */
function sample(d: SnapshotterData, slot: Slot, bytes: number): void {
  const last = d.samples[d.samples.length - 1];
  if (last && (slot <= last.slot || bytes - last.bytes < d.opts.truncateMarginBytes / 16)) return;
  d.samples.push({ slot, bytes });
  if (d.samples.length > 4096) d.samples.splice(0, d.samples.length - 4096);
}

function afterSave(d: SnapshotterData, meta: SnapshotMeta): void {
  d.stats.saved++;
  d.lastSlot = Math.max(d.lastSlot, meta.slot);
  if (!d.latest || meta.slot >= d.latest.slot) d.latest = meta;
  kept(d, meta.slot, meta.slot === d.capturingSlot ? d.lastBytes : 0);
}

// ------------------------------------------------------------------ serving a transfer

function sendChunks(d: SnapshotterData, s: ServeSession, from: number, to: number): void {
  const { snap } = s;
  const cb = d.opts.chunkBytes;
  for (let i = from; i < Math.min(to, s.count); i++) {
    const data = snap.data.subarray(i * cb, Math.min(snap.data.length, (i + 1) * cb));
    d.stats.chunksSent++;
    d.input.send({
      type: 'snap-chunk',
      ...hdr(d, s.to),
      xfer: s.xfer,
      slot: snap.meta.slot,
      members: snap.meta.members,
      ...(snap.meta.epoch !== undefined ? { epoch: snap.meta.epoch } : {}),
      length: snap.data.length,
      crc: snap.meta.crc,
      index: i,
      count: s.count,
      chunkCrc: crc32cOf(data),
      data,
    });
  }
  if (to > s.sent) s.sent = Math.min(to, s.count);
}

function serve(d: SnapshotterData, m: MessageOf<'snap-req'>, self: { send(e: SnapshotterEvent): void }): void {
  const key = `${m.from}\u0000${m.xfer}`;
  const s = d.sessions.get(key);
  const window = Math.max(1, Math.min(m.window, 64));
  if (s && (m.slot === 0 || (m.slot === s.snap.meta.slot && m.crc === s.snap.meta.crc))) {
    s.lastAt = d.input.now();
    if (m.next > s.acked) {
      s.acked = m.next;
      sendChunks(d, s, Math.max(s.sent, m.next), m.next + window);
    } else {
      // the same ack again: the receiver lost or rejected a chunk; resend the window
      sendChunks(d, s, m.next, m.next + window);
    }
    if (s.acked >= s.count) d.sessions.delete(key);
    return;
  }
  // a new transfer, or one this replica forgot (it restarted): load its newest snapshot
  const latest = d.latest;
  const load: Promise<Snapshot | undefined> = latest ? d.input.store.load(latest.name).catch(() => loadLatestValid(d.input.store)) : loadLatestValid(d.input.store);
  load.then(
    (snap) => post(d, self, { type: 'serve-loaded', to: m.from, xfer: m.xfer, snap, next: m.next, slot: m.slot, crc: m.crc }),
    () => post(d, self, { type: 'serve-loaded', to: m.from, xfer: m.xfer, snap: undefined, next: 0, slot: 0, crc: 0 }),
  );
}

function serveLoaded(d: SnapshotterData, e: Extract<SnapshotterEvent, { type: 'serve-loaded' }>): void {
  if (!e.snap) {
    d.input.send({ type: 'snap-chunk', ...hdr(d, e.to), xfer: e.xfer, slot: 0, members: [], length: 0, crc: 0, index: 0, count: 0, chunkCrc: 0, data: new Uint8Array(0) });
    return;
  }
  const count = Math.max(1, Math.ceil(e.snap.data.length / d.opts.chunkBytes));
  // resume where the receiver is only when it is receiving this very snapshot; otherwise start over
  const same = e.slot === e.snap.meta.slot && e.crc === e.snap.meta.crc;
  const next = same ? Math.min(e.next, count) : 0;
  const s: ServeSession = { to: e.to, xfer: e.xfer, snap: e.snap, count, acked: next, sent: next, lastAt: d.input.now() };
  d.sessions.set(`${e.to}\u0000${e.xfer}`, s);
  d.stats.transfersServed++;
  sendChunks(d, s, next, next + d.opts.window);
}

// ------------------------------------------------------------------ receiving a transfer

/**
 * The peers to fetch from: the other members, then every ring peer (a lagging replica's configuration
 * may be older than the one whose members hold the snapshot it needs).
 */
function fetchPeers(d: SnapshotterData): readonly ReplicaId[] {
  const others = d.input.members().filter((m) => m !== d.self);
  for (const p of d.input.peers?.() ?? []) if (p !== d.self && !others.includes(p)) others.push(p);
  return others;
}

function pickPeer(d: SnapshotterData, preferred: ReplicaId | undefined, tried: number): ReplicaId | undefined {
  const others = [...fetchPeers(d)];
  if (preferred && preferred !== d.self && !others.includes(preferred)) others.unshift(preferred);
  if (others.length === 0) return undefined;
  if (preferred && tried === 0 && others.includes(preferred)) return preferred;
  return others[tried % others.length];
}

function ask(d: SnapshotterData, f: Fetch): void {
  f.lastProgressAt = d.input.now();
  d.input.send({ type: 'snap-req', ...hdr(d, f.peer), xfer: f.xfer, slot: f.slot, crc: f.crc, next: f.next, window: d.opts.window });
}

function startFetch(d: SnapshotterData, peer: ReplicaId | undefined): Fetch | undefined {
  const p = pickPeer(d, peer, 0);
  if (!p) return undefined;
  const f: Fetch = {
    peer: p, xfer: d.nextXfer++, slot: 0, crc: 0, length: 0, count: 0, members: [], chunks: new Map(), next: 0,
    lastProgressAt: 0, retries: 0, tried: 0, waiters: [], installing: false, ready: undefined, none: new Set(),
  };
  d.fetch = f;
  ask(d, f);
  return f;
}

function startOver(f: Fetch): void {
  f.ready = undefined;
  f.slot = 0;
  f.crc = 0;
  f.length = 0;
  f.count = 0;
  f.members = [];
  f.epoch = undefined;
  f.chunks = new Map();
  f.next = 0;
}

function endFetch(d: SnapshotterData, result: Slot | Error): void {
  const f = d.fetch;
  if (!f) return;
  d.fetch = undefined;
  for (const w of f.waiters) result instanceof Error ? w.reject(result) : w.resolve(result);
}

function onChunk(d: SnapshotterData, m: MessageOf<'snap-chunk'>, self: { send(e: SnapshotterEvent): void }): void {
  const f = d.fetch;
  if (!f || f.installing || f.ready || m.xfer !== f.xfer || m.from !== f.peer) return;
  if (m.count === 0) {
    // this peer has no snapshot: try the next one at the retry; when none has one, give up (the
    // learner asks again if it still needs one)
    f.none.add(m.from);
    if (f.none.size >= fetchPeers(d).length) {
      endFetch(d, new Error('no peer has a snapshot'));
      return;
    }
    f.retries = d.opts.retriesPerPeer;
    f.lastProgressAt = -Infinity;
    return;
  }
  f.none.clear();
  if (crc32cOf(m.data) !== m.chunkCrc) {
    d.stats.badChunks++;
    ask(d, f); // fetch it again
    return;
  }
  if (f.slot !== m.slot || f.crc !== m.crc || f.count !== m.count || f.length !== m.length) {
    if (m.slot <= d.input.executedUpTo()) {
      // the peer's snapshot is not ahead of us: nothing to install
      endFetch(d, d.input.executedUpTo());
      return;
    }
    if (f.slot !== 0) d.stats.transfersStartedOver++;
    startOver(f);
    f.slot = m.slot;
    f.crc = m.crc;
    f.length = m.length;
    f.count = m.count;
    f.members = [...m.members];
    f.epoch = m.epoch;
  }
  if (m.index < f.next || m.index >= f.count || f.chunks.has(m.index)) {
    return;
  }
  d.stats.chunksReceived++;
  d.stats.bytesReceived += m.data.length;
  // keep a copy: the message's bytes may be a view into a transport buffer
  f.chunks.set(m.index, new Uint8Array(m.data));
  const before = f.next;
  while (f.chunks.has(f.next)) f.next++;
  if (f.next > before) {
    f.retries = 0;
    ask(d, f); // acknowledge (cumulative); the sender slides its window
  }
  if (f.next < f.count) return;
  // every chunk is here: check the whole before touching the state machine
  const whole = new Uint8Array(f.length);
  let o = 0;
  for (let i = 0; i < f.count; i++) {
    const c = f.chunks.get(i)!;
    if (o + c.length > f.length) {
      o = -1;
      break;
    }
    whole.set(c, o);
    o += c.length;
  }
  if (o !== f.length || crc32cOf(whole) !== f.crc) {
    d.stats.badChunks++;
    d.stats.transfersStartedOver++;
    startOver(f);
    ask(d, f);
    return;
  }
  f.ready = whole;
  install(d, f, self);
}

/**
 * Installs a verified snapshot; waits (retried at the tick) while a snapshot of the current state is
 * being read with the learner held, so that read never sees the state being replaced.
 */
function install(d: SnapshotterData, f: Fetch, self: { send(e: SnapshotterEvent): void }): void {
  const data = f.ready;
  if (!data || f.installing || d.holding) return;
  const slot = f.slot;
  if (slot <= d.input.executedUpTo()) {
    endFetch(d, d.input.executedUpTo());
    return;
  }
  f.installing = true;
  const sm = d.input.stateMachine;
  const members = f.members;
  // a snapshot from a sender older than configuration changes names no epoch: epoch 1 of its members
  const config: Configuration = { epoch: f.epoch ?? 1, members, startSlot: slot + 1 };
  f.config = config;
  let restored: Promise<void>;
  if (d.input.remote) {
    // the learner's process holds, restores and goes on at slot+1 by itself
    restored = d.input.remote.install(slot, data, config);
  } else {
    // nothing applies while the state is replaced; the learner goes on at slot+1 once it is in
    d.input.holdLearner();
    try {
      restored = sm.restore(once(data));
    } catch (err) {
      restored = Promise.reject(err);
    }
  }
  restored.then(
    () => track(d, d.input.store.save(slot, members, data, { epoch: config.epoch, startSlot: config.startSlot })).then(
      (meta) => post(d, self, { type: 'install-done', meta, slot }),
      (err) => {
        log(d, 'saving an installed snapshot failed', err);
        post(d, self, { type: 'install-done', meta: undefined, slot });
      },
    ),
    (err) => post(d, self, { type: 'install-done', meta: undefined, slot: 0, err }),
  );
}

function installDone(d: SnapshotterData, e: Extract<SnapshotterEvent, { type: 'install-done' }>): void {
  const f = d.fetch;
  if (e.err !== undefined || e.slot === 0) {
    log(d, 'restoring a snapshot failed', e.err);
    d.input.releaseLearner();
    if (f) {
      f.installing = false;
      startOver(f);
      f.lastProgressAt = d.input.now();
    }
    return;
  }
  if (!d.input.remote) {
    CONTRACTS && requires(e.slot > d.input.executedUpTo(), 'install: the snapshot is ahead of the learner (held since)');
    d.input.installed(e.slot, f?.config);
  }
  d.stats.installed++;
  if (e.slot > d.lastSlot) d.lastSlot = e.slot;
  if (e.meta) {
    if (!d.latest || e.meta.slot >= d.latest.slot) d.latest = e.meta;
    d.input.stateMachine.stateCopied?.(e.slot, e.meta.name);
    // older local snapshots are behind the installed state: only it counts for truncation
    d.kept = [];
    d.samples = [];
    kept(d, e.slot, -1);
  }
  endFetch(d, e.slot);
}

function tick(d: SnapshotterData, self: { send(e: SnapshotterEvent): void }): void {
  const now = d.input.now();
  for (const [k, s] of d.sessions) if (now - s.lastAt > d.opts.sessionIdleMs) d.sessions.delete(k);
  const f = d.fetch;
  if (!f || f.installing) return;
  if (f.ready) {
    install(d, f, self);
    return;
  }
  if (now - f.lastProgressAt < d.opts.retryMs) return;
  f.retries++;
  if (f.retries > d.opts.retriesPerPeer) {
    // this peer does not answer (or has nothing): the next one; a partial transfer resumes only if
    // that peer sends the same snapshot, otherwise the receiver starts over on its first chunk
    f.tried++;
    f.retries = 0;
    f.peer = pickPeer(d, undefined, f.tried) ?? f.peer;
    f.xfer = d.nextXfer++;
  }
  ask(d, f);
}

export const snapshotterMachine = setup({
  types: {
    context: {} as SnapshotterData,
    events: {} as SnapshotterEvent,
    input: {} as SnapshotterInput,
  },
  guards: {
    /** due by interval or request; an automatic one the state machine refuses pauses them (RSL: a refused checkpoint) */
    isDue: ({ context: d, event }) => {
      const e = event as Extract<SnapshotterEvent, { type: 'executed' }>;
      if (e.requested) d.requested = true;
      sample(d, e.slot, e.bytes);
      return dueAndAccepted(d, e.slot, e.bytes);
    },
    /** slots applied while the last snapshot was being taken may already make the next one due */
    dueNow: ({ context: d }) => dueAndAccepted(d, d.input.executedUpTo(), d.input.appliedBytes()),
    hasNew: ({ context: d }) => d.input.executedUpTo() > d.lastSlot && !d.fetch?.installing,
  },
  actions: {
    capture: ({ context: d, event, self }) => {
      const e = event as Extract<SnapshotterEvent, { type: 'executed' }>;
      capture(d, e.slot, e.bytes, self);
    },
    noteRequest: ({ context: d, event }) => {
      const e = event as Extract<SnapshotterEvent, { type: 'executed' }>;
      sample(d, e.slot, e.bytes);
      if (e.requested) d.requested = true;
    },
    /**
     * The acceptor's store is (nearly) full: a snapshot now, and the next truncation below it with no
     * margin; with nothing new to snapshot, truncate below the newest snapshot at once.
     */
    logFull: ({ context: d }) => {
      d.stats.logFull++;
      d.pressure = true;
      if (d.input.executedUpTo() > d.lastSlot) d.requested = true;
      else truncate(d);
    },
    /** on demand, outside the learner's execution: the state is as of the executed slot */
    captureNow: ({ context: d, event, self }) => {
      const e = event as Extract<SnapshotterEvent, { type: 'snapshot-now' }>;
      d.nowWaiters.push({ resolve: e.resolve, reject: e.reject });
      capture(d, d.input.executedUpTo(), d.input.appliedBytes(), self);
    },
    captureLatest: ({ context: d, self }) => capture(d, d.input.executedUpTo(), d.input.appliedBytes(), self),
    resolveLatest: ({ context: d, event }) => {
      (event as Extract<SnapshotterEvent, { type: 'snapshot-now' }>).resolve(d.latest);
    },
    save: ({ context: d, event, self }) => {
      const e = event as Extract<SnapshotterEvent, { type: 'captured' }>;
      releaseHold(d);
      // the configuration as of the captured slot: a config value executed since must not be in it
      const c = e.config ?? d.capturingConfig;
      track(d, d.input.store.save(e.slot, c ? c.members : d.input.members(), e.data, c ? { epoch: c.epoch, startSlot: c.startSlot } : undefined)).then(
        (meta) => post(d, self, { type: 'saved', meta }),
        (err) => post(d, self, { type: 'save-failed', err }),
      );
    },
    saved: ({ context: d, event }) => {
      const meta = (event as Extract<SnapshotterEvent, { type: 'saved' }>).meta;
      afterSave(d, meta);
      d.input.stateMachine.stateSaved?.(meta.slot, meta.name);
      for (const w of d.nowWaiters.splice(0)) w.resolve(meta);
    },
    failed: ({ context: d, event }) => {
      releaseHold(d);
      d.stats.failed++;
      const err = (event as { err: unknown }).err;
      log(d, 'snapshot failed', err);
      for (const w of d.nowWaiters.splice(0)) w.reject(err instanceof Error ? err : new Error(String(err)));
    },
    serve: ({ context, event, self }) => serve(context, event as MessageOf<'snap-req'>, self),
    serveLoaded: ({ context, event }) => serveLoaded(context, event as Extract<SnapshotterEvent, { type: 'serve-loaded' }>),
    chunk: ({ context, event, self }) => onChunk(context, event as MessageOf<'snap-chunk'>, self),
    installDone: ({ context, event }) => installDone(context, event as Extract<SnapshotterEvent, { type: 'install-done' }>),
    needSnapshot: ({ context: d, event }) => {
      const e = event as Extract<SnapshotterEvent, { type: 'need-snapshot' }>;
      if (!d.fetch) startFetch(d, e.from);
    },
    copyFrom: ({ context: d, event }) => {
      const e = event as Extract<SnapshotterEvent, { type: 'copy-from' }>;
      const f = d.fetch ?? startFetch(d, e.peer);
      if (!f) e.reject(new Error('no peer to copy the state from'));
      else f.waiters.push({ resolve: e.resolve, reject: e.reject });
    },
    snapshotNow: ({ context: d, event }) => {
      const e = event as Extract<SnapshotterEvent, { type: 'snapshot-now' }>;
      d.requested = true;
      d.nowWaiters.push({ resolve: e.resolve, reject: e.reject });
    },
    pause: ({ context }) => {
      context.paused = true;
    },
    resume: ({ context }) => {
      context.paused = false;
    },
    tick: ({ context, self }) => tick(context, self),
    stop: ({ context: d }) => {
      d.stopped = true;
      releaseHold(d);
      const err = new Error('snapshotter stopped');
      for (const w of d.nowWaiters.splice(0)) w.reject(err);
      if (d.fetch) {
        const f = d.fetch;
        d.fetch = undefined;
        for (const w of f.waiters) w.reject(err);
      }
    },
  },
}).createMachine({
  id: 'snapshotter',
  context: ({ input }) => ({
    ring: input.ring,
    self: input.self,
    opts: { ...DEFAULT_SNAPSHOTTER_OPTIONS, ...input.options },
    paused: false,
    requested: false,
    holding: false,
    lastSlot: input.initial?.slot ?? 0,
    lastBytes: 0,
    keptBytes: new Map(input.initial ? [[input.initial.slot, -1]] : []),
    samples: [],
    pressure: false,
    startSlot: input.initial?.slot ?? 0,
    capturingSlot: 0,
    capturingConfig: undefined,
    latest: input.initial,
    kept: input.initial ? [input.initial.slot] : [],
    sessions: new Map(),
    fetch: undefined,
    nextXfer: 1,
    stats: {
      taken: 0, saved: 0, refused: 0, failed: 0, truncatedBelow: 0, chunksSent: 0, chunksReceived: 0, badChunks: 0,
      transfersServed: 0, transfersStartedOver: 0, installed: 0, bytesReceived: 0, logFull: 0,
    },
    nowWaiters: [],
    stopped: false,
    writes: new Set(),
    input,
  }),
  initial: 'running',
  states: {
    running: {
      initial: 'idle',
      on: {
        'snap-req': { actions: 'serve' },
        'serve-loaded': { actions: 'serveLoaded' },
        'snap-chunk': { actions: 'chunk' },
        'install-done': { actions: 'installDone' },
        'need-snapshot': { actions: 'needSnapshot' },
        'log-full': { actions: 'logFull' },
        'copy-from': { actions: 'copyFrom' },
        'snapshot-now': { actions: 'snapshotNow' }, // busy: the next round after this one
        pause: { actions: 'pause' },
        resume: { actions: 'resume' },
        tick: { actions: 'tick' },
        stop: { target: 'stopped', actions: 'stop' },
      },
      states: {
        /** waiting for the next interval */
        idle: {
          always: { guard: 'dueNow', target: 'capturing', actions: 'captureLatest' },
          on: {
            executed: { guard: 'isDue', target: 'capturing', actions: 'capture' },
            'snapshot-now': [{ guard: 'hasNew', target: 'capturing', actions: 'captureNow' }, { actions: 'resolveLatest' }],
          },
        },
        /** the state machine's stream is being read (the learner is held unless it is copy-on-call) */
        capturing: {
          on: {
            captured: { target: 'saving', actions: 'save' },
            'capture-failed': { target: 'idle', actions: 'failed' },
            executed: { actions: 'noteRequest' }, // remembers a request for the next round
          },
        },
        /** the snapshot is being written to the store */
        saving: {
          on: {
            saved: { target: 'idle', actions: 'saved' },
            'save-failed': { target: 'idle', actions: 'failed' },
            executed: { actions: 'noteRequest' },
          },
        },
      },
    },
    stopped: { type: 'final' },
  },
});
