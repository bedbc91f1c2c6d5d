/**
 * RSL Bootstrap across processes: three `decree start` replicas with `"members": []` wait without a
 * configuration; `decree bootstrap` gives them their first one, a leader is elected and writes work;
 * a second bootstrap reports it was already done; a restarted replica keeps the stored configuration.
 */
import { describe, expect, it } from 'vitest';
import { decree, idempotent, resp, sleep, startedCluster, status, waitFor } from './helpers.ts';

const f = startedCluster('bootstrap', { members: [] });

describe('decree bootstrap', () => {
  it('replicas with no configuration elect nobody until bootstrapped; then a ' +
    'leader is elected, writes work, and the configuration survives a restart', async () => {
    await sleep(1_500); // several election timeouts
    for (const id of ['r1', 'r2', 'r3']) {
      const s = (await status(f.cluster.port(id))) as unknown as { role: string; configEpoch: number };
      expect(s.role).toBe('follower');
      expect(s.configEpoch).toBe(0);
    }
    const out = await decree('bootstrap', '--config', f.configPath);
    expect(out.stdout).toMatch(/^bootstrapped: configuration 1: r1,r2,r3 \(leader r[123]\)/);
    const leader = await f.cluster.leader(30_000);
    // idempotent: retried if leadership moves again right after the first election (loaded machine)
    expect(await idempotent('SET k through the leader', () => resp(f.cluster.port(leader), ['SET', 'k', 'v']))).toBe(
      'OK',
    );
    const again = await decree('bootstrap', '--config', f.configPath);
    expect(again.stdout).toMatch(/^already bootstrapped: configuration 1: r1,r2,r3/);
    const other = await decree('bootstrap', '--config', f.configPath, '--members', 'r1,r2').catch((e) => e);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/^decree: bootstrap refused: ALREADY already bootstrapped/);
    // a restarted replica keeps the configuration it stored
    const follower = ['r1', 'r2', 'r3'].find((x) => x !== leader)!;
    await f.cluster.kill9(follower);
    await f.cluster.start(follower).started();
    await waitFor(
      'the restarted replica back in configuration 1',
      async () => {
        const s = (await status(f.cluster.port(follower))) as unknown as
          | { configEpoch?: number; members?: string[] }
          | undefined;
        return s?.configEpoch === 1 && s.members?.length === 3;
      },
      30_000,
    );
    // the restart can start an election on a loaded machine: the (idempotent) GET is retried
    expect(await idempotent(`GET k through ${follower}`, () => resp(f.cluster.port(follower), ['GET', 'k']))).toBe('v');
  }, 150_000);
});
