/**
 * The out-of-band exchange RDMA needs before a queue pair can carry anything (what rdma_cm does on
 * a fabric with IP addressing): each replica tells each peer, over a small TCP side channel, the
 * details of the two endpoints it made for that peer — its reader (the registered ring the peer will
 * RDMA-WRITE into) and its writer (the mirror whose head line the peer writes back) — and learns the
 * peer's. The connection opens with the TCP transport's handshake (packages/wire handshake.ts, the
 * same step function: magic, protocol-version negotiation, membership, the shared secret's HMAC
 * challenge-response in both directions, refusals with a code), then:
 *
 *   INFO  (both ways)  "DCRE" u8 0x10, MessagePack { info: bytes, mac?: bytes }
 *                      info = MessagePack { reader, writer }
 *                             (lid, qpn, psn, rkey, addr (8 bytes BE), len, gid (16 bytes), device)
 *                      mac  = HMAC-SHA256(secret, MessagePack(["decree/rdma-info", dialler nonce,
 *                             listener nonce, sender id, info]))
 *   READY (both ways)  "DCRE" u8 0x11: the sender has moved its queue pairs to RTR/RTS with our details;
 *                      writes may start
 *   PING  (both ways)  "DCRE" u8 0x12 every keepaliveMs; a session silent for 3 × keepaliveMs is dead
 *
 * One TCP connection per pair of replicas (the lower id dials) lives as long as the session: when it
 * closes — the peer exited, restarted, or the transport reset the link after a failed RDMA write —
 * both sides drop that session's endpoints, and the dialler dials again (with backoff), which makes
 * fresh queue pairs on both sides and trades their details anew. A new session from a peer replaces
 * the old one (the peer restarted before we noticed).
 */
import { createHmac, randomBytes } from 'node:crypto';
import net from 'node:net';
import { decodeValue, encodeValue, type ReplicaId } from '@decree/protocol';
import {
  FrameReader,
  MAGIC,
  PROTOCOL_VERSION_MAX,
  PROTOCOL_VERSION_MIN,
  RdmaExchangeError,
  backoffDelay,
  frames,
  handshakeStep,
  peerAddress,
  proofMatches,
  resolveLogger,
  startDialler,
  startListener,
  type AdmitCheck,
  type BackoffOptions,
  type HandshakeState,
  type HandshakeStep,
  type PeerAddress,
  type PeerDirectory,
  type RdmaExchangeErrorCode,
  type Refusal,
  type RefusalCode,
  type WireLogger,
} from '@decree/wire';
import type { RdmaPeerInfo } from '@decree/rdma-transport';

export { RdmaExchangeError, type RdmaExchangeErrorCode };

/** The details of one replica's two endpoints for one peer. */
export interface RdmaLinkInfo {
  /** the ring this replica reads the peer's frames from: the peer's writer connects to it */
  reader: RdmaPeerInfo;
  /** the endpoint this replica writes to the peer with: the peer's reader connects to it */
  writer: RdmaPeerInfo;
}

/** What an exchange calls on the transport; `session` tells one exchange with a peer from the next. */
export interface RdmaExchangeHooks {
  /**
   * A session with `peer` is authenticated: make fresh endpoints for it (dropping older ones) and return their details.
   */
  prepare(peer: ReplicaId, session: number): RdmaLinkInfo;
  /** The peer's details arrived: connect this session's endpoints to them (throws when they do not fit). */
  connect(peer: ReplicaId, session: number, remote: RdmaLinkInfo): void;
  /** Both sides have connected: writes may start. */
  ready(peer: ReplicaId, session: number): void;
  /** The session ended (peer gone, restarted, side channel cut, reset): drop its endpoints. */
  closed(peer: ReplicaId, session: number, why: string): void;
}

/** The out-of-band exchange an RdmaTransport uses: the TCP side channel below, or another (tests, rdma_cm). */
export interface RdmaExchange {
  /** Starts trading details with every peer (self is skipped); resolves once it can accept sessions. */
  start(peers: readonly ReplicaId[], hooks: RdmaExchangeHooks): Promise<void>;
  /** Ends the current session with `peer` so both sides exchange fresh endpoints (after a failed RDMA write). */
  reset(peer: ReplicaId, why: string): void;
  close(): Promise<void>;
}

/** Structured logger; a pino logger fits (`(obj, msg)`). */
export type RdmaExchangeLogger = WireLogger;

export interface RdmaSideChannelOptions {
  /** the replica this process hosts */
  self: ReplicaId;
  /** where this replica accepts its peers' sessions (port 0: any; see address()) */
  listen: { host?: string; port: number };
  /** where each peer's side channel listens (a function is asked on every dial) */
  peers: PeerDirectory;
  /** the cluster's shared secret: both ends prove it (the TCP transport's handshake) and MAC their endpoint details */
  secret?: string | Uint8Array;
  /** the protocol versions this replica speaks (default the build's, as the TCP transport) */
  protocolVersions?: { min: number; max: number };
  /** bound on dial + handshake + exchange (default 5000 ms) */
  handshakeTimeoutMs?: number;
  /** ping period of a session; 3 silent periods end it (default 1000 ms) */
  keepaliveMs?: number;
  backoff?: BackoffOptions;
  /** structured logs (a pino logger fits); default console.warn; false for silence */
  logger?: RdmaExchangeLogger | false;
  /** every failure, instead of logging it */
  onError?: (err: RdmaExchangeError) => void;
}

const KIND_INFO = 0x10;
const KIND_READY = 0x11;
const KIND_PING = 0x12;
const MAX_FRAME = 64 << 10;

// -------------------------------------------------------------------------------- endpoint details
function wireInfo(p: RdmaPeerInfo): Record<string, unknown> {
  const addr = Buffer.alloc(8);
  addr.writeBigUInt64BE(BigInt.asUintN(64, p.addr));
  return {
    lid: p.lid,
    qpn: p.qpn,
    psn: p.psn,
    rkey: p.rkey,
    addr,
    len: p.len,
    gid: Buffer.from(p.gid),
    ...(p.device ? { device: p.device } : {}),
  };
}

function fromWire(x: unknown, what: string): RdmaPeerInfo {
  const o = x as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null || Array.isArray(o))
    throw new RdmaExchangeError('protocol', `${what}: not a map`);
  const uint = (k: string, max: number): number => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max)
      throw new RdmaExchangeError('protocol', `${what}.${k}: must be an integer in 0..${max}`);
    return v;
  };
  const bytes = (k: string, n: number): Uint8Array => {
    const v = o[k];
    if (!(v instanceof Uint8Array) || v.length !== n)
      throw new RdmaExchangeError('protocol', `${what}.${k}: must be ${n} bytes`);
    return v;
  };
  const lid = uint('lid', 0xffff);
  const qpn = uint('qpn', 0xffffff);
  const psn = uint('psn', 0xffffff);
  const rkey = uint('rkey', 0xffffffff);
  const len = uint('len', 2 ** 32 + 4096);
  if (len < 4096 + 4096)
    throw new RdmaExchangeError(
      'protocol',
      `${what}.len: must be at least 8192 (a 4 KiB header and a ring of at least 4 KiB)`,
    );
  const addr = Buffer.from(bytes('addr', 8)).readBigUInt64BE(0);
  const gid = new Uint8Array(bytes('gid', 16));
  const device = o.device;
  if (device !== undefined && (typeof device !== 'string' || device.length > 64))
    throw new RdmaExchangeError('protocol', `${what}.device: must be a string of at most 64 characters`);
  return { lid, qpn, psn, rkey, addr, len, gid, ...(device ? { device } : {}) };
}

/** The MessagePack bytes of a link's details (what INFO carries and the MAC covers). */
export function encodeRdmaInfo(info: RdmaLinkInfo): Uint8Array {
  return encodeValue({ reader: wireInfo(info.reader), writer: wireInfo(info.writer) });
}

/** Decodes and range-checks a link's details; throws RdmaExchangeError('protocol') and nothing else. */
export function decodeRdmaInfo(buf: Uint8Array): RdmaLinkInfo {
  let v: unknown;
  try {
    v = decodeValue(buf);
  } catch (e) {
    throw new RdmaExchangeError('protocol', `endpoint details: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new RdmaExchangeError('protocol', 'endpoint details: not a map');
  const o = v as Record<string, unknown>;
  return { reader: fromWire(o.reader, 'reader'), writer: fromWire(o.writer, 'writer') };
}

function infoMac(
  secret: Uint8Array,
  diallerNonce: Uint8Array,
  listenerNonce: Uint8Array,
  sender: ReplicaId,
  info: Uint8Array,
): Buffer {
  return createHmac('sha256', secret)
    .update(encodeValue(['decree/rdma-info', diallerNonce, listenerNonce, sender, info]))
    .digest();
}

function control(kind: number, body?: unknown): Buffer {
  const b = body === undefined ? new Uint8Array(0) : encodeValue(body);
  const out = Buffer.allocUnsafe(5 + b.length);
  MAGIC.copy(out, 0);
  out.writeUInt8(kind, 4);
  out.set(b, 5);
  return out;
}

// -------------------------------------------------------------------------------- sessions
/** handshake (packages/wire), then our details out and theirs in, then both READYs */
type State = 'handshake' | 'info' | 'ready-wait' | 'ready' | 'closed';

class Session {
  state: State = 'handshake';
  /** the handshake's state while it runs (set once the socket is connected) */
  hs: HandshakeState | undefined;
  peer: ReplicaId | undefined;
  label: string;
  diallerNonce: Uint8Array | undefined;
  listenerNonce: Uint8Array | undefined;
  /** prepare() was called: the transport holds endpoints for this session until closed() */
  prepared = false;
  remoteReady = false;
  localReady = false;
  /** a failure of this session was reported already (the close needs no second report) */
  reported = false;
  why: string | undefined;
  lastHeard = Date.now();
  readyAt = 0;
  timer: NodeJS.Timeout | undefined;
  ping: NodeJS.Timeout | undefined;
  readonly reader: FrameReader;

  constructor(
    readonly id: number,
    readonly socket: net.Socket,
    readonly inbound: boolean,
    label: string,
    onFrame: (payload: Buffer) => boolean,
    onOversize: (n: number) => void,
  ) {
    this.label = label;
    this.reader = new FrameReader(MAX_FRAME, onFrame, onOversize);
  }
}

interface Peer {
  readonly id: ReplicaId;
  /** the lower id dials */
  readonly dials: boolean;
  /** the session carrying (or about to carry) the link */
  session: Session | undefined;
  attempt: number;
  timer: NodeJS.Timeout | undefined;
  /** the last failure reported, so a retry loop logs each distinct failure once */
  lastError: string | undefined;
}

/** The side channel's error code for a refused handshake, and whether it names an authentication problem. */
function exchangeCode(r: Refusal): RdmaExchangeErrorCode {
  switch (r.code) {
    case 'VERSION':
      return 'version';
    case 'AUTH':
    case 'NOT_MEMBER':
    case 'TLS_NAME':
      return 'auth';
    case 'BAD_FRAME':
    case 'TIMEOUT':
      return r.by === 'local' ? 'protocol' : 'refused';
    case 'WRONG_REPLICA':
      // a listener answering as another replica than the one dialled is an impostor or a misconfiguration
      return r.by === 'local' && r.side === 'dialler' ? 'auth' : 'refused';
    case 'REFUSED':
      return 'refused';
  }
}

/** The TCP side channel that trades RDMA endpoint details between replica processes. */
export class RdmaSideChannel implements RdmaExchange {
  readonly self: ReplicaId;
  private readonly secret: Buffer | undefined;
  private readonly versions: { min: number; max: number };
  private readonly log: RdmaExchangeLogger;
  private readonly peers = new Map<ReplicaId, Peer>();
  private readonly sessions = new Set<Session>();
  private hooks: RdmaExchangeHooks | undefined;
  private server: net.Server | undefined;
  private nextSession = 1;
  private closing = false;
  /** sessions that reached ready, over the channel's life (tests, stats) */
  exchanges = 0;

  constructor(private readonly o: RdmaSideChannelOptions) {
    this.self = o.self;
    if (o.secret !== undefined) {
      this.secret = typeof o.secret === 'string' ? Buffer.from(o.secret, 'utf8') : Buffer.from(o.secret);
      if (this.secret.length === 0) throw new TypeError('rdma exchange: secret must not be empty');
    }
    this.versions = o.protocolVersions ?? { min: PROTOCOL_VERSION_MIN, max: PROTOCOL_VERSION_MAX };
    this.log = resolveLogger(o.logger, 'rdma-exchange');
  }

  /** where the side channel listens (after start) */
  address(): { host: string; port: number } {
    const a = this.server?.address();
    if (!a || typeof a === 'string') throw new Error('rdma exchange: not listening');
    return { host: a.address, port: a.port };
  }

  /** whether the session with `peer` has finished its exchange */
  isReady(peer: ReplicaId): boolean {
    return this.peers.get(peer)?.session?.state === 'ready';
  }

  async start(peers: readonly ReplicaId[], hooks: RdmaExchangeHooks): Promise<void> {
    if (this.hooks) throw new Error('rdma exchange: started already');
    this.hooks = hooks;
    for (const id of new Set(peers)) {
      if (id === this.self) continue;
      this.peers.set(id, {
        id,
        dials: this.self < id,
        session: undefined,
        attempt: 0,
        timer: undefined,
        lastError: undefined,
      });
    }
    const server = net.createServer((s) => this.accept(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.listen.port, this.o.listen.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) => this.log.error({ err: e.message }, 'rdma exchange listener error'));
    for (const p of this.peers.values()) if (p.dials) this.dial(p);
  }

  reset(peer: ReplicaId, why: string): void {
    const s = this.peers.get(peer)?.session;
    if (s) this.end(s, why);
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const p of this.peers.values()) {
      if (p.timer) clearTimeout(p.timer);
      p.timer = undefined;
    }
    const closed = [...this.sessions].map(
      (s) => new Promise<void>((r) => (s.socket.destroyed ? r() : s.socket.once('close', () => r()))),
    );
    for (const s of [...this.sessions]) this.end(s, 'closing');
    await Promise.all(closed);
    const server = this.server;
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }

  // ------------------------------------------------------------------ reporting
  private report(
    code: RdmaExchangeErrorCode,
    message: string,
    peer: ReplicaId | undefined,
    s?: Session,
    refusal?: RefusalCode,
  ): void {
    if (s) s.reported = true;
    const err = new RdmaExchangeError(code, message, peer, refusal);
    if (this.o.onError) return this.o.onError(err);
    const p = peer !== undefined ? this.peers.get(peer) : undefined;
    if (p) {
      if (p.lastError === message) return; // a retry loop: each distinct failure once
      p.lastError = message;
    }
    this.log.warn({ code, peer, ...(refusal && { refusal }) }, message);
  }

  // ------------------------------------------------------------------ connections
  private track(socket: net.Socket, inbound: boolean, label: string): Session {
    const s: Session = new Session(
      this.nextSession++,
      socket,
      inbound,
      label,
      (payload) => this.onFrame(s, payload),
      (n) =>
        this.fail(
          s,
          'protocol',
          `frame of ${n} bytes from ${s.label} is above the side channel's limit of ${MAX_FRAME}`,
        ),
    );
    this.sessions.add(s);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      s.lastHeard = Date.now();
      s.reader.push(chunk);
    });
    socket.on('error', (e: NodeJS.ErrnoException) => (s.why ??= e.code ?? e.message));
    socket.on('close', () => this.onClose(s));
    const ms = this.o.handshakeTimeoutMs ?? 5000;
    s.timer = setTimeout(() => {
      if (s.state === 'ready' || s.state === 'closed') return;
      const hs = s.hs;
      if (s.state === 'handshake' && hs && hs.phase !== 'done') {
        this.onHandshake(s, handshakeStep(hs, { type: 'timeout', afterMs: ms }));
      } else this.fail(s, 'protocol', `no complete exchange from ${s.label} within ${ms} ms`);
    }, ms);
    return s;
  }

  private dial(p: Peer): void {
    if (this.closing || p.session || p.timer) return;
    let addr: PeerAddress | undefined;
    try {
      addr = peerAddress(this.o.peers, p.id);
    } catch {
      addr = undefined;
    }
    if (!addr) {
      this.report('connect', `no side-channel address for replica ${p.id}`, p.id);
      return this.redial(p);
    }
    const socket = net.connect({ host: addr.host, port: addr.port });
    const s = this.track(socket, false, `${p.id}@${addr.host}:${addr.port}`);
    s.peer = p.id;
    p.session = s;
    socket.once('connect', () => {
      socket.setKeepAlive(true, 10_000);
      const step = startDialler({ ...this.handshakeConfig(), to: p.id, label: s.label });
      s.hs = step.state;
      socket.write(step.send!);
    });
  }

  private redial(p: Peer): void {
    if (this.closing || !p.dials || p.timer || p.session) return;
    const delay = backoffDelay(p.attempt, this.o.backoff);
    p.attempt++;
    p.timer = setTimeout(() => {
      p.timer = undefined;
      this.dial(p);
    }, delay);
  }

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    socket.setKeepAlive(true, 10_000);
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const s = this.track(socket, true, `inbound ${remote}`);
    const isMember = (id: ReplicaId): boolean => this.peers.has(id);
    s.hs = startListener({ ...this.handshakeConfig(), remote, isMember, admit: this.admit });
  }

  /** The handshake's settings (packages/wire handshake.ts), the same for every session. */
  private handshakeConfig() {
    const secret = this.secret;
    return { selfIds: [this.self], versions: this.versions, nonce: randomBytes(16), ...(secret && { secret }) };
  }

  /** One replica per side channel, and the lower id dials: the listener's own checks of a hello. */
  private readonly admit: AdmitCheck = (ids) => {
    if (ids.length !== 1) return { code: 'REFUSED', reason: 'an RDMA side channel carries one replica per process' };
    const id = ids[0]!;
    if (this.peers.get(id)?.dials) {
      const self = this.self;
      return { code: 'REFUSED', reason: `${id} dialled ${self}, but ${self} dials ${id} (the lower id dials)` };
    }
    return undefined;
  };

  /** Ends a session (its close handler does the rest). */
  private end(s: Session, why: string): void {
    if (s.state === 'closed') return;
    s.why ??= why;
    s.state = 'closed';
    s.reader.dead = true;
    s.socket.destroy();
  }

  private fail(s: Session, code: RdmaExchangeErrorCode, message: string): false {
    if (s.state !== 'closed') this.report(code, message, s.peer, s);
    this.end(s, message);
    return false;
  }

  /**
   * A refused handshake, either way: reported with the side channel's code and the refusal code,
   * then the end (after the refusal frame, when there is one for the peer to read).
   */
  private refused(s: Session, r: Refusal, send: Buffer | undefined): false {
    let message = r.by === 'remote' ? `${s.label} refused the RDMA exchange: ${r.reason}` : r.message;
    if (r.code === 'BAD_FRAME' && r.side === 'dialler') message += " (is it a Decree replica's RDMA exchange port?)";
    const peer = s.peer ?? (r.peer !== undefined && this.peers.has(r.peer) ? r.peer : undefined);
    if (s.state !== 'closed') this.report(exchangeCode(r), message, peer, s, r.code);
    if (!send) {
      this.end(s, message);
      return false;
    }
    s.socket.end(send);
    s.state = 'closed';
    s.why = message;
    s.reader.dead = true;
    const t = setTimeout(() => s.socket.destroy(), 1000);
    t.unref();
    return false;
  }

  private onClose(s: Session): void {
    const was = s.state;
    s.state = 'closed';
    s.reader.dead = true;
    if (s.timer) clearTimeout(s.timer);
    if (s.ping) clearInterval(s.ping);
    this.sessions.delete(s);
    const p = s.peer !== undefined ? this.peers.get(s.peer) : undefined;
    const why = s.why ?? 'the peer closed the side channel';
    if (!s.reported && !this.closing && p) {
      const label = s.label;
      // a listener whose dialler hung up before proving the secret: most likely ours failed its check
      if (s.inbound && was === 'handshake' && s.hs?.phase === 'auth') {
        const guess = 'closed the side channel before proving the shared secret (different secret?)';
        this.report('auth', `${label} ${guess}`, p.id, s);
      } else if (!s.inbound && was === 'handshake') {
        this.report('connect', `cannot reach the RDMA exchange of ${label}: ${why}`, p.id, s);
      } else if (was === 'info' || was === 'ready-wait') {
        const hint = 'did it refuse this replica? see its log';
        this.report('refused', `${label} closed the side channel before the exchange completed (${hint})`, p.id, s);
      }
    }
    if (s.prepared && p && !this.closing) this.hooks?.closed(p.id, s.id, why);
    if (!p || p.session !== s) return;
    p.session = undefined;
    if (this.closing) return;
    if (was === 'ready' || s.readyAt)
      this.log.info?.({ peer: p.id, why }, 'RDMA session ended; exchanging again when the peer is back');
    if (p.dials) {
      if (s.readyAt && Date.now() - s.readyAt >= (this.o.backoff?.resetAfterMs ?? 1000)) p.attempt = 0;
      this.redial(p);
    }
  }

  // ------------------------------------------------------------------ frames
  private onFrame(s: Session, payload: Buffer): boolean {
    if (s.state === 'closed') return false;
    if (s.state !== 'handshake') return this.onControl(s, payload);
    const hs = s.hs;
    if (!hs || hs.phase === 'done') return this.fail(s, 'protocol', `a frame from ${s.label} before the handshake`);
    return this.onHandshake(s, handshakeStep(hs, { type: 'frame', payload }));
  }

  /** Acts on one step of the handshake (the TCP transport's, packages/wire). */
  private onHandshake(s: Session, step: HandshakeStep): boolean {
    const st = step.state;
    s.hs = st;
    s.label = st.label;
    // a listener knows its peer once it accepted the hello (the proof may still be due)
    if (st.side === 'listener' && st.hello) s.peer = st.hello.ids[0];
    const o = step.outcome;
    if (o.kind === 'refused') return this.refused(s, o.refusal, step.send);
    if (step.send) s.socket.write(step.send);
    if (o.kind === 'pending') return true;
    s.diallerNonce = o.session.diallerNonce;
    s.listenerNonce = o.session.listenerNonce;
    return this.begin(s);
  }

  /** Both sides, once authenticated: fresh endpoints, our details out. */
  private begin(s: Session): boolean {
    const p = this.peers.get(s.peer!)!;
    const old = p.session;
    p.session = s;
    if (old && old !== s) this.end(old, `replaced by a new session with ${p.id} (it restarted?)`);
    let local;
    try {
      s.prepared = true;
      local = this.hooks!.prepare(p.id, s.id);
    } catch (e) {
      return this.fail(s, 'rdma', `cannot make RDMA endpoints for ${p.id}: ${(e as Error).message}`);
    }
    const info = encodeRdmaInfo(local);
    const mac = this.secret ? infoMac(this.secret, s.diallerNonce!, s.listenerNonce!, this.self, info) : undefined;
    s.socket.write(frames([control(KIND_INFO, { info, ...(mac ? { mac } : {}) })]));
    s.state = 'info';
    const every = this.o.keepaliveMs ?? 1000;
    s.ping = setInterval(() => {
      if (s.state === 'closed') return;
      if (Date.now() - s.lastHeard > 3 * every)
        return void this.fail(s, 'protocol', `no word from ${s.label} for ${3 * every} ms`);
      s.socket.write(frames([control(KIND_PING)]));
    }, every);
    return true;
  }

  private onControl(s: Session, payload: Buffer): boolean {
    if (payload.length < 5 || !payload.subarray(0, 4).equals(MAGIC))
      return this.fail(s, 'protocol', `${s.label} sent a frame that is not part of the RDMA exchange (bad magic)`);
    const kind = payload[4];
    if (kind === KIND_PING) return true;
    if (kind === KIND_INFO && s.state === 'info') return this.onInfo(s, payload.subarray(5));
    if (kind === KIND_READY && s.state === 'ready-wait') {
      s.remoteReady = true;
      return this.ready(s);
    }
    return this.fail(
      s,
      'protocol',
      `${s.label} sent frame kind 0x${kind!.toString(16)} while this side ` +
        `waits for ${s.state === 'info' ? 'its endpoint details' : 'its READY'}`,
    );
  }

  private onInfo(s: Session, body: Buffer): boolean {
    let remote: RdmaLinkInfo;
    try {
      const v = decodeValue(body) as { info?: unknown; mac?: unknown } | null;
      if (typeof v !== 'object' || v === null || !(v.info instanceof Uint8Array))
        throw new RdmaExchangeError('protocol', 'INFO carries no details');
      if (this.secret) {
        const mac = v.mac instanceof Uint8Array ? v.mac : undefined;
        if (!proofMatches(mac, infoMac(this.secret, s.diallerNonce!, s.listenerNonce!, s.peer!, v.info)))
          return this.fail(s, 'auth', `the endpoint details from ${s.label} fail their MAC (altered in transit?)`);
      }
      remote = decodeRdmaInfo(v.info);
    } catch (e) {
      return this.fail(s, 'protocol', `bad endpoint details from ${s.label}: ${(e as Error).message}`);
    }
    try {
      this.hooks!.connect(s.peer!, s.id, remote);
    } catch (e) {
      return this.fail(s, 'rdma', `cannot connect to ${s.peer}'s RDMA endpoints: ${(e as Error).message}`);
    }
    s.localReady = true;
    s.state = 'ready-wait';
    s.socket.write(frames([control(KIND_READY)]));
    return true;
  }

  private ready(s: Session): boolean {
    if (!s.localReady || !s.remoteReady) return true;
    s.state = 'ready';
    s.readyAt = Date.now();
    if (s.timer) clearTimeout(s.timer);
    s.timer = undefined;
    const p = this.peers.get(s.peer!)!;
    if (p.lastError !== undefined) this.log.info?.({ peer: p.id }, 'RDMA exchange with the peer succeeded');
    p.lastError = undefined;
    this.exchanges++;
    this.hooks!.ready(p.id, s.id);
    return true;
  }
}

/** `new RdmaSideChannel(o)`: pass it as `exchange` to createRdmaTransport. */
export function createRdmaSideChannel(o: RdmaSideChannelOptions): RdmaSideChannel {
  return new RdmaSideChannel(o);
}
