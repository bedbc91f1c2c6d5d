/**
 * Read-after-write through ioredis and through redis-cli against 3 real replica processes, also across a
 * leader change (kill -9 of the leader process).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster, type Member } from './process-cluster.ts';

const REDIS_CLI = '/usr/bin/redis-cli';
const cli = (m: Member, ...args: string[]): Promise<string> =>
  new Promise((resolve, reject) =>
    execFile(REDIS_CLI, ['-h', '127.0.0.1', '-p', String(m.clientPort), ...args], { timeout: 10_000 }, (e, out) =>
      e ? reject(e) : resolve(out.trim()),
    ),
  );

/**
 * a command retried while the cluster has no leader (TRYAGAIN); reads are idempotent, so are these SETs of
 * one value
 */
async function retry<T>(fn: () => Promise<T>, ok: (v: T) => boolean = () => true, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (ok(v)) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`gave up: ${String((last as Error)?.message ?? last)}`);
}

// redis-cli comes from Debian's redis-tools (the pretest step installs it)
describe('KV service processes: read-after-write, ioredis and redis-cli, across a leader kill', () => {
  it('finds redis-cli', () =>
    expect(existsSync(REDIS_CLI), `${REDIS_CLI} is missing: apt-get install redis-tools`).toBe(true));
  let c: ProcessCluster;
  beforeAll(async () => {
    c = await new ProcessCluster().start();
  }, 60_000);
  afterAll(async () => {
    await c?.stop();
  });

  it('reads see acknowledged writes before and after kill -9 of the leader', async () => {
    const leader = await c.waitForLeader();
    const followers = c.members.filter((m) => m !== leader);
    // ioredis: write on the leader and on a follower (forwarded), read everywhere (linearizable reads)
    const rl = c.redis(leader);
    const rf = c.redis(followers[0]!);
    await rl.connect();
    await rf.connect();
    // (leadership can move again on a loaded machine: the idempotent SETs and GETs are retried, and the
    // INCR goes in a client session, so a retry after an in-doubt TRYAGAIN is answered once, exactly)
    expect(await retry(() => rl.set('io:a', 'one'))).toBe('OK');
    expect(await retry(() => rf.get('io:a'))).toBe('one');
    expect(await retry(() => rf.set('io:b', 'two'))).toBe('OK');
    expect(await retry(() => rl.get('io:b'))).toBe('two');
    expect(await retry(() => rl.call('DECREE.SESSION', `kv-process-${process.pid}`, '1', 'INCR', 'io:n'))).toBe(1);
    rl.disconnect();
    rf.disconnect();
    // redis-cli
    expect(
      await retry(
        () => cli(followers[1]!, 'SET', 'cli:a', 'uno'),
        (v) => v === 'OK',
      ),
    ).toBe('OK');
    expect(
      await retry(
        () => cli(leader, 'GET', 'cli:a'),
        (v) => v === 'uno',
      ),
    ).toBe('uno');
    expect(
      await retry(
        () => cli(followers[0]!, 'GET', 'cli:a'),
        (v) => v === 'uno',
      ),
    ).toBe('uno');

    // the leader dies; a new one is elected among the two others
    await c.kill9(leader);
    const next = await c.waitForLeader(30_000, leader.id);
    const other = followers.find((m) => m !== next)!;
    const rn = c.redis(next);
    const ro = c.redis(other);
    await rn.connect();
    await ro.connect();
    expect(await retry(() => rn.get('io:a'))).toBe('one');
    expect(await retry(() => ro.get('io:b'))).toBe('two');
    expect(await retry(() => ro.get('io:n'))).toBe('1');
    expect(
      await retry(
        () => cli(other, 'GET', 'cli:a'),
        (v) => v === 'uno',
      ),
    ).toBe('uno');
    expect(
      await retry(
        () => cli(next, 'GET', 'cli:a'),
        (v) => v === 'uno',
      ),
    ).toBe('uno');
    // writes after the change, read through the other tool on the other replica
    expect(
      await retry(
        () => cli(other, 'SET', 'cli:after', 'dos'),
        (v) => v === 'OK',
      ),
    ).toBe('OK');
    expect(await retry(() => rn.get('cli:after'))).toBe('dos');
    expect(await retry(() => rn.set('io:after', 'three'))).toBe('OK');
    // a TRYAGAIN (the forward timed out on a loaded machine) is an answer a client retries
    expect(
      await retry(
        () => cli(other, 'GET', 'io:after'),
        (v) => !String(v).startsWith('TRYAGAIN'),
      ),
    ).toBe('three');
    // READONLY stale read + fast read with the write's slot on the surviving follower
    expect(await retry(() => ro.set('io:fresh', 'f'))).toBe('OK'); // DECREE.SLOT: the last acknowledged write's slot
    const slot = (await ro.call('DECREE.SLOT')) as number;
    expect(slot).toBeGreaterThan(0);
    // (a generous wait: the follower may lag the leader's acknowledgement by seconds on a loaded machine)
    expect(await ro.call('DECREE.FASTREAD', String(slot), '20000', 'GET', 'io:fresh')).toBe('f');
    rn.disconnect();
    ro.disconnect();
  }, 90_000);
});
