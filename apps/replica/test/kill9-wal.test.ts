/**
 * Storage acceptance: a 3-replica cluster of real processes with the file WAL under a continuous
 * write load; each replica is SIGKILLed in turn (restarted, caught up, then the next). Afterwards
 * every ACKNOWLEDGED write must be present on every replica.
 *
 * Bookkeeping: a SET of a unique key counts once it was answered OK; an INCR counts once it was
 * answered with an integer. An INCR answered with an error or not answered at all (timeout, broken
 * connection) is "in doubt": it may or may not have executed. So each counter must be
 * >= its acknowledged INCRs and <= acknowledged + in doubt, and exactly equal when none was in doubt.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, RespClient, RespError, killAll, resp, sleep, tempDir, waitFor, writeClusterConfig } from './helpers.ts';

const tmp = tempDir('kill9');
let cluster: Cluster;
const ids = ['r1', 'r2', 'r3'];
const COUNTERS = ['ctr:a', 'ctr:b', 'ctr:c'];
const WORKERS = 4;

const book = {
  setsAcked: new Map<string, string>(),
  setsFailed: 0,
  incrAcked: new Map<string, number>(COUNTERS.map((c) => [c, 0])),
  incrDoubt: new Map<string, number>(COUNTERS.map((c) => [c, 0])),
  /** the last value each counter was seen to have through an acknowledged INCR */
  incrSeen: new Map<string, number>(COUNTERS.map((c) => [c, 0])),
  errors: [] as string[],
};
const acked = () => book.setsAcked.size + [...book.incrAcked.values()].reduce((a, b) => a + b, 0);
let running = true;

/** One client connection at a time, one command in flight; moves to the next replica on any failure. */
async function worker(w: number): Promise<void> {
  let target = w % ids.length;
  let client: RespClient | undefined;
  let n = 0;
  while (running) {
    if (!client || client.closed) {
      try {
        client = await RespClient.connect(cluster.port(ids[target]!), '127.0.0.1', 2000);
      } catch {
        client = undefined;
        target = (target + 1) % ids.length;
        await sleep(100);
        continue;
      }
    }
    n++;
    const isIncr = n % 2 === 0;
    const counter = COUNTERS[(n + w) % COUNTERS.length]!;
    const key = `u:${w}:${n}`;
    const value = `v${w}.${n}`;
    try {
      const r = await client.call(isIncr ? ['INCR', counter] : ['SET', key, value], 12_000);
      if (r instanceof RespError) throw r;
      if (isIncr) {
        expect(typeof r).toBe('number');
        book.incrAcked.set(counter, book.incrAcked.get(counter)! + 1);
        book.incrSeen.set(counter, Math.max(book.incrSeen.get(counter)!, r as number));
      } else {
        expect(r).toBe('OK');
        book.setsAcked.set(key, value);
      }
    } catch (e) {
      if (isIncr) book.incrDoubt.set(counter, book.incrDoubt.get(counter)! + 1);
      else book.setsFailed++;
      if (book.errors.length < 50) book.errors.push(`${ids[target]} ${isIncr ? 'INCR' : 'SET'}: ${(e as Error).message}`);
      client.close();
      client = undefined;
      target = (target + 1) % ids.length;
      await sleep(50);
    }
  }
  client?.close();
}

beforeAll(async () => {
  const { configPath, replicas } = await writeClusterConfig(tmp.dir, { storage: 'wal' });
  cluster = new Cluster(configPath, replicas);
  await cluster.startAll();
  await cluster.leader(30_000);
}, 60_000);

afterAll(async () => {
  running = false;
  await killAll();
  tmp.remove();
});

describe('kill -9 of each replica in turn under write load (file WAL)', () => {
  it('loses no acknowledged write', async () => {
    const loops = Array.from({ length: WORKERS }, (_, w) => worker(w));
    await waitFor('the load to get going', () => acked() >= 50, 30_000);

    for (const id of ids) {
      await cluster.kill9(id);
      const atKill = acked();
      // the two survivors keep taking writes (through a new election if the leader was killed)
      await waitFor(`writes to go on while ${id} is down`, () => acked() >= atKill + 50, 40_000);
      const p = cluster.start(id);
      await p.started(45_000);
      // caught up: it executed at least what the others had executed once it was up again
      const others = ids.filter((i) => i !== id);
      const st = await cluster.statuses(others);
      const target = Math.max(...[...st.values()].map((s) => s?.executedUpTo ?? 0));
      expect(target).toBeGreaterThan(0);
      await waitFor(`${id} to catch up to slot ${target}`, async () => ((await cluster.statuses([id])).get(id)?.executedUpTo ?? -1) >= target, 45_000);
      expect(p.logs.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual([]);
    }

    const progressAfterAll = acked();
    await waitFor('writes after the last restart', () => acked() >= progressAfterAll + 20, 30_000);
    running = false;
    await Promise.all(loops);

    // every replica has executed the same slots; check each one's own state (READONLY) and the log (linearizable)
    await cluster.converged(ids, 45_000);
    const keys = [...book.setsAcked.keys()];
    expect(keys.length).toBeGreaterThan(50);
    for (const id of ids) {
      const c = await RespClient.connect(cluster.port(id));
      try {
        expect(await c.call(['READONLY'])).toBe('OK');
        for (let i = 0; i < keys.length; i += 500) {
          const chunk = keys.slice(i, i + 500);
          const got = (await c.call(['MGET', ...chunk])) as (string | null)[];
          const missing = chunk.filter((k, j) => got[j] !== book.setsAcked.get(k));
          expect(missing, `${id}: acknowledged keys missing or wrong`).toEqual([]);
        }
        for (const ctr of COUNTERS) {
          const v = Number(await c.call(['GET', ctr]));
          const ack = book.incrAcked.get(ctr)!;
          const doubt = book.incrDoubt.get(ctr)!;
          expect(v, `${id} ${ctr}`).toBeGreaterThanOrEqual(ack);
          expect(v, `${id} ${ctr}`).toBeGreaterThanOrEqual(book.incrSeen.get(ctr)!);
          expect(v, `${id} ${ctr}: more increments than were ever sent`).toBeLessThanOrEqual(ack + doubt);
          if (doubt === 0) expect(v, `${id} ${ctr}: no INCR in doubt`).toBe(ack);
        }
      } finally {
        c.close();
      }
    }
    // and a linearizable read through the leader agrees
    const leader = await cluster.leader(30_000);
    const vals = (await resp(cluster.port(leader), ['MGET', ...COUNTERS])) as string[];
    for (const [i, ctr] of COUNTERS.entries()) expect(Number(vals[i])).toBeGreaterThanOrEqual(book.incrAcked.get(ctr)!);
    console.log(
      `kill9-wal: ${book.setsAcked.size} SETs acked (${book.setsFailed} failed), INCR acked ${JSON.stringify(Object.fromEntries(book.incrAcked))}, in doubt ${JSON.stringify(Object.fromEntries(book.incrDoubt))}; first errors: ${book.errors.slice(0, 5).join(' | ')}`,
    );
  }, 85_000);
});
