/**
 * Three real `decree start` processes with `transport: "shm"`: the replicas talk through shared-memory
 * rings (files under a temp dir here; /dev/shm by default). A SET through one replica's RESP port is
 * read back through another's.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, killAll, tempDir, waitFor, writeClusterConfig } from '../../../apps/replica/test/helpers.ts';

const tmp = tempDir('shm-cluster');
const shmDir = path.join(tmp.dir, 'shm');
let cluster: Cluster;
const clients: Redis[] = [];

function redis(port: number): Redis {
  const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: true, retryStrategy: () => null, autoResendUnfulfilledCommands: false });
  c.on('error', () => {});
  clients.push(c);
  return c;
}

beforeAll(async () => {
  const { mkdirSync } = await import('node:fs');
  mkdirSync(shmDir, { recursive: true });
  const { configPath, replicas } = await writeClusterConfig(tmp.dir, { transport: 'shm', storage: 'memory', shm: { dir: shmDir, capacity: 1 << 20 } });
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
  });

  it('elects a leader; a SET through one replica reads back through another', async () => {
    const leader = await cluster.leader(30_000);
    const ids = ['r1', 'r2', 'r3'];
    const follower = ids.find((i) => i !== leader)!;
    const other = ids.find((i) => i !== leader && i !== follower)!;
    const w = redis(cluster.port(follower));
    expect(await w.set('shm-key', 'over shared memory')).toBe('OK'); // forwarded to the leader over a ring
    expect(await redis(cluster.port(other)).get('shm-key')).toBe('over shared memory');
    expect(await redis(cluster.port(leader)).get('shm-key')).toBe('over shared memory');
    for (let i = 0; i < 50; i++) expect(await w.incr('n')).toBe(i + 1);
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
});
