import net from 'node:net';
import { KvCommands, decodeResult, type KvResult } from '@decree/kv-machine';
import { RespCommandParser, RespProtocolError, RespWriter, type RespLimits } from './resp.ts';

/** What the RESP front end needs from a replica. */
export interface KvBackend {
  /** replicated execution (writes, and linearizable reads through the log), in order */
  execute(commands: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]>;
  /** a read against this replica's own state (READONLY mode: possibly stale) */
  readLocal(command: Uint8Array): Uint8Array;
  /** facts for INFO / DECREE STATUS */
  status(): Record<string, unknown>;
}

export interface KvServerOptions {
  port: number;
  host?: string;
  backend: KvBackend;
  /** requirepass: clients must AUTH first */
  password?: string;
  /** largest value accepted by SET/MSET/CAS (default 1 MiB); larger ones get an error, the connection goes on */
  maxValueBytes?: number;
  /** unanswered commands per connection before the server stops reading from it (default 16384) */
  maxPendingPerConnection?: number;
  maxConnections?: number;
  limits?: Partial<RespLimits>;
  log?: (level: 'info' | 'warn', msg: string, obj?: object) => void;
}

type Reply = Buffer | Promise<Buffer>;

const up = (b: Buffer) => b.toString('latin1').toUpperCase();
const err = (w: RespWriter, m: string) => w.error(m);

function writeResult(w: RespWriter, r: KvResult): void {
  switch (r.type) {
    case 'ok':
      w.simple('OK');
      return;
    case 'nil':
      w.bulk(null);
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
      w.raw(Buffer.from(`*${r.items.length}\r\n`));
      for (const it of r.items) writeResult(w, it);
      return;
  }
}

function resultBuffer(bytes: Uint8Array | undefined): Buffer {
  const w = new RespWriter(64);
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

function one(build: (w: RespWriter) => void): Buffer {
  const w = new RespWriter(64);
  build(w);
  return w.take();
}

const NOT_LEADER = (e: unknown) => {
  const hint = (e as { leaderHint?: string }).leaderHint;
  return `TRYAGAIN no leader reachable${hint ? ` (leader ${hint})` : ''}: ${(e as Error).message}`;
};

/**
 * A RESP2 server in front of a replica: redis-cli, redis-benchmark and Redis client libraries work
 * unchanged. Writes and reads go through the replicated log (linearizable); a write sent to a
 * follower is forwarded to the leader. READONLY switches a connection to local (possibly stale)
 * reads. Pipelined commands that arrive together go to the engine as one batch.
 */
export class KvServer {
  private server: net.Server | undefined;
  private readonly conns = new Set<net.Socket>();
  private readonly o: Required<Omit<KvServerOptions, 'password' | 'host' | 'limits' | 'log'>> & KvServerOptions;
  stats = { connections: 0, commands: 0, protocolErrors: 0, rejectedConnections: 0 };

  constructor(opts: KvServerOptions) {
    this.o = { maxValueBytes: 1 << 20, maxPendingPerConnection: 16_384, maxConnections: 10_000, ...opts };
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
    for (const c of this.conns) c.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private onConnection(sock: net.Socket): void {
    if (this.conns.size >= this.o.maxConnections) {
      this.stats.rejectedConnections++;
      sock.end('-ERR max number of clients reached\r\n');
      return;
    }
    this.stats.connections++;
    this.conns.add(sock);
    sock.setNoDelay(true);
    const parser = new RespCommandParser(this.o.limits ?? {});
    let authed = this.o.password === undefined;
    let readonly = false;
    let closing = false;
    const queue: Reply[] = [];
    let pending = 0;
    let flushing = false;

    const flush = async () => {
      if (flushing) return;
      flushing = true;
      try {
        while (queue.length > 0) {
          // write every reply that is ready, in order, as one buffer
          const ready: Buffer[] = [];
          while (queue.length > 0 && Buffer.isBuffer(queue[0])) ready.push(queue.shift() as Buffer);
          if (ready.length > 0) {
            pending -= ready.length;
            if (!sock.destroyed) sock.write(ready.length === 1 ? ready[0]! : Buffer.concat(ready));
            continue;
          }
          const head = queue[0] as Promise<Buffer>;
          queue[0] = await head;
        }
      } finally {
        flushing = false;
      }
      if (sock.isPaused() && pending < this.o.maxPendingPerConnection / 2) sock.resume();
      if (closing && queue.length === 0) sock.end();
    };

    sock.on('data', (chunk) => {
      let cmds: Buffer[][];
      let protoErr: RespProtocolError | undefined;
      try {
        cmds = parser.feed(chunk);
      } catch (e) {
        if (!(e instanceof RespProtocolError)) throw e;
        cmds = [];
        protoErr = e;
      }
      // one engine batch for all the replicated commands of this chunk
      const batch: Uint8Array[] = [];
      const slots: { idx: number; resolve: (b: Buffer) => void }[] = [];
      for (const args of cmds) {
        this.stats.commands++;
        pending++;
        const r = this.command(args, {
          authed,
          readonly,
          setAuthed: (v) => (authed = v),
          setReadonly: (v) => (readonly = v),
          quit: () => (closing = true),
          replicate: (cmd) =>
            new Promise<Buffer>((resolve) => {
              slots.push({ idx: batch.length, resolve });
              batch.push(cmd);
            }),
        });
        queue.push(r);
      }
      if (batch.length > 0) {
        this.o.backend.execute(batch).then(
          (results) => {
            for (const s of slots) s.resolve(resultBuffer(results[s.idx]));
          },
          (e) => {
            const msg = (e as { code?: string }).code === 'NOT_LEADER' ? NOT_LEADER(e) : `ERR ${(e as Error).message}`;
            const b = one((w) => w.error(msg));
            for (const s of slots) s.resolve(b);
          },
        );
      }
      if (protoErr) {
        this.stats.protocolErrors++;
        this.o.log?.('warn', 'RESP protocol error; closing the connection', { error: protoErr.message });
        pending++;
        queue.push(one((w) => w.error(`ERR ${protoErr!.message}`)));
        closing = true;
      }
      if (pending >= this.o.maxPendingPerConnection) sock.pause();
      void flush();
    });
    sock.on('error', () => {});
    sock.on('close', () => this.conns.delete(sock));
  }

  private command(
    args: Buffer[],
    c: {
      authed: boolean;
      readonly: boolean;
      setAuthed(v: boolean): void;
      setReadonly(v: boolean): void;
      quit(): void;
      replicate(cmd: Uint8Array): Promise<Buffer>;
    },
  ): Reply {
    const name = up(args[0]!);
    const n = args.length;
    const arity = (min: number, max = min) => n >= min && n <= max;
    const wrongArgs = () => one((w) => err(w, `ERR wrong number of arguments for '${name.toLowerCase()}' command`));
    if (name === 'AUTH') {
      if (!arity(2, 3)) return wrongArgs();
      if (this.o.password === undefined) return one((w) => err(w, 'ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?'));
      const ok = args[n - 1]!.toString() === this.o.password;
      c.setAuthed(ok);
      return ok ? one((w) => w.simple('OK')) : one((w) => err(w, 'WRONGPASS invalid username-password pair or user is disabled.'));
    }
    if (name === 'QUIT') {
      c.quit();
      return one((w) => w.simple('OK'));
    }
    if (!c.authed) return one((w) => err(w, 'NOAUTH Authentication required.'));
    const tooBig = (b: Buffer) => b.length > this.o.maxValueBytes;
    switch (name) {
      case 'PING':
        return n > 1 ? one((w) => w.bulk(args[1]!)) : one((w) => w.simple('PONG'));
      case 'ECHO':
        return arity(2) ? one((w) => w.bulk(args[1]!)) : wrongArgs();
      case 'SELECT':
        return args[1]?.toString() === '0' ? one((w) => w.simple('OK')) : one((w) => err(w, 'ERR DB index is out of range'));
      case 'COMMAND':
      case 'CONFIG':
        return one((w) => w.raw(Buffer.from('*0\r\n')));
      case 'CLIENT':
        return one((w) => w.simple('OK'));
      case 'HELLO':
        return one((w) => err(w, 'NOPROTO this server speaks RESP2 only'));
      case 'READONLY':
        c.setReadonly(true);
        return one((w) => w.simple('OK'));
      case 'READWRITE':
        c.setReadonly(false);
        return one((w) => w.simple('OK'));
      case 'INFO': {
        const s = this.o.backend.status();
        const text = ['# Decree', ...Object.entries(s).map(([k, v]) => `${k}:${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)].join('\r\n');
        return one((w) => w.bulk(text + '\r\n'));
      }
      case 'DECREE':
        if (up(args[1] ?? Buffer.alloc(0)) === 'STATUS') return one((w) => w.bulk(JSON.stringify(this.o.backend.status())));
        return one((w) => err(w, "ERR unknown DECREE subcommand (try DECREE STATUS)"));
      case 'GET':
        if (!arity(2)) return wrongArgs();
        return this.read(c, KvCommands.get(args[1]!));
      case 'MGET':
        if (n < 2) return wrongArgs();
        return this.read(c, KvCommands.mget(args.slice(1)));
      case 'EXISTS':
        if (n < 2) return wrongArgs();
        return this.read(c, KvCommands.exists(args.slice(1)));
      case 'SET':
        if (n !== 3) return n > 3 ? one((w) => err(w, 'ERR syntax error (SET options are not supported)')) : wrongArgs();
        if (tooBig(args[2]!)) return one((w) => err(w, `ERR value too large (max ${this.o.maxValueBytes} bytes)`));
        return c.replicate(KvCommands.set(args[1]!, args[2]!));
      case 'MSET': {
        if (n < 3 || n % 2 === 0) return wrongArgs();
        const pairs: [Buffer, Buffer][] = [];
        for (let i = 1; i < n; i += 2) {
          if (tooBig(args[i + 1]!)) return one((w) => err(w, `ERR value too large (max ${this.o.maxValueBytes} bytes)`));
          pairs.push([args[i]!, args[i + 1]!]);
        }
        return c.replicate(KvCommands.mset(pairs));
      }
      case 'DEL':
        if (n < 2) return wrongArgs();
        return c.replicate(KvCommands.del(args.slice(1)));
      case 'INCR':
      case 'DECR':
        if (!arity(2)) return wrongArgs();
        return c.replicate(KvCommands.incr(args[1]!, name === 'INCR' ? 1 : -1));
      case 'INCRBY':
      case 'DECRBY': {
        if (!arity(3)) return wrongArgs();
        const s = args[2]!.toString();
        if (!/^-?\d{1,18}$/.test(s)) return one((w) => err(w, 'ERR value is not an integer or out of range'));
        const by = Number(s);
        return c.replicate(KvCommands.incr(args[1]!, name === 'INCRBY' ? by : -by));
      }
      case 'CAS': // CAS key expected new  (compare-and-set; reply 1 when swapped, 0 otherwise)
        if (!arity(4)) return wrongArgs();
        if (tooBig(args[3]!)) return one((w) => err(w, `ERR value too large (max ${this.o.maxValueBytes} bytes)`));
        return c.replicate(KvCommands.cas(args[1]!, args[2]!, args[3]!));
      case 'CASNX': // CASNX key new  (set only if absent; 1 / 0)
        if (!arity(3)) return wrongArgs();
        return c.replicate(KvCommands.cas(args[1]!, null, args[2]!));
      default:
        return one((w) =>
          err(w, `ERR unknown command '${args[0]!.toString('latin1').slice(0, 64)}', with args beginning with: ${args.slice(1, 4).map((a) => `'${a.toString('latin1').slice(0, 32)}'`).join(' ')}`),
        );
    }
  }

  private read(c: { readonly: boolean; replicate(cmd: Uint8Array): Promise<Buffer> }, cmd: Uint8Array): Reply {
    if (c.readonly) {
      try {
        return resultBuffer(this.o.backend.readLocal(cmd));
      } catch (e) {
        return one((w) => w.error(`ERR ${(e as Error).message}`));
      }
    }
    return c.replicate(cmd); // linearizable: the read takes a slot in the log
  }
}
