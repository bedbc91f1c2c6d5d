/**
 * The chunks workload's recorded clients: one operation in flight each, through ioredis (no retries),
 * every operation in the lincheck history. Linearizable GETs (and SET/CAS on two registers, INCR on a
 * counter) run all along, so they run during the configuration changes and the leader faults. Keys
 * rotate every `epochMs` so each key's sub-history stays small.
 */
import type { Redis } from 'ioredis';
import type { HistoryRecorder, OpKind } from '@decree/lincheck';
import type { CounterLedger } from './counters.ts';
import { causeLabel, connectNoRetry } from './redis.ts';
import type { Rng } from './rng.ts';
import { sleep } from './cluster.ts';

export function recordedKeys(epoch: number): { registers: string[]; counter: string } {
  return { registers: [`h${epoch}:x0`, `h${epoch}:x1`], counter: `h${epoch}:n` };
}

export interface RecordedStats {
  invoked: number;
  ok: number;
  unknown: number;
  gets: number;
  causes: Record<string, number>;
  samples: Record<string, string>;
  /** answers of the wrong type for their op (recorded as unknown) */
  crossed: string[];
  crossedCount: number;
}

export function newRecordedStats(): RecordedStats {
  return { invoked: 0, ok: 0, unknown: 0, gets: 0, causes: {}, samples: {}, crossed: [], crossedCount: 0 };
}

export interface RecordedOptions {
  client: number;
  recorder: HistoryRecorder;
  ledger: CounterLedger;
  rng: Rng;
  ports: ReadonlyMap<string, number>;
  isRunning: (id: string) => boolean;
  opTimeoutMs: number;
  /** performance.now() of the load start, and the key epoch length */
  origin: number;
  epochMs: number;
  running: () => boolean;
  stop: AbortSignal;
  stats: RecordedStats;
  /** every key this workload touched (for the final reads) */
  touched: Set<string>;
}

function resultOf(op: OpKind, v: unknown): string | number | boolean | null | undefined {
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

/** One recorded client. After any unknown outcome it goes on as a new process on a new connection. */
export async function runRecordedClient(o: RecordedOptions): Promise<void> {
  const { recorder, rng, stats, ledger } = o;
  let gen = 0;
  let proc = `r${o.client}.${gen}`;
  let conn: Redis | undefined;
  let target = '';
  let n = 0;
  const seen = new Map<string, string | null>();
  const onAbort = () => conn?.disconnect(false);
  o.stop.addEventListener('abort', onAbort, { once: true });
  try {
    while (o.running() && !o.stop.aborted) {
      if (!conn || conn.status !== 'ready') {
        conn?.disconnect(false);
        conn = undefined;
        const up = [...o.ports.keys()].filter((id) => o.isRunning(id));
        target = up.length ? rng.pick(up) : rng.pick([...o.ports.keys()]);
        try {
          conn = await connectNoRetry(o.ports.get(target)!, o.opTimeoutMs);
        } catch {
          await sleep(100);
          continue;
        }
        if (o.stop.aborted) break;
      }
      n++;
      const epoch = Math.floor((performance.now() - o.origin) / o.epochMs);
      const keys = recordedKeys(epoch);
      const reg = rng.pick(keys.registers);
      const x = rng.next();
      let op: OpKind;
      let key: string;
      let value: string | undefined;
      let expected: string | null | undefined;
      let send: (c: Redis) => Promise<unknown>;
      if (x < 0.2) {
        op = 'incr';
        key = keys.counter;
        send = (c) => c.incr(key);
      } else if (x < 0.6 || (x >= 0.85 && !seen.has(reg))) {
        op = 'get';
        key = x < 0.3 ? keys.counter : reg;
        send = (c) => c.get(key);
      } else if (x < 0.85) {
        op = 'set';
        key = reg;
        value = `${key}=r${o.client}.${n};`;
        const v = value;
        send = (c) => c.set(key, v);
      } else {
        op = 'cas';
        key = reg;
        value = `${key}=r${o.client}.${n};`;
        expected = seen.get(key) ?? null;
        const [v, e] = [value, expected];
        send = (c) => (e === null ? c.call('CASNX', key, v) : c.call('CAS', key, e, v));
      }
      o.touched.add(key);
      const h = op === 'cas' ? recorder.invoke(proc, op, key, value, expected) : recorder.invoke(proc, op, key, value);
      if (op === 'incr') ledger.sent(key, 'recorded');
      if (op === 'get') stats.gets++;
      stats.invoked++;
      const c = conn;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        c.disconnect(false);
      }, o.opTimeoutMs);
      let res: ReturnType<typeof resultOf>;
      try {
        const v = await send(c);
        res = resultOf(op, v);
        if (res === undefined) {
          stats.crossedCount++;
          if (stats.crossed.length < 20)
            stats.crossed.push(
              `${proc}@${target}: ${op.toUpperCase()} ${key} answered ${JSON.stringify(v)?.slice(0, 80)}`,
            );
          throw new Error(`unexpected-reply ${op}: ${JSON.stringify(v)?.slice(0, 80)}`);
        }
      } catch (e) {
        clearTimeout(timer);
        recorder.timeout(h);
        if (op === 'incr') ledger.doubt(key);
        stats.unknown++;
        const unexpected = (e as Error).message?.startsWith('unexpected-reply');
        const cause = unexpected ? 'unexpected-reply' : causeLabel(e, timedOut);
        stats.causes[cause] = (stats.causes[cause] ?? 0) + 1;
        stats.samples[cause] ??= ((e as Error).message ?? String(e)).slice(0, 160);
        conn.disconnect(false);
        conn = undefined;
        proc = `r${o.client}.${++gen}`;
        await sleep(rng.int(20, 100));
        continue;
      }
      clearTimeout(timer);
      recorder.complete(h, res);
      stats.ok++;
      if (op === 'incr') ledger.acked(key, res as number, `${proc}@${target}`);
      if (op === 'get' && (typeof res === 'string' || res === null)) seen.set(key, res);
      else if (op === 'set') seen.set(key, value!);
      else if (op === 'cas' && res === true) seen.set(key, value!);
      else if (op === 'cas' && res === false) seen.delete(key);
    }
  } finally {
    o.stop.removeEventListener('abort', onAbort);
    conn?.disconnect(false);
  }
}
