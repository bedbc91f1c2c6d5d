/**
 * Three real `decree start` processes with `transport: "shm"`: the replicas talk through shared-memory
 * rings (files under a temp dir here; /dev/shm by default). A SET through one replica's RESP port is
 * read back through another's; kill -9 of the leader (its rings stay behind), a new leader, and the
 * restarted process reusing its rings and catching up.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  idempotent,
  killAll,
  tempDir,
  waitFor,
  writeClusterConfig,
} from '../../../apps/replica/test/helpers.ts';

const tmp = tempDir('shm-cluster');
const shmDir = path.join(tmp.dir, 'shm');
let cluster: Cluster;
const clients: Redis[] = [];

function redis(port: number): Redis {
  const c = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: true,
    retryStrategy: () => null,
    autoResendUnfulfilledCommands: false,
  });
  c.on('error', () => {});
  clients.push(c);
  return c;
}

beforeAll(async () => {
  const { mkdirSync } = await import('node:fs');
  mkdirSync(shmDir, { recursive: true });
  const { configPath, replicas } = await writeClusterConfig(tmp.dir, {
    transport: 'shm',
    storage: 'wal',
    shm: { dir: shmDir, capacity: 1 << 20 },
  });
  cluster = new Cluster(configPath, replicas);
  await cluster.startAll();
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await killAll();
  tmp.remove();
});

describe('3 replica processes over the shm transport', () => {
  it('creates one ring per directed pair', () => {
    const rings = readdirSync(shmDir).filter((f) => f.endsWith('.ring'));
    expect(rings.length).toBe(6);
    for (const p of cluster.procs.values())
      expect(p.logs.find((l) => l.msg === 'replica started')!.transport).toBe('shm');
  });

  it('elects a leader; a SET through one replica reads back through another', async () => {
    const leader = await cluster.leader(30_000);
    const ids = ['r1', 'r2', 'r3'];
    const follower = ids.find((i) => i !== leader)!;
    const other = ids.find((i) => i !== leader && i !== follower)!;
    const w = redis(cluster.port(follower));
    // (leadership can move again on a loaded machine: the idempotent SET and GETs are retried, and the
    // INCRs go in a client session, so a retry after an in-doubt TRYAGAIN is answered once, exactly)
    // forwarded to the leader over a ring
    expect(await idempotent('SET shm-key', () => w.set('shm-key', 'over shared memory'))).toBe('OK');
    expect(await idempotent(`GET shm-key on ${other}`, () => redis(cluster.port(other)).get('shm-key'))).toBe(
      'over shared memory',
    );
    expect(await idempotent(`GET shm-key on ${leader}`, () => redis(cluster.port(leader)).get('shm-key'))).toBe(
      'over shared memory',
    );
    const session = `shm-cluster-${process.pid}`;
    for (let i = 0; i < 50; i++)
      expect(
        await idempotent(`INCR n #${i + 1}`, () => w.call('DECREE.SESSION', session, String(i + 1), 'INCR', 'n')),
      ).toBe(i + 1);
    await cluster.converged(ids);
    const r = redis(cluster.port(other));
    expect(await r.call('READONLY')).toBe('OK');
    expect(await r.get('n')).toBe('50'); // replicated to every replica's state machine
    const st = await waitFor('statuses', async () => {
      const s = await cluster.statuses(ids);
      return [...s.values()].every((x) => x !== undefined) ? s : undefined;
    });
    expect(new Set([...st.values()].map((s) => s!.executedUpTo)).size).toBe(1);
  });

  it(
    'kill -9 of the leader: the survivors elect a new one over their ' +
      'rings; the restarted replica reuses its rings and catches up',
    async () => {
      const ids = ['r1', 'r2', 'r3'];
      const old = await cluster.leader(30_000);
      await cluster.kill9(old);
      const survivors = ids.filter((i) => i !== old);
      const next = await cluster.leader(30_000, survivors);
      expect(survivors).toContain(next);
      const w = redis(cluster.port(survivors.find((i) => i !== next)!));
      const v = await waitFor(
        'INCR after the kill',
        async () => {
          try {
            return await w.incr('n');
          } catch {
            return undefined;
          }
        },
        20_000,
        200,
      );
      expect(v).toBeGreaterThan(50);
      // a SIGKILLed reader leaves its rings
      expect(readdirSync(shmDir).filter((f) => f.endsWith('.ring')).length).toBe(6);
      const p = cluster.start(old);
      await p.started(45_000);
      // the restart can move leadership on a loaded machine: the idempotent SET is retried
      expect(
        await idempotent(`SET after-restart through ${next}`, () =>
          redis(cluster.port(next)).set('after-restart', 'yes'),
        ),
      ).toBe('OK');
      await cluster.converged(ids, 30_000);
      const r = redis(cluster.port(old));
      expect(await r.call('READONLY')).toBe('OK');
      expect(await r.mget('n', 'after-restart', 'shm-key')).toEqual([String(v), 'yes', 'over shared memory']);
    },
  );
});
