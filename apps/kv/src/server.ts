import { createHash, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import { KvCommands, ResultTag, SCAN_SLOTS, decodeResult, type KvResult } from '@decree/kv-machine';
import {
  ENCODED_SET,
  NULL3,
  RespCommandParser,
  RespProtocolError,
  RespWriter,
  encodedSetArgs,
  type RespLimits,
  type RespProtocol,
} from './resp.ts';
import { CLIENT_HELP, COMMAND_NAMES, DECREE_VERSION, clientLine, helloArgs, infoText, validName } from './commands.ts';

/** Each command's own outcome (a pipelined chunk may span slots and be partly executed: issue #17). */
export interface KvBatchOutcome {
  results: readonly (Uint8Array | undefined)[];
  /** the highest slot the executed commands were in (the connection's DECREE.SLOT token) */
  slot: number;
  /** the commands that did not execute, or may have (`maybeExecuted`), by ascending index */
  failed?: readonly { index: number; error: Error & { code?: string; leaderHint?: string }; maybeExecuted: boolean }[];
}

/** What the RESP front end needs from a replica. */
export interface KvBackend {
  /** replicated execution (writes, and linearizable reads through the log), in order; forwards to the leader */
  execute(commands: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]>;
  /** like execute, with each command's own outcome (preferred when present: no all-or-nothing answer) */
  executeEach?(commands: readonly Uint8Array[]): Promise<KvBatchOutcome>;
  /**
   * a read against this replica's own state (READONLY mode: possibly stale). Absent (a front end
   * without the state machine, as a client-role process): every read goes through the log.
   */
  readLocal?(command: Uint8Array): Uint8Array;
  /** facts for INFO / DECREE STATUS */
  status(): Record<string, unknown>;
  /** whether this replica leads now (reads then use readIndex instead of a log slot) */
  isLeader?(): boolean;
  /**
   * Read-index (leader only): resolves once a local read is linearizable; rejects (e.g. NotLeaderError) when
   * leadership is lost — the server then sends the reads through execute() instead.
   */
  readIndex?(): Promise<number>;
  /**
   * RSL fast read: resolves once this replica executed minSlot; rejects (StaleReplicaError, code 'STALE')
   * after timeoutMs
   */
  waitForSlot?(minSlot: number, timeoutMs: number): Promise<number>;
  /** a freshness token for a write that just resolved here: a slot >= the write's slot */
  writeToken?(): number;
  /** DECREE CONFIG: the configuration (members, epoch) */
  configuration?(): Record<string, unknown>;
  /**
   * DECREE CONFIG SET m1 m2 …: replaces the member set (on the leader); resolves with the new
   * configuration, rejects with an Error whose `code` says why (NOT_LEADER carries `leaderHint`)
   */
  changeConfiguration?(members: string[]): Promise<Record<string, unknown>>;
  /** DECREE BOOTSTRAP m1 m2 …: the first configuration of replicas started with none (RSL Bootstrap) */
  bootstrap?(members: string[]): Promise<Record<string, unknown>>;
}

export interface KvServerOptions {
  port: number;
  host?: string;
  backend: KvBackend;
  /** requirepass: clients must AUTH first */
  password?: string;
  /** largest value accepted by SET/MSET/CAS (default 1 MiB); larger ones get an error, the connection goes on */
  maxValueBytes?: number;
  /** pipelining depth: unanswered commands per connection before the server stops reading from it (default 16384) */
  maxPendingPerConnection?: number;
  maxConnections?: number;
  /** longest DECREE.FASTREAD wait honoured (default 60000 ms) */
  maxFastReadWaitMs?: number;
  limits?: Partial<RespLimits>;
  log?: (level: 'info' | 'warn', msg: string, obj?: object) => void;
}

type Reply = Buffer | Promise<Buffer> | PendingOp;

/**
 * A replicated command waiting for its result: it is both the operation handed to the engine and
 * the connection's reply slot, so a pipelined SET costs no Promise and no microtask of its own.
 */
class PendingOp {
  buf: Buffer | undefined = undefined;
  /** set by the connection: schedules its flush */
  ready: (() => void) | undefined = undefined;
  constructor(
    readonly kind: 'read' | 'write',
    readonly cmd: Uint8Array,
    /** the connection's protocol when the command was read (a later HELLO does not change this reply) */
    readonly proto: RespProtocol,
  ) {}
  resolve(b: Buffer): void {
    if (this.buf !== undefined) return;
    this.buf = b;
    this.ready?.();
  }
}

/** Constant-time password check (compares SHA-256 digests, so neither length nor prefix leaks). */
function passwordMatches(given: Buffer, password: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(password, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** replies written but not yet read by the client, above which the server stops reading its requests */
const MAX_UNREAD_REPLY_BYTES = 8 << 20;

const up = (b: Buffer) => b.toString('latin1').toUpperCase();
const WRONGPASS = 'WRONGPASS invalid username-password pair or user is disabled.';
/** args[0] is SET, in any case */
const isSet = (b: Buffer) =>
  b.length === 3 && (b[0]! | 0x20) === 0x73 && (b[1]! | 0x20) === 0x65 && (b[2]! | 0x20) === 0x74;
const err = (w: RespWriter, m: string) => w.error(m);

function writeResult(w: RespWriter, r: KvResult): void {
  switch (r.type) {
    case 'ok':
      w.simple('OK');
      return;
    case 'nil':
      w.nil();
      return;
    case 'status':
      w.simple(r.value);
      return;
    case 'bulk':
      w.bulk(r.value);
      return;
    case 'int':
      w.integer(r.value);
      return;
    case 'error':
      w.error(r.message.startsWith('ERR') || r.message.startsWith('WRONGTYPE') ? r.message : `ERR ${r.message}`);
      return;
    case 'array':
      w.arrayHeader(r.items.length);
      for (const it of r.items) writeResult(w, it);
      return;
  }
}

/** the replies of the commonest results, shared (a reply Buffer is never written to after it is made) */
const REPLY_OK = Buffer.from('+OK\r\n');
const REPLY_NIL = Buffer.from('$-1\r\n');

/** A machine result as the reply for a client of protocol `proto` (RESP3: nils are `_`). */
function resultBuffer(bytes: Uint8Array | undefined, proto: RespProtocol): Buffer {
  if (bytes !== undefined && bytes.length === 1) {
    if (bytes[0] === ResultTag.OK) return REPLY_OK;
    if (bytes[0] === ResultTag.NIL) return proto === 3 ? NULL3 : REPLY_NIL;
  }
  const w = new RespWriter(64, proto);
  if (!bytes) w.error('ERR no result');
  else {
    try {
      writeResult(w, decodeResult(bytes));
    } catch {
      w.error('ERR undecodable result');
    }
  }
  return w.take();
}

function one(build: (w: RespWriter) => void, proto: RespProtocol = 2): Buffer {
  const w = new RespWriter(64, proto);
  build(w);
  return w.take();
}

const NOT_LEADER = (e: unknown) => {
  const hint = (e as { leaderHint?: string }).leaderHint;
  return `TRYAGAIN no leader reachable${hint ? ` (leader ${hint})` : ''}: ${(e as Error).message}`;
};

/**
 * The error line of a command that failed: TRYAGAIN for a leader change or a busy leader, saying
 * whether the command may still have executed (retry a non-idempotent one only in a DECREE.SESSION).
 */
function errorText(e: unknown, maybeExecuted: boolean | undefined): string {
  const code = (e as { code?: string }).code;
  const doubt = maybeExecuted === undefined ? '' : maybeExecuted ? ' (it may have executed)' : ' (not executed)';
  if (code === 'NOT_LEADER') return NOT_LEADER(e) + doubt;
  if (code === 'BUSY') return `TRYAGAIN ${(e as Error).message}${doubt}`;
  return `ERR ${(e as Error).message}${doubt}`;
}

/**
 * A RESP2 server in front of a replica: redis-cli, redis-benchmark and Redis client libraries work
 * unchanged. Writes and reads go through the replicated log (linearizable); a write sent to a
 * follower is forwarded to the leader. READONLY switches a connection to local (possibly stale)
 * reads. Pipelined commands that arrive together go to the engine as one batch.
 */
export class KvServer {
  private server: net.Server | undefined;
  private readonly conns = new Map<net.Socket, Conn>();
  private nextClientId = 0;
  private readonly startedMs = Date.now();
  /** unknown command names already logged (each is logged once, and at most 1000 of them) */
  private readonly unknownLogged = new Set<string>();
  private readonly o: Required<Omit<KvServerOptions, 'password' | 'host' | 'limits' | 'log'>> & KvServerOptions;
  stats = { connections: 0, commands: 0, protocolErrors: 0, rejectedConnections: 0 };

  constructor(opts: KvServerOptions) {
    this.o = {
      maxValueBytes: 1 << 20,
      maxPendingPerConnection: 16_384,
      maxConnections: 10_000,
      maxFastReadWaitMs: 60_000,
      ...opts,
    };
  }

  async listen(): Promise<{ host: string; port: number }> {
    const server = net.createServer((s) => this.onConnection(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.port, this.o.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const a = server.address() as net.AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** Stops accepting; closes client connections. */
  async close(): Promise<void> {
    for (const c of this.conns.keys()) c.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private onConnection(sock: net.Socket): void {
    if (this.conns.size >= this.o.maxConnections) {
      this.stats.rejectedConnections++;
      sock.end('-ERR max number of clients reached\r\n');
      return;
    }
    this.stats.connections++;
    sock.setNoDelay(true);
    const parser = new RespCommandParser(this.o.limits ?? {}, { encodeSetMaxValue: this.o.maxValueBytes });
    const now = Date.now();
    const conn: Conn = {
      id: ++this.nextClientId,
      addr: `${sock.remoteAddress}:${sock.remotePort}`,
      laddr: `${sock.localAddress}:${sock.localPort}`,
      name: '',
      libName: '',
      libVer: '',
      createdMs: now,
      lastMs: now,
      lastCmd: 'NULL',
      proto: 2,
      authed: this.o.password === undefined,
      readonly: false,
      closing: false,
      lastToken: 0,
      writesInFlight: 0,
      writeTail: Promise.resolve(),
      readsInFlight: 0,
      readTail: Promise.resolve(),
    };
    this.conns.set(sock, conn);
    const queue: (Buffer | { buf: Buffer | undefined })[] = [];
    let pending = 0;

    // Replies leave in request order. A reply still being computed holds back the ones after it;
    // when replies complete, one flush at the end of the task (a microtask) writes every ready reply at
    // the head as ONE socket write (a pipelined batch resolves together: 64 replies, one write), with no
    // turn of the event loop between the outcome and its reply.
    let flushScheduled = false;
    const scheduleFlush = () => {
      if (flushScheduled) return;
      flushScheduled = true;
      queueMicrotask(flush);
    };
    const flush = () => {
      flushScheduled = false;
      const ready: Buffer[] = [];
      let done = 0;
      while (done < queue.length) {
        const head = queue[done]!;
        const b = Buffer.isBuffer(head) ? head : head.buf;
        if (b === undefined) break;
        ready.push(b);
        done++;
      }
      // one cut of the head (shift per reply moves the whole queue each time)
      if (done === queue.length) queue.length = 0;
      else if (done > 0) queue.splice(0, done);
      if (ready.length > 0) {
        pending -= ready.length;
        if (!sock.destroyed) sock.write(ready.length === 1 ? ready[0]! : Buffer.concat(ready));
      }
      if (
        sock.isPaused() &&
        pending < this.o.maxPendingPerConnection / 2 &&
        sock.writableLength < MAX_UNREAD_REPLY_BYTES
      )
        sock.resume();
      if (conn.closing && queue.length === 0) sock.end();
    };
    const enqueue = (r: Reply) => {
      if (Buffer.isBuffer(r)) queue.push(r);
      else if (r instanceof PendingOp) {
        r.ready = scheduleFlush;
        queue.push(r);
      } else {
        const slot: { buf: Buffer | undefined } = { buf: undefined };
        queue.push(slot);
        r.then((b) => {
          slot.buf = b;
          scheduleFlush();
        });
      }
    };
    // a client that does not read its replies: stop reading its requests until it drains
    sock.on('drain', () => {
      if (sock.isPaused() && pending < this.o.maxPendingPerConnection / 2) sock.resume();
    });

    sock.on('data', (chunk) => {
      if (conn.closing) return;
      let cmds: Buffer[][];
      let protoErr: RespProtocolError | undefined;
      try {
        cmds = parser.feed(chunk);
      } catch (e) {
        // the commands the same chunk completed before the bad bytes are executed, as Redis does
        const done = (e as { completed?: unknown }).completed;
        cmds = Array.isArray(done) ? (done as Buffer[][]) : [];
        protoErr =
          e instanceof RespProtocolError ? e : new RespProtocolError(`Protocol error: ${(e as Error).message}`);
      }
      // the replicated commands of this chunk, in order: writes (and reads that must share the log's order)
      const ops: Op[] = [];
      if (cmds.length > 0) conn.lastMs = Date.now();
      for (const args of cmds) {
        if (conn.closing) break;
        this.stats.commands++;
        pending++;
        let r: Reply;
        try {
          r = this.command(args, conn, ops);
        } catch (e) {
          this.o.log?.('warn', 'command failed', { error: (e as Error).message });
          r = one((w) => w.error(`ERR ${(e as Error).message}`));
        }
        enqueue(r);
      }
      if (ops.length > 0) this.dispatch(conn, ops);
      if (protoErr) {
        this.stats.protocolErrors++;
        this.o.log?.('warn', 'RESP protocol error; closing the connection', { error: protoErr.message });
        pending++;
        enqueue(one((w) => w.error(`ERR ${protoErr!.message}`)));
        conn.closing = true;
      }
      if (pending >= this.o.maxPendingPerConnection || sock.writableLength >= MAX_UNREAD_REPLY_BYTES) sock.pause();
      flush();
    });
    sock.on('error', () => {});
    sock.on('close', () => this.conns.delete(sock));
  }

  /**
   * Sends one chunk's replicated commands. Writes go to the engine as one batch. Linearizable reads use
   * read-index on the leader when the chunk holds only reads; a chunk that mixes reads and writes (or any
   * read on a follower) goes through the log as one batch, so the connection's order holds. Across chunks,
   * a read group waits for the connection's earlier writes and a write batch for its earlier reads.
   */
  private dispatch(conn: Conn, ops: Op[]): void {
    const reads = ops.filter((o) => o.kind === 'read');
    const b = this.o.backend;
    const useIndex =
      reads.length === ops.length &&
      b.readIndex !== undefined &&
      b.readLocal !== undefined &&
      (b.isLeader?.() ?? false);
    if (useIndex) {
      const prior = conn.writesInFlight > 0 ? conn.writeTail : undefined;
      conn.readsInFlight++;
      const run = async () => {
        if (prior) await prior;
        try {
          await this.sharedReadIndex();
        } catch {
          // leadership lost (or the confirm round timed out): read through the log instead (forwarded to the leader)
          await this.execute(conn, ops, false);
          return;
        }
        for (const o of ops) {
          try {
            o.resolve(resultBuffer(b.readLocal!(o.cmd), o.proto));
          } catch (e) {
            o.resolve(one((w) => w.error(`ERR ${(e as Error).message}`)));
          }
        }
      };
      const done = run().finally(() => conn.readsInFlight--);
      conn.readTail = join(conn.readTail, done);
      return;
    }
    const prior = conn.readsInFlight > 0 ? conn.readTail : undefined;
    const hasWrite = reads.length < ops.length;
    if (hasWrite) conn.writesInFlight++;
    const done = (
      prior ? prior.then(() => this.execute(conn, ops, hasWrite)) : this.execute(conn, ops, hasWrite)
    ).finally(() => {
      if (hasWrite) conn.writesInFlight--;
    });
    if (hasWrite) conn.writeTail = join(conn.writeTail, done);
    else {
      conn.readsInFlight++;
      conn.readTail = join(
        conn.readTail,
        done.finally(() => conn.readsInFlight--),
      );
    }
  }

  private riRunning = false;
  private riNext: { promise: Promise<number>; resolve(v: number): void; reject(e: unknown): void } | undefined;

  /**
   * One read-index round serves every read that arrived before it started: while a round runs, new
   * reads (of any connection) wait for the next round, which starts when this one ends. A read never
   * joins a round that started before it arrived (that would not be linearizable).
   */
  private sharedReadIndex(): Promise<number> {
    if (!this.riRunning) return this.startReadIndex();
    if (!this.riNext) {
      let resolve!: (v: number) => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<number>((res, rej) => ((resolve = res), (reject = rej)));
      this.riNext = { promise, resolve, reject };
    }
    return this.riNext.promise;
  }

  private startReadIndex(): Promise<number> {
    this.riRunning = true;
    const p = this.o.backend.readIndex!();
    const next = () => {
      this.riRunning = false;
      const waiting = this.riNext;
      this.riNext = undefined;
      if (waiting) this.startReadIndex().then(waiting.resolve, waiting.reject);
    };
    p.then(next, next);
    return p;
  }

  private async execute(conn: Conn, ops: Op[], hasWrite: boolean): Promise<void> {
    const each = this.o.backend.executeEach;
    if (!each) return this.executeAll(conn, ops, hasWrite);
    let o: KvBatchOutcome;
    try {
      o = await each.call(
        this.o.backend,
        ops.map((x) => x.cmd),
      );
    } catch (e) {
      const b = one((w) => w.error(errorText(e, undefined)));
      for (const x of ops) x.resolve(b);
      return;
    }
    // each command gets its own answer: a chunk split across slots may be partly executed
    const failed = o.failed;
    let fi = 0;
    for (let i = 0; i < ops.length; i++) {
      if (failed && fi < failed.length && failed[fi]!.index === i) {
        const f = failed[fi++]!;
        ops[i]!.resolve(one((w) => w.error(errorText(f.error, f.maybeExecuted))));
      } else ops[i]!.resolve(resultBuffer(o.results[i], ops[i]!.proto));
    }
    if (hasWrite && o.slot > conn.lastToken) conn.lastToken = o.slot;
  }

  /** A backend without executeEach: one answer for the whole chunk. */
  private async executeAll(conn: Conn, ops: Op[], hasWrite: boolean): Promise<void> {
    try {
      const results = await this.o.backend.execute(ops.map((o) => o.cmd));
      if (hasWrite) conn.lastToken = Math.max(conn.lastToken, this.o.backend.writeToken?.() ?? 0);
      for (let i = 0; i < ops.length; i++) ops[i]!.resolve(resultBuffer(results[i], ops[i]!.proto));
    } catch (e) {
      const b = one((w) => w.error(errorText(e, (e as { maybeExecuted?: boolean }).maybeExecuted)));
      for (const o of ops) o.resolve(b);
    }
  }

  private command(args: Buffer[], c: Conn, ops: Op[]): Reply {
    // the hot path (a pipelined SET, encoded by the parser): no command-name string, no closures
    if (args[0] === ENCODED_SET) {
      if (c.authed) {
        const op = new PendingOp('write', args[1]!, c.proto);
        ops.push(op);
        return op;
      }
      args = encodedSetArgs(args[1]!); // not authenticated: the general path answers
    }
    if (args.length === 3 && c.authed && isSet(args[0]!) && args[2]!.length <= this.o.maxValueBytes) {
      const op = new PendingOp('write', KvCommands.set(args[1]!, args[2]!), c.proto);
      ops.push(op);
      return op;
    }
    const name = up(args[0]!);
    const n = args.length;
    const p = c.proto;
    const reply = (build: (w: RespWriter) => void) => one(build, p);
    const error = (m: string) => one((w) => w.error(m));
    const ok = () => REPLY_OK;
    const wrongArgs = (cmd = name.toLowerCase()) => error(`ERR wrong number of arguments for '${cmd}' command`);
    c.lastCmd = name;
    if (name === 'AUTH') {
      if (n < 2) return wrongArgs();
      if (n > 3) return error('ERR syntax error');
      if (this.o.password === undefined && n === 2)
        return error(
          'ERR AUTH <password> called without any password configured for the default user. ' +
            'Are you sure your configuration is correct?',
        );
      if (!this.credentialsMatch(n === 3 ? args[1]! : Buffer.from('default'), args[n - 1]!)) return error(WRONGPASS);
      c.authed = true;
      return ok();
    }
    if (name === 'QUIT') {
      c.closing = true;
      return ok();
    }
    if (name === 'HELLO') return this.hello(args, c);
    if (!c.authed) return error('NOAUTH Authentication required.');
    const replicate = (cmd: Uint8Array, kind: 'read' | 'write'): PendingOp => {
      const op = new PendingOp(kind, cmd, p);
      ops.push(op);
      return op;
    };
    switch (name) {
      case 'PING':
        if (n > 2) return wrongArgs();
        return n > 1 ? reply((w) => w.bulk(args[1]!)) : reply((w) => w.simple('PONG'));
      case 'ECHO':
        return n === 2 ? reply((w) => w.bulk(args[1]!)) : wrongArgs();
      case 'SELECT':
        if (n !== 2) return wrongArgs();
        return args[1]!.toString() === '0' ? ok() : error('ERR DB index is out of range');
      case 'COMMAND':
        return this.commandReply(args, p);
      case 'CONFIG':
        return this.configGetReply(args, p);
      case 'CLIENT':
        return this.clientReply(args, c);
      case 'READONLY':
        c.readonly = true;
        return ok();
      case 'READWRITE':
        c.readonly = false;
        return ok();
      case 'INFO':
        return reply((w) => w.verbatim('txt', this.info(args.slice(1).map((a) => a.toString('latin1')))));
      case 'SCAN':
        return this.scan(args, c, replicate);
      case 'DECREE': {
        const sub = up(args[1] ?? Buffer.alloc(0));
        if (sub === 'STATUS') return reply((w) => w.bulk(JSON.stringify(this.o.backend.status())));
        if (sub === 'SLOT') return this.slotReply(c);
        if (sub === 'CONFIG') return this.configReply(args.slice(2));
        if (sub === 'BOOTSTRAP') return this.bootstrapReply(args.slice(2));
        return error('ERR unknown DECREE subcommand (try DECREE STATUS | DECREE SLOT | DECREE CONFIG [SET id…])');
      }
      case 'DECREE.SLOT':
        return n === 1 ? this.slotReply(c) : wrongArgs();
      case 'DECREE.FASTREAD': {
        if (n < 5) return wrongArgs();
        const minSlot = parseNonNeg(args[1]!);
        const timeoutMs = parseNonNeg(args[2]!);
        if (minSlot === undefined || timeoutMs === undefined)
          return error('ERR minSlot and timeoutMs must be non-negative integers');
        const inner = this.encode(args.slice(3));
        if (Buffer.isBuffer(inner)) return inner;
        if (inner.kind !== 'read')
          return error('ERR DECREE.FASTREAD serves GET, MGET, EXISTS, DBSIZE, TYPE, TTL and PTTL only');
        return this.fastRead(c, minSlot, Math.min(timeoutMs, this.o.maxFastReadWaitMs), inner.cmd);
      }
      case 'DECREE.SESSION': {
        if (n < 4) return wrongArgs();
        const seq = parseNonNeg(args[2]!);
        if (seq === undefined) return error('ERR seq must be a non-negative integer');
        if (args[1]!.length === 0 || args[1]!.length > 256) return error('ERR clientId must be 1-256 bytes');
        if (up(args[3]!).startsWith('DECREE')) return error('ERR sessions wrap a plain write command');
        const inner = this.encode(args.slice(3));
        if (Buffer.isBuffer(inner)) return inner;
        if (inner.kind !== 'write')
          return error('ERR DECREE.SESSION wraps writes only (SET MSET DEL INCR DECR INCRBY DECRBY CAS CASNX)');
        return replicate(KvCommands.session(args[1]!, seq, inner.cmd), 'write');
      }
      default: {
        const e = this.encode(args);
        if (Buffer.isBuffer(e)) return e;
        if (e.kind === 'read' && c.readonly && this.o.backend.readLocal) return this.local(e.cmd, p);
        return replicate(e.cmd, e.kind);
      }
    }
  }

  /** Whether (user, password) authenticates: the one user is `default` (without a password set, any password). */
  private credentialsMatch(user: Buffer, pass: Buffer): boolean {
    const isDefault = user.toString('latin1') === 'default';
    if (this.o.password === undefined) return isDefault;
    return passwordMatches(pass, this.o.password) && isDefault;
  }

  /**
   * SCAN cursor [MATCH pattern] [COUNT count] [TYPE type], checked as Redis 7 does; a read like GET (same
   * consistency). Every key is a string, so TYPE other than `string` ends the scan at once with no keys.
   */
  private scan(args: Buffer[], c: Conn, replicate: (cmd: Uint8Array, kind: 'read') => Reply): Reply {
    const n = args.length;
    const error = (m: string) => one((w) => w.error(m));
    if (n < 2) return error("ERR wrong number of arguments for 'scan' command");
    const cs = args[1]!.toString('latin1');
    if (!/^\d{1,20}$/.test(cs) || BigInt(cs) > 2n ** 64n - 1n) return error('ERR invalid cursor');
    // cursors are slots: one past the space ends the scan (as a cursor Redis never gave would, at worst)
    const cursor = cs.length > 7 ? SCAN_SLOTS : Math.min(Number(cs), SCAN_SLOTS);
    let count = 10;
    let match: Buffer | null = null;
    let otherType = false;
    for (let i = 2; i < n; i += 2) {
      const opt = up(args[i]!);
      if (i + 1 >= n) return error('ERR syntax error');
      if (opt === 'COUNT') {
        const v = args[i + 1]!.toString('latin1');
        if (!/^-?\d{1,18}$/.test(v)) return error('ERR value is not an integer or out of range');
        count = Number(v);
        if (count < 1) return error('ERR syntax error');
      } else if (opt === 'MATCH') match = args[i + 1]!;
      else if (opt === 'TYPE') otherType = up(args[i + 1]!) !== 'STRING';
      else return error('ERR syntax error');
    }
    if (otherType) return one((w) => w.arrayHeader(2).bulk('0').arrayHeader(0));
    const cmd = KvCommands.scan(cursor, Math.min(count, Number.MAX_SAFE_INTEGER), match);
    return c.readonly && this.o.backend.readLocal ? this.local(cmd, c.proto) : replicate(cmd, 'read');
  }

  /** COMMAND [COUNT | LIST | DOCS | INFO name…]: enough for redis-cli and tools that probe. */
  private commandReply(args: Buffer[], p: RespProtocol): Buffer {
    if (args.length === 1) return one((w) => w.arrayHeader(0));
    const sub = up(args[1]!);
    if (sub === 'COUNT') return one((w) => w.integer(COMMAND_NAMES.length));
    if (sub === 'LIST')
      return one((w) => {
        w.arrayHeader(COMMAND_NAMES.length);
        for (const c of COMMAND_NAMES) w.bulk(c);
      });
    if (sub === 'DOCS') return one((w) => w.mapHeader(0), p); // no docs: clients fall back to their own
    if (sub === 'INFO')
      return one((w) => {
        w.arrayHeader(args.length - 2);
        for (let i = 2; i < args.length; i++) w.nilArray();
      }, p);
    return one((w) =>
      w.error(`ERR unknown subcommand '${args[1]!.toString('latin1').slice(0, 64)}'. Try COMMAND HELP.`),
    );
  }

  /** CONFIG GET → an empty map (nothing is configurable over RESP); CONFIG RESETSTAT → OK; the rest refused. */
  private configGetReply(args: Buffer[], p: RespProtocol): Buffer {
    const sub = up(args[1] ?? Buffer.alloc(0));
    if (sub === 'GET') {
      if (args.length < 3) return one((w) => w.error("ERR wrong number of arguments for 'config|get' command"));
      return one((w) => w.mapHeader(0), p);
    }
    if (sub === 'RESETSTAT') return REPLY_OK;
    if (sub === 'SET' || sub === 'REWRITE')
      return one((w) =>
        w.error(`ERR CONFIG ${sub} is not supported (configure the replicas through their config file)`),
      );
    return one((w) => w.error(`ERR unknown subcommand '${(args[1] ?? '').toString().slice(0, 64)}'. Try CONFIG HELP.`));
  }

  /** CLIENT ID | INFO | LIST | GETNAME | SETNAME | SETINFO | NO-EVICT | NO-TOUCH | HELP. */
  private clientReply(args: Buffer[], c: Conn): Buffer {
    const p = c.proto;
    const error = (m: string) => one((w) => w.error(m));
    const sub = up(args[1] ?? Buffer.alloc(0));
    const n = args.length;
    const arity = (want: number) => n === want;
    const wrong = () => error(`ERR wrong number of arguments for 'client|${sub.toLowerCase()}' command`);
    switch (sub) {
      case 'ID':
        return arity(2) ? one((w) => w.integer(c.id)) : wrong();
      case 'GETNAME':
        return arity(2) ? one((w) => w.bulk(c.name === '' ? null : c.name), p) : wrong();
      case 'SETNAME':
        if (!arity(3)) return wrong();
        if (!validName(args[2]!))
          return error('ERR Client names cannot contain spaces, newlines or special characters.');
        c.name = args[2]!.toString('latin1');
        return REPLY_OK;
      case 'SETINFO': {
        if (!arity(4)) return wrong();
        const attr = up(args[2]!);
        if (attr !== 'LIB-NAME' && attr !== 'LIB-VER')
          return error(`ERR Unrecognized option '${args[2]!.toString('latin1').slice(0, 64)}'`);
        if (!validName(args[3]!))
          return error(`ERR ${attr.toLowerCase()} cannot contain spaces, newlines or special characters.`);
        if (attr === 'LIB-NAME') c.libName = args[3]!.toString('latin1');
        else c.libVer = args[3]!.toString('latin1');
        return REPLY_OK;
      }
      case 'INFO':
        return arity(2) ? one((w) => w.verbatim('txt', clientLine(c, Date.now())), p) : wrong();
      case 'LIST': {
        if (n !== 2 && !(n >= 4 && up(args[2]!) === 'ID')) return error('ERR syntax error');
        const ids = n >= 4 ? new Set(args.slice(3).map((a) => a.toString('latin1'))) : undefined;
        const now = Date.now();
        let text = '';
        for (const x of this.conns.values()) if (!ids || ids.has(String(x.id))) text += clientLine(x, now);
        return one((w) => w.verbatim('txt', text), p);
      }
      case 'NO-EVICT':
      case 'NO-TOUCH': {
        if (!arity(3)) return wrong();
        const v = up(args[2]!);
        return v === 'ON' || v === 'OFF' ? REPLY_OK : error('ERR syntax error');
      }
      case 'HELP':
        return one((w) => {
          w.arrayHeader(CLIENT_HELP.length);
          for (const l of CLIENT_HELP) w.simple(l);
        });
      case 'TRACKING':
      case 'CACHING':
      case 'GETREDIR':
      case 'TRACKINGINFO':
      case 'REPLY':
      case 'KILL':
      case 'PAUSE':
      case 'UNPAUSE':
      case 'UNBLOCK':
        // refused rather than faked: a client told tracking works would cache values it is never told changed
        return error(`ERR CLIENT ${sub} is not supported by this server`);
      default:
        return error(`ERR unknown subcommand '${(args[1] ?? '').toString('latin1').slice(0, 64)}'. Try CLIENT HELP.`);
    }
  }

  private info(sections: string[]): string {
    let keys: number | undefined;
    try {
      const b = this.o.backend;
      const r = b.readLocal ? decodeResult(b.readLocal(KvCommands.dbsize())) : undefined;
      if (r?.type === 'int') keys = Number(r.value);
    } catch {
      keys = undefined;
    }
    return infoText(sections, {
      port: (this.server?.address() as net.AddressInfo | null)?.port ?? this.o.port,
      uptimeS: Math.floor((Date.now() - this.startedMs) / 1000),
      clients: this.conns.size,
      stats: this.stats,
      leader: this.o.backend.isLeader?.() ?? false,
      keys,
      status: this.o.backend.status(),
    });
  }

  /**
   * Logs (at info) an unknown command's name and first argument, once per pair and at most 1000 pairs:
   * this is how to find out what a client library sends that the server does not serve.
   */
  private logUnknown(args: Buffer[]): void {
    if (this.unknownLogged.size >= 1000) return;
    const name = args[0]!.toString('latin1').slice(0, 32);
    const key = `${name} ${(args[1] ?? '').toString('latin1').slice(0, 32)}`;
    if (this.unknownLogged.has(key)) return;
    this.unknownLogged.add(key);
    this.o.log?.('info', 'unknown command', { command: name, arg1: key.slice(name.length + 1), argc: args.length });
  }

  /** A KV command's binary encoding (kind read/write), or an error reply. */
  private encode(args: Buffer[]): { kind: 'read' | 'write'; cmd: Uint8Array } | Buffer {
    const name = up(args[0]!);
    const n = args.length;
    const arity = (min: number, max = min) => n >= min && n <= max;
    const wrongArgs = () => one((w) => err(w, `ERR wrong number of arguments for '${name.toLowerCase()}' command`));
    const tooBig = (b: Buffer) => b.length > this.o.maxValueBytes;
    const valueTooLarge = () => one((w) => err(w, `ERR value too large (max ${this.o.maxValueBytes} bytes)`));
    const W = (cmd: Uint8Array) => ({ kind: 'write' as const, cmd });
    const R = (cmd: Uint8Array) => ({ kind: 'read' as const, cmd });
    switch (name) {
      case 'GET':
        return arity(2) ? R(KvCommands.get(args[1]!)) : wrongArgs();
      case 'MGET':
        return n >= 2 ? R(KvCommands.mget(args.slice(1))) : wrongArgs();
      case 'EXISTS':
        return n >= 2 ? R(KvCommands.exists(args.slice(1))) : wrongArgs();
      case 'DBSIZE':
        return arity(1) ? R(KvCommands.dbsize()) : wrongArgs();
      case 'TYPE':
        return arity(2) ? R(KvCommands.type(args[1]!)) : wrongArgs();
      case 'TTL':
      case 'PTTL': // keys never expire: -1 (exists) / -2 (missing), the same in ms
        return arity(2) ? R(KvCommands.ttl(args[1]!)) : wrongArgs();
      case 'SET':
        if (n !== 3)
          return n > 3 ? one((w) => err(w, 'ERR syntax error (SET options are not supported)')) : wrongArgs();
        if (tooBig(args[2]!)) return valueTooLarge();
        return W(KvCommands.set(args[1]!, args[2]!));
      case 'MSET': {
        if (n < 3 || n % 2 === 0) return wrongArgs();
        const pairs: [Buffer, Buffer][] = [];
        for (let i = 1; i < n; i += 2) {
          if (tooBig(args[i + 1]!)) return valueTooLarge();
          pairs.push([args[i]!, args[i + 1]!]);
        }
        return W(KvCommands.mset(pairs));
      }
      case 'DEL':
        return n >= 2 ? W(KvCommands.del(args.slice(1))) : wrongArgs();
      case 'INCR':
      case 'DECR':
        return arity(2) ? W(KvCommands.incr(args[1]!, name === 'INCR' ? 1 : -1)) : wrongArgs();
      case 'INCRBY':
      case 'DECRBY': {
        if (!arity(3)) return wrongArgs();
        const s = args[2]!.toString();
        if (!/^-?\d{1,18}$/.test(s)) return one((w) => err(w, 'ERR value is not an integer or out of range'));
        const by = Number(s);
        return W(KvCommands.incr(args[1]!, name === 'INCRBY' ? by : -by));
      }
      case 'CAS': // CAS key expected new  (compare-and-set; reply 1 when swapped, 0 otherwise)
        if (!arity(4)) return wrongArgs();
        if (tooBig(args[3]!)) return valueTooLarge();
        return W(KvCommands.cas(args[1]!, args[2]!, args[3]!));
      case 'CASNX': // CASNX key new  (set only if absent; 1 / 0)
        if (!arity(3)) return wrongArgs();
        if (tooBig(args[2]!)) return valueTooLarge();
        return W(KvCommands.cas(args[1]!, null, args[2]!));
      default: {
        const shown = args
          .slice(1, 4)
          .map((a) => `'${a.toString('latin1').slice(0, 32)}'`)
          .join(' ');
        this.logUnknown(args);
        return one((w) =>
          err(
            w,
            `ERR unknown command '${args[0]!.toString('latin1').slice(0, 64)}', with args beginning with: ${shown}`,
          ),
        );
      }
    }
  }

  /**
   * HELLO [protover [AUTH user pass] [SETNAME name]] as Redis 7: switches the connection to RESP2 or RESP3
   * and answers a map (a flat array under RESP2) of server, version, proto, id, mode, role, modules.
   */
  private hello(args: Buffer[], c: Conn): Buffer {
    const req = helloArgs(args);
    if (typeof req === 'string') return one((w) => w.error(req));
    if (req.auth) {
      if (!this.credentialsMatch(req.auth.user, req.auth.pass)) return one((w) => w.error(WRONGPASS));
      c.authed = true;
    }
    if (!c.authed)
      return one((w) =>
        w.error(
          'NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> ' +
            'AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol ' +
            'version at the same time',
        ),
      );
    if (req.setname) c.name = req.setname.toString('latin1');
    if (req.proto) c.proto = req.proto;
    const role = this.o.backend.isLeader?.() ? 'master' : 'replica';
    return one((w) => {
      w.mapHeader(7);
      w.bulk('server').bulk('decree');
      w.bulk('version').bulk(DECREE_VERSION);
      w.bulk('proto').integer(c.proto);
      w.bulk('id').integer(c.id);
      w.bulk('mode').bulk('standalone');
      w.bulk('role').bulk(role);
      w.bulk('modules').arrayHeader(0);
    }, c.proto);
  }

  private local(cmd: Uint8Array, proto: RespProtocol): Buffer {
    try {
      if (!this.o.backend.readLocal) throw new Error('local reads are not supported by this backend');
      return resultBuffer(this.o.backend.readLocal(cmd), proto);
    } catch (e) {
      return one((w) => w.error(`ERR ${(e as Error).message}`));
    }
  }

  /** The connection's freshness token, once its earlier writes are answered. */
  /** DECREE BOOTSTRAP id…: the first configuration (JSON result), or ERR <code> <reason> */
  private bootstrapReply(args: Buffer[]): Reply {
    const one = (f: (w: RespWriter) => void): Buffer => {
      const w = new RespWriter();
      f(w);
      return w.take();
    };
    const b = this.o.backend;
    if (!b.bootstrap) return one((w) => err(w, 'ERR bootstrap is not supported by this server'));
    if (args.length === 0) return one((w) => err(w, 'ERR usage: DECREE BOOTSTRAP id [id …]'));
    return b.bootstrap(args.map((a) => a.toString('utf8'))).then(
      (r) => one((w) => w.bulk(JSON.stringify(r))),
      (e: Error & { code?: string }) =>
        one((w) => err(w, `ERR ${e.code ?? 'FAILED'} ${e.message.replace(/[\r\n]+/g, ' ')}`)),
    );
  }

  /** DECREE CONFIG (the configuration as JSON) and DECREE CONFIG SET id… (a membership change, leader only) */
  private configReply(args: Buffer[]): Reply {
    const b = this.o.backend;
    const one = (f: (w: RespWriter) => void): Buffer => {
      const w = new RespWriter();
      f(w);
      return w.take();
    };
    if (args.length === 0) {
      if (!b.configuration) return one((w) => err(w, 'ERR configuration changes are not supported by this server'));
      return one((w) => w.bulk(JSON.stringify(b.configuration!())));
    }
    if (up(args[0]!) !== 'SET' || args.length < 2)
      return one((w) => err(w, 'ERR usage: DECREE CONFIG | DECREE CONFIG SET id [id …]'));
    if (!b.changeConfiguration) return one((w) => err(w, 'ERR configuration changes are not supported by this server'));
    const members = args.slice(1).map((a) => a.toString('utf8'));
    return b.changeConfiguration(members).then(
      (r) => one((w) => w.bulk(JSON.stringify(r))),
      (e: Error & { code?: string; leaderHint?: string; maybeChosen?: boolean }) =>
        one((w) =>
          err(
            w,
            `ERR ${e.code ?? 'FAILED'} ${e.message.replace(/[\r\n]+/g, ' ')}${e.leaderHint ? ` leader=${e.leaderHint}` : ''}${e.maybeChosen ? ' (it may still take effect)' : ''}`,
          ),
        ),
    );
  }

  private slotReply(c: Conn): Reply {
    // after this chunk's writes are dispatched (a microtask later), wait for every write sent so far
    return Promise.resolve()
      .then(() => (c.writesInFlight > 0 ? c.writeTail : undefined))
      .then(() => one((w) => w.integer(c.lastToken)));
  }

  private fastRead(c: Conn, minSlot: number, timeoutMs: number, cmd: Uint8Array): Reply {
    const b = this.o.backend;
    const proto = c.proto;
    if (!b.waitForSlot) return one((w) => err(w, 'ERR fast reads are not supported by this backend'));
    const go = async (): Promise<Buffer> => {
      try {
        await b.waitForSlot!(minSlot, timeoutMs);
      } catch (e) {
        const ex = e as { code?: string; executed?: number; message: string };
        if (ex.code === 'STALE')
          return one((w) => w.error(`STALE replica executed up to slot ${ex.executed ?? '?'}, wanted ${minSlot}`));
        return one((w) => w.error(`ERR ${ex.message}`));
      }
      return this.local(cmd, proto);
    };
    return Promise.resolve()
      .then(() => (c.writesInFlight > 0 ? c.writeTail : undefined))
      .then(go);
  }
}

interface Conn {
  /** CLIENT ID (and HELLO's id): unique per server */
  id: number;
  addr: string;
  laddr: string;
  /** CLIENT SETNAME / HELLO SETNAME */
  name: string;
  /** CLIENT SETINFO LIB-NAME / LIB-VER */
  libName: string;
  libVer: string;
  createdMs: number;
  /** when the connection last sent a command */
  lastMs: number;
  /** the last command's name (lower case), for CLIENT LIST */
  lastCmd: string;
  /** RESP2 until HELLO 3; the replies of commands read after a HELLO use its protocol */
  proto: RespProtocol;
  authed: boolean;
  readonly: boolean;
  closing: boolean;
  /** freshness token of the last acknowledged write (DECREE.SLOT) */
  lastToken: number;
  writesInFlight: number;
  /** settles once every write batch sent so far has been answered */
  writeTail: Promise<void>;
  readsInFlight: number;
  readTail: Promise<void>;
}

interface Op {
  kind: 'read' | 'write';
  cmd: Uint8Array;
  proto: RespProtocol;
  resolve(b: Buffer): void;
}

/** settles when both have settled (never rejects) */
const join = (a: Promise<unknown>, b: Promise<unknown>): Promise<void> =>
  Promise.allSettled([a, b]).then(() => undefined);

function parseNonNeg(b: Buffer): number | undefined {
  const s = b.toString('latin1');
  if (!/^\d{1,15}$/.test(s)) return undefined;
  return Number(s);
}
