import fc from 'fast-check';
import { knownIssues, type FuzzTarget } from './targets.ts';

export interface FuzzOptions {
  /** inputs to try (default 300) */
  numRuns?: number;
  seed?: number;
  /** an input that takes longer than this (ms) is a failure: a hang or a pathological slow path (default 2000) */
  budgetMs?: number;
  /** stop after this long (ms), counting the inputs run so far as a pass */
  timeLimitMs?: number;
  /** called before each input (the watchdog's hook) */
  onInput?: (index: number, input: unknown) => void;
}

export interface FuzzResult {
  target: string;
  seed: number;
  runs: number;
  ok: boolean;
  /** the failure, with the (shrunk) input that caused it */
  failure?: string;
  counterexample?: string;
  ms: number;
  slowestMs: number;
  /**
   * how the inputs ended: accepted by the decoder, or refused with its typed error (the checks throw on anything else)
   */
  interrupted: boolean;
  /** known open findings hit (by id), counted instead of failing */
  known: Record<string, number>;
}

/** Runs one target in this thread with fast-check; failures are shrunk to a small input. */
export function fuzzTarget(target: FuzzTarget<any>, opts: FuzzOptions = {}): FuzzResult {
  const seed = opts.seed ?? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
  const budget = opts.budgetMs ?? 2000;
  let slowest = 0;
  let index = 0;
  const t0 = performance.now();
  knownIssues(true);
  const r = fc.check(
    fc.property(target.arbitrary, (input) => {
      opts.onInput?.(index++, input);
      const s = performance.now();
      target.check(input);
      const dt = performance.now() - s;
      if (dt > slowest) slowest = dt;
      if (dt > budget) throw new Error(`one input took ${dt.toFixed(0)} ms, above the ${budget} ms budget`);
    }),
    {
      numRuns: opts.numRuns ?? 300,
      seed,
      ...(opts.timeLimitMs !== undefined
        ? { interruptAfterTimeLimit: opts.timeLimitMs, markInterruptAsFailure: false }
        : {}),
    },
  );
  const res: FuzzResult = {
    target: target.name,
    seed,
    runs: r.numRuns,
    ok: !r.failed,
    ms: Math.round(performance.now() - t0),
    slowestMs: Math.round(slowest * 10) / 10,
    interrupted: r.interrupted,
    known: knownIssues(true),
  };
  if (r.failed) {
    res.failure =
      r.errorInstance instanceof Error
        ? `${r.errorInstance.name}: ${r.errorInstance.message}`
        : String(r.errorInstance);
    res.counterexample = r.counterexample ? fc.stringify(r.counterexample[0]).slice(0, 4000) : undefined;
  }
  return res;
}
