/**
 * Three real `decree start` processes whose replicas talk through a throw-away nats-server:
 * replication, kill -9 of the leader, a new election, writes going on.
 */
import { startNatsServer, type NatsServerHandle } from '@decree/transport-nats/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, killAll, resp, tempDir, waitFor, writeClusterConfig } from './helpers.ts';

const tmp = tempDir('nats');
let nats: NatsServerHandle;
let cluster: Cluster;
const ids = ['r1', 'r2', 'r3'];
const session = `nats-cluster-${process.pid}`;

beforeAll(async () => {
  nats = await startNatsServer();
  const { configPath, replicas } = await writeClusterConfig(tmp.dir, {
    transport: 'nats',
    nats: { servers: [nats.url] },
  });
  cluster = new Cluster(configPath, replicas);
  await cluster.startAll();
}, 60_000);

afterAll(async () => {
  await killAll();
  await nats?.stop();
  tmp.remove();
});

/** Retries a command while the cluster settles (TRYAGAIN / no leader yet); returns its reply. */
async function settled(port: number, args: (string | number)[]) {
  return waitFor(
    `${args.join(' ')} on ${port}`,
    async () => {
      const v = await resp(port, args, 8000);
      return v instanceof Error ? undefined : v;
    },
    20_000,
    200,
  );
}

describe('3 replica processes over NATS', () => {
  let leader: string;

  it('starts with transport "nats" and replicates writes sent to any replica', async () => {
    expect(cluster.procs.get('r1')!.logs.find((l) => l.msg === 'replica started')!.transport).toBe('nats');
    leader = await cluster.leader(30_000);
    const follower = ids.find((i) => i !== leader)!;
    expect(await settled(cluster.port(follower), ['SET', 'k', 'v1'])).toBe('OK');
    // INCRs in a client session: a retry after an in-doubt TRYAGAIN is answered once, exactly
    expect(await settled(cluster.port(leader), ['DECREE.SESSION', session, 1, 'INCR', 'n'])).toBe(1);
    expect(await settled(cluster.port(follower), ['DECREE.SESSION', session, 2, 'INCR', 'n'])).toBe(2);
    for (const id of ids) {
      expect(await settled(cluster.port(id), ['GET', 'k'])).toBe('v1');
      expect(await settled(cluster.port(id), ['GET', 'n'])).toBe('2');
    }
  });

  it('kill -9 of the leader: the survivors elect a new one over NATS and writes go on', async () => {
    await cluster.kill9(leader);
    const survivors = ids.filter((i) => i !== leader);
    const next = await cluster.leader(30_000, survivors);
    expect(survivors).toContain(next);
    // in the session, each INCR applies once however often it is retried
    let last = 2;
    for (const id of survivors) {
      const v = (await settled(cluster.port(id), ['DECREE.SESSION', session, last + 1, 'INCR', 'n'])) as number;
      expect(v).toBe(last + 1);
      last = v;
    }
    expect(await settled(cluster.port(next), ['SET', 'k', 'v2'])).toBe('OK');
    const slot = await cluster.converged(survivors);
    expect(slot).toBeGreaterThan(0);
    for (const id of survivors) {
      expect(await settled(cluster.port(id), ['GET', 'k'])).toBe('v2');
      expect(await settled(cluster.port(id), ['GET', 'n'])).toBe(String(last));
    }
  });
});
