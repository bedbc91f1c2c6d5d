import { describe, expect, it } from 'vitest';
import { simulate } from '../src/simulate.ts';
import { TEST_SIM } from './seed-range.ts';

describe('the simulator', () => {
  it('replays the same execution for the same seed', async () => {
    const a = await simulate({ seed: 42, durationMs: 800, faultRate: 0.12 });
    const b = await simulate({ seed: 42, durationMs: 800, faultRate: 0.12 });
    expect(a.trace.length).toBeGreaterThan(0);
    expect(b.trace).toEqual(a.trace);
    expect(b.history).toEqual(a.history);
    const c = await simulate({ seed: 43, durationMs: 800, faultRate: 0.12 });
    expect(c.history).not.toEqual(a.history);
  });

  it('catches a deliberately broken acceptor that forgets its promises', async () => {
    // the same seeds and settings as the seeds run by npm test
    let caught: { seed: number; violation: string } | undefined;
    for (let seed = 1; seed <= 250 && !caught; seed++) {
      const r = await simulate({ seed, ...TEST_SIM, brokenForgetPromise: true });
      if (!r.ok) caught = { seed, violation: r.violation! };
    }
    expect(caught, 'the broken acceptor went unnoticed').toBeDefined();
    expect(caught!.violation).toMatch(/agreement|durability|linearizability|states differ|validity/);
  }, 600_000);
});
