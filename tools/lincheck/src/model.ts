/**
 * The sequential specification the checker uses: one key's value (a string, or null when absent)
 * and the transition of each operation with its recorded result.
 */
import type { Op } from './types.ts';

export type State = string | null;

export const enum K {
  Get,
  Set,
  Del,
  Incr,
  Cas,
}

/** An operation prepared for the search. */
export interface MOp {
  /** Index in the input array. */
  index: number;
  kind: K;
  /** complete = null: any result, may take effect at any time after invoke, or never. */
  pending: boolean;
  /** Every valid step of this op leaves the state as it is (get; del → 0; cas → false; cas x→x → true). */
  observer: boolean;
  /** set/cas: the new value. */
  value: string | null;
  /** cas: the value required for the swap (null = absent). */
  expected: string | null;
  /** incr: the increment. */
  delta: bigint;
  /** incr: the increment as a number when |delta| < 2^50 (fast path). */
  deltaNum: number | undefined;
  /** A completed op's result, normalised: get → State; del → 0/1; incr → canonical decimal; cas → boolean. */
  result: State | number | boolean;
  invoke: number;
  /** +∞ for pending ops. */
  complete: number;
}

const INTEGER = /^-?\d+$/;

/** Model transition: the next state, or undefined when the op (with its recorded result) is impossible here. */
export function step(state: State, op: MOp): State | undefined {
  switch (op.kind) {
    case K.Get:
      return op.result === state ? state : undefined;
    case K.Set:
      return op.value;
    case K.Del:
      if (op.pending) return null;
      return (op.result === 1) === (state !== null) ? null : undefined;
    case K.Incr: {
      let next: string;
      // INCR of a non-integer fails: no effect
      if (state !== null && !INTEGER.test(state)) return op.pending ? state : undefined;
      if ((state === null || state.length < 15) && op.deltaNum !== undefined) {
        next = String((state === null ? 0 : Number(state)) + op.deltaNum); // exact: both below 2^50
      } else {
        next = (BigInt(state ?? '0') + op.delta).toString();
      }
      if (!op.pending && op.result !== next) return undefined;
      return next;
    }
    case K.Cas: {
      const match = state === op.expected;
      if (op.pending) return match ? op.value : state;
      if (op.result !== match) return undefined;
      return match ? op.value : state;
    }
  }
}

const KIND: Record<Op['op'], K> = { get: K.Get, set: K.Set, del: K.Del, incr: K.Incr, cas: K.Cas };

/** Prepares one (validated) op; undefined for ops that constrain nothing (failed ops, pending gets). */
export function toModelOp(op: Op, index: number): MOp | undefined {
  if (op.ok === false) return undefined; // certainly did not happen
  const pending = op.complete === null;
  const kind = KIND[op.op];
  if (pending && kind === K.Get) return undefined; // an unanswered read constrains nothing
  let result: MOp['result'] = null;
  if (!pending) {
    switch (kind) {
      case K.Get:
        result = op.result as State;
        break;
      case K.Del:
        result = op.result as number;
        break;
      case K.Incr:
        result = BigInt(op.result as number | string).toString();
        break;
      case K.Cas:
        result = op.result as boolean;
        break;
      case K.Set:
        break;
    }
  }
  const value = op.value ?? null;
  const expected = op.expected ?? null;
  const delta = kind === K.Incr ? BigInt(op.value ?? '1') : 0n;
  const observer =
    !pending &&
    (kind === K.Get ||
      (kind === K.Del && result === 0) ||
      (kind === K.Cas && (result === false || expected === value)));
  return {
    index,
    kind,
    pending,
    observer,
    value,
    expected,
    delta,
    deltaNum: delta >= -(2n ** 50n) && delta <= 2n ** 50n ? Number(delta) : undefined,
    result,
    invoke: op.invoke,
    complete: pending ? Infinity : (op.complete as number),
  };
}

/**
 * Pending chains. A run of consecutive pending ops in a linearization is useless when a blind write
 * (an op whose effect and result do not depend on the state: completed set, pending set or del)
 * follows it: dropping the run (those ops never took effect) leaves every state from the write on
 * unchanged. So both searches only look for linearizations in which a run of pending ops is followed
 * by a completed op that reads the state (get, del, incr, cas) or by nothing. `chain` marks a
 * configuration whose last placed op was pending; from it no blind write may be placed.
 */
export function isBlindWrite(op: MOp): boolean {
  return op.kind === K.Set || (op.pending && op.kind === K.Del);
}

/** Groups pending ops by effect (kind, value, expected, delta): members of a class are interchangeable. */
export function pendingClasses(pending: MOp[]): MOp[][] {
  const sorted = [...pending].sort((a, b) => a.invoke - b.invoke || a.index - b.index);
  const index = new Map<string, number>();
  const classes: MOp[][] = [];
  for (const p of sorted) {
    const sig = `${p.kind}\u0000${p.value}\u0000${p.expected}\u0000${p.delta}`;
    let c = index.get(sig);
    if (c === undefined) {
      c = classes.length;
      index.set(sig, c);
      classes.push([]);
    }
    classes[c].push(p);
  }
  return classes;
}

/** Interns states as small integers (per key). */
export class StateIds {
  private readonly ids = new Map<State, number>();
  get size(): number {
    return this.ids.size;
  }
  of(s: State): number {
    let id = this.ids.get(s);
    if (id === undefined) {
      id = this.ids.size;
      this.ids.set(s, id);
    }
    return id;
  }
}

/** Polls the clock every 1024 calls. */
export class Deadline {
  private counter = 0;
  constructor(private readonly at: number) {}
  expired(): boolean {
    if (this.at === Infinity) return false;
    if ((++this.counter & 1023) !== 0) return false;
    return performance.now() > this.at;
  }
}

/** The verdict on one key. */
export type KeyOutcome =
  | { kind: 'ok'; order: number[] }
  | {
      kind: 'fail';
      /** The op that cannot take effect before it completes. */
      stuck: MOp;
      /** Values the key may hold at that point (by some linearization of everything before), if known. */
      states?: State[];
      /** DFS only: completed ops placed at the deepest point. */
      placed?: number;
      total: number;
    }
  | { kind: 'timeout' }
  /** The DFS ran out of its step budget. */
  | { kind: 'budget' }
  /** The relaxed frontier found only linearizations that reuse a pending op. */
  | { kind: 'inconclusive' };
