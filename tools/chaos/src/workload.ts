import type { HistoryRecorder, OpKind } from '@decree/lincheck';
import { RespConnection, RespError, type RespValue } from './resp.ts';
import type { Rng } from './rng.ts';
import { sleep } from './cluster.ts';

export const REGISTER_KEYS = ['x0', 'x1', 'x2'] as const;
export const COUNTER_KEYS = ['n0', 'n1'] as const;
export const ALL_KEYS: readonly string[] = [...REGISTER_KEYS, ...COUNTER_KEYS];

export interface WorkloadStats {
  invoked: number;
  ok: number;
  /** error reply, no reply within the op timeout, or a broken connection: outcome unknown */
  unknown: number;
  /** certain failures (recorded ok:false); this workload records none: no error reply proves non-execution */
  failed: number;
  /** unknown outcomes by cause */
  causes: Record<string, number>;
  /** the first message seen per cause */
  samples: Record<string, string>;
  connectFailures: number;
}

export function newStats(): WorkloadStats {
  return { invoked: 0, ok: 0, unknown: 0, failed: 0, causes: {}, samples: {}, connectFailures: 0 };
}

export interface ClientOptions {
  recorder: HistoryRecorder;
  stats: WorkloadStats;
  rng: Rng;
  /** client ports of the replicas, one is picked at random per connection */
  ports: readonly number[];
  opTimeoutMs: number;
  /** false stops the client after its current operation */
  running: () => boolean;
  /** client number, used in process ids and unique values */
  client: number;
}

function cause(e: unknown): string {
  if (e instanceof RespError) return e.message.split(' ')[0] ?? 'ERR';
  const m = (e as Error).message ?? String(e);
  if (m.startsWith('no reply')) return 'timeout';
  if (m.includes('closed') || m.includes('ECONNRESET') || m.includes('EPIPE')) return 'connection-lost';
  return 'other';
}

/** Interprets a reply for the recorder; undefined when it is not a well-formed answer of that op. */
function resultOf(op: OpKind, v: RespValue): string | number | boolean | null | undefined {
  switch (op) {
    case 'get':
      return v === null || typeof v === 'string' ? v : undefined;
    case 'set':
      return v === 'OK' ? 'OK' : undefined;
    case 'incr':
      return typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined;
    case 'cas':
      return v === 1 ? true : v === 0 ? false : undefined;
    default:
      return undefined;
  }
}

/**
 * One client: one connection to a random replica, one operation in flight, recorded in the
 * history. Registers get get/set/cas with values unique to the run; counters get get/incr. Any
 * error reply, timeout or broken connection is recorded as an unknown outcome, and the client
 * continues as a new process (new process id) on a fresh connection to a random replica.
 */
export async function runClient(o: ClientOptions): Promise<void> {
  const { recorder, stats, rng } = o;
  let gen = 0;
  let proc = `c${o.client}.${gen}`;
  let conn: RespConnection | undefined;
  let n = 0;
  /** the last value this client saw per register (used as a cas expectation) */
  const seen = new Map<string, string | null>();
  while (o.running()) {
    if (!conn || conn.closed) {
      try {
        conn = await RespConnection.connect(rng.pick(o.ports), '127.0.0.1', o.opTimeoutMs);
      } catch {
        conn = undefined;
        stats.connectFailures++;
        await sleep(100);
        continue;
      }
    }
    n++;
    const r = rng.next();
    const reg = rng.pick(REGISTER_KEYS);
    let op: OpKind;
    let key: string;
    let args: (string | number)[];
    let value: string | undefined;
    let expected: string | null | undefined;
    if (r < 0.2) {
      op = 'incr';
      key = rng.pick(COUNTER_KEYS);
      args = ['INCR', key];
    } else if (r < 0.5 || (r >= 0.8 && !seen.has(reg))) {
      // (a cas on a register whose value this client does not know reads it first)
      op = 'get';
      key = r < 0.5 ? rng.pick(ALL_KEYS) : reg;
      args = ['GET', key];
    } else if (r < 0.8) {
      op = 'set';
      key = reg;
      value = `v${o.client}.${n}`;
      args = ['SET', key, value];
    } else {
      op = 'cas';
      key = reg;
      value = `v${o.client}.${n}`;
      expected = seen.get(key) ?? null;
      args = expected === null ? ['CASNX', key, value] : ['CAS', key, expected, value];
    }
    const h = op === 'cas' ? recorder.invoke(proc, op, key, value, expected) : recorder.invoke(proc, op, key, value);
    stats.invoked++;
    let reply: RespValue;
    try {
      reply = await conn.call(args, o.opTimeoutMs);
      if (reply instanceof RespError) throw reply;
    } catch (e) {
      recorder.timeout(h);
      stats.unknown++;
      const c = cause(e);
      stats.causes[c] = (stats.causes[c] ?? 0) + 1;
      stats.samples[c] ??= (e as Error).message.slice(0, 200);
      conn.close();
      conn = undefined;
      proc = `c${o.client}.${++gen}`;
      await sleep(rng.int(20, 100));
      continue;
    }
    const res = resultOf(op, reply);
    if (res === undefined) {
      // a reply we cannot interpret: unknown outcome, and say so
      recorder.timeout(h);
      stats.unknown++;
      stats.causes['unexpected-reply'] = (stats.causes['unexpected-reply'] ?? 0) + 1;
      stats.samples['unexpected-reply'] ??= `${op}: ${JSON.stringify(reply).slice(0, 200)}`;
      conn.close();
      conn = undefined;
      proc = `c${o.client}.${++gen}`;
      continue;
    }
    recorder.complete(h, res);
    stats.ok++;
    if (op === 'get' && (typeof res === 'string' || res === null)) seen.set(key, res);
    else if (op === 'set') seen.set(key, value!);
    else if (op === 'cas' && res === true) seen.set(key, value!);
    else if (op === 'cas' && res === false) seen.delete(key); // stale: the next cas on it reads first
  }
  conn?.close();
}
