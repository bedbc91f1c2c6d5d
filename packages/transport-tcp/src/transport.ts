import { randomBytes } from 'node:crypto';
import { promises as dnsPromises } from 'node:dns';
import net from 'node:net';
import tls from 'node:tls';
import {
  CONTRACTS,
  type Lane,
  decodeMessage,
  encodeMessage,
  laneOf,
  requires,
  type Message,
  type ReplicaId,
} from '@decree/protocol';
import type { Transport } from '@decree/bus';
import {
  HANDSHAKE_MAX_FRAME_BYTES,
  PROTOCOL_VERSION_MAX,
  PROTOCOL_VERSION_MIN,
  FrameReader,
  PeerQueue,
  TransportError,
  backoffDelay,
  handshakeStep,
  peerAddress,
  resolveLogger,
  startDialler,
  startListener,
  type BackoffOptions,
  type HandshakeState,
  type HandshakeStep,
  type PeerAddress,
  type PeerDirectory,
  type Refusal,
  type RefusalCode,
  type TransportErrorCode,
  type WireLogger,
} from '@decree/wire';
import { EncodeOnce } from './encode-once.ts';
import { certificateNames, loadTlsMaterial, type TlsOptions, type TlsMaterial } from './tls.ts';

export { TransportError, backoffDelay };
export type { BackoffOptions, PeerAddress, PeerDirectory, TransportErrorCode };

/** Structured logger; a pino logger fits (`(obj, msg)`). */
export type TransportLogger = WireLogger;

export interface TcpTransportOptions {
  /** the replica(s) this process hosts */
  self: ReplicaId | readonly ReplicaId[];
  /** where to accept connections; omit for a dial-only process (replies then come back over its own connections) */
  listen?: { host?: string; port: number };
  /** where each peer replica listens; a function is asked again on every connection attempt */
  peers: PeerDirectory;
  /** host name -> IP address, asked on every connection attempt (default dns.lookup); IPs skip it */
  lookup?: (host: string) => Promise<string>;
  /** largest frame payload accepted and sent (default 16 MiB) */
  maxFrameBytes?: number;
  /**
   * per-peer bound on bytes waiting to be written in the control lane (default 8 MiB): heartbeats,
   * votes, prepares, accepts, decides; they are written ahead of the bulk lane
   */
  maxQueuedBytes?: number;
  /** per-peer bound on messages waiting to be written in each lane (default 16384) */
  maxQueuedMessages?: number;
  /**
   * per-peer bound on bytes waiting in the bulk lane (default 8 MiB): promise pages, catch-up
   * replies, snapshot chunks, forwarded client batches (see `laneOf`); their receivers pull them
   */
  maxBulkQueuedBytes?: number;
  /** most bytes gathered into one socket write (default 1 MiB; one larger frame goes alone) */
  maxWriteBytes?: number;
  backoff?: BackoffOptions;
  /** bound on dial + handshake (default 5000 ms) */
  connectTimeoutMs?: number;
  /** bound on an inbound connection's hello (default 5000 ms) */
  handshakeTimeoutMs?: number;
  /** how long close() lets sockets flush before destroying them (default 250 ms) */
  closeGraceMs?: number;
  /**
   * a secret shared by every replica of the cluster: both ends of every connection prove they hold
   * it (HMAC-SHA256 challenge-response in the handshake) or the connection is refused. Messages
   * themselves are not encrypted or signed (use a private network or TLS tunnel for that).
   */
  secret?: string | Uint8Array;
  /**
   * mutual TLS: both ends present a certificate signed by the cluster CA (`ca`), and each end's
   * certificate must name (CN or a subjectAltName) every replica id it claims in the handshake.
   * PEM strings or file paths. Can be combined with `secret`.
   */
  tls?: TlsOptions;
  /**
   * the replica ids allowed to connect (and to be connected to): a hello or welcome naming any other
   * id is refused as an authentication failure. Default: anyone who passes the other checks.
   */
  members?: readonly ReplicaId[] | ((id: ReplicaId) => boolean);
  /** the protocol versions this replica accepts (default the build's range); for upgrades and tests */
  protocolVersions?: { min: number; max: number };
  /** copy each received frame before decoding so decoded byte fields do not pin socket chunks (default true) */
  copyFrames?: boolean;
  /**
   * encode a message sent to several peers once (the proposer's `accept`): the copy for the next
   * peer gets its own `to` at a computed, verified offset (default true; false packs every copy)
   */
  encodeOnce?: boolean;
  /** jitter source, uniform in [0, 1) (default Math.random) */
  random?: () => number;
  /** structured logs; default warnings and errors to console.warn; false for silence */
  logger?: TransportLogger | false;
  /** every error worth surfacing, typed */
  onError?: (err: TransportError) => void;
}

export interface PeerStats {
  readonly connected: boolean;
  /** whether this transport dials the peer (false: it only answers over the peer's connection) */
  readonly dials: boolean;
  readonly queuedMessages: number;
  readonly queuedBytes: number;
  /** of queuedBytes: in the bulk lane */
  readonly bulkQueuedBytes: number;
  /** messages dropped because their lane was full, per lane (control drops cost liveness, never safety) */
  readonly controlDrops: number;
  readonly bulkDrops: number;
  /** bytes handed to the socket and not yet flushed to the kernel */
  readonly socketBufferedBytes: number;
  readonly framesOut: number;
  readonly bytesOut: number;
  readonly socketWrites: number;
  readonly drops: number;
  readonly connects: number;
  readonly reconnects: number;
  readonly connectFailures: number;
  readonly lookups: number;
  /** consecutive failed or short-lived connections: the backoff exponent of the next retry */
  readonly attempt: number;
  readonly version: number | undefined;
}

export interface TransportStats {
  framesIn: number;
  bytesIn: number;
  framesOut: number;
  bytesOut: number;
  socketWrites: number;
  /** messages dropped: buffer full, no route, oversized, after close */
  drops: number;
  /** of drops: a full lane (per lane) */
  controlDrops: number;
  bulkDrops: number;
  /** of which: no address and no connection for the destination */
  unroutable: number;
  reconnects: number;
  connectFailures: number;
  decodeErrors: number;
  encodeErrors: number;
  protocolErrors: number;
  misrouted: number;
  receiverErrors: number;
  inboundAccepted: number;
  handshakesRefused: number;
  authFailures: number;
  /** of misrouted: messages whose `from` is not a replica the connection authenticated as (spoofed), dropped */
  spoofed: number;
  /**
   * of authFailures: TLS handshakes that failed (no, bad or untrusted
   * certificate, or a certificate not naming the claimed ids)
   */
  tlsFailures: number;
  /** of authFailures: handshakes naming a replica that is not a member */
  notMembers: number;
  peers: Record<ReplicaId, PeerStats>;
}

const DEFAULTS = {
  maxFrameBytes: 16 * 1024 * 1024,
  maxQueuedBytes: 8 * 1024 * 1024,
  maxBulkQueuedBytes: 8 * 1024 * 1024,
  maxQueuedMessages: 16384,
  maxWriteBytes: 1024 * 1024,
  connectTimeoutMs: 5000,
  handshakeTimeoutMs: 5000,
  closeGraceMs: 250,
};

const consoleLogger: TransportLogger = resolveLogger(undefined, 'transport-tcp');
const silentLogger: TransportLogger = resolveLogger(false, 'transport-tcp');

/** One TCP connection, either direction, before and after its handshake. */
class Conn {
  ready = false;
  closed = false;
  /** the failure of this connection was already reported (refusal, protocol error) */
  reported = false;
  /** the last socket error, for the report of a failed dial */
  lastError: string | undefined;
  /** the handshake (packages/wire) while it runs */
  hs: HandshakeState | undefined;
  version: number | undefined;
  remoteIds: readonly ReplicaId[] = [];
  /** the link this connection carries outbound frames for, if any */
  link: Link | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  readonly reader: FrameReader;
  readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  constructor(
    readonly socket: net.Socket,
    readonly inbound: boolean,
    public label: string,
    onFrame: (payload: Buffer) => boolean,
    onOversize: (len: number) => void,
  ) {
    this.reader = new FrameReader(HANDSHAKE_MAX_FRAME_BYTES, onFrame, onOversize);
    this.closedPromise = new Promise((r) => (this.resolveClosed = r));
  }

  markClosed(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.closed = true;
    this.ready = false;
    this.resolveClosed();
  }
}

/**
 * Outbound state for one peer replica: two bounded lanes (control ahead of bulk, `PeerQueue` of
 * packages/wire) and the connection that drains them.
 */
class Link {
  readonly queue: PeerQueue;
  conn: Conn | undefined;
  /** dialling (resolving, connecting or handshaking) */
  dialing = false;
  timer: ReturnType<typeof setTimeout> | undefined;
  attempt = 0;
  everConnected = false;
  /** when the current connection completed its handshake (Date.now()) */
  connectedAt = 0;
  /** a connect failure has been logged at warn level since the last success */
  failureLogged = false;
  stats = {
    framesOut: 0,
    bytesOut: 0,
    socketWrites: 0,
    drops: 0,
    connects: 0,
    reconnects: 0,
    connectFailures: 0,
    lookups: 0,
  };

  constructor(
    readonly id: ReplicaId,
    readonly dials: boolean,
    bounds: { maxQueuedBytes: number; maxBulkQueuedBytes: number; maxQueuedMessages: number },
  ) {
    this.queue = new PeerQueue({
      control: { maxBytes: bounds.maxQueuedBytes, maxMessages: bounds.maxQueuedMessages },
      bulk: { maxBytes: bounds.maxBulkQueuedBytes, maxMessages: bounds.maxQueuedMessages },
    });
  }
}

/**
 * The default replica-to-replica transport: length-prefixed MessagePack frames over TCP, one
 * outbound connection per peer replica shared by every ring, opened lazily and kept, reconnected
 * with capped exponential backoff and jitter (host names resolved again on every attempt), a
 * bounded outbound buffer per peer (overflow dropped and counted), small frames coalesced into
 * one socket write per tick, and a versioned handshake so mixed versions can run side by side.
 */
export class TcpTransport implements Transport {
  readonly selfIds: readonly ReplicaId[];
  private readonly selfSet: ReadonlySet<ReplicaId>;
  private readonly opts: TcpTransportOptions;
  private readonly versions: { min: number; max: number };
  private readonly log: TransportLogger;
  private readonly random: () => number;
  private readonly lookup: (host: string) => Promise<string>;
  private readonly maxFrameBytes: number;
  private readonly bounds: { maxQueuedBytes: number; maxBulkQueuedBytes: number; maxQueuedMessages: number };
  private readonly maxWriteBytes: number;
  private readonly copyFrames: boolean;
  private readonly secret: Buffer | undefined;
  private readonly tls: TlsMaterial | undefined;
  private readonly isMember: ((id: ReplicaId) => boolean) | undefined;

  private receiver: ((msg: Message) => void) | undefined;
  private server: net.Server | undefined;
  private readonly links = new Map<ReplicaId, Link>();
  private readonly conns = new Set<Conn>();
  /** the latest established inbound connection naming each remote replica */
  private readonly inboundById = new Map<ReplicaId, Conn>();
  private readonly dirty = new Set<Link>();
  /** a flush of the dirty links is queued (a microtask: at the end of the current task) */
  private flushScheduled = false;
  private closing = false;
  private closedPromise: Promise<void> | undefined;
  private readonly lastLog = new Map<string, number>();
  /** packs a message sent to several peers once (option encodeOnce, default on) */
  private readonly encoder: { encode(msg: Message): Uint8Array };

  private readonly totals = {
    framesIn: 0,
    bytesIn: 0,
    drops: 0,
    unroutable: 0,
    decodeErrors: 0,
    encodeErrors: 0,
    protocolErrors: 0,
    misrouted: 0,
    receiverErrors: 0,
    inboundAccepted: 0,
    handshakesRefused: 0,
    authFailures: 0,
    spoofed: 0,
    tlsFailures: 0,
    notMembers: 0,
  };
  /** counters of links forgotten by forget() */
  private readonly retired = {
    framesOut: 0,
    bytesOut: 0,
    socketWrites: 0,
    drops: 0,
    reconnects: 0,
    connectFailures: 0,
    controlDrops: 0,
    bulkDrops: 0,
  };

  constructor(opts: TcpTransportOptions) {
    const ids = typeof opts.self === 'string' ? [opts.self] : [...opts.self];
    if (ids.length === 0 || ids.some((id) => typeof id !== 'string' || id.length === 0))
      throw new TypeError('transport-tcp: self must name at least one replica id');
    this.selfIds = ids;
    this.selfSet = new Set(ids);
    this.opts = opts;
    this.versions = opts.protocolVersions ?? { min: PROTOCOL_VERSION_MIN, max: PROTOCOL_VERSION_MAX };
    if (!(this.versions.min >= 0 && this.versions.max <= 0xffff && this.versions.min <= this.versions.max))
      throw new TypeError(`transport-tcp: bad protocolVersions ${this.versions.min}..${this.versions.max}`);
    this.log = opts.logger === false ? silentLogger : (opts.logger ?? consoleLogger);
    this.random = opts.random ?? Math.random;
    this.lookup = opts.lookup ?? (async (host) => (await dnsPromises.lookup(host)).address);
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULTS.maxFrameBytes;
    this.bounds = {
      maxQueuedBytes: opts.maxQueuedBytes ?? DEFAULTS.maxQueuedBytes,
      maxBulkQueuedBytes: opts.maxBulkQueuedBytes ?? DEFAULTS.maxBulkQueuedBytes,
      maxQueuedMessages: opts.maxQueuedMessages ?? DEFAULTS.maxQueuedMessages,
    };
    this.maxWriteBytes = opts.maxWriteBytes ?? DEFAULTS.maxWriteBytes;
    this.copyFrames = opts.copyFrames ?? true;
    this.encoder = opts.encodeOnce === false ? { encode: encodeMessage } : new EncodeOnce();
    if (opts.secret !== undefined) {
      this.secret = typeof opts.secret === 'string' ? Buffer.from(opts.secret, 'utf8') : Buffer.from(opts.secret);
      if (this.secret.length === 0) throw new TypeError('transport-tcp: secret must not be empty');
    }
    if (opts.tls) this.tls = loadTlsMaterial(opts.tls);
    if (opts.members) {
      const m = opts.members;
      if (typeof m === 'function') this.isMember = m;
      else {
        const set = new Set(m);
        this.isMember = (id) => set.has(id);
      }
    }
  }

  // ------------------------------------------------------------------ public API

  /** Starts listening (if `listen` was given); resolves with the bound address. */
  async listen(): Promise<PeerAddress | undefined> {
    const l = this.opts.listen;
    if (!l) return undefined;
    if (this.server) return this.address();
    let server: net.Server;
    if (this.tls) {
      const ts = tls.createServer(
        {
          ca: this.tls.ca,
          cert: this.tls.cert,
          key: this.tls.key,
          requestCert: true,
          rejectUnauthorized: true,
          minVersion: 'TLSv1.2',
          handshakeTimeout: this.opts.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs,
        },
        (s) => this.accept(s),
      );
      ts.on('tlsClientError', (e: NodeJS.ErrnoException, s: tls.TLSSocket) => {
        this.totals.authFailures++;
        this.totals.tlsFailures++;
        this.report(
          'auth',
          `TLS handshake from ${s.remoteAddress}:${s.remotePort} failed: ${e.code ?? ''} ${e.message}`.replace(
            /\s+/g,
            ' ',
          ),
        );
      });
      server = ts;
    } else {
      server = net.createServer((s) => this.accept(s));
    }
    this.server = server;
    server.on('error', (e) => this.log.error({ err: e.message }, 'server error'));
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: Error) => reject(e);
      server.once('error', onErr);
      server.listen(l.port, l.host ?? '127.0.0.1', () => {
        server.off('error', onErr);
        resolve();
      });
    });
    return this.address();
  }

  /** The address the server is bound to (port 0 resolved). */
  address(): PeerAddress | undefined {
    const a = this.server?.address();
    if (!a || typeof a === 'string') return undefined;
    return { host: a.address, port: a.port };
  }

  setReceiver(receiver: (msg: Message) => void): void {
    this.receiver = receiver;
  }

  /** Fire-and-forget: encodes now, writes on the next flush; drops (counted) when the peer's buffer is full. */
  send(msg: Message): void {
    if (this.closing) return this.drop();
    CONTRACTS &&
      requires(
        typeof msg === 'object' && msg !== null && typeof msg.to === 'string',
        'send: a message with a destination',
      );
    if (this.selfSet.has(msg.to)) {
      // a replica of this process: no socket, but still asynchronous like every other delivery
      queueMicrotask(() => this.deliver(msg, undefined));
      return;
    }
    if (!this.selfSet.has(msg.from)) {
      this.totals.misrouted++;
      this.report(
        'misrouted',
        `message ${msg.type} from ${msg.from}, which this transport does not host (${this.selfIds.join(',')})`,
        msg.to,
      );
      return this.drop();
    }
    let payload: Uint8Array;
    try {
      // the same accept goes to every peer: encoded once, the copies get their own `to`
      payload = this.encoder.encode(msg);
    } catch (e) {
      this.totals.encodeErrors++;
      this.report('encode', `cannot encode ${msg.type} for ${msg.to}: ${(e as Error).message}`, msg.to);
      return this.drop();
    }
    if (payload.length > this.maxFrameBytes) {
      this.totals.encodeErrors++;
      this.report(
        'encode',
        `${msg.type} for ${msg.to} is ${payload.length} bytes, above maxFrameBytes ${this.maxFrameBytes}`,
        msg.to,
      );
      return this.drop();
    }
    const link = this.linkFor(msg.to);
    if (!link) {
      this.totals.unroutable++;
      this.report('connect', `no address for replica ${msg.to} and no connection from it`, msg.to);
      return this.drop();
    }
    this.enqueue(link, payload, laneOf(msg));
  }

  /** Sends an already encoded message (e.g. forwarded bytes) to `to`, in the lane given (default control). */
  sendEncoded(to: ReplicaId, payload: Uint8Array, lane: Lane = 'control'): void {
    if (this.closing) return this.drop();
    if (payload.length > this.maxFrameBytes) return this.drop();
    const link = this.linkFor(to);
    if (!link) {
      this.totals.unroutable++;
      return this.drop();
    }
    this.enqueue(link, payload, lane);
  }

  /** Whether the outbound link to `to` has completed its handshake and is open. */
  isConnected(to: ReplicaId): boolean {
    if (this.selfSet.has(to)) return !this.closing;
    const c = this.links.get(to)?.conn;
    return !!c && c.ready && !c.closed;
  }

  /** Opens the link to `to` now instead of on the first send. */
  connect(to: ReplicaId): void {
    if (this.closing || this.selfSet.has(to)) return;
    this.linkFor(to);
  }

  /** Resolves once the link to `to` is connected (or rejects after timeoutMs). */
  async whenConnected(to: ReplicaId, timeoutMs = 10_000): Promise<void> {
    this.connect(to);
    const end = Date.now() + timeoutMs;
    while (!this.isConnected(to)) {
      if (this.closing) throw new Error('transport-tcp: closed');
      if (Date.now() > end) throw new Error(`transport-tcp: not connected to ${to} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Drops the link to `to` (its queue and connection), e.g. for a replica removed from the configuration. */
  forget(to: ReplicaId): void {
    const link = this.links.get(to);
    if (!link) return;
    this.links.delete(to);
    this.dirty.delete(link);
    if (link.timer) clearTimeout(link.timer);
    for (const k of ['framesOut', 'bytesOut', 'socketWrites', 'drops', 'reconnects', 'connectFailures'] as const)
      this.retired[k] += link.stats[k];
    this.retired.controlDrops += link.queue.control.drops;
    this.retired.bulkDrops += link.queue.bulk.drops;
    this.retired.drops += link.queue.clear();
    const c = link.conn;
    link.conn = undefined;
    if (c && !c.inbound) c.socket.destroy();
    if (c) c.link = undefined;
  }

  stats(): TransportStats {
    const peers: Record<ReplicaId, PeerStats> = {};
    let framesOut = this.retired.framesOut;
    let bytesOut = this.retired.bytesOut;
    let socketWrites = this.retired.socketWrites;
    let drops = this.totals.drops + this.retired.drops;
    let controlDrops = this.retired.controlDrops;
    let bulkDrops = this.retired.bulkDrops;
    let reconnects = this.retired.reconnects;
    let connectFailures = this.retired.connectFailures;
    for (const [id, l] of this.links) {
      framesOut += l.stats.framesOut;
      bytesOut += l.stats.bytesOut;
      socketWrites += l.stats.socketWrites;
      drops += l.stats.drops;
      controlDrops += l.queue.control.drops;
      bulkDrops += l.queue.bulk.drops;
      reconnects += l.stats.reconnects;
      connectFailures += l.stats.connectFailures;
      peers[id] = {
        connected: this.isConnected(id),
        dials: l.dials,
        queuedMessages: l.queue.length,
        queuedBytes: l.queue.bytes,
        bulkQueuedBytes: l.queue.bulk.bytes,
        controlDrops: l.queue.control.drops,
        bulkDrops: l.queue.bulk.drops,
        socketBufferedBytes: l.conn && !l.conn.closed ? l.conn.socket.writableLength : 0,
        ...l.stats,
        attempt: l.attempt,
        version: l.conn?.version,
      };
    }
    const t = this.totals;
    return {
      framesIn: t.framesIn,
      bytesIn: t.bytesIn,
      framesOut,
      bytesOut,
      socketWrites,
      drops,
      controlDrops,
      bulkDrops,
      unroutable: t.unroutable,
      reconnects,
      connectFailures,
      decodeErrors: t.decodeErrors,
      encodeErrors: t.encodeErrors,
      protocolErrors: t.protocolErrors,
      misrouted: t.misrouted,
      receiverErrors: t.receiverErrors,
      inboundAccepted: t.inboundAccepted,
      handshakesRefused: t.handshakesRefused,
      authFailures: t.authFailures,
      spoofed: t.spoofed,
      tlsFailures: t.tlsFailures,
      notMembers: t.notMembers,
      peers,
    };
  }

  /** Stops the server, flushes what it can, closes every socket; resolves when all are closed. */
  close(): Promise<void> {
    if (this.closedPromise) return this.closedPromise;
    this.closing = true;
    for (const link of this.links.values()) {
      if (link.timer) clearTimeout(link.timer);
      link.timer = undefined;
      if (link.conn?.ready) this.flush(link);
    }
    this.dirty.clear();
    const waits: Promise<void>[] = [];
    if (this.server) {
      const server = this.server;
      waits.push(new Promise<void>((r) => server.close(() => r())));
    }
    const grace = this.opts.closeGraceMs ?? DEFAULTS.closeGraceMs;
    for (const c of this.conns) {
      waits.push(c.closedPromise);
      if (c.ready && grace > 0) {
        c.socket.end();
        const t = setTimeout(() => c.socket.destroy(), grace);
        t.unref?.();
        void c.closedPromise.then(() => clearTimeout(t));
      } else {
        c.socket.destroy();
      }
    }
    this.closedPromise = Promise.all(waits).then(() => {
      this.links.clear();
      this.inboundById.clear();
    });
    return this.closedPromise;
  }

  // ------------------------------------------------------------------ outbound

  private linkFor(to: ReplicaId): Link | undefined {
    let link = this.links.get(to);
    if (link) return link;
    const addr = this.peerAddress(to);
    const inbound = this.inboundById.get(to);
    if (!addr && !inbound) return undefined;
    link = new Link(to, !!addr, this.bounds);
    this.links.set(to, link);
    if (addr) this.dial(link);
    else if (inbound) this.attach(link, inbound);
    return link;
  }

  private peerAddress(id: ReplicaId): PeerAddress | undefined {
    return peerAddress(this.opts.peers, id);
  }

  private enqueue(link: Link, payload: Uint8Array, lane: Lane): void {
    const q = link.queue.lane(lane);
    if (!q.offer(payload)) {
      // every message is retransmitted or pulled again by its receiver: a drop costs time, not safety
      link.stats.drops++;
      const obj = { peer: link.id, lane, queuedBytes: q.bytes, queuedMessages: q.length, drops: q.drops };
      this.logLimited(`drop:${link.id}:${lane}`, 'warn', obj, `outbound ${lane} lane to ${link.id} is full: dropping`);
      return;
    }
    if (link.conn?.ready) this.scheduleFlush(link);
  }

  private scheduleFlush(link: Link): void {
    this.dirty.add(link);
    if (this.flushScheduled) return;
    // at the end of the current task, not on the next turn of the event loop: the messages a handler
    // (a whole bus pass) sends go out in one write per peer, with no turn of latency added
    this.flushScheduled = true;
    queueMicrotask(this.flushDirty);
  }

  private readonly flushDirty = (): void => {
    this.flushScheduled = false;
    const links = [...this.dirty];
    this.dirty.clear();
    for (const l of links) this.flush(l);
  };

  /**
   * Writes queued frames until the socket pushes back: the control lane first, then the bulk lane,
   * one write at a time, so a control message queued while bulk data is going out is next.
   */
  private flush(link: Link): void {
    const c = link.conn;
    if (!c || !c.ready || c.closed) return;
    const s = c.socket;
    for (let q = link.queue.next(); q; q = link.queue.next()) {
      if (s.writableNeedDrain || s.destroyed) return; // 'drain' calls flush again
      const { buf, count, bytes } = q.takeFramed(this.maxWriteBytes);
      link.stats.socketWrites++;
      link.stats.framesOut += count;
      link.stats.bytesOut += bytes;
      s.write(buf);
    }
  }

  private dial(link: Link): void {
    if (this.closing || link.dialing || link.conn || link.timer) return;
    link.dialing = true;
    void this.dialAsync(link);
  }

  private async dialAsync(link: Link): Promise<void> {
    const addr = this.peerAddress(link.id);
    if (!addr) {
      link.dialing = false;
      this.connectFailed(link, `no address for replica ${link.id}`);
      return;
    }
    let ip = addr.host;
    if (net.isIP(ip) === 0) {
      link.stats.lookups++;
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        const ms = this.opts.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
        ip = await Promise.race([
          this.lookup(addr.host),
          new Promise<never>(
            (_, reject) => (timer = setTimeout(() => reject(new Error(`lookup timed out after ${ms} ms`)), ms)),
          ),
        ]);
        clearTimeout(timer);
      } catch (e) {
        clearTimeout(timer);
        link.dialing = false;
        this.connectFailed(link, `cannot resolve ${addr.host} for ${link.id}: ${(e as Error).message}`);
        return;
      }
    }
    if (this.closing || this.links.get(link.id) !== link) {
      link.dialing = false;
      return;
    }
    const label = `${link.id}@${addr.host}:${addr.port}${ip !== addr.host ? ` (${ip})` : ''}`;
    const socket = this.tls
      ? tls.connect({
          host: ip,
          port: addr.port,
          ca: this.tls.ca,
          cert: this.tls.cert,
          key: this.tls.key,
          rejectUnauthorized: true,
          minVersion: 'TLSv1.2',
          ...(net.isIP(addr.host) === 0 ? { servername: addr.host } : {}),
          // the peer is identified by its replica id (checked against
          // the certificate after the welcome), not its host name
          checkServerIdentity: () => undefined,
        })
      : net.connect({ host: ip, port: addr.port });
    socket.setNoDelay(true);
    const conn = this.track(socket, false, label);
    conn.link = link;
    link.conn = conn;
    link.dialing = false;
    conn.timer = setTimeout(() => {
      if (!conn.ready) {
        conn.lastError = `no handshake within ${this.opts.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs} ms`;
        socket.destroy(); // the close handler reports the failure and schedules the retry
      }
    }, this.opts.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs);
    socket.once(this.tls ? 'secureConnect' : 'connect', () => {
      socket.setKeepAlive(true, 10_000);
      const step = startDialler({ ...this.handshakeConfig(socket), to: link.id, label });
      conn.hs = step.state;
      socket.write(step.send!);
    });
  }

  private connectFailed(link: Link, why: string): void {
    link.stats.connectFailures++;
    const first = !link.failureLogged;
    link.failureLogged = true;
    this.report('connect', why, link.id, first ? 'warn' : 'debug');
    this.scheduleRedial(link);
  }

  private scheduleRedial(link: Link): void {
    if (this.closing || !link.dials || link.timer || this.links.get(link.id) !== link) return;
    const delay = backoffDelay(link.attempt, this.opts.backoff, this.random);
    link.attempt++;
    link.timer = setTimeout(() => {
      link.timer = undefined;
      this.dial(link);
    }, delay);
  }

  /** Makes `conn` (established) the carrier of `link`'s frames. */
  private attach(link: Link, conn: Conn): void {
    link.conn = conn;
    conn.link = link;
    if (link.queue.length > 0) this.scheduleFlush(link);
  }

  // ------------------------------------------------------------------ connections

  private track(socket: net.Socket, inbound: boolean, label: string): Conn {
    // eslint-disable-next-line prefer-const
    let conn: Conn;
    const onFrame = (payload: Buffer): boolean => this.onFrame(conn, payload);
    const onOversize = (len: number): void => {
      const limit = conn.reader.maxFrameBytes;
      this.protocolError(conn, `frame of ${len} bytes from ${conn.label} is above the limit of ${limit}`);
    };
    conn = new Conn(socket, inbound, label, onFrame, onOversize);
    this.conns.add(conn);
    socket.on('data', (chunk: Buffer) => {
      this.totals.bytesIn += chunk.length;
      conn.reader.push(chunk);
    });
    socket.on('drain', () => {
      if (conn.link && conn.link.conn === conn) this.flush(conn.link);
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      conn.lastError = e.code ?? e.message;
      if (this.tls && !conn.ready && !conn.inbound && !conn.reported && isTlsError(e)) {
        // the listener's certificate is not trusted, or it refused ours: an authentication failure, not an outage
        this.totals.authFailures++;
        this.totals.tlsFailures++;
        conn.reported = true;
        this.report(
          'auth',
          `TLS handshake with ${conn.label} failed: ${e.code ?? ''} ${e.message}`.replace(/\s+/g, ' '),
          conn.link?.id,
        );
        return;
      }
      if (!conn.ready && !conn.inbound && conn.link) return; // reported by the close handler as a connect failure
      this.log.debug?.({ conn: conn.label, err: e.message, code: e.code }, 'socket error');
    });
    socket.on('close', () => this.onClose(conn));
    return conn;
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.totals.inboundAccepted++;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const conn = this.track(socket, true, `inbound ${remote}`);
    conn.hs = startListener({ ...this.handshakeConfig(socket), remote });
    const timeout = this.opts.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs;
    conn.timer = setTimeout(() => {
      const hs = conn.hs;
      if (!conn.ready && !conn.closed && hs && hs.phase !== 'done') {
        this.onHandshake(conn, handshakeStep(hs, { type: 'timeout', afterMs: timeout }));
      }
    }, timeout);
  }

  private onClose(conn: Conn): void {
    const wasReady = conn.ready;
    conn.markClosed();
    this.conns.delete(conn);
    for (const id of conn.remoteIds) if (this.inboundById.get(id) === conn) this.inboundById.delete(id);
    const link = conn.link;
    conn.link = undefined;
    if (!link || link.conn !== conn) return;
    link.conn = undefined;
    this.dirty.delete(link);
    if (this.closing) return;
    if (!link.dials) {
      // answered over the peer's connection: wait for it to dial again, or use another of its connections
      const other = this.inboundById.get(link.id);
      if (other) this.attach(link, other);
      return;
    }
    if (wasReady) {
      if (Date.now() - link.connectedAt >= (this.opts.backoff?.resetAfterMs ?? 1000)) link.attempt = 0;
      this.log.info?.({ peer: link.id, conn: conn.label }, 'connection closed; reconnecting');
      this.scheduleRedial(link);
    } else if (conn.reported) {
      link.stats.connectFailures++;
      this.scheduleRedial(link);
    } else {
      this.connectFailed(link, `cannot connect to ${conn.label}${conn.lastError ? `: ${conn.lastError}` : ''}`);
    }
  }

  private onFrame(conn: Conn, payload: Buffer): boolean {
    if (conn.closed) return false;
    if (!conn.ready) {
      const hs = conn.hs;
      if (!hs || hs.phase === 'done') {
        this.protocolError(conn, `a frame from ${conn.label} before the handshake`);
        return false;
      }
      return this.onHandshake(conn, handshakeStep(hs, { type: 'frame', payload }));
    }
    this.totals.framesIn++;
    let msg: Message;
    try {
      msg = decodeMessage(this.copyFrames ? Buffer.from(payload) : payload);
    } catch (e) {
      this.totals.decodeErrors++;
      this.report(
        'decode',
        `undecodable frame of ${payload.length} bytes from ${conn.label}: ${(e as Error).message}`,
        conn.remoteIds[0],
      );
      return true; // framing is intact: the connection goes on
    }
    this.deliver(msg, conn);
    return !conn.closed;
  }

  private deliver(msg: Message, conn: Conn | undefined): void {
    if (this.closing) return;
    if (conn) {
      if (!this.selfSet.has(msg.to)) {
        this.totals.misrouted++;
        this.report(
          'misrouted',
          `${msg.type} for ${msg.to} arrived from ${conn.label}, but this process hosts ${this.selfIds.join(',')}`,
          msg.from,
        );
        return;
      }
      if (!conn.remoteIds.includes(msg.from)) {
        this.totals.misrouted++;
        this.totals.spoofed++;
        this.report(
          'misrouted',
          `${msg.type} from ${msg.from} arrived over the connection of ` +
            `${conn.remoteIds.join(',')} (not an id it authenticated as): dropped`,
          conn.remoteIds[0],
        );
        return;
      }
    }
    const r = this.receiver;
    if (!r) return;
    try {
      r(msg);
    } catch (e) {
      this.totals.receiverErrors++;
      this.report('receiver', `receiver threw on ${msg.type} from ${msg.from}: ${(e as Error).message}`, msg.from);
    }
  }

  /** The handshake's settings for one connection (packages/wire handshake.ts). */
  private handshakeConfig(socket: net.Socket) {
    let peerNames: string[] | undefined;
    if (this.tls) {
      const s = socket as tls.TLSSocket;
      peerNames = typeof s.getPeerCertificate === 'function' ? certificateNames(s.getPeerCertificate()) : [];
    }
    return {
      selfIds: this.selfIds,
      versions: this.versions,
      nonce: randomBytes(16),
      ...(this.secret && { secret: this.secret }),
      ...(this.isMember && { isMember: this.isMember }),
      ...(peerNames && { peerNames }),
    };
  }

  /** Acts on one step of a connection's handshake: write, refuse, or start carrying messages. */
  private onHandshake(conn: Conn, step: HandshakeStep): boolean {
    conn.hs = step.state;
    conn.label = step.state.label;
    const o = step.outcome;
    if (o.kind === 'refused') {
      this.handshakeFailed(conn, o.refusal, step.send);
      return false;
    }
    if (step.send) conn.socket.write(step.send);
    if (o.kind === 'pending') return true; // the handshake timer keeps running until the dialler proves the secret
    conn.hs = undefined;
    conn.version = o.session.version;
    conn.remoteIds = o.session.remoteIds;
    if (conn.inbound) this.establishInbound(conn);
    else this.establishOutbound(conn);
    return true;
  }

  /**
   * A refused handshake, either way: counted and reported by its refusal code, then the connection
   * ends (after the refusal frame, when there is one for the peer to read).
   */
  private handshakeFailed(conn: Conn, r: Refusal, send: Buffer | undefined): void {
    const t = this.totals;
    const listener = r.side === 'listener';
    let code: TransportErrorCode;
    if (r.by === 'remote') code = r.code === 'VERSION' ? 'version-refused' : 'handshake-refused';
    else if (r.code === 'VERSION') code = listener ? 'version-mismatch' : 'protocol';
    else if (r.code === 'WRONG_REPLICA') code = listener ? 'handshake-refused' : 'auth';
    else if (r.code === 'REFUSED') code = 'handshake-refused';
    else if (r.code === 'BAD_FRAME' || r.code === 'TIMEOUT') code = 'protocol';
    else code = 'auth';
    if (code === 'protocol') t.protocolErrors++;
    if (code === 'auth') t.authFailures++;
    if (r.by === 'local' && r.code === 'NOT_MEMBER') t.notMembers++;
    if (r.by === 'local' && r.code === 'TLS_NAME') t.tlsFailures++;
    if (send) t.handshakesRefused++;
    this.report(code, r.message, r.peer, 'warn', r.code);
    conn.reported = true;
    conn.ready = false;
    conn.reader.dead = true;
    if (!send) {
      conn.socket.destroy();
      return;
    }
    conn.socket.end(send);
    const timer = setTimeout(() => conn.socket.destroy(), 1000);
    timer.unref?.();
    void conn.closedPromise.then(() => clearTimeout(timer));
  }

  /** An inbound connection that passed its handshake starts carrying messages. */
  private establishInbound(conn: Conn): void {
    if (conn.timer) clearTimeout(conn.timer);
    conn.timer = undefined;
    conn.ready = true;
    conn.reader.maxFrameBytes = this.maxFrameBytes;
    for (const id of conn.remoteIds) {
      this.inboundById.set(id, conn);
      // a peer we cannot dial is answered over its own connection
      const link = this.links.get(id);
      if (link && !link.dials && (!link.conn || link.conn.closed)) this.attach(link, conn);
    }
    this.log.debug?.({ conn: conn.label, version: conn.version }, 'inbound connection established');
  }

  /** An outbound connection that passed its handshake starts draining its link. */
  private establishOutbound(conn: Conn): void {
    const link = conn.link;
    if (conn.timer) clearTimeout(conn.timer);
    conn.timer = undefined;
    conn.ready = true;
    conn.reader.maxFrameBytes = this.maxFrameBytes;
    if (link && link.conn === conn) {
      link.stats.connects++;
      if (link.everConnected) link.stats.reconnects++;
      link.everConnected = true;
      link.connectedAt = Date.now();
      if (link.failureLogged) this.log.info?.({ peer: link.id, conn: conn.label }, 'connected again');
      link.failureLogged = false;
      if (link.queue.length > 0) this.scheduleFlush(link);
    }
  }

  private protocolError(conn: Conn, why: string): void {
    this.totals.protocolErrors++;
    this.report('protocol', why, conn.remoteIds[0] ?? conn.link?.id);
    conn.reported = true;
    conn.reader.dead = true;
    conn.socket.destroy();
  }

  // ------------------------------------------------------------------ errors and logs

  private drop(): void {
    this.totals.drops++;
  }

  private report(
    code: TransportErrorCode,
    message: string,
    peer?: ReplicaId,
    level: 'warn' | 'debug' = 'warn',
    refusal?: RefusalCode,
  ): void {
    const err = new TransportError(code, message, peer, refusal);
    const obj = { code, peer, ...(refusal && { refusal }) };
    if (level === 'debug') this.log.debug?.(obj, message);
    else {
      const severe = code === 'protocol' || code === 'auth' || code.startsWith('version');
      this.logLimited(code + (peer ?? ''), severe ? 'error' : 'warn', obj, message);
    }
    try {
      this.opts.onError?.(err);
    } catch {
      /* a throwing callback must not break the transport */
    }
  }

  /** At most one line per key per second, so a hostile or broken peer cannot flood the log. */
  private logLimited(key: string, level: 'warn' | 'error', obj: object, msg: string): void {
    const now = Date.now();
    const last = this.lastLog.get(key);
    if (last !== undefined && now - last < 1000) return;
    if (this.lastLog.size > 10_000) this.lastLog.clear();
    this.lastLog.set(key, now);
    this.log[level](obj, msg);
  }
}

/** An error of the TLS layer (certificate or handshake), as opposed to a plain network failure. */
function isTlsError(e: NodeJS.ErrnoException): boolean {
  const c = e.code ?? '';
  return (
    c.startsWith('ERR_SSL') ||
    c.startsWith('ERR_TLS') ||
    /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|SIGNATURE/.test(c) ||
    /alert|certificate/i.test(e.message)
  );
}

/** Creates a transport and starts listening (when `listen` is given). */
export async function createTcpTransport(opts: TcpTransportOptions): Promise<TcpTransport> {
  const t = new TcpTransport(opts);
  try {
    await t.listen();
  } catch (e) {
    await t.close();
    throw e;
  }
  return t;
}
