/**
 * @decree/client against 3 real replica processes: typed calls, leader discovery, readFresh, and
 * exactly-once writes while the leader is killed (kill -9) under a retrying client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from '../../../apps/kv/test/process-cluster.ts';
import { DecreeClient, DecreeReplyError, DecreeTimeoutError } from '../src/index.ts';

describe('@decree/client over a 3-process cluster', () => {
  let c: ProcessCluster;
  const seeds = () => c.members.map((m) => `127.0.0.1:${m.clientPort}`);
  beforeAll(async () => {
    c = await new ProcessCluster({ password: 'pw-123' }).start();
  }, 60_000);
  afterAll(async () => {
    await c?.stop();
  });

  it('typed calls, leader discovery from a follower seed, readFresh sees its own writes', async () => {
    const leader = await c.waitForLeader();
    const follower = c.members.find((m) => m !== leader)!;
    const client = new DecreeClient({
      seeds: [`127.0.0.1:${follower.clientPort}`],
      password: 'pw-123',
      timeoutMs: 20_000,
    });
    try {
      await client.set('a', '1');
      expect(await client.get('a')).toBe('1');
      expect(await client.get('missing')).toBe(null);
      await client.mset({ b: '2', c: '3' });
      expect(await client.mget(['a', 'b', 'c', 'zz'])).toEqual(['1', '2', '3', null]);
      expect(await client.exists('a', 'b', 'zz')).toBe(2);
      expect(await client.incr('n')).toBe(1);
      expect(await client.incr('n', 41)).toBe(42);
      expect(await client.cas('a', '1', 'one')).toBe(true);
      expect(await client.cas('a', '1', 'uno')).toBe(false);
      expect(await client.cas('fresh', null, 'x')).toBe(true);
      expect(await client.del('b', 'c', 'zz')).toBe(2);
      expect(client.lastWriteSlot).toBeGreaterThan(0);
      expect(await client.readFresh('a')).toBe('one');
      await expect(client.incr('a')).rejects.toBeInstanceOf(DecreeReplyError); // not an integer: no retry
    } finally {
      await client.close();
    }
  }, 60_000);

  it('a wrong password ends in an error within the deadline, never a hang or a success', async () => {
    const client = new DecreeClient({ seeds: seeds(), password: 'nope', timeoutMs: 2_000, attemptTimeoutMs: 500 });
    try {
      await expect(client.get('a')).rejects.toSatisfy(
        (e: unknown) => e instanceof DecreeTimeoutError || e instanceof DecreeReplyError,
      );
    } finally {
      await client.close();
    }
  }, 20_000);

  it('exactly-once: a session INCR acknowledged then retried after kill -9 of the leader is applied once', async () => {
    const leader = await c.waitForLeader();
    // first attempt: applied by the leader, but "the reply is lost" (we drop it and never tell the client)
    const raw = c.redis(leader);
    await raw.connect();
    expect(await raw.call('DECREE.SESSION', 'fixed-client', '7', 'INCRBY', 'eo', '1')).toBe(1);
    raw.disconnect();
    await c.kill9(leader);
    // the client retries the same (clientId, seq) against the new leader
    const client = new DecreeClient({
      seeds: seeds(),
      password: 'pw-123',
      clientId: 'fixed-client',
      firstSeq: 7,
      timeoutMs: 30_000,
    });
    try {
      expect(await client.incr('eo')).toBe(1); // the cached result of the first application
      expect(await client.get('eo')).toBe('1'); // applied once
      expect(await client.incr('eo')).toBe(2); // the next seq applies
    } finally {
      await client.close();
    }
    await c.spawn(leader); // back for the next test
  }, 90_000);

  it('exactly-once under a kill -9 of the leader while ' +
    'the client is writing: every INCR lands exactly once', async () => {
    const leader = await c.waitForLeader();
    const client = new DecreeClient({ seeds: seeds(), password: 'pw-123', timeoutMs: 30_000, attemptTimeoutMs: 1_000 });
    try {
      const results: number[] = [];
      const writer = (async () => {
        for (let i = 0; i < 40; i++) results.push(await client.incr('race'));
      })();
      await new Promise((r) => setTimeout(r, 150));
      await c.kill9(leader); // mid-stream: some INCR is in flight, its reply may be lost; the client retries it
      await writer;
      expect(results).toEqual(Array.from({ length: 40 }, (_, i) => i + 1)); // no gap, no double
      expect(await client.get('race')).toBe('40');
    } finally {
      await client.close();
    }
  }, 90_000);
});
