/** The operations a key-value history may contain. */
export type OpKind = 'get' | 'set' | 'del' | 'incr' | 'cas';

export const OP_KINDS: readonly OpKind[] = ['get', 'set', 'del', 'incr', 'cas'];

/**
 * One client operation, as recorded (one JSON line of a history file; see docs/history-format.md).
 *
 * - `invoke`/`complete` are times in milliseconds from one clock; `complete: null` means the
 *   outcome is unknown (timed out, connection lost): the operation may have taken effect at any
 *   point after `invoke`, or never.
 * - `ok: false` means the operation certainly did not take effect (the server refused it); such
 *   operations are dropped by the checker.
 * - `result` per op when completed: get → the value or null (absent); set → "OK" (may be omitted);
 *   del → number of keys removed (0 or 1); incr → the new integer value (number or decimal string);
 *   cas → true (swapped) or false (not swapped).
 */
export interface Op {
  process: number | string;
  op: OpKind;
  key: string;
  /** set: the value written; cas: the new value; incr: the increment as a decimal integer (default "1"). */
  value?: string;
  /** cas only: the value the key must hold for the swap; null or omitted = the key must be absent. */
  expected?: string | null;
  invoke: number;
  complete: number | null;
  result?: string | number | boolean | null;
  ok?: boolean;
}

/** A malformed history or operation. `message` names the line (or the op index) and the field. */
export class HistoryFormatError extends Error {
  constructor(
    message: string,
    /** 1-based line number in the parsed text, when the error comes from `parseHistory`. */
    readonly line?: number,
  ) {
    super(message);
    this.name = 'HistoryFormatError';
  }
}

export interface CheckOptions {
  /** Give up after this many milliseconds of search (whole history); the result then has `timedOut: true`. */
  timeoutMs?: number;
  /** Also return, per key, one linearization found (indices into the input array, in linearized order). */
  witness?: boolean;
}

export interface CheckResult {
  /** True only when every key's sub-history is linearizable. False on a violation or a timeout. */
  ok: boolean;
  /** The key whose sub-history is not linearizable (or on which the search timed out). */
  key?: string;
  /** Human-readable explanation of a violation or a timeout. */
  reason?: string;
  /** The operation the search could not place at its deepest point (a violation only). */
  op?: Op;
  /** Index of `op` in the input array. */
  opIndex?: number;
  /** True when the search ran out of time: the verdict is unknown. */
  timedOut?: boolean;
  /** Number of keys whose check finished (linearizable or not). */
  checkedKeys: number;
  /** With `witness: true` and `ok: true`: per key, the input indices in one valid linearized order
   *  (pending operations that were never placed are left out). */
  witness?: Map<string, number[]>;
}
