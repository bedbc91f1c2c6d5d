import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  TARGETS,
  cleanupTemp,
  fuzzInWorker,
  fuzzTarget,
  framesTarget,
  targetByName,
  type WatchedResult,
} from '../src/index.ts';

// Bounded runs for `npm test`: fixed seeds (deterministic; FUZZ_SEED overrides), each target in a
// worker thread with a watchdog, a per-input time budget. Long runs: `npm run fuzz -- --minutes N`.
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 20261123;
const NUM_RUNS = 400;
afterAll(() => cleanupTemp());

describe('fuzzing every decoder (bounded)', () => {
  // all targets at once, each in its own worker (module loading dominates; the machine has 2 cores)
  const results = new Map<string, Promise<WatchedResult>>();
  beforeAll(() => {
    for (const t of TARGETS)
      results.set(t.name, fuzzInWorker(t.name, { numRuns: NUM_RUNS, seed: SEED, budgetMs: 5_000, hangMs: 15_000 }));
  });
  for (const t of TARGETS) {
    it(`${t.name}: no crash, no hang, only the typed error (${t.what})`, async () => {
      const r = await results.get(t.name)!;
      if (!r.ok) console.error(`fuzz ${t.name} seed ${r.seed}: ${r.failure}\ninput: ${r.counterexample}`);
      expect(r.failure).toBeUndefined();
      expect(r.ok).toBe(true);
      expect(r.runs).toBe(NUM_RUNS);
    });
  }
});

describe('the harness catches what it should', () => {
  it('a decoder that throws an untyped error fails, shrunk to the smallest bad input', () => {
    const r = fuzzTarget(targetByName('selftest-crash'), { numRuns: 300, seed: 1 });
    expect(r.ok).toBe(false);
    expect(r.failure).toMatch(/threw something other than RangeError: TypeError/);
    expect(r.counterexample).toBe('1001');
  });

  it('a decoder that never returns is caught by the watchdog, naming the input', async () => {
    const r = await fuzzInWorker('selftest-hang', { numRuns: 300, seed: 1, hangMs: 1_500 });
    expect(r.ok).toBe(false);
    expect(r.hung).toBe(true);
    expect(r.counterexample).toBe('7');
  });

  it('a slow input above the per-input budget fails', () => {
    const slow = {
      ...framesTarget,
      name: 'slow',
      check: () => {
        const end = Date.now() + 30;
        while (Date.now() < end);
      },
    };
    const r = fuzzTarget(slow, { numRuns: 5, seed: 1, budgetMs: 5 });
    expect(r.ok).toBe(false);
    expect(r.failure).toMatch(/above the 5 ms budget/);
  });
});
