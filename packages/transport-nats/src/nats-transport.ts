import {
  CONTRACTS,
  DecodeError,
  ROLE_OF,
  decodeMessage,
  encodeMessage,
  requires,
  type Message,
  type ReplicaId,
  type Role,
} from '@decree/protocol';
import type { Transport } from '@decree/bus';
import {
  ErrorCode,
  Events,
  connect,
  headers as natsHeaders,
  type ConnectionOptions,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from 'nats';
import { escapeToken, isValidPrefix, replicaWildcard, roleSubject } from './subject.ts';

/** pino-compatible: `logger.warn({ ...fields }, 'message')` */
export interface NatsTransportLogger {
  warn(obj: Record<string, unknown>, msg: string): void;
  info?(obj: Record<string, unknown>, msg: string): void;
}

export interface NatsTransportOptions {
  /** NATS server URL(s), e.g. `nats://127.0.0.1:4222` */
  servers: string | readonly string[];
  /** the replica(s) this process hosts; messages to them (any ring, any role) are received here */
  self: ReplicaId | readonly ReplicaId[];
  /**
   * Roles as separate processes: receive only the messages for these roles of `self` (one subject
   * per role); default every role.
   */
  roles?: readonly Role[];
  /** first subject tokens; default `decree` */
  subjectPrefix?: string;
  user?: string;
  pass?: string;
  token?: string;
  /** client name shown by the server's monitoring; default `decree:<self...>` */
  name?: string;
  /**
   * How long to wait for the first connection. Absent (default): wait as long as it takes (the
   * client's own `waitOnFirstConnect`). Set: retry until then, then reject with NatsTransportError.
   * Wrong credentials reject at once either way.
   */
  connectTimeoutMs?: number;
  /** pause between reconnect attempts; default 250 ms (the client's default is 2 s) */
  reconnectTimeWaitMs?: number;
  /** client PING interval, which detects a dead server; default 5 s, 3 unanswered = reconnect */
  pingIntervalMs?: number;
  /** bytes published but not yet confirmed by the server above which `send` drops; default 32 MiB */
  maxPendingBytes?: number;
  /**
   * one PING/PONG round trip (`flush()`) confirms what was published; started every this many bytes; default 256 KiB
   */
  flushEveryBytes?: number;
  logger?: NatsTransportLogger;
  /** extra client options (tls, ...); the transport's own settings win on conflicts */
  natsOptions?: Partial<ConnectionOptions>;
}

export type NatsTransportStatus = 'connected' | 'disconnected' | 'closed';

export interface NatsTransportStats {
  sent: number;
  received: number;
  /** payloads that did not decode as a Message (or carried malformed headers) */
  badPayloads: number;
  /** payloads that decoded but whose ring / to / role disagree with their subject */
  mismatched: number;
  dropped: {
    /** send() while the connection to the server is down (nats.js would discard them at reconnect anyway) */
    disconnected: number;
    /** send() while more than maxPendingBytes were unconfirmed */
    backpressure: number;
    /** larger than the server's max_payload */
    oversize: number;
    /** the client refused to publish for another reason, or encoding failed */
    error: number;
    /** after close() */
    closed: number;
    /** received before setReceiver() */
    noReceiver: number;
  };
  disconnects: number;
  reconnects: number;
  /** bytes published and not yet confirmed by the server */
  pendingBytes: number;
}

export class NatsTransportError extends Error {
  constructor(
    message: string,
    readonly code?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'NatsTransportError';
  }
}

export interface NatsTransport extends Transport {
  readonly self: readonly ReplicaId[];
  readonly subjectPrefix: string;
  readonly status: NatsTransportStatus;
  /** the subject a message is published on */
  subjectOf(msg: Message): string;
  stats(): NatsTransportStats;
  /** called on every status change; returns an unsubscribe function */
  onStatus(fn: (status: NatsTransportStatus) => void): () => void;
  /** the underlying connection (tests, metrics); do not close it directly */
  readonly connection: NatsConnection;
}

const consoleLogger: NatsTransportLogger = {
  warn: (obj, msg) => console.warn(`decree transport-nats: ${msg}`, obj),
  info: () => {},
};

const HEADER_KEY_OK = /^[!-9;-~]+$/; // printable ASCII except ':' (what a NATS header name allows)

/** NATS headers for `h`, or undefined when some entry cannot travel verbatim as one (then it goes in the body). */
function toNatsHeaders(h: Record<string, string>): MsgHdrs | undefined {
  const keys = Object.keys(h);
  if (keys.length === 0) return undefined;
  const out = natsHeaders();
  for (const k of keys) {
    const v = h[k]!;
    // nats.js trims values and rejects CR/LF; a key must be a printable-ASCII token
    if (typeof v !== 'string' || !HEADER_KEY_OK.test(k) || k === '__proto__' || /[\r\n]/.test(v) || v !== v.trim())
      return undefined;
    out.set(k, v);
  }
  return out;
}

function fromNatsHeaders(h: MsgHdrs): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, vs] of h) if (vs.length > 0 && k !== '__proto__') out[k] = vs[vs.length - 1]!;
  return out;
}

function describeConnectError(e: unknown, servers: readonly string[]): NatsTransportError {
  const code = (e as { code?: string })?.code;
  const where = servers.join(', ');
  let why: string;
  switch (code) {
    case ErrorCode.AuthorizationViolation:
      why = 'authorization violation: the server refused the credentials (check user/pass or token)';
      break;
    case ErrorCode.ConnectionRefused:
      why = 'connection refused: no NATS server is listening there';
      break;
    case ErrorCode.Timeout:
      why = 'timed out';
      break;
    default:
      why = (e as Error)?.message ?? String(e);
  }
  return new NatsTransportError(`nats transport: cannot connect to ${where}: ${why}`, code, { cause: e });
}

/**
 * Connects to NATS and returns a Transport for the replicas in `self`. Resolves once connected
 * and subscribed; rejects with NatsTransportError (wrong credentials, or no server within
 * connectTimeoutMs).
 */
export async function createNatsTransport(opts: NatsTransportOptions): Promise<NatsTransport> {
  const self = (typeof opts.self === 'string' ? [opts.self] : [...opts.self]) as ReplicaId[];
  const prefix = opts.subjectPrefix ?? 'decree';
  const servers = typeof opts.servers === 'string' ? [opts.servers] : [...opts.servers];
  if (self.length === 0) throw new NatsTransportError('nats transport: `self` names no replica');
  if (!isValidPrefix(prefix))
    throw new NatsTransportError(`nats transport: invalid subject prefix ${JSON.stringify(prefix)}`);
  if (servers.length === 0) throw new NatsTransportError('nats transport: `servers` is empty');

  const reconnectTimeWait = opts.reconnectTimeWaitMs ?? 250;
  const base: ConnectionOptions = {
    ...opts.natsOptions,
    servers,
    name: opts.name ?? `decree:${self.join(',')}`,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait,
    reconnectJitter: Math.min(100, reconnectTimeWait),
    pingInterval: opts.pingIntervalMs ?? 5000,
    maxPingOut: 3,
    ...(opts.user !== undefined ? { user: opts.user } : {}),
    ...(opts.pass !== undefined ? { pass: opts.pass } : {}),
    ...(opts.token !== undefined ? { token: opts.token } : {}),
  };

  let nc: NatsConnection;
  try {
    if (opts.connectTimeoutMs === undefined) {
      nc = await connect({ ...base, waitOnFirstConnect: true });
    } else {
      const deadline = Date.now() + opts.connectTimeoutMs;
      for (;;) {
        try {
          nc = await connect({
            ...base,
            waitOnFirstConnect: false,
            timeout: Math.max(100, Math.min(5000, opts.connectTimeoutMs)),
          });
          break;
        } catch (e) {
          const code = (e as { code?: string }).code;
          if (code === ErrorCode.AuthorizationViolation || Date.now() + reconnectTimeWait > deadline) throw e;
          await new Promise((r) => setTimeout(r, reconnectTimeWait));
        }
      }
    }
  } catch (e) {
    throw describeConnectError(e, servers);
  }
  const t = new NatsTransportImpl(nc, self, prefix, opts);
  // once, not per message: when this resolves the server has our subscriptions, so a peer that
  // learns we are up can reach us at once
  try {
    await nc.flush();
  } catch {
    /* disconnected meanwhile: the client re-subscribes when it reconnects */
  }
  return t;
}

class NatsTransportImpl implements NatsTransport {
  readonly subjectPrefix: string;
  private receiver: ((msg: Message) => void) | undefined;
  private _status: NatsTransportStatus = 'connected';
  private readonly subs: Subscription[] = [];
  private readonly subjects = new Map<string, Map<string, Map<Role, string>>>();
  private readonly selfSet: Set<ReplicaId>;
  private readonly listeners = new Set<(s: NatsTransportStatus) => void>();
  private readonly logger: NatsTransportLogger;
  private readonly maxPendingBytes: number;
  private readonly flushEveryBytes: number;
  private pending = 0;
  private flushing = false;
  private closing: Promise<void> | undefined;
  private readonly statusLoop: Promise<void>;
  private readonly lastLog = new Map<string, { at: number; suppressed: number }>();
  private readonly counters: NatsTransportStats = {
    sent: 0,
    received: 0,
    badPayloads: 0,
    mismatched: 0,
    dropped: { disconnected: 0, backpressure: 0, oversize: 0, error: 0, closed: 0, noReceiver: 0 },
    disconnects: 0,
    reconnects: 0,
    pendingBytes: 0,
  };

  constructor(
    readonly connection: NatsConnection,
    readonly self: readonly ReplicaId[],
    prefix: string,
    opts: NatsTransportOptions,
  ) {
    this.subjectPrefix = prefix;
    this.logger = opts.logger ?? consoleLogger;
    this.maxPendingBytes = opts.maxPendingBytes ?? 32 * 1024 * 1024;
    this.flushEveryBytes = Math.min(opts.flushEveryBytes ?? 256 * 1024, this.maxPendingBytes);
    this.selfSet = new Set(self);
    for (const r of self) {
      // a callback subscription: messages are handled as they are parsed, nothing queues up
      const subjects = opts.roles
        ? opts.roles.map((role) => `${prefix}.*.${escapeToken(r)}.${role}`)
        : [replicaWildcard(prefix, r)];
      for (const subject of subjects)
        this.subs.push(this.connection.subscribe(subject, { callback: (err, m) => this.onMessage(err, m) }));
    }
    this.statusLoop = this.watchStatus();
  }

  get status(): NatsTransportStatus {
    return this._status;
  }

  subjectOf(msg: Message): string {
    const role = ROLE_OF[msg.type];
    // ring -> replica -> role -> subject: no string building per message once seen
    let byTo = this.subjects.get(msg.ring);
    if (byTo === undefined) {
      if (this.subjects.size >= 10_000) this.subjects.clear();
      this.subjects.set(msg.ring, (byTo = new Map()));
    }
    let byRole = byTo.get(msg.to);
    if (byRole === undefined) {
      if (byTo.size >= 10_000) byTo.clear();
      byTo.set(msg.to, (byRole = new Map()));
    }
    let s = byRole.get(role);
    if (s === undefined) byRole.set(role, (s = roleSubject(this.subjectPrefix, msg.ring, msg.to, role)));
    return s;
  }

  send(msg: Message): void {
    CONTRACTS &&
      requires(
        Object.prototype.hasOwnProperty.call(ROLE_OF, msg.type),
        `nats transport: unknown message type ${String(msg.type)}`,
      );
    const d = this.counters.dropped;
    if (this._status !== 'connected') {
      if (this._status === 'closed') d.closed++;
      else d.disconnected++;
      return;
    }
    if (this.pending > this.maxPendingBytes) {
      d.backpressure++;
      this.warn(
        'backpressure',
        { pendingBytes: this.pending, maxPendingBytes: this.maxPendingBytes },
        'server is not keeping up: dropping messages',
      );
      return;
    }
    let body: Message = msg;
    let hdrs: MsgHdrs | undefined;
    if (msg.headers !== undefined && this.connection.info?.headers !== false) {
      hdrs = toNatsHeaders(msg.headers);
      if (hdrs !== undefined) {
        const { headers: _drop, ...rest } = msg;
        body = rest as Message;
      }
    }
    const subject = this.subjectOf(msg);
    let data: Uint8Array;
    try {
      data = encodeMessage(body);
      this.connection.publish(subject, data, hdrs ? { headers: hdrs } : undefined);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === ErrorCode.MaxPayloadExceeded) {
        d.oversize++;
        this.warn(
          'oversize',
          { type: msg.type, subject, maxPayload: this.connection.info?.max_payload },
          'message larger than the server max_payload: dropped',
        );
      } else {
        d.error++;
        this.warn('publish', { type: msg.type, subject, err: (e as Error).message }, 'publish failed: dropped');
      }
      return;
    }
    this.counters.sent++;
    this.pending += data.length + subject.length + 32;
    if (!this.flushing && this.pending >= this.flushEveryBytes) this.confirm();
  }

  /** One PING/PONG round trip: when it returns, the server has read everything published before it. */
  private confirm(): void {
    this.flushing = true;
    const covered = this.pending;
    this.connection.flush().then(
      () => {
        this.flushing = false;
        this.pending = Math.max(0, this.pending - covered);
        if (this.pending >= this.flushEveryBytes && this._status === 'connected') this.confirm();
      },
      () => {
        // disconnected or closed: the client discards its outbound buffer when it redials
        this.flushing = false;
        this.pending = 0;
      },
    );
  }

  setReceiver(receiver: (msg: Message) => void): void {
    this.receiver = receiver;
  }

  /**
   * Whether the connection to the NATS server is up (the server
   * routes to every peer; per-peer liveness is the elector's job).
   */
  isConnected(_to: ReplicaId): boolean {
    return this._status === 'connected';
  }

  stats(): NatsTransportStats {
    return { ...this.counters, dropped: { ...this.counters.dropped }, pendingBytes: this.pending };
  }

  onStatus(fn: (status: NatsTransportStatus) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private setStatus(s: NatsTransportStatus): void {
    if (this._status === s) return;
    this._status = s;
    for (const fn of this.listeners) {
      try {
        fn(s);
      } catch (e) {
        this.warn('listener', { err: (e as Error).message }, 'status listener threw');
      }
    }
  }

  private async watchStatus(): Promise<void> {
    const events = this.connection.status();
    // nats.js 2 does not end status() iterators when the connection closes: stop it ourselves
    const stop = () => (events as unknown as { stop?: () => void }).stop?.();
    const closed = this.connection.closed().then((err) => {
      if (err && !this.closing)
        this.warn('closed', { err: err.message }, 'connection closed by the client after an error');
      this.setStatus('closed');
      stop();
    });
    for await (const s of events) {
      switch (s.type) {
        case Events.Disconnect:
          this.counters.disconnects++;
          if (this._status !== 'closed') this.setStatus('disconnected');
          this.logger.info?.({ server: s.data }, 'disconnected from NATS; reconnecting');
          break;
        case Events.Reconnect:
          this.counters.reconnects++;
          this.pending = 0;
          if (this._status !== 'closed') this.setStatus('connected');
          this.logger.info?.({ server: s.data }, 'reconnected to NATS');
          break;
        case Events.Error:
          this.warn('async-error', { data: String(s.data) }, 'NATS server reported an error');
          break;
        case Events.LDM:
          this.logger.info?.({ server: s.data }, 'NATS server entering lame duck mode');
          break;
        default:
          break;
      }
    }
    await closed;
  }

  private onMessage(err: Error | null, m: Msg): void {
    if (err) {
      this.warn('sub-error', { err: err.message }, 'subscription error');
      return;
    }
    let msg: Message;
    try {
      msg = decodeMessage(m.data);
      if (m.headers) {
        const h = fromNatsHeaders(m.headers);
        (msg as { headers?: Record<string, string> }).headers = msg.headers ? { ...msg.headers, ...h } : h;
      }
    } catch (e) {
      this.counters.badPayloads++;
      this.warn(
        'bad-payload',
        { subject: m.subject, bytes: m.data.length, err: (e as Error).message, decodeError: e instanceof DecodeError },
        'undecodable message dropped',
      );
      return;
    }
    // it must have come on <prefix>.<its ring>.<its to>.<ROLE_OF[its type]>, and `to` must be ours
    if (m.subject !== this.subjectOf(msg) || !this.selfSet.has(msg.to)) {
      this.counters.mismatched++;
      this.warn(
        'mismatch',
        { subject: m.subject, type: msg.type, ring: msg.ring, to: msg.to },
        'message does not belong on its subject: dropped',
      );
      return;
    }
    const r = this.receiver;
    if (!r) {
      this.counters.dropped.noReceiver++;
      return;
    }
    this.counters.received++;
    try {
      r(msg);
    } catch (e) {
      this.warn('receiver', { type: msg.type, err: (e as Error).message }, 'receiver threw');
    }
  }

  /** At most one log line per kind every 5 s, with the count of the ones left out. */
  private warn(kind: string, obj: Record<string, unknown>, text: string): void {
    const now = Date.now();
    const l = this.lastLog.get(kind);
    if (l && now - l.at < 5000) {
      l.suppressed++;
      return;
    }
    this.lastLog.set(kind, { at: now, suppressed: 0 });
    this.logger.warn(l && l.suppressed > 0 ? { ...obj, suppressed: l.suppressed } : obj, text);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.setStatus('closed');
      for (const s of this.subs) {
        try {
          s.unsubscribe();
        } catch {
          /* already closed */
        }
      }
      if (!this.connection.isClosed()) await this.connection.close();
      await this.statusLoop;
    })();
    return this.closing;
  }
}
