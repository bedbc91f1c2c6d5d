/**
 * SIGTERM to one replica process (the leader): it logs 'stopping', exits 0 within a few seconds,
 * its WAL opens cleanly and holds what it accepted, and the restarted process recovers and catches up.
 */
import path from 'node:path';
import { FileWalStore } from '@decree/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, RespClient, killAll, resp, tempDir, waitFor, writeClusterConfig } from './helpers.ts';

const tmp = tempDir('graceful');
let cluster: Cluster;
const ids = ['r1', 'r2', 'r3'];

beforeAll(async () => {
  const { configPath, replicas } = await writeClusterConfig(tmp.dir);
  cluster = new Cluster(configPath, replicas);
  await cluster.startAll();
}, 60_000);

afterAll(async () => {
  await killAll();
  tmp.remove();
});

async function settled(port: number, args: (string | number)[]) {
  return waitFor(
    `${args[0]} on ${port}`,
    async () => {
      const v = await resp(port, args, 8000);
      return v instanceof Error ? undefined : v;
    },
    20_000,
    200,
  );
}

describe('graceful stop (SIGTERM)', () => {
  it('stops the leader cleanly with an intact WAL; the restart recovers and catches up', async () => {
    let leader = await cluster.leader(30_000);
    // a pipelined burst of writes, so the WAL has many batches
    const c = await RespClient.connect(cluster.port(leader));
    const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => c.call(['SET', `k${i}`, `v${i}`])));
    // a SET answered TRYAGAIN (leadership moving on a loaded machine) is idempotent: sent again
    for (const [i, r] of replies.entries())
      if (r !== 'OK') replies[i] = await settled(cluster.port(leader), ['SET', `k${i}`, `v${i}`]);
    expect(replies.every((r) => r === 'OK')).toBe(true);
    // in a client session: a retry after an in-doubt TRYAGAIN is answered once, exactly
    expect(
      await settled(cluster.port(leader), ['DECREE.SESSION', `graceful-${process.pid}`, 1, 'INCRBY', 'n', 7]),
    ).toBe(7);
    c.close();
    leader = await cluster.leader(30_000); // the one to stop is the leader now
    const before = (await cluster.statuses([leader])).get(leader)!.executedUpTo;
    expect(before).toBeGreaterThan(0);

    const p = cluster.procs.get(leader)!;
    p.kill('SIGTERM');
    const stopping = await p.waitLog((l) => l.msg.startsWith('stopping'), 15_000);
    expect(stopping.signal).toBe('SIGTERM');
    expect(await p.exited(15_000)).toEqual({ code: 0, signal: null });
    expect(p.logs.some((l) => l.msg === 'stopped')).toBe(true);
    expect(p.logs.filter((l) => l.level >= 50)).toEqual([]);
    expect(p.stderr).toBe('');

    // the WAL opens without error and holds every slot this leader accepted up to the last one executed
    const store = new FileWalStore({ dir: path.join(tmp.dir, 'data', leader, 'default') });
    const rec = await store.recover();
    await store.close();
    expect(rec.promised.round).toBeGreaterThan(0);
    expect(rec.accepted.size).toBeGreaterThan(0);
    expect(Math.max(...rec.accepted.keys())).toBeGreaterThanOrEqual(before);

    // the others go on without it
    const survivors = ids.filter((i) => i !== leader);
    await cluster.leader(30_000, survivors);
    const n = String(
      await settled(cluster.port(survivors[0]!), ['DECREE.SESSION', `graceful-${process.pid}`, 2, 'INCRBY', 'n', 3]),
    );
    expect(n).toBe('10'); // applied once, however often it was retried
    expect(await settled(cluster.port(survivors[1]!), ['SET', 'while-down', 'yes'])).toBe('OK');

    // restart on the same data dir: recovers without error and catches up
    const again = cluster.start(leader);
    await again.started(45_000);
    await cluster.converged(ids, 45_000);
    const r = await RespClient.connect(cluster.port(leader));
    try {
      expect(await r.call(['READONLY'])).toBe('OK');
      expect(await r.call(['MGET', 'k0', 'k199', 'n', 'while-down'])).toEqual(['v0', 'v199', n, 'yes']);
    } finally {
      r.close();
    }
    expect(again.logs.filter((l) => l.level >= 40 && l.code !== 'connect').map((l) => l.msg)).toEqual([]);
    expect(again.stderr).toBe('');
  }, 85_000);
});
