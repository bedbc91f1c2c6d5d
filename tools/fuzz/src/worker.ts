import { parentPort, workerData } from 'node:worker_threads';
import fc from 'fast-check';
import { fuzzTarget, type FuzzOptions } from './run.ts';
import { cleanupTemp, targetByName } from './targets.ts';

/**
 * Runs one target and posts its FuzzResult; before each input it publishes the input's index and text in shared memory.
 */
const { target, opts, progress, text } = workerData as {
  target: string;
  opts: FuzzOptions;
  progress: SharedArrayBuffer;
  text: SharedArrayBuffer;
};
const state = new Int32Array(progress);
const bytes = new Uint8Array(text);
const enc = new TextEncoder();
const result = fuzzTarget(targetByName(target), {
  ...opts,
  onInput: (i, input) => {
    const { written } = enc.encodeInto(fc.stringify(input).slice(0, bytes.length / 4), bytes);
    Atomics.store(state, 1, written);
    Atomics.store(state, 0, i + 1);
  },
});
cleanupTemp();
parentPort!.postMessage(result);
