import { expect } from 'vitest';
import { simulate } from '../src/simulate.ts';

/** The settings of the seeds npm test runs (the broken-acceptor test uses the same). */
export const TEST_SIM = { durationMs: 600, faultRate: 0.12 } as const;

/** Runs seeds [from, to] and expects no violation; failures name the seed and the replay command. */
export async function expectSeedsPass(from: number, to: number): Promise<void> {
  const failures: string[] = [];
  let ops = 0;
  for (let seed = from; seed <= to; seed++) {
    const r = await simulate({ seed, ...TEST_SIM });
    ops += r.okOps;
    if (!r.ok)
      failures.push(
        `seed ${seed}: ${r.violation}\n  replay: npm run sim -- --seeds 1 --start-seed ${seed} ` +
          `--duration ${TEST_SIM.durationMs} --fault-rate ${TEST_SIM.faultRate} --verbose`,
      );
  }
  expect(failures).toEqual([]);
  expect(ops).toBeGreaterThan((to - from + 1) * 10); // the clients really ran
}
