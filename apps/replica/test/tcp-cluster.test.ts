/**
 * Three real `decree start` processes over TCP with WAL storage: replication through any replica,
 * kill -9 of the leader, a new election, and the restarted process catching up from its WAL + peers.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { idempotent, resp, startedCluster, waitFor } from './helpers.ts';

const f = startedCluster('tcp');
const clients: Redis[] = [];

/** An ioredis client that never queues or resends on its own (a test must see each failure). */
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

afterAll(() => {
  for (const c of clients) c.disconnect();
});

describe('3 replica processes over TCP with WAL storage', () => {
  let leader: string;
  const ids = ['r1', 'r2', 'r3'];

  it('elects one leader and replicates SET/INCR sent to a follower; every replica reads them back', async () => {
    leader = await f.cluster.leader(30_000);
    expect(ids).toContain(leader);
    const follower = ids.find((i) => i !== leader)!;
    const c = redis(f.cluster.port(follower));
    // (leadership can move again on a loaded machine: the idempotent SET and GETs are retried, and the
    // INCRs go in a client session, so a retry after an in-doubt TRYAGAIN is answered once, exactly)
    expect(await idempotent('SET greeting', () => c.set('greeting', 'hello'))).toBe('OK'); // forwarded to the leader
    const session = `tcp-cluster-${process.pid}`;
    const once = (seq: number, ...cmd: string[]) =>
      idempotent(`${cmd.join(' ')} (session seq ${seq})`, () => c.call('DECREE.SESSION', session, String(seq), ...cmd));
    expect(await once(1, 'INCR', 'counter')).toBe(1);
    expect(await once(2, 'INCR', 'counter')).toBe(2);
    expect(await once(3, 'INCRBY', 'counter', '40')).toBe(42);
    for (const id of ids) {
      const r = redis(f.cluster.port(id));
      // linearizable read through the log
      expect(await idempotent(`GET greeting on ${id}`, () => r.get('greeting'))).toBe('hello');
      expect(await idempotent(`GET counter on ${id}`, () => r.get('counter'))).toBe('42');
      expect(await idempotent(`GET missing on ${id}`, () => r.get('missing'))).toBeNull();
    }
    // once every replica executed the same slots, a READONLY (local, possibly stale) read sees them too
    await f.cluster.converged(ids);
    for (const id of ids) {
      const r = redis(f.cluster.port(id));
      expect(await r.call('READONLY')).toBe('OK');
      expect(await r.mget('greeting', 'counter')).toEqual(['hello', '42']);
    }
  });

  it('kill -9 of the leader: a new leader is elected and writes go on', async () => {
    const old = leader;
    await f.cluster.kill9(old);
    const survivors = ids.filter((i) => i !== old);
    const next = await f.cluster.leader(30_000, survivors);
    expect(next).not.toBe(old);
    expect(survivors).toContain(next);
    // writes through each survivor (one is the new leader, one forwards to it)
    for (const id of survivors) {
      const r = redis(f.cluster.port(id));
      const v = await waitFor(
        `INCR through ${id}`,
        async () => {
          try {
            return await r.incr('counter');
          } catch {
            return undefined; // e.g. TRYAGAIN while its view of the leader settles
          }
        },
        20_000,
        200,
      );
      expect(v).toBeGreaterThan(42);
    }
    // SET is idempotent: a TRYAGAIN (leadership moving again on a loaded machine) is retried
    expect(
      await waitFor(
        `SET through ${next}`,
        async () => {
          try {
            return await redis(f.cluster.port(next)).set('after-kill', 'yes');
          } catch {
            return undefined;
          }
        },
        20_000,
        200,
      ),
    ).toBe('OK');
    // a linearizable GET is idempotent: retried like the SET
    expect(
      Number(
        await idempotent(`GET counter through ${survivors[0]}`, () =>
          redis(f.cluster.port(survivors[0]!)).get('counter'),
        ),
      ),
    ).toBeGreaterThanOrEqual(44);
    leader = old; // the one to restart
  });

  it('the killed process restarted on the same data dir recovers and catches up', async () => {
    const killed = leader;
    const p = f.cluster.start(killed);
    await p.started(45_000);
    const st = await f.cluster.statuses(ids);
    expect(st.get(killed)).toBeDefined();
    // a linearizable read through a survivor (retried: the restart may cause an election)
    const latest = await waitFor(
      'GET counter through a survivor',
      async () => {
        const v = await resp(f.cluster.port(ids.find((i) => i !== killed)!), ['GET', 'counter'], 8000);
        return typeof v === 'string' ? v : undefined;
      },
      30_000,
      200,
    );
    const slot = await f.cluster.converged(ids, 45_000);
    const s = await f.cluster.statuses(ids);
    for (const id of ids) expect(s.get(id)!.executedUpTo).toBe(slot);
    const r = redis(f.cluster.port(killed));
    expect(await r.call('READONLY')).toBe('OK');
    expect(await r.get('counter')).toBe(latest);
    expect(await r.get('greeting')).toBe('hello');
    expect(await r.get('after-kill')).toBe('yes');
    expect(p.stderr).toBe('');
    expect(p.logs.filter((l) => l.level >= 50)).toEqual([]);
    // and the cluster still takes writes with all three up
    await f.cluster.leader(30_000, ids);
    expect(
      await waitFor(
        'a write after the restart',
        async () => {
          try {
            return await redis(f.cluster.port(killed)).set('final', 'ok');
          } catch {
            return undefined;
          }
        },
        20_000,
        200,
      ),
    ).toBe('OK');
  });
});
