import { Worker } from 'node:worker_threads';
import type { FuzzOptions, FuzzResult } from './run.ts';

export interface WatchedOptions extends Omit<FuzzOptions, 'onInput'> {
  /** no new input for this long (ms) is a hang: the worker is terminated (default 10 000) */
  hangMs?: number;
}

export interface WatchedResult extends FuzzResult {
  /** the target stopped making progress (an input never returned) */
  hung?: boolean;
}

/**
 * Runs one target in a worker thread, so an input that never returns (an infinite loop in a
 * decoder) is caught: the worker is terminated and the result names the input it was on.
 */
export async function fuzzInWorker(target: string, opts: WatchedOptions = {}): Promise<WatchedResult> {
  const progress = new SharedArrayBuffer(8);
  const text = new SharedArrayBuffer(16 * 1024);
  const state = new Int32Array(progress);
  const seed = opts.seed ?? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
  const { hangMs = 10_000, ...rest } = opts;
  const worker = new Worker(new URL('./worker-boot.mjs', import.meta.url), {
    workerData: { target, opts: { ...rest, seed }, progress, text },
    execArgv: ['--conditions=source'],
  });
  const t0 = Date.now();
  return new Promise<WatchedResult>((resolve) => {
    let last = -1;
    let lastChange = Date.now();
    let done = false;
    const finish = (r: WatchedResult) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      void worker.terminate();
      resolve(r);
    };
    const timer = setInterval(() => {
      const i = Atomics.load(state, 0);
      if (i !== last) {
        last = i;
        lastChange = Date.now();
        return;
      }
      // the first input waits for the worker to load its modules: give it the budget twice
      if (Date.now() - lastChange > (i === 0 ? 2 * hangMs + 20_000 : hangMs)) {
        const n = Atomics.load(state, 1);
        const input = Buffer.from(new Uint8Array(text).slice(0, n)).toString('utf8');
        finish({
          target,
          seed,
          runs: Math.max(0, i - 1),
          ok: false,
          hung: true,
          failure: `no progress for ${hangMs} ms on input #${i - 1}: a hang`,
          counterexample: input,
          ms: Date.now() - t0,
          slowestMs: hangMs,
          interrupted: true,
          known: {},
        });
      }
    }, 100);
    worker.on('message', (r: FuzzResult) => finish(r));
    worker.on('error', (e) =>
      finish({
        target,
        seed,
        runs: Math.max(0, Atomics.load(state, 0) - 1),
        ok: false,
        failure: `worker crashed: ${e.stack ?? e.message}`,
        ms: Date.now() - t0,
        slowestMs: 0,
        interrupted: true,
        known: {},
      }),
    );
    worker.on('exit', (code) => {
      if (!done)
        finish({
          target,
          seed,
          runs: Math.max(0, Atomics.load(state, 0) - 1),
          ok: false,
          failure: `worker exited with code ${code}`,
          ms: Date.now() - t0,
          slowestMs: 0,
          interrupted: true,
          known: {},
        });
    });
  });
}
