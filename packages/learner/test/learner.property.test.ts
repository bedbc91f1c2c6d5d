import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Message } from '@decree/protocol';
import { b, batch, catchupRep, decide, learn, learnerHarness } from './harness.ts';

/**
 * A ground-truth log: slot s was chosen at round cb[s] with value `v<s>`. What a learner may see:
 * - learns of the chosen value at any round >= cb[s] (later leaders re-propose it);
 * - learns of a stale value `x<s>` at a round < cb[s] (an older leader's, never chosen);
 * - Decide(round, upTo) only with round >= cb[s] for every s <= upTo (the leader of that round
 *   chose or re-proposed them all);
 * - catch-up replies with a contiguous run of chosen values and any chosenUpTo <= N.
 * Delivered in any order, the learner must execute exactly a prefix of v1, v2, ... once each.
 */
const N = 8;
const scenario = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: N, maxLength: N }).chain((cb) => {
  const slot = fc.integer({ min: 1, max: N });
  const learnChosen = slot.chain((s) =>
    fc.integer({ min: cb[s - 1]!, max: 6 }).map((r) => ({ k: 'learn' as const, s, r, v: `v${s}` })),
  );
  const learnStale = slot
    .filter((s) => cb[s - 1]! > 1)
    .chain((s) => fc.integer({ min: 1, max: cb[s - 1]! - 1 }).map((r) => ({ k: 'learn' as const, s, r, v: `x${s}` })));
  const dec = fc.integer({ min: 0, max: N }).chain((upTo) => {
    const need = Math.max(1, ...cb.slice(0, upTo));
    return fc.integer({ min: need, max: 6 }).map((r) => ({ k: 'decide' as const, upTo, r }));
  });
  const rep = fc
    .tuple(fc.integer({ min: 1, max: N }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: N }))
    .map(([from, len, chosenUpTo]) => ({ k: 'rep' as const, from, len: Math.min(len, N - from + 1), chosenUpTo }));
  const ev = fc.oneof(
    { weight: 4, arbitrary: learnChosen },
    { weight: 3, arbitrary: learnStale },
    { weight: 3, arbitrary: dec },
    { weight: 2, arbitrary: rep },
    { weight: 1, arbitrary: fc.constant({ k: 'tick' as const }) },
  );
  return fc.tuple(fc.constant(cb), fc.array(ev, { minLength: 1, maxLength: 40 }));
});

describe('learner property (fast-check)', () => {
  it('whatever the order of learns, decides and catch-up replies, it executes a prefix of the chosen log', () => {
    fc.assert(
      fc.property(scenario, ([, events]) => {
        const h = learnerHarness({ options: { catchupIntervalMs: 1 } });
        for (const e of events) {
          let m: Message | { type: 'tick' };
          if (e.k === 'learn') m = learn(b(e.r, 'r2'), e.s, batch([e.v]));
          else if (e.k === 'decide') m = decide(b(e.r, 'r2'), e.upTo);
          else if (e.k === 'rep')
            m = catchupRep(
              'r3',
              Array.from({ length: e.len }, (_, i) => ({ slot: e.from + i, value: batch([`v${e.from + i}`]) })),
              e.chosenUpTo,
            );
          else m = { type: 'tick' };
          h.actor.send(m as never);
          h.sched.runFor(2);
        }
        expect(h.errors).toEqual([]);
        const want = Array.from({ length: h.sm.applied.length }, (_, i) => `v${i + 1}`);
        expect(h.sm.applied).toEqual(want);
        expect(h.ctx().executedUpTo).toBe(h.sm.applied.length);
      }),
      { numRuns: 500, seed: 4242 },
    );
  });
});
