import { describe, expect, it } from 'vitest';
import { runChaos } from '@decree/testkit';

describe('chaos smoke', () => {
  it('survives one random schedule', async () => {
    const r = await runChaos({
      seed: 1,
      n: 3,
      steps: 200,
      net: { dropRate: 0.05, duplicateRate: 0.05, minDelayMs: 0.1, maxDelayMs: 5 },
      faultRate: 0.05,
    });
    console.log(r.submitted, r.acked, r.applied, r.leaderChanges);
    expect(r.acked).toBeGreaterThan(0);
  });
});
