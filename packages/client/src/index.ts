/**
 * @decree/client — a TypeScript client for the Decree KV service over RESP (ioredis underneath).
 *
 * - Leader discovery: asks the seeds `DECREE STATUS` (role, leader, leaderClient) and talks to the leader.
 * - Writes are wrapped in `DECREE.SESSION <clientId> <seq> ...`: a write retried after a timeout, a lost
 *   connection or a leader change keeps its seq, so the cluster applies it once (exactly-once).
 * - Reads are linearizable (served by the leader through read-index); `readFresh` reads at any replica
 *   that has executed a given slot (default: the slot of this client's last write).
 * - Every call has a deadline (`timeoutMs`); each attempt has its own (`attemptTimeoutMs`).
 */
import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';

export interface Address {
  host: string;
  port: number;
}

export interface DecreeClientOptions {
  /** replicas' client (RESP) addresses, `host:port` strings or objects; any one that answers is enough */
  seeds: readonly (string | Address)[];
  password?: string;
  /** the session id; a random one by default (one per client object) */
  clientId?: string;
  /** first session seq (default 1); a restarted client with a saved id must continue above its last seq */
  firstSeq?: number;
  /** deadline of one call, retries included (default 10 000 ms) */
  timeoutMs?: number;
  /** deadline of one attempt (default 2 000 ms) */
  attemptTimeoutMs?: number;
  /** pause between attempts (default 50 ms, doubling up to 500 ms) */
  retryDelayMs?: number;
}

/** The call did not complete before its deadline; for a write, it may or may not have been applied. */
export class DecreeTimeoutError extends Error {
  constructor(
    readonly attempts: number,
    readonly lastError: unknown,
  ) {
    super(
      `no answer within the deadline after ${attempts} attempt(s): ` +
        `${(lastError as Error)?.message ?? String(lastError)}`,
    );
    this.name = 'DecreeTimeoutError';
  }
}

/** The server answered with an error that retrying will not fix (wrong type, syntax, stale session seq...). */
export class DecreeReplyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecreeReplyError';
  }
}

/** No replica had executed the requested slot within the fast read's wait. */
export class DecreeStaleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecreeStaleError';
  }
}

type Arg = string | Buffer | number;

const parseAddress = (a: string | Address): Address => {
  if (typeof a !== 'string') return a;
  const i = a.lastIndexOf(':');
  if (i <= 0) throw new Error(`bad address "${a}" (want host:port)`);
  return { host: a.slice(0, i), port: Number(a.slice(i + 1)) };
};
const key = (a: Address) => `${a.host}:${a.port}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Errors worth another attempt: the cluster was between leaders, or the connection/attempt failed. */
function retriable(e: unknown): boolean {
  const m = (e as Error)?.message ?? '';
  if (e instanceof DecreeReplyError) return false;
  if (/^(TRYAGAIN|CLUSTERDOWN|LOADING|MOVED|READONLY)/.test(m)) return true;
  // ioredis ReplyError for other server errors: not retriable
  if ((e as Error)?.name === 'ReplyError') return false;
  return true; // connection closed/refused/reset, attempt timeout
}

class AttemptTimeout extends Error {
  constructor(ms: number) {
    super(`attempt timed out after ${ms} ms`);
    this.name = 'AttemptTimeout';
  }
}

export class DecreeClient {
  readonly clientId: string;
  private seq: number;
  private readonly seeds: Address[];
  private readonly conns = new Map<string, Redis>();
  private leader: Address | undefined;
  private writeChain: Promise<unknown> = Promise.resolve();
  private readonly o: Required<Omit<DecreeClientOptions, 'password' | 'clientId' | 'firstSeq' | 'seeds'>> & {
    password?: string;
  };
  private closed = false;
  private rr = 0;
  /** freshness token: a slot >= the slot of this client's last acknowledged write */
  lastWriteSlot = 0;
  /** attempts made by the last call (tests, metrics) */
  lastAttempts = 0;

  constructor(opts: DecreeClientOptions) {
    if (opts.seeds.length === 0) throw new Error('at least one seed address is required');
    this.seeds = opts.seeds.map(parseAddress);
    this.clientId = opts.clientId ?? `c-${randomBytes(9).toString('base64url')}`;
    this.seq = (opts.firstSeq ?? 1) - 1;
    this.o = {
      timeoutMs: opts.timeoutMs ?? 10_000,
      attemptTimeoutMs: opts.attemptTimeoutMs ?? 2_000,
      retryDelayMs: opts.retryDelayMs ?? 50,
      ...(opts.password !== undefined ? { password: opts.password } : {}),
    };
  }

  // ---------------------------------------------------------------- typed API
  async get(k: Arg): Promise<string | null> {
    return (await this.read(['GET', k])) as string | null;
  }
  async getBuffer(k: Arg): Promise<Buffer | null> {
    return (await this.read(['GET', k], true)) as Buffer | null;
  }
  async mget(keys: readonly Arg[]): Promise<(string | null)[]> {
    return (await this.read(['MGET', ...keys])) as (string | null)[];
  }
  async exists(...keys: Arg[]): Promise<number> {
    return (await this.read(['EXISTS', ...keys])) as number;
  }
  async set(k: Arg, v: Arg): Promise<void> {
    await this.write(['SET', k, v]);
  }
  async mset(pairs: Record<string, Arg> | readonly (readonly [Arg, Arg])[]): Promise<void> {
    const list = Array.isArray(pairs) ? (pairs as [Arg, Arg][]) : Object.entries(pairs);
    await this.write(['MSET', ...list.flat()]);
  }
  async del(...keys: Arg[]): Promise<number> {
    return (await this.write(['DEL', ...keys])) as number;
  }
  async incr(k: Arg, by = 1): Promise<number> {
    return (await this.write(['INCRBY', k, by])) as number;
  }
  /** compare-and-set: sets k to v iff its value is `expected` (null: iff k is absent); true when it swapped */
  async cas(k: Arg, expected: Arg | null, v: Arg): Promise<boolean> {
    return ((await this.write(expected === null ? ['CASNX', k, v] : ['CAS', k, expected, v])) as number) === 1;
  }

  /**
   * A read at any replica (followers first, round robin) that has executed `minSlot` (default: this
   * client's last write, so it sees its own writes), each waiting up to `waitMs`; the leader last.
   */
  async readFresh(k: Arg, opts: { minSlot?: number; waitMs?: number } = {}): Promise<string | null> {
    const minSlot = opts.minSlot ?? this.lastWriteSlot;
    const waitMs = opts.waitMs ?? 500;
    const deadline = Date.now() + this.o.timeoutMs;
    let attempts = 0;
    let last: unknown;
    const order = this.seeds.map((_, i) => this.seeds[(this.rr + i) % this.seeds.length]!);
    this.rr++;
    while (Date.now() < deadline) {
      for (const a of order) {
        attempts++;
        try {
          const c = await this.conn(a);
          return (await this.attempt(
            c,
            ['DECREE.FASTREAD', minSlot, waitMs, 'GET', k],
            false,
            waitMs + this.o.attemptTimeoutMs,
          )) as string | null;
        } catch (e) {
          last = e;
          if (/^STALE/.test((e as Error).message)) continue;
          if (!retriable(e)) throw new DecreeReplyError((e as Error).message);
          this.drop(a);
        }
        if (Date.now() >= deadline) break;
      }
      await sleep(this.o.retryDelayMs);
    }
    this.lastAttempts = attempts;
    if (/^STALE/.test((last as Error)?.message ?? '')) throw new DecreeStaleError((last as Error).message);
    throw new DecreeTimeoutError(attempts, last);
  }

  /** Any command, sent to the leader with retries (not session-wrapped: only for idempotent commands). */
  async command(args: readonly Arg[]): Promise<unknown> {
    return this.read(args);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.conns.values()) c.disconnect();
    this.conns.clear();
  }

  // ---------------------------------------------------------------- internals
  /** Session-wrapped write; one at a time so seqs apply in order (a retried seq stays the newest). */
  private write(args: readonly Arg[]): Promise<unknown> {
    const run = async () => {
      const seq = ++this.seq;
      const wrapped: Arg[] = ['DECREE.SESSION', this.clientId, seq, ...args];
      return this.withRetry(async (c) => {
        const [r, slot] = await Promise.all([this.attempt(c, wrapped), this.attempt(c, ['DECREE.SLOT'])]);
        if (typeof slot === 'number' && slot > this.lastWriteSlot) this.lastWriteSlot = slot;
        return r;
      });
    };
    const p = this.writeChain.then(run, run);
    this.writeChain = p.catch(() => {});
    return p;
  }

  private read(args: readonly Arg[], buffers = false): Promise<unknown> {
    return this.withRetry((c) => this.attempt(c, args, buffers));
  }

  private async withRetry<T>(fn: (c: Redis) => Promise<T>): Promise<T> {
    if (this.closed) throw new Error('client is closed');
    const deadline = Date.now() + this.o.timeoutMs;
    let delay = this.o.retryDelayMs;
    let attempts = 0;
    let last: unknown;
    while (Date.now() < deadline) {
      attempts++;
      let addr: Address | undefined;
      try {
        addr = await this.findLeader(deadline);
        const c = await this.conn(addr);
        const r = await fn(c);
        this.lastAttempts = attempts;
        return r;
      } catch (e) {
        last = e;
        if (!retriable(e)) {
          this.lastAttempts = attempts;
          throw new DecreeReplyError((e as Error).message);
        }
        // leader change or dead connection: forget the leader, drop the connection, try again (same seq)
        if (addr) this.drop(addr);
        this.leader = undefined;
        await sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
        delay = Math.min(delay * 2, 500);
      }
    }
    this.lastAttempts = attempts;
    throw new DecreeTimeoutError(attempts, last);
  }

  private async attempt(
    c: Redis,
    args: readonly Arg[],
    buffers = false,
    ms = this.o.attemptTimeoutMs,
  ): Promise<unknown> {
    const [name, ...rest] = args;
    const p = buffers ? c.callBuffer(String(name), ...rest) : c.call(String(name), ...rest);
    let t: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([p, new Promise((_, rej) => (t = setTimeout(() => rej(new AttemptTimeout(ms)), ms)))]);
    } catch (e) {
      if (e instanceof AttemptTimeout) c.disconnect(); // its late replies must not be taken for later calls'
      throw e;
    } finally {
      clearTimeout(t);
    }
  }

  /** The leader's client address: asks the known leader, then each seed, then the leader a seed names. */
  private async findLeader(deadline: number): Promise<Address> {
    if (this.leader) return this.leader;
    const tried = new Set<string>();
    const candidates = [...this.seeds];
    let hint: Address | undefined;
    while ((hint !== undefined || candidates.length > 0) && Date.now() < deadline) {
      const a = hint ?? candidates.shift()!;
      hint = undefined;
      if (tried.has(key(a))) continue;
      tried.add(key(a));
      try {
        const c = await this.conn(a);
        const s = JSON.parse(String(await this.attempt(c, ['DECREE', 'STATUS']))) as {
          role?: string;
          leaderClient?: string;
        };
        if (s.role === 'leader') {
          this.leader = a;
          return a;
        }
        if (s.leaderClient) hint = parseAddress(s.leaderClient);
      } catch (e) {
        this.drop(a);
        if (/^(WRONGPASS|NOAUTH)/.test((e as Error).message ?? '')) throw new DecreeReplyError((e as Error).message);
      }
    }
    throw new Error('no leader found (the cluster may be electing one)');
  }

  private async conn(a: Address): Promise<Redis> {
    const k = key(a);
    let c = this.conns.get(k);
    if (c && c.status === 'ready') return c;
    if (c) this.drop(a);
    c = new Redis({
      host: a.host,
      port: a.port,
      ...(this.o.password !== undefined ? { password: this.o.password } : {}),
      lazyConnect: true,
      protocol: 2, // no HELLO round trip on connect (the server speaks RESP3 too; RESP2 needs no negotiation)
      enableReadyCheck: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      retryStrategy: () => null,
      connectTimeout: this.o.attemptTimeoutMs,
    });
    c.on('error', () => {});
    this.conns.set(k, c);
    try {
      await c.connect();
    } catch (e) {
      this.drop(a);
      throw e;
    }
    return c;
  }

  private drop(a: Address): void {
    const k = key(a);
    const c = this.conns.get(k);
    if (c) {
      this.conns.delete(k);
      c.disconnect();
    }
  }
}
