import { assertEvent, fromPromise, setup } from 'xstate';
import {
  type Configuration,
  type Message,
  type MessageOf,
  type ReplicaId,
  type RingId,
  type Slot,
  type Snapshot,
  type SnapshotMeta,
  type SnapshotStore,
  loadLatestValid,
} from '@decree/protocol';
import { crc32c } from '@node-rs/crc32';

/** The CRC32C of a transferred chunk or whole snapshot, unsigned. */
export const crc32cOf = (data: Uint8Array): number => crc32c(data) >>> 0;

export interface SnapshotterOptions {
  /** take a snapshot once this many slots were applied since the last one (0: never by slots) */
  everySlots: number;
  /** or once this many bytes of slot values were applied since the last one (0: never by bytes) */
  everyBytes: number;
  /**
   * Spread the members' snapshot points over the interval (issue #19 point 4): a replica with no snapshot
   * yet takes its first one by slots `everySlots × i / n` early, i its place among the n members of its
   * start configuration (sorted), and keeps that phase; its first one by bytes after each start comes
   * `everyBytes × i / n` early. A snapshot stalls its replica for a moment; at
   * the same slot on every member it stalled the leader's whole majority at once.
   */
  stagger: boolean;
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
  stagger: true,
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
  /** the configuration at start; newer ones come with the learner's copies */
  configuration: Configuration;
  /** every replica of the ring: a replica outside the configuration (joining) fetches from them */
  peers: readonly ReplicaId[];
  /** the slot the learner executed up to at start; later ones come in `snap-executed` */
  executedUpTo?: Slot;
  /** where this replica's learner and acceptor run (default: this replica id) */
  learner?: ReplicaId;
  acceptor?: ReplicaId;
  store: SnapshotStore;
  send: (msg: Message) => void;
  now: () => number;
  options?: Partial<SnapshotterOptions>;
  /** the snapshot the replica started from, if any */
  initial?: SnapshotMeta;
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
  /** a snap-install is with the learner (its seq) */
  installing: boolean;
  installSeq: number;
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
  /** how far the learner executed, and the bytes it applied since start (from its snap-executed) */
  executed: Slot;
  bytes: number;
  /** the configuration as of the latest copy (members to fetch from) */
  config: Configuration;
  /** the snap-take in flight (its seq), and a copy the learner took on its own while one was */
  takeSeq: number;
  nextSeq: number;
  queued: { slot: Slot; data: Uint8Array; config: Configuration | undefined } | undefined;
  /** the learner answered busy: no new snap-take before this time */
  busyUntil: number;
  lastSlot: Slot;
  /** how many slots early the first snapshot by slots comes (the stagger's phase; 0 without it) */
  phaseSlots: number;
  /** the same for the first snapshot by bytes after a start */
  phaseBytes: number;
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
  | MessageOf<'snap-executed'>
  | MessageOf<'snap-need'>
  | MessageOf<'snap-data'>
  | MessageOf<'snap-installed'>
  | { type: 'saved'; meta: SnapshotMeta }
  | { type: 'save-failed'; err: unknown }
  | {
      type: 'serve-loaded';
      to: ReplicaId;
      xfer: number;
      snap: Snapshot | undefined;
      next: number;
      slot: Slot;
      crc: number;
    }
  | { type: 'install-done'; meta: SnapshotMeta | undefined; slot: Slot; err?: unknown }
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

// ------------------------------------------------------------------ taking snapshots

function due(d: SnapshotterData, slot: Slot, bytes: number): boolean {
  if (slot <= d.lastSlot) return false;
  if (d.busyUntil > 0 && d.input.now() < d.busyUntil) return false;
  if (d.fetch?.installing) return false; // the state is being replaced
  if (d.requested) return true;
  if (d.paused) return false;
  const o = d.opts;
  // the first snapshot comes early by the replica's phase (stagger): by slots when it started without
  // one (a restart keeps the phase of its snapshot's slot), by bytes after every start (the count restarts)
  const first = d.stats.taken === 0;
  const early = first && d.input.initial === undefined ? d.phaseSlots : 0;
  const earlyBytes = first ? d.phaseBytes : 0;
  return (
    (o.everySlots > 0 && slot + early - d.lastSlot >= o.everySlots) ||
    (o.everyBytes > 0 && bytes + earlyBytes - d.lastBytes >= o.everyBytes)
  );
}

/** The stagger's phase of a replica: its place among the sorted members, as a share of the interval. */
function staggerPhase(input: SnapshotterInput, interval: 'everySlots' | 'everyBytes'): number {
  const o = { ...DEFAULT_SNAPSHOTTER_OPTIONS, ...input.options };
  if (!o.stagger || o[interval] <= 0) return 0;
  const members = [...input.configuration.members].sort();
  const i = members.indexOf(input.self);
  return i <= 0 ? 0 : Math.floor((o[interval] * i) / members.length);
}

/**
 * Asks the learner for a copy of the state machine (it owns it): the copy comes back in snap-data,
 * as of the slot the learner had executed when it took it (between two slots). `forced`: asked for
 * (a request or the API): the state machine may not refuse it.
 */
function take(d: SnapshotterData, forced: boolean): void {
  d.requested = false;
  d.takeSeq = d.nextSeq++;
  d.lastBytes = d.bytes;
  d.stats.taken++;
  d.input.send({ type: 'snap-take', ...hdr(d, learnerOf(d)), seq: d.takeSeq, ...(forced ? { forced: true } : {}) });
}

const learnerOf = (d: SnapshotterData): ReplicaId => d.input.learner ?? d.self;
const acceptorOf = (d: SnapshotterData): ReplicaId => d.input.acceptor ?? d.self;

/** Writes a copy to the store; `saved` / `save-failed` come back. */
function save(
  d: SnapshotterData,
  slot: Slot,
  data: Uint8Array,
  config: Configuration | undefined,
  self: { send(e: SnapshotterEvent): void },
): void {
  if (config && config.epoch >= d.config.epoch) d.config = config;
  d.capturingSlot = slot;
  const c = config ?? d.config;
  track(d, d.input.store.save(slot, c.members, data, { epoch: c.epoch, startSlot: c.startSlot })).then(
    (meta) => post(d, self, { type: 'saved', meta }),
    (err) => post(d, self, { type: 'save-failed', err }),
  );
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
    // the acceptor's log and the learner's retained slots below it may go
    d.input.send({ type: 'log-truncate', ...hdr(d, acceptorOf(d)), below });
    d.input.send({ type: 'retain-truncate', ...hdr(d, learnerOf(d)), below });
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
  // the state machine's hook (RSL NotifyStateSaved) runs where it lives, with the learner
  d.input.send({ type: 'snap-saved', ...hdr(d, learnerOf(d)), slot: meta.slot, name: meta.name, copied: false });
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
  const load: Promise<Snapshot | undefined> = latest
    ? d.input.store.load(latest.name).catch(() => loadLatestValid(d.input.store))
    : loadLatestValid(d.input.store);
  load.then(
    (snap) =>
      post(d, self, { type: 'serve-loaded', to: m.from, xfer: m.xfer, snap, next: m.next, slot: m.slot, crc: m.crc }),
    () => post(d, self, { type: 'serve-loaded', to: m.from, xfer: m.xfer, snap: undefined, next: 0, slot: 0, crc: 0 }),
  );
}

function serveLoaded(d: SnapshotterData, e: Extract<SnapshotterEvent, { type: 'serve-loaded' }>): void {
  if (!e.snap) {
    d.input.send({
      type: 'snap-chunk',
      ...hdr(d, e.to),
      xfer: e.xfer,
      slot: 0,
      members: [],
      length: 0,
      crc: 0,
      index: 0,
      count: 0,
      chunkCrc: 0,
      data: new Uint8Array(0),
    });
    return;
  }
  const count = Math.max(1, Math.ceil(e.snap.data.length / d.opts.chunkBytes));
  // resume where the receiver is only when it is receiving this very snapshot; otherwise start over
  const same = e.slot === e.snap.meta.slot && e.crc === e.snap.meta.crc;
  const next = same ? Math.min(e.next, count) : 0;
  const s: ServeSession = {
    to: e.to,
    xfer: e.xfer,
    snap: e.snap,
    count,
    acked: next,
    sent: next,
    lastAt: d.input.now(),
  };
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
  const others = d.config.members.filter((m) => m !== d.self);
  for (const p of d.input.peers) if (p !== d.self && !others.includes(p)) others.push(p);
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
  d.input.send({
    type: 'snap-req',
    ...hdr(d, f.peer),
    xfer: f.xfer,
    slot: f.slot,
    crc: f.crc,
    next: f.next,
    window: d.opts.window,
  });
}

function startFetch(d: SnapshotterData, peer: ReplicaId | undefined): Fetch | undefined {
  const p = pickPeer(d, peer, 0);
  if (!p) return undefined;
  const f: Fetch = {
    peer: p,
    xfer: d.nextXfer++,
    slot: 0,
    crc: 0,
    length: 0,
    count: 0,
    members: [],
    chunks: new Map(),
    next: 0,
    lastProgressAt: 0,
    retries: 0,
    tried: 0,
    waiters: [],
    installing: false,
    installSeq: 0,
    ready: undefined,
    none: new Set(),
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

function onChunk(d: SnapshotterData, m: MessageOf<'snap-chunk'>, _self: { send(e: SnapshotterEvent): void }): void {
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
    if (m.slot <= d.executed) {
      // the peer's snapshot is not ahead of us: nothing to install
      endFetch(d, d.executed);
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
  install(d, f);
}

/**
 * Hands a verified snapshot to the learner, which replaces the state machine's state (nothing applies
 * meanwhile) and goes on at slot+1; a busy learner (taking a copy) answers busy, and the tick retries.
 */
function install(d: SnapshotterData, f: Fetch): void {
  const data = f.ready;
  if (!data || f.installing) return;
  const slot = f.slot;
  if (slot <= d.executed) {
    endFetch(d, d.executed);
    return;
  }
  f.installing = true;
  f.installSeq = d.nextSeq++;
  // a snapshot from a sender older than configuration changes names no epoch: epoch 1 of its members
  f.config = { epoch: f.epoch ?? 1, members: f.members, startSlot: slot + 1 };
  d.input.send({ type: 'snap-install', ...hdr(d, learnerOf(d)), seq: f.installSeq, slot, data, config: f.config });
}

/** The learner's answer to snap-install: on success the snapshot is stored locally too. */
function installed(
  d: SnapshotterData,
  m: MessageOf<'snap-installed'>,
  self: { send(e: SnapshotterEvent): void },
): void {
  const f = d.fetch;
  if (!f || !f.installing || m.seq !== f.installSeq) return;
  if (!m.ok) {
    f.installing = false;
    if (m.error === 'busy') return; // the tick tries again (the ready payload is kept)
    if (m.error?.startsWith('behind')) {
      endFetch(d, d.executed);
      return;
    }
    log(d, 'restoring a snapshot failed', m.error);
    startOver(f);
    f.lastProgressAt = d.input.now();
    return;
  }
  const slot = f.slot;
  if (slot > d.executed) d.executed = slot;
  const config = f.config!;
  track(d, d.input.store.save(slot, f.members, f.ready!, { epoch: config.epoch, startSlot: config.startSlot })).then(
    (meta) => post(d, self, { type: 'install-done', meta, slot }),
    (err) => {
      log(d, 'saving an installed snapshot failed', err);
      post(d, self, { type: 'install-done', meta: undefined, slot });
    },
  );
}

function installDone(d: SnapshotterData, e: Extract<SnapshotterEvent, { type: 'install-done' }>): void {
  const f = d.fetch;
  d.stats.installed++;
  if (e.slot > d.lastSlot) d.lastSlot = e.slot;
  if (f?.config && f.config.epoch >= d.config.epoch) d.config = f.config;
  if (e.meta) {
    if (!d.latest || e.meta.slot >= d.latest.slot) d.latest = e.meta;
    d.input.send({ type: 'snap-saved', ...hdr(d, learnerOf(d)), slot: e.slot, name: e.meta.name, copied: true });
    // older local snapshots are behind the installed state: only it counts for truncation
    d.kept = [];
    d.samples = [];
    kept(d, e.slot, -1);
  }
  endFetch(d, e.slot);
}

function tick(d: SnapshotterData, _self: { send(e: SnapshotterEvent): void }): void {
  const now = d.input.now();
  for (const [k, s] of d.sessions) if (now - s.lastAt > d.opts.sessionIdleMs) d.sessions.delete(k);
  const f = d.fetch;
  if (!f || f.installing) return;
  if (f.ready) {
    install(d, f);
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
    /** the learner executed enough since the last snapshot (or one was asked for) */
    isDue: ({ context: d }) => due(d, d.executed, d.bytes),
    hasNew: ({ context: d }) => d.executed > d.lastSlot && !d.fetch?.installing,
    /** the copy asked for came back, or the learner could not make it */
    ourCopy: ({ context: d, event }) => {
      assertEvent(event, 'snap-data');
      return event.seq === d.takeSeq && event.seq !== 0 && event.error === undefined;
    },
    ourCopyFailed: ({ context: d, event }) => {
      assertEvent(event, 'snap-data');
      return event.seq === d.takeSeq && event.seq !== 0 && event.error !== undefined;
    },
    /** a copy the learner took on its own (the state machine asked for one after a slot) */
    requestedCopy: ({ event }) => {
      assertEvent(event, 'snap-data');
      return event.seq === 0 && event.requested === true && event.error === undefined;
    },
    hasQueued: ({ context: d }) => d.queued !== undefined,
  },
  actors: {
    /** the snapshot store writes started before the stop (no file is written after the machine is done) */
    drain: fromPromise<void, SnapshotterData>(({ input }) => snapshotWritesDone(input)),
  },
  actions: {
    /** how far the learner executed (its snap-executed, after each run of slots) */
    noteExecuted: ({ context: d, event }) => {
      assertEvent(event, 'snap-executed');
      if (event.slot > d.executed) d.executed = event.slot;
      d.bytes = event.bytes;
      if (event.requested) d.requested = true;
      sample(d, event.slot, event.bytes);
    },
    take: ({ context: d }) => take(d, d.requested),
    /** on demand (the API): the learner copies as of its executed slot */
    takeNow: ({ context: d, event }) => {
      assertEvent(event, 'snapshot-now');
      d.nowWaiters.push({ resolve: event.resolve, reject: event.reject });
      take(d, true);
    },
    resolveLatest: ({ context: d, event }) => {
      assertEvent(event, 'snapshot-now');
      event.resolve(d.latest);
    },
    saveCopy: ({ context: d, event, self }) => {
      assertEvent(event, 'snap-data');
      save(d, event.slot, event.data, event.config, self);
    },
    /** a requested copy arriving while another is being taken or saved: it is saved next */
    queueCopy: ({ context: d, event }) => {
      assertEvent(event, 'snap-data');
      d.queued = { slot: event.slot, data: event.data, config: event.config };
    },
    saveQueued: ({ context: d, self }) => {
      const q = d.queued!;
      d.queued = undefined;
      save(d, q.slot, q.data, q.config, self);
    },
    /** the learner could not copy: refused (trySnapshot: automatic snapshots pause), busy, or failed */
    copyFailed: ({ context: d, event }) => {
      assertEvent(event, 'snap-data');
      if (event.refused) {
        d.paused = true;
        d.stats.refused++;
        return;
      }
      if (event.error === 'busy') {
        // the learner is installing or copying: ask again a little later (at a tick)
        d.requested = true;
        d.busyUntil = d.input.now() + d.opts.retryMs;
        return;
      }
      d.stats.failed++;
      log(d, 'snapshot failed', event.error);
      for (const w of d.nowWaiters.splice(0)) w.reject(new Error(event.error ?? 'snapshot failed'));
    },
    saved: ({ context: d, event }) => {
      assertEvent(event, 'saved');
      afterSave(d, event.meta);
      for (const w of d.nowWaiters.splice(0)) w.resolve(event.meta);
    },
    saveFailed: ({ context: d, event }) => {
      assertEvent(event, 'save-failed');
      d.stats.failed++;
      log(d, 'snapshot failed', event.err);
      const err = event.err instanceof Error ? event.err : new Error(String(event.err));
      for (const w of d.nowWaiters.splice(0)) w.reject(err);
    },
    serve: ({ context, event, self }) => {
      assertEvent(event, 'snap-req');
      serve(context, event, self);
    },
    serveLoaded: ({ context, event }) => {
      assertEvent(event, 'serve-loaded');
      serveLoaded(context, event);
    },
    chunk: ({ context, event, self }) => {
      assertEvent(event, 'snap-chunk');
      onChunk(context, event, self);
    },
    installed: ({ context, event, self }) => {
      assertEvent(event, 'snap-installed');
      installed(context, event, self);
    },
    installDone: ({ context, event }) => {
      assertEvent(event, 'install-done');
      installDone(context, event);
    },
    needSnapshot: ({ context: d, event }) => {
      assertEvent(event, 'snap-need');
      if (!d.fetch) startFetch(d, event.peer);
    },
    /**
     * The acceptor's store is (nearly) full: a snapshot now, and the next truncation below it with no
     * margin; with nothing new to snapshot, truncate below the newest snapshot at once.
     */
    logFull: ({ context: d }) => {
      d.stats.logFull++;
      d.pressure = true;
      if (d.executed > d.lastSlot) d.requested = true;
      else truncate(d);
    },
    copyFrom: ({ context: d, event }) => {
      assertEvent(event, 'copy-from');
      const f = d.fetch ?? startFetch(d, event.peer);
      if (!f) event.reject(new Error('no peer to copy the state from'));
      else f.waiters.push({ resolve: event.resolve, reject: event.reject });
    },
    noteNow: ({ context: d, event }) => {
      assertEvent(event, 'snapshot-now');
      d.requested = true;
      d.nowWaiters.push({ resolve: event.resolve, reject: event.reject });
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
      const err = new Error('snapshotter stopped');
      for (const w of d.nowWaiters.splice(0)) w.reject(err);
      if (d.fetch) {
        const f = d.fetch;
        d.fetch = undefined;
        for (const w of f.waiters) w.reject(err);
      }
    },
  },
  delays: {
    /** the learner did not answer a snap-take (another process that died): give up on that copy */
    copyTimeout: 60_000,
  },
}).createMachine({
  id: 'snapshotter',
  context: ({ input }) => ({
    ring: input.ring,
    self: input.self,
    opts: { ...DEFAULT_SNAPSHOTTER_OPTIONS, ...input.options },
    paused: false,
    requested: false,
    executed: input.executedUpTo ?? input.initial?.slot ?? 0,
    bytes: 0,
    config: input.configuration,
    takeSeq: 0,
    nextSeq: 1,
    queued: undefined,
    busyUntil: 0,
    lastSlot: input.initial?.slot ?? 0,
    phaseSlots: staggerPhase(input, 'everySlots'),
    phaseBytes: staggerPhase(input, 'everyBytes'),
    lastBytes: 0,
    keptBytes: new Map(input.initial ? [[input.initial.slot, -1]] : []),
    samples: [],
    pressure: false,
    startSlot: input.initial?.slot ?? 0,
    capturingSlot: 0,
    latest: input.initial,
    kept: input.initial ? [input.initial.slot] : [],
    sessions: new Map(),
    fetch: undefined,
    nextXfer: 1,
    stats: {
      taken: 0,
      saved: 0,
      refused: 0,
      failed: 0,
      truncatedBelow: 0,
      chunksSent: 0,
      chunksReceived: 0,
      badChunks: 0,
      transfersServed: 0,
      transfersStartedOver: 0,
      installed: 0,
      bytesReceived: 0,
      logFull: 0,
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
        'snap-executed': { actions: 'noteExecuted' },
        'snap-req': { actions: 'serve' },
        'serve-loaded': { actions: 'serveLoaded' },
        'snap-chunk': { actions: 'chunk' },
        'snap-installed': { actions: 'installed' },
        'install-done': { actions: 'installDone' },
        'snap-need': { actions: 'needSnapshot' },
        'log-full': { actions: 'logFull' },
        'copy-from': { actions: 'copyFrom' },
        'snapshot-now': { actions: 'noteNow' }, // busy: the next round after this one
        'snap-data': { guard: 'requestedCopy', actions: 'queueCopy' },
        pause: { actions: 'pause' },
        resume: { actions: 'resume' },
        tick: { actions: 'tick' },
        stop: { target: 'draining', actions: 'stop' },
      },
      states: {
        /** waiting for the next interval */
        idle: {
          always: [
            { guard: 'hasQueued', target: 'saving', actions: 'saveQueued' },
            { guard: 'isDue', target: 'capturing', actions: 'take' },
          ],
          on: {
            'snapshot-now': [
              { guard: 'hasNew', target: 'capturing', actions: 'takeNow' },
              { actions: 'resolveLatest' },
            ],
            'snap-data': { guard: 'requestedCopy', target: 'saving', actions: 'saveCopy' },
          },
        },
        /** the learner is copying the state machine (snap-take sent) */
        capturing: {
          after: { copyTimeout: { target: 'idle' } },
          on: {
            'snap-data': [
              { guard: 'ourCopy', target: 'saving', actions: 'saveCopy' },
              { guard: 'ourCopyFailed', target: 'idle', actions: 'copyFailed' },
              { guard: 'requestedCopy', actions: 'queueCopy' },
            ],
          },
        },
        /** the snapshot is being written to the store */
        saving: {
          on: {
            saved: { target: 'idle', actions: 'saved' },
            'save-failed': { target: 'idle', actions: 'saveFailed' },
          },
        },
      },
    },
    /** stopped: the store writes in flight end, then the machine is done */
    draining: {
      invoke: { src: 'drain', input: ({ context }) => context, onDone: 'stopped', onError: 'stopped' },
    },
    stopped: { type: 'final' },
  },
});
