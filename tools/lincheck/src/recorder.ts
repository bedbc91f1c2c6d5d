import { writeFile } from 'node:fs/promises';
import { serializeHistory, validateOp } from './format.ts';
import type { Op, OpKind } from './types.ts';

/** Identifies one invoked operation of a `HistoryRecorder`. */
export interface OpHandle {
  readonly index: number;
}

export interface HistoryRecorderOptions {
  /** Milliseconds; default `performance.now`. Must not go backwards. */
  clock?: () => number;
}

/**
 * Records the operations of clients under test, in invocation order. Call `invoke` just before the
 * request is sent and exactly one of `complete` (answer received), `fail` (the server certainly did
 * not apply it) or `timeout` (outcome unknown) afterwards. Operations never finished are written as
 * pending (`complete: null`), which is what they are.
 */
export class HistoryRecorder {
  private readonly clock: () => number;
  private readonly recorded: Op[] = [];
  private readonly finished: boolean[] = [];

  constructor(opts: HistoryRecorderOptions = {}) {
    this.clock = opts.clock ?? (() => performance.now());
  }

  /**
   * Starts an operation. `value`: set's value, cas's new value, incr's increment (default "1").
   * `expected`: cas only, the value required for the swap (null/omitted = key must be absent).
   */
  invoke(process: number | string, op: OpKind, key: string, value?: string, expected?: string | null): OpHandle {
    const rec: Op = { process, op, key, invoke: this.clock(), complete: null };
    if (value !== undefined) rec.value = value;
    if (op === 'cas') rec.expected = expected ?? null;
    validateOp(rec, `invoke #${this.recorded.length}`);
    this.recorded.push(rec);
    this.finished.push(false);
    return { index: this.recorded.length - 1 };
  }

  private take(handle: OpHandle): Op {
    const op = this.recorded[handle.index];
    if (op === undefined) throw new Error(`unknown operation handle ${handle.index}`);
    if (this.finished[handle.index])
      throw new Error(`operation #${handle.index} (${op.op} ${JSON.stringify(op.key)}) was already finished`);
    return op;
  }

  /**
   * The answer arrived. `result` per op: get → value|null, set →
   * "OK" (default), del → 0|1, incr → new value, cas → boolean.
   */
  complete(handle: OpHandle, result?: Op['result']): void {
    const op = this.take(handle);
    const done: Op = { ...op, complete: Math.max(this.clock(), op.invoke) };
    if (result !== undefined) done.result = result;
    else if (op.op === 'set') done.result = 'OK';
    this.recorded[handle.index] = validateOp(done, `complete #${handle.index}`);
    this.finished[handle.index] = true;
  }

  /** The server refused the operation: it certainly did not take effect (`ok: false`; the checker drops it). */
  fail(handle: OpHandle, error?: string): void {
    const op = this.take(handle);
    const done: Op = { ...op, complete: Math.max(this.clock(), op.invoke), ok: false };
    if (error !== undefined) done.result = error;
    this.recorded[handle.index] = done;
    this.finished[handle.index] = true;
  }

  /** No answer (timeout, lost connection): the outcome is unknown (`complete: null`). */
  timeout(handle: OpHandle): void {
    this.take(handle);
    this.finished[handle.index] = true;
  }

  /** Number of operations invoked so far. */
  get size(): number {
    return this.recorded.length;
  }

  /** A copy of the operations recorded so far, in invocation order. */
  ops(): Op[] {
    return this.recorded.map((o) => ({ ...o }));
  }

  toJsonl(): string {
    return serializeHistory(this.recorded);
  }

  async writeFile(path: string): Promise<void> {
    await writeFile(path, this.toJsonl(), 'utf8');
  }
}
