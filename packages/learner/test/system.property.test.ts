/**
 * Learners in a working system (no elector): see system-harness.ts. Every learner must execute a
 * prefix of one and the same command sequence, and after healing they all converge.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { type Action, run } from './system-harness.ts';

const action: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ k: fc.constant('campaign' as const), p: fc.nat(2), round: fc.integer({ min: 1, max: 6 }) }),
  },
  {
    weight: 6,
    arbitrary: fc.record({ k: fc.constant('submit' as const), p: fc.nat(2), n: fc.integer({ min: 1, max: 5 }) }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('crash' as const), a: fc.nat(2) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('restart' as const), a: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('wipe-learner' as const), a: fc.nat(2) }) },
);

describe('learners with proposers and acceptors (fast-check)', () => {
  it('every learner executes a prefix of one sequence, and after healing they all converge', async () => {
    let executed = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.nat(),
        fc.array(fc.record({ gap: fc.integer({ min: 0, max: 40 }), act: action }), { minLength: 5, maxLength: 30 }),
        fc.constantFrom(0, 0.05, 0.2),
        fc.constantFrom(0.5, 3, 10),
        async (seed, actions, drop, maxDelay) => {
          const { logs, errors } = await run(seed, actions, drop, maxDelay);
          expect(errors).toEqual([]);
          const longest = logs.reduce((a, b) => (b.length > a.length ? b : a));
          for (const l of logs) expect(l).toEqual(longest.slice(0, l.length));
          // healed: same length everywhere (the last leader's Decide and catch-up reach everyone)
          for (const l of logs) expect(l.length).toBe(longest.length);
          // each command at most once
          expect(new Set(longest).size).toBe(longest.length);
          executed += longest.length;
        },
      ),
      { numRuns: 120, seed: 5150 },
    );
    expect(executed).toBeGreaterThan(120);
  });
});
