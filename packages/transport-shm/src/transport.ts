import { createHash } from 'node:crypto';
import { statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import {
  CONTRACTS,
  decodeMessage,
  encodeMessage,
  laneOf,
  requires,
  type Message,
  type ReplicaId,
} from '@decree/protocol';
import type { Transport } from '@decree/bus';
import {
  DEFAULT_LANE_BOUNDS,
  PeerQueue,
  ShmTransportError,
  resolveLogger,
  type LaneQueue,
  type ShmTransportErrorCode,
  type WireLogger,
} from '@decree/wire';
import {
  NO_RDMA_DEVICE,
  createShmRing,
  openShmRing,
  type NativeRdmaEndpoint,
  type NativeShmRing,
  type PollOptions,
  type RdmaEndpointOptions,
  type RingStats,
} from '@decree/rdma-transport';
import type { RdmaExchange, RdmaLinkInfo } from './exchange.ts';
import { nativeVerbs, type RdmaVerbs } from './verbs.ts';

export { ShmTransportError, type ShmTransportErrorCode };

/** Structured logger; a pino logger fits (`(obj, msg)`). */
export type ShmTransportLogger = WireLogger;

export interface ShmTransportOptions {
  /** the replica this process hosts */
  self: ReplicaId;
  /** every replica of the cluster (self may be included; it is skipped) */
  peers: readonly ReplicaId[];
  /** the cluster name: part of every ring's file name, so two clusters on one host never share rings */
  cluster: string;
  /** where the ring files live (default /dev/shm: memory, never disk) */
  dir?: string;
  /** data bytes of each ring this replica receives on (power of two, default 4 MiB) */
  capacity?: number;
  /**
   * per-peer bound on messages waiting for room in a full ring (or for the ring to appear), in each
   * lane; default 16384
   */
  maxQueuedMessages?: number;
  /** per-peer bound on bytes waiting in the control lane (written first; see `laneOf`); default 8 MiB */
  maxQueuedBytes?: number;
  /** per-peer bound on bytes waiting in the bulk lane; default 8 MiB */
  maxBulkQueuedBytes?: number;
  /** the receiver poll thread's backoff */
  poll?: PollOptions;
  /** how often missing rings are looked for, replaced rings reopened and peers' liveness checked (ms, default 200) */
  checkEveryMs?: number;
  /** structured logs; default warnings and errors to console.warn; false for silence */
  logger?: ShmTransportLogger | false;
  onError?: (err: ShmTransportError) => void;
}

export interface ShmPeerStats {
  connected: boolean;
  queuedMessages: number;
  queuedBytes: number;
  /** of queuedBytes: in the bulk lane */
  bulkQueuedBytes: number;
  sent: number;
  /** messages dropped: a full lane, too large, a failed send */
  drops: number;
  /** of drops: a full lane, per lane */
  controlDrops: number;
  bulkDrops: number;
  /** sends that found the ring full (the message waited) */
  full: number;
  reopens: number;
  out: RingStats | undefined;
  in: RingStats | undefined;
}

export interface ShmTransportStats {
  received: number;
  decodeErrors: number;
  misrouted: number;
  peers: Record<ReplicaId, ShmPeerStats>;
}

const safe = (s: string): string => s.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 48);

/**
 * The file name of the ring that carries `from` -> `to` messages of `cluster`: readable parts plus a
 * short hash of the exact names (two names that differ only in characters replaced by `_` still get
 * different rings).
 */
export function ringFileName(cluster: string, from: ReplicaId, to: ReplicaId): string {
  const h = createHash('sha256').update(`${cluster}\u0000${from}\u0000${to}`).digest('hex').slice(0, 8);
  return `decree-${safe(cluster)}-${safe(from)}-to-${safe(to)}-${h}.ring`;
}

function pidAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** What a link to one peer needs from a ring end: shm files and RDMA endpoints both fit. */
interface OutRing {
  sendMany(frames: readonly Uint8Array[]): number;
  stats(): RingStats;
  close(): void;
  readonly maxPayload: number;
}

interface Link {
  readonly peer: ReplicaId;
  out: OutRing | undefined;
  /** the inode of the shm file `out` maps */
  inode: number;
  /** what waits for room in the ring: control ahead of bulk, each lane bounded (packages/wire) */
  readonly queue: PeerQueue;
  connected: boolean;
  sent: number;
  /** drops other than a full lane (too large, a failed send); the lanes count their own */
  drops: number;
  full: number;
  reopens: number;
  retry: NodeJS.Timeout | undefined;
  flushScheduled: boolean;
  lastOpenError: string | undefined;
}

/**
 * The bus Transport over one-sided rings: one ring per directed pair of replicas. This replica owns
 * (creates, reads) the rings peers write to it, and writes the rings its peers own. Messages are
 * encoded with encodeMessage, batched per event-loop turn into one ring publish, and decoded with
 * decodeMessage on the receiving side. A full or missing ring queues boundedly; beyond the bound
 * messages are dropped (the protocol retransmits). Never blocks the caller.
 */
export class RingTransport implements Transport {
  private receiver: (msg: Message) => void = () => {};
  protected readonly links = new Map<ReplicaId, Link>();
  protected closed = false;
  private received = 0;
  private decodeErrors = 0;
  private misrouted = 0;
  protected readonly log: ShmTransportLogger;

  constructor(
    readonly self: ReplicaId,
    peers: readonly ReplicaId[],
    protected readonly opts: Pick<
      ShmTransportOptions,
      'maxQueuedMessages' | 'maxQueuedBytes' | 'maxBulkQueuedBytes' | 'logger' | 'onError'
    >,
  ) {
    this.log = resolveLogger(opts.logger, 'transport-shm');
    const maxMessages = opts.maxQueuedMessages ?? DEFAULT_LANE_BOUNDS.maxMessages;
    const bounds = {
      control: { maxBytes: opts.maxQueuedBytes ?? DEFAULT_LANE_BOUNDS.maxBytes, maxMessages },
      bulk: { maxBytes: opts.maxBulkQueuedBytes ?? DEFAULT_LANE_BOUNDS.maxBytes, maxMessages },
    };
    for (const p of new Set(peers)) {
      if (p === self) continue;
      this.links.set(p, {
        peer: p,
        out: undefined,
        inode: 0,
        queue: new PeerQueue(bounds, 0),
        connected: false,
        sent: 0,
        drops: 0,
        full: 0,
        reopens: 0,
        retry: undefined,
        flushScheduled: false,
        lastOpenError: undefined,
      });
    }
  }

  setReceiver(receiver: (msg: Message) => void): void {
    this.receiver = receiver;
  }

  isConnected(to: ReplicaId): boolean {
    return this.links.get(to)?.connected ?? false;
  }

  send(msg: Message): void {
    if (this.closed) return;
    const link = this.links.get(msg.to);
    if (!link) {
      this.misrouted++;
      this.fail(new ShmTransportError('misrouted', `no ring to ${msg.to} (not a peer of ${this.self})`, msg.to));
      return;
    }
    let frame: Uint8Array;
    try {
      frame = encodeMessage(msg);
    } catch (e) {
      link.drops++;
      this.fail(new ShmTransportError('encode', `cannot encode a ${msg.type}: ${(e as Error).message}`, msg.to));
      return;
    }
    if (link.out && frame.length > link.out.maxPayload) {
      link.drops++;
      const why =
        `a ${msg.type} of ${frame.length} bytes is larger ` + `than the ring's largest frame (${link.out.maxPayload})`;
      this.fail(new ShmTransportError('encode', why, msg.to));
      return;
    }
    if (!link.queue.offer(frame, laneOf(msg))) return; // the lane is full: counted there (the protocol retransmits)
    if (!link.flushScheduled && link.retry === undefined) {
      link.flushScheduled = true;
      queueMicrotask(() => this.flush(link));
    }
  }

  /** Opens the outgoing ring of a link (subclasses); returns undefined while it is not there. */
  protected openOut(_link: Link): OutRing | undefined {
    return undefined;
  }

  /** Hands what waits to the ring: the control lane first, then the bulk lane, until the ring is full. */
  protected flush(link: Link): void {
    link.flushScheduled = false;
    if (this.closed || link.queue.length === 0) return;
    if (!link.out) link.out = this.openOut(link);
    if (!link.out) return this.retryLater(link, 50); // the peer has not created its ring yet
    for (let q: LaneQueue | undefined = link.queue.next(); q; q = link.queue.next()) {
      const waiting = q.items();
      let n: number;
      try {
        n = link.out.sendMany(waiting);
      } catch (e) {
        // a frame too large for this ring (ETOOBIG) or a closed ring: drop the first frame, go on
        const err = e as Error & { code?: string };
        link.drops++;
        q.shift(1);
        const code = err.code === 'ETOOBIG' ? 'encode' : 'ring';
        this.fail(new ShmTransportError(code, `send to ${link.peer}: ${err.message}`, link.peer));
        return this.retryLater(link, 0);
      }
      link.sent += n;
      const all = n === waiting.length;
      q.shift(n);
      if (!all || !link.out) {
        link.full++;
        return this.retryLater(link, 1); // full: the receiver has not consumed yet; it publishes its head as it goes
      }
    }
  }

  private retryLater(link: Link, ms: number): void {
    if (link.retry !== undefined || this.closed) return;
    link.retry = setTimeout(() => {
      link.retry = undefined;
      this.flush(link);
    }, ms);
  }

  /** Decodes and delivers the frames one ring gave. */
  protected deliver(from: ReplicaId, frames: readonly Uint8Array[]): void {
    for (const f of frames) {
      let msg: Message;
      try {
        msg = decodeMessage(f);
      } catch (e) {
        this.decodeErrors++;
        this.fail(new ShmTransportError('decode', `bad frame from ${from}: ${(e as Error).message}`, from));
        continue;
      }
      if (msg.to !== this.self) {
        this.misrouted++;
        this.fail(
          new ShmTransportError(
            'misrouted',
            `a ${msg.type} for ${msg.to} arrived on ${this.self}'s ring from ${from}`,
            from,
          ),
        );
        continue;
      }
      if (msg.from !== from) {
        // each ring has one writer: a message naming another sender is dropped (as the TCP transport's from check)
        this.misrouted++;
        this.fail(
          new ShmTransportError(
            'misrouted',
            `a ${msg.type} from ${msg.from} arrived on the ring from ${from}: dropped`,
            from,
          ),
        );
        continue;
      }
      CONTRACTS && requires(msg.to === this.self, 'ring transport delivers only messages for its replica');
      this.received++;
      try {
        this.receiver(msg);
      } catch (e) {
        this.fail(new ShmTransportError('receiver', `receiver threw on a ${msg.type}: ${(e as Error).message}`, from));
      }
    }
  }

  protected fail(err: ShmTransportError): void {
    if (this.opts.onError) this.opts.onError(err);
    else if (err.code === 'misrouted' || err.code === 'decode' || err.code === 'receiver' || err.code === 'ring') {
      this.log.warn({ code: err.code, peer: err.peer }, err.message);
    }
  }

  protected inStats(_peer: ReplicaId): RingStats | undefined {
    return undefined;
  }

  stats(): ShmTransportStats {
    const peers: Record<ReplicaId, ShmPeerStats> = {};
    for (const l of this.links.values()) {
      let out: RingStats | undefined;
      try {
        out = l.out?.stats();
      } catch {
        out = undefined;
      }
      const q = l.queue;
      peers[l.peer] = {
        connected: l.connected,
        queuedMessages: q.length,
        queuedBytes: q.bytes,
        bulkQueuedBytes: q.bulk.bytes,
        sent: l.sent,
        drops: l.drops + q.drops,
        controlDrops: q.control.drops,
        bulkDrops: q.bulk.drops,
        full: l.full,
        reopens: l.reopens,
        out,
        in: this.inStats(l.peer),
      };
    }
    return { received: this.received, decodeErrors: this.decodeErrors, misrouted: this.misrouted, peers };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.links.values()) {
      // one last try to hand over what waits (a graceful stop's final messages)
      for (const q of [l.queue.control, l.queue.bulk]) {
        if (!l.out || q.length === 0) continue;
        try {
          if (l.out.sendMany(q.items()) < q.length) break; // full: the rest is lost with the process
        } catch {
          /* closing anyway */
        }
      }
      if (l.retry) clearTimeout(l.retry);
      l.retry = undefined;
      l.queue.clear();
      l.connected = false;
      try {
        l.out?.close();
      } catch {
        /* already closed */
      }
      l.out = undefined;
    }
  }
}

/** Shared-memory rings: the rings of this host's replicas are files under `dir`. */
export class ShmTransport extends RingTransport {
  readonly dir: string;
  readonly cluster: string;
  private readonly capacity: number;
  private readonly inRings = new Map<ReplicaId, { ring: NativeShmRing; path: string }>();
  private readonly timer: NodeJS.Timeout;

  constructor(o: ShmTransportOptions) {
    super(o.self, o.peers, o);
    CONTRACTS && requires(o.cluster.length > 0, 'a cluster name');
    this.dir = o.dir ?? '/dev/shm';
    this.cluster = o.cluster;
    this.capacity = o.capacity ?? 4 << 20;
    try {
      for (const peer of this.links.keys()) {
        const path = join(this.dir, ringFileName(this.cluster, peer, this.self));
        const ring = createShmRing(path, this.capacity);
        this.inRings.set(peer, { ring, path });
        ring.startPolling(() => this.drain(peer), o.poll);
      }
    } catch (e) {
      for (const { ring } of this.inRings.values()) ring.close();
      throw e;
    }
    this.timer = setInterval(() => this.check(), o.checkEveryMs ?? 200);
    this.timer.unref();
    this.check();
  }

  /** the file of the ring `from` writes and `to` reads */
  ringPath(from: ReplicaId, to: ReplicaId): string {
    return join(this.dir, ringFileName(this.cluster, from, to));
  }

  private drain(peer: ReplicaId): void {
    const r = this.inRings.get(peer);
    if (!r || this.closed) return;
    let frames: Buffer[];
    try {
      frames = r.ring.poll();
    } catch (e) {
      this.fail(new ShmTransportError('ring', `poll of ${r.path}: ${(e as Error).message}`, peer));
      return;
    }
    this.deliver(peer, frames);
  }

  protected override openOut(link: Link): OutRing | undefined {
    const path = this.ringPath(this.self, link.peer);
    try {
      const ring = openShmRing(path);
      link.inode = ring.inode;
      link.lastOpenError = undefined;
      link.connected = ring.readerPid !== 0 && !ring.readerClosed && pidAlive(ring.readerPid);
      return ring;
    } catch (e) {
      const err = e as Error & { code?: string };
      if (err.code !== 'ENOENT' && err.message !== link.lastOpenError) {
        link.lastOpenError = err.message;
        this.fail(new ShmTransportError('ring', err.message, link.peer));
      }
      return undefined;
    }
  }

  /** reopens rings their reader replaced or removed, opens new ones, updates liveness */
  private check(): void {
    if (this.closed) return;
    for (const link of this.links.values()) {
      const out = link.out as NativeShmRing | undefined;
      if (out) {
        let ino = -1;
        try {
          ino = statSync(this.ringPath(this.self, link.peer)).ino;
        } catch {
          ino = -1;
        }
        if (ino !== link.inode) {
          out.close();
          link.out = undefined;
          link.connected = false;
          link.reopens++;
        } else {
          link.connected = out.readerPid !== 0 && !out.readerClosed && pidAlive(out.readerPid);
          continue;
        }
      }
      link.out = this.openOut(link);
      if (link.out && link.queue.length && !link.flushScheduled && link.retry === undefined) this.flush(link);
    }
  }

  protected override inStats(peer: ReplicaId): RingStats | undefined {
    try {
      return this.inRings.get(peer)?.ring.stats();
    } catch {
      return undefined;
    }
  }

  override async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.timer);
    await super.close();
    for (const { ring, path } of this.inRings.values()) {
      ring.close(); // marks the ring closed for its writer, stops the poll thread
      try {
        unlinkSync(path); // the receiver owns its rings
      } catch {
        /* gone */
      }
    }
    this.inRings.clear();
  }
}

/** `new ShmTransport(...)`: the bus Transport over shared-memory rings between this host's replicas. */
export function createShmTransport(o: ShmTransportOptions): ShmTransport {
  return new ShmTransport(o);
}

// ------------------------------------------------------------------------------------------ RDMA
export interface RdmaTransportOptions {
  self: ReplicaId;
  peers: readonly ReplicaId[];
  /** device name (default: the first) */
  device?: string;
  /** the device's port (default 1) */
  port?: number;
  /** the GID table index (RoCE; default 0) */
  gidIndex?: number;
  /** data bytes of each ring (power of two, default 4 MiB); every replica must use the same */
  capacity?: number;
  /**
   * The out-of-band exchange of endpoint details: `createRdmaSideChannel(...)` (a small TCP side
   * channel with the TCP transport's handshake) or any RdmaExchange. The transport makes a fresh pair
   * of endpoints per peer for every session the exchange opens and drops them when it ends.
   */
  exchange: RdmaExchange;
  /** the verbs layer (default the addon's libibverbs backend); tests pass a MemoryFabric host */
  verbs?: RdmaVerbs;
  /** how often the readers are polled (ms, default 1) */
  pollEveryMs?: number;
  maxQueuedMessages?: number;
  maxQueuedBytes?: number;
  logger?: ShmTransportLogger | false;
  onError?: (err: ShmTransportError) => void;
}

/** One exchange's endpoints for one peer. */
interface RdmaSession {
  readonly id: number;
  readonly reader: NativeRdmaEndpoint;
  readonly writer: NativeRdmaEndpoint;
  readonly local: RdmaLinkInfo;
  remote: RdmaLinkInfo | undefined;
  ready: boolean;
}

/**
 * The ring transport over RDMA WRITE between hosts. For each peer it holds the endpoints of the
 * current exchange session (a reader the peer writes into, a writer that writes into the peer's
 * reader); the exchange decides when sessions start and end (peer restarts, a failed write). Readers
 * are polled from a timer. Messages for a peer without a ready session wait in its bounded queue.
 */
export class RdmaTransport extends RingTransport {
  private readonly sessions = new Map<ReplicaId, RdmaSession>();
  private readonly everReady = new Set<ReplicaId>();
  private timer: NodeJS.Timeout | undefined;
  private readonly exchange: RdmaExchange;
  private readonly verbs: RdmaVerbs;
  private readonly endpointOptions: Omit<RdmaEndpointOptions, 'role'>;
  private readonly maxPayload: number;

  private constructor(o: RdmaTransportOptions, verbs: RdmaVerbs) {
    super(o.self, o.peers, o);
    this.exchange = o.exchange;
    this.verbs = verbs;
    const capacity = o.capacity ?? 4 << 20;
    this.maxPayload = capacity / 4 - 16;
    this.endpointOptions = {
      capacity,
      ...(o.device ? { device: o.device } : {}),
      ...(o.port !== undefined ? { port: o.port } : {}),
      ...(o.gidIndex !== undefined ? { gidIndex: o.gidIndex } : {}),
    };
  }

  /**
   * Lists the devices first: with none, throws ShmTransportError('rdma', NO_RDMA_DEVICE); opens the
   * configured device, port and GID index once (a bad one fails here, not per peer); then starts the
   * exchange (which listens; an address in use rejects with EADDRINUSE). Does not wait for peers.
   */
  static async create(o: RdmaTransportOptions): Promise<RdmaTransport> {
    const verbs = o.verbs ?? nativeVerbs;
    let devices;
    try {
      devices = verbs.listDevices();
    } catch (e) {
      throw new ShmTransportError('rdma', (e as Error).message);
    }
    if (devices.length === 0) throw new ShmTransportError('rdma', NO_RDMA_DEVICE);
    if (o.device && !devices.some((d) => d.name === o.device))
      throw new ShmTransportError(
        'rdma',
        `no RDMA device named "${o.device}" (devices: ${devices.map((d) => d.name).join(', ')})`,
      );
    const t = new RdmaTransport(o, verbs);
    try {
      verbs.createEndpoint({ ...t.endpointOptions, capacity: 4096, role: 'reader' }).close();
    } catch (e) {
      throw new ShmTransportError('rdma', `RDMA setup failed: ${(e as Error).message}`);
    }
    try {
      await o.exchange.start([...t.links.keys()], {
        prepare: (peer, id) => t.prepare(peer, id),
        connect: (peer, id, remote) => t.connectSession(peer, id, remote),
        ready: (peer, id) => t.readySession(peer, id),
        closed: (peer, id, why) => t.sessionClosed(peer, id, why),
      });
    } catch (e) {
      await t.close();
      throw e;
    }
    t.timer = setInterval(() => t.pollAll(), o.pollEveryMs ?? 1);
    t.timer.unref();
    return t;
  }

  /** The endpoint details of the current session with `peer` (ours and, once traded, the peer's). */
  endpointInfo(
    peer: ReplicaId,
  ): { session: number; ready: boolean; local: RdmaLinkInfo; remote: RdmaLinkInfo | undefined } | undefined {
    const s = this.sessions.get(peer);
    return s && { session: s.id, ready: s.ready, local: s.local, remote: s.remote };
  }

  private prepare(peer: ReplicaId, id: number): RdmaLinkInfo {
    if (this.closed) throw new Error('the transport is closed');
    if (!this.links.has(peer)) throw new Error(`${peer} is not a peer of ${this.self}`);
    this.dropSession(peer);
    const reader = this.verbs.createEndpoint({ ...this.endpointOptions, role: 'reader' });
    let writer: NativeRdmaEndpoint;
    try {
      writer = this.verbs.createEndpoint({ ...this.endpointOptions, role: 'writer' });
    } catch (e) {
      reader.close();
      throw e;
    }
    const local = { reader: reader.localInfo(), writer: writer.localInfo() };
    this.sessions.set(peer, { id, reader, writer, local, remote: undefined, ready: false });
    return local;
  }

  private current(peer: ReplicaId, id: number): RdmaSession {
    const s = this.sessions.get(peer);
    if (!s || s.id !== id) throw new Error(`session ${id} with ${peer} is no longer current`);
    return s;
  }

  private connectSession(peer: ReplicaId, id: number, remote: RdmaLinkInfo): void {
    const s = this.current(peer, id);
    s.reader.connect(remote.writer); // their writer WRITEs into our reader's ring
    s.writer.connect(remote.reader); // our writer WRITEs into theirs; they WRITE the head back
    s.remote = remote;
  }

  private readySession(peer: ReplicaId, id: number): void {
    const s = this.current(peer, id);
    const link = this.links.get(peer)!;
    s.ready = true;
    link.out = {
      maxPayload: this.maxPayload,
      sendMany: (frames) => {
        try {
          return s.writer.sendMany(frames);
        } catch (e) {
          const err = e as Error & { code?: string };
          if (err.code === 'ETOOBIG') throw err;
          if (err.code === 'EAGAIN') return 0; // send queue full: like a full ring, retried
          this.broken(peer, s, `RDMA write to ${peer} failed: ${err.message}`);
          return 0;
        }
      },
      stats: () => s.writer.stats(),
      close: () => s.writer.close(),
    };
    if (this.everReady.has(peer)) link.reopens++; // a re-exchange (the peer restarted, or a write failed)
    this.everReady.add(peer);
    link.connected = true;
    if (link.retry !== undefined) clearTimeout(link.retry);
    link.retry = undefined;
    if (link.queue.length && !link.flushScheduled) this.flush(link);
  }

  private sessionClosed(peer: ReplicaId, id: number, _why: string): void {
    if (this.sessions.get(peer)?.id === id) this.dropSession(peer);
  }

  /** The session's endpoints failed: drop them and ask the exchange for a fresh session. */
  private broken(peer: ReplicaId, s: RdmaSession, why: string): void {
    if (this.closed || this.sessions.get(peer) !== s) return;
    this.fail(new ShmTransportError('rdma', `${why}; exchanging endpoint details again`, peer));
    this.dropSession(peer);
    this.exchange.reset(peer, why);
  }

  private dropSession(peer: ReplicaId): void {
    const s = this.sessions.get(peer);
    if (!s) return;
    this.sessions.delete(peer);
    const link = this.links.get(peer);
    if (link) {
      link.out = undefined;
      link.connected = false;
    }
    for (const ep of [s.reader, s.writer]) {
      try {
        ep.close();
      } catch {
        /* closed already */
      }
    }
  }

  private pollAll(): void {
    if (this.closed) return;
    for (const [peer, s] of this.sessions) {
      if (!s.remote) continue; // not connected yet
      let frames: Buffer[];
      try {
        frames = s.reader.poll();
      } catch (e) {
        this.broken(peer, s, `poll of the ring from ${peer} failed: ${(e as Error).message}`);
        continue;
      }
      if (frames.length) this.deliver(peer, frames);
    }
  }

  protected override fail(err: ShmTransportError): void {
    if (this.opts.onError) this.opts.onError(err);
    else if (err.code === 'rdma') this.log.warn({ code: err.code, peer: err.peer }, err.message);
    else super.fail(err);
  }

  protected override inStats(peer: ReplicaId): RingStats | undefined {
    try {
      return this.sessions.get(peer)?.reader.stats();
    } catch {
      return undefined;
    }
  }

  override async close(): Promise<void> {
    if (this.closed) return;
    if (this.timer) clearInterval(this.timer);
    await super.close(); // a last try for what waits, then the writers close
    for (const peer of [...this.sessions.keys()]) this.dropSession(peer);
    await this.exchange.close();
  }
}

/** The RDMA ring transport; rejects with "no RDMA device found (...)" on a machine without one. */
export function createRdmaTransport(o: RdmaTransportOptions): Promise<RdmaTransport> {
  return RdmaTransport.create(o);
}
