import { describe, expect, it } from 'vitest';
import { READS_MODE, simulate } from '../src/simulate.ts';

/*
 * Issue #17, point 2: a read-index read is stale while a leader re-prepares after a configuration
 * change. The runs are `npm run sim -- --reads` (read-index reads at every replica that believes it
 * leads, reconfiguration episodes: a member crashes, the leader changes the configuration and crashes
 * just after, the member restarts from its old state, a member that missed the change wins phase 1 in
 * the old configuration, chooses the change again and re-prepares in the new one).
 *
 * On the engine as of ea3d6bc these tests FAIL: the reads return the state as of the config slot e
 * while writes at e+1.. were acknowledged before the reads began. The fix (a read waits while the
 * proposer re-prepares or has a config value in flight, and asks the proposer's members) changes the
 * run's messages, so a fixed engine need not reach the very same instant: the checks below ask that
 * the episode happened and that reads were issued in one of the two windows.
 */
const READS = { durationMs: 3_000, faultRate: 0.03, ...READS_MODE } as const;
const replay = (seed: number) => `npm run sim -- --seeds 1 --start-seed ${seed} --reads --verbose`;

describe('read-index reads during configuration changes and re-prepares (issue #17)', () => {
  // seed 74: r2 missed the decide of the change at slot 38, wins phase 1 in the old configuration after
  // the leader r1 (which chose slots 39-41 in the new one) crashed, and serves get d = v24 (state as of
  // slot 38) during its re-prepare, after d = v33 was acknowledged. Its member list was the new one.
  // seed 18: the same path; the read is confirmed against the old member list (r1,r2,r3), though the
  // proposer already prepares among r1..r5.
  for (const seed of [74, 18])
    it(`seed ${seed}: no stale read (${replay(seed)})`, async () => {
      const r = await simulate({ seed, ...READS });
      // the seed reaches the window: reads were issued while the proposer re-prepared, after a restart of
      // a replica that had been down since before the change
      expect(r.episodes.staleRestarts).toBeGreaterThan(0);
      expect(r.reads.reprepare.issued + r.reads.pendingConfig.issued).toBeGreaterThan(0);
      expect(r.violation).toBeUndefined();
    });

  it('seeds 1..60 of --reads: no violation', async () => {
    const failures: string[] = [];
    let inReprepare = 0;
    let inWindow = 0;
    let ok = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const r = await simulate({ seed, ...READS });
      inReprepare += r.reads.reprepare.issued;
      inWindow += r.reads.reprepare.issued + r.reads.pendingConfig.issued;
      ok += r.reads.ok;
      if (!r.ok) failures.push(`seed ${seed}: ${r.violation}\n  replay: ${replay(seed)}`);
    }
    // the reads really reached the windows (on ea3d6bc: 100+ in re-prepares; on the fixed engine the
    // re-prepares are fewer and shorter: 19 in re-prepares, the rest with a config value in flight)
    expect(inReprepare).toBeGreaterThan(5);
    expect(inWindow).toBeGreaterThan(100);
    expect(ok).toBeGreaterThan(60 * 100);
    expect(failures).toEqual([]);
  }, 120_000);
});
