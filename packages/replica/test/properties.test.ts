import { describe, it } from 'vitest';
import fc from 'fast-check';
import { runChaos } from '@decree/testkit';

// fast-check over random schedules of the simulated network with crashes of a minority:
// agreement, validity and durability of acknowledged submissions are checked by runChaos.
const schedule = fc.record({
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  n: fc.constantFrom(3 as const, 5 as const),
  steps: fc.integer({ min: 20, max: 120 }),
  faultRate: fc.double({ min: 0, max: 0.2, noNaN: true }),
  net: fc.record({
    dropRate: fc.double({ min: 0, max: 0.15, noNaN: true }),
    duplicateRate: fc.double({ min: 0, max: 0.15, noNaN: true }),
    minDelayMs: fc.constant(0.1),
    maxDelayMs: fc.double({ min: 0.2, max: 25, noNaN: true }),
  }),
});

describe('random schedules (fast-check)', () => {
  for (const part of [1, 2]) {
    it(`agreement, validity, durability hold (part ${part}: 100 schedules)`, async () => {
      await fc.assert(
        fc.asyncProperty(schedule, async (p) => {
          await runChaos(p);
        }),
        { numRuns: 100, seed: 1000 + part, endOnFailure: true },
      );
    });
  }
});
