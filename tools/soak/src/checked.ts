/**
 * The checked load: one operation in flight per connection, every op recorded for the
 * linearizability check. Keys rotate every `epochMs` (2 registers and 1 counter per epoch), so each
 * key's sub-history stays small however long the run is.
 */
import { RespConnection, RespError, type RespValue, type Rng } from '@decree/chaos';
import type { HistoryRecorder, OpKind } from '@decree/lincheck';
import type { Ledger, SetEntry } from './ledger.ts';
import type { Meter } from './meter.ts';

export interface CheckedOptions {
  recorder: HistoryRecorder;
  ledger: Ledger;
  meter: Meter;
  rng: Rng;
  ports: readonly number[];
  opTimeoutMs: number;
  /** performance.now() of the load start and the epoch length */
  origin: number;
  epochMs: number;
  running: () => boolean;
  /** aborting closes the connection at once: the operation in flight gets an unknown outcome */
  stop?: AbortSignal;
  client: number;
  stats: CheckedStats;
}

export interface CheckedStats {
  invoked: number;
  ok: number;
  unknown: number;
}

export function newCheckedStats(): CheckedStats {
  return { invoked: 0, ok: 0, unknown: 0 };
}

export function checkedKeys(epoch: number): { registers: string[]; counter: string } {
  return { registers: [`h${epoch}:x0`, `h${epoch}:x1`], counter: `h${epoch}:n` };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

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
 * One checked client. Any error reply, timeout or broken connection is an unknown outcome; the
 * client then continues as a new process id on a fresh connection to a random replica.
 */
export async function runCheckedClient(o: CheckedOptions): Promise<void> {
  const { recorder, ledger, meter, rng, stats } = o;
  let gen = 0;
  let proc = `c${o.client}.${gen}`;
  let conn: RespConnection | undefined;
  let n = 0;
  const seen = new Map<string, string | null>();
  o.stop?.addEventListener('abort', () => conn?.close(), { once: true });
  while (o.running() && !o.stop?.aborted) {
    if (!conn || conn.closed) {
      try {
        conn = await RespConnection.connect(rng.pick(o.ports), '127.0.0.1', o.opTimeoutMs);
      } catch {
        conn = undefined;
        await sleep(100);
        continue;
      }
    }
    n++;
    const epoch = Math.floor((performance.now() - o.origin) / o.epochMs);
    const keys = checkedKeys(epoch);
    const reg = rng.pick(keys.registers);
    const r = rng.next();
    let op: OpKind;
    let key: string;
    let args: string[];
    let value: string | undefined;
    let expected: string | null | undefined;
    if (r < 0.25) {
      op = 'incr';
      key = keys.counter;
      args = ['INCR', key];
    } else if (r < 0.5 || (r >= 0.8 && !seen.has(reg))) {
      op = 'get';
      key = r < 0.4 ? keys.counter : reg;
      args = ['GET', key];
    } else if (r < 0.8) {
      op = 'set';
      key = reg;
      value = `${key}=c${o.client}.${n};`;
      args = ['SET', key, value];
    } else {
      op = 'cas';
      key = reg;
      value = `${key}=c${o.client}.${n};`;
      expected = seen.get(key) ?? null;
      args = expected === null ? ['CASNX', key, value] : ['CAS', key, expected, value];
    }
    const h = op === 'cas' ? recorder.invoke(proc, op, key, value, expected) : recorder.invoke(proc, op, key, value);
    const invoke = performance.now();
    let entry: SetEntry | undefined;
    if (op === 'set' || op === 'cas') entry = ledger.setInvoked(key, `c${o.client}.${n}`, invoke);
    if (op === 'incr') ledger.incrInvoked(key);
    stats.invoked++;
    let reply: RespValue;
    let res: ReturnType<typeof resultOf>;
    try {
      reply = await conn.call(args, o.opTimeoutMs);
      if (reply instanceof RespError) throw reply;
      res = resultOf(op, reply);
      if (res === undefined) throw new Error(`unexpected-reply ${op}: ${JSON.stringify(reply).slice(0, 100)}`);
    } catch (e) {
      const t = performance.now();
      recorder.timeout(h);
      stats.unknown++;
      if (entry) ledger.setUnknown(entry);
      const m = (e as Error).message ?? String(e);
      if (e instanceof RespError || m.startsWith('unexpected-reply')) meter.error(t, m);
      else meter.unknown(t, 1, m.startsWith('no reply') ? 'timeout' : 'connection-lost');
      conn.close();
      conn = undefined;
      proc = `c${o.client}.${++gen}`;
      await sleep(rng.int(20, 100));
      continue;
    }
    const t = performance.now();
    recorder.complete(h, res);
    stats.ok++;
    if (entry && res === false) ledger.setNotApplied(entry);
    else if (entry) ledger.setAcked(entry, t);
    else if (op === 'incr') ledger.incrAcked(key, res as number);
    meter.ok(t, 'checked', op === 'get' ? undefined : { invoke });
    if (op === 'get' && (typeof res === 'string' || res === null)) seen.set(key, res);
    else if (op === 'set') seen.set(key, value!);
    else if (op === 'cas' && res === true) seen.set(key, value!);
    else if (op === 'cas' && res === false) seen.delete(key);
  }
  conn?.close();
}
