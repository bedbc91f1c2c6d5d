import { describe, expect, it } from 'vitest';
import { simulate } from '../src/simulate.ts';

// Part 4 of the 1,000 seeds that npm test simulates (250 per file, so the files run in parallel).
describe('deterministic simulation, seeds 751..1000', () => {
  it('no violation of agreement, validity, durability, equal states or linearizability', async () => {
    const failures: string[] = [];
    let ops = 0;
    for (let seed = 751; seed <= 1000; seed++) {
      const r = await simulate({ seed, durationMs: 600, faultRate: 0.12 });
      ops += r.okOps;
      if (!r.ok) failures.push(`seed ${seed}: ${r.violation}\n  replay: npm run sim -- --seeds 1 --start-seed ${seed} --duration 600 --fault-rate 0.12 --verbose`);
    }
    expect(failures).toEqual([]);
    expect(ops).toBeGreaterThan(250 * 10); // the clients really ran
  }, 600_000);
});
