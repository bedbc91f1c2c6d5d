import { describe, expect, it } from 'vitest';
import { forgetfulAcceptorMachine } from '@decree/testkit';
import { simulateScale } from '../src/scale.ts';
import { READS_MODE, simulate } from '../src/simulate.ts';
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

  it('replays the same run with read-index reads and reconfiguration episodes (--reads)', async () => {
    const params = { durationMs: 1_500, faultRate: 0.03, ...READS_MODE } as const;
    const a = await simulate({ seed: 74, ...params });
    const b = await simulate({ seed: 74, ...params });
    expect(a.reads.issued).toBeGreaterThan(50);
    expect(a.episodes.started).toBeGreaterThan(0);
    expect(b.trace).toEqual(a.trace);
    expect(b.history).toEqual(a.history);
    expect(b.reads).toEqual(a.reads);
  });

  it('replays the same scale run for the same seed (bounded links, large values, faults, restarts)', async () => {
    const params = { slots: 120, valueBytes: 50_000, faultRate: 0.004, restarts: 2, livenessMs: 3_000 } as const;
    const a = await simulateScale({ seed: 4, ...params });
    const b = await simulateScale({ seed: 4, ...params });
    expect(a.trace.length).toBeGreaterThan(3);
    expect(a.links!.lanes[0]!.sent).toBeGreaterThan(500); // the links carried the run (867 since 0013)
    expect(b).toEqual(a);
    const c = await simulateScale({ seed: 3, ...params });
    expect(c.trace).not.toEqual(a.trace);
  }, 120_000);

  it('catches a deliberately broken acceptor that forgets its promises (injected through machines)', async () => {
    // the same seeds and settings as the seeds run by npm test
    let caught: { seed: number; violation: string } | undefined;
    for (let seed = 1; seed <= 250 && !caught; seed++) {
      const r = await simulate({ seed, ...TEST_SIM, machines: { acceptor: forgetfulAcceptorMachine } });
      if (!r.ok) caught = { seed, violation: r.violation! };
    }
    expect(caught, 'the broken acceptor went unnoticed').toBeDefined();
    expect(caught!.violation).toMatch(/agreement|durability|linearizability|states differ|validity/);
    // the same seed with the standard machines is fine: the violation is the injected acceptor's
    const clean = await simulate({ seed: caught!.seed, ...TEST_SIM });
    expect(clean.ok, clean.violation).toBe(true);
  }, 600_000);
});
