/**
 * Storage acceptance, the whole cluster at once: 3 real processes with the file WAL under a
 * continuous write load (see load.ts) are all SIGKILLed together mid-load and restarted; every
 * acknowledged write must come back from the WALs alone (no replica kept it in memory).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startedCluster, waitFor } from './helpers.ts';
import { WriteLoad } from './load.ts';

const ids = ['r1', 'r2', 'r3'];
const f = startedCluster('kill9all', { storage: 'wal' });
let load: WriteLoad;

beforeAll(async () => {
  await f.cluster.leader(30_000);
  load = new WriteLoad(f.cluster, ids);
}, 60_000);

afterAll(async () => {
  await load?.stop();
});

describe('kill -9 of all three replicas at once under write load (file WAL)', () => {
  it('restarts with every acknowledged write', async () => {
    const t0 = Date.now();
    load.start('x');
    await waitFor('the load to get going', () => load.acked() >= 150, 40_000);
    await Promise.all(ids.map((id) => f.cluster.kill9(id)));
    await load.stop();
    const acked = load.acked();
    for (const id of ids) f.cluster.start(id);
    await Promise.all(ids.map((id) => f.cluster.procs.get(id)!.started(45_000)));
    const restarted = Date.now();
    await load.verify('after kill -9 of the whole cluster');
    expect(load.acked()).toBe(acked);
    console.log(
      `kill9-cluster: ${load.summary()}; restart ${((restarted - t0) / 1000).toFixed(1)}s, ` +
        `verified ${((Date.now() - t0) / 1000).toFixed(1)}s`,
    );
  }, 85_000);
});
