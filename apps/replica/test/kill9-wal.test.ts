/**
 * Storage acceptance: a 3-replica cluster of real processes with the file WAL under a continuous
 * write load (4 clients: INCR on 3 counters, SET of unique keys; every acknowledged write recorded,
 * see load.ts); each replica is SIGKILLed in turn (restarted, caught up, then the next). Afterwards
 * every acknowledged write must be present on every replica.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startedCluster, waitFor } from './helpers.ts';
import { WriteLoad } from './load.ts';

const ids = ['r1', 'r2', 'r3'];
const f = startedCluster('kill9', { storage: 'wal' });
let load: WriteLoad;

beforeAll(async () => {
  await f.cluster.leader(30_000);
  load = new WriteLoad(f.cluster, ids);
}, 60_000);

afterAll(async () => {
  await load?.stop();
});

describe('kill -9 of each replica in turn under write load (file WAL)', () => {
  it('loses no acknowledged write', async () => {
    const t0 = Date.now();
    const phases: string[] = [];
    const mark = (what: string) => phases.push(`${what} ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    load.start('a');
    await waitFor('the load to get going', () => load.acked() >= 30, 30_000);

    for (const id of ids) {
      await f.cluster.kill9(id);
      const atKill = load.acked();
      // the two survivors keep taking writes (through a new election if the leader was killed)
      await waitFor(`writes to go on while ${id} is down`, () => load.acked() >= atKill + 30, 40_000);
      mark(`${id} down, writes go on`);
      const p = f.cluster.start(id);
      await p.started(45_000);
      // caught up: it executed at least what the others had executed once it was up again
      const others = ids.filter((i) => i !== id);
      const st = await f.cluster.statuses(others);
      const target = Math.max(...[...st.values()].map((s) => s?.executedUpTo ?? 0));
      expect(target).toBeGreaterThan(0);
      await waitFor(
        `${id} to catch up to slot ${target}`,
        async () => ((await f.cluster.statuses([id])).get(id)?.executedUpTo ?? -1) >= target,
        45_000,
      );
      expect(p.logs.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual([]);
      mark(`${id} restarted, caught up`);
    }
    const afterRolling = load.acked();
    await waitFor('writes after the last restart', () => load.acked() >= afterRolling + 10, 30_000);
    await load.stop();
    expect(load.setsAcked.size).toBeGreaterThan(30);
    await load.verify('after the rolling kills');
    mark('verified');
    console.log(`kill9-wal: ${load.summary()}; ${phases.join(', ')}`);
  }, 85_000);
});
