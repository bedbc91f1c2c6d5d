import { validateOp } from './format.ts';
import type { CheckOptions, CheckResult, Op } from './types.ts';

/*
 * Wing & Gong's backtracking search with Lowe's just-in-time linearization and memoisation, in the
 * shape Porcupine uses:
 *
 *  - The history of one key becomes a doubly linked list of call and return events sorted by time
 *    (on equal times calls come first, so touching intervals count as concurrent).
 *  - Walking the list from the head, a call event is a candidate for the next linearization point:
 *    if the model accepts it from the current state and (linearized set ∪ {op}, new state) was not
 *    seen before, the op is linearized and its call and return events are lifted out of the list.
 *  - Reaching a return event means that op's deadline has passed with the op still unplaced: the
 *    last choice is undone (backtracking) and the search goes on after it.
 *  - Pending ops (complete = null) return at +∞ and accept any result, so they can be placed at any
 *    point after their invocation; once every completed op is placed the rest are "never happened".
 *
 * KV operations on different keys commute and touch disjoint state, so a history is linearizable iff
 * each key's sub-history is (locality, Herlihy & Wing): each key is searched on its own.
 */

type State = string | null;

const enum K {
  Get,
  Set,
  Del,
  Incr,
  Cas,
}

interface MOp {
  /** Index in the input array. */
  index: number;
  kind: K;
  pending: boolean;
  /** set/cas: new value; incr: delta as bigint below. */
  value: string | null;
  expected: string | null;
  delta: bigint;
  /** Normalised result of a completed op: get → State; del → 0/1; incr → canonical string; cas → boolean. */
  result: State | number | boolean;
  invoke: number;
  complete: number;
}

/** Model transition: the next state, or undefined when the op (with its recorded result) is impossible here. */
function step(state: State, op: MOp): State | undefined {
  switch (op.kind) {
    case K.Get:
      return op.result === state ? state : undefined;
    case K.Set:
      return op.value;
    case K.Del:
      if (op.pending) return null;
      return (op.result === 1) === (state !== null) ? null : undefined;
    case K.Incr: {
      let cur: bigint;
      if (state === null) cur = 0n;
      else if (/^-?\d+$/.test(state)) cur = BigInt(state);
      else return op.pending ? state : undefined; // INCR of a non-integer fails: no effect
      const next = (cur + op.delta).toString();
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

function toModelOp(op: Op, index: number): MOp | undefined {
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
  return {
    index,
    kind,
    pending,
    value: op.value ?? null,
    expected: op.expected ?? null,
    delta: kind === K.Incr ? BigInt(op.value ?? '1') : 0n,
    result,
    invoke: op.invoke,
    complete: pending ? Infinity : (op.complete as number),
  };
}

interface Entry {
  isCall: boolean;
  id: number;
  time: number;
  match: Entry | null; // call → its return
  prev: Entry | null;
  next: Entry | null;
}

function buildList(ops: MOp[]): Entry {
  const events: Entry[] = [];
  for (let id = 0; id < ops.length; id++) {
    const ret: Entry = { isCall: false, id, time: ops[id].complete, match: null, prev: null, next: null };
    const call: Entry = { isCall: true, id, time: ops[id].invoke, match: ret, prev: null, next: null };
    events.push(call, ret);
  }
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.id - b.id : a.isCall ? -1 : 1));
  const head: Entry = { isCall: false, id: -1, time: -Infinity, match: null, prev: null, next: null };
  let last = head;
  for (const e of events) {
    last.next = e;
    e.prev = last;
    last = e;
  }
  return head;
}

function lift(call: Entry): void {
  call.prev!.next = call.next;
  if (call.next) call.next.prev = call.prev;
  const ret = call.match!;
  ret.prev!.next = ret.next;
  if (ret.next) ret.next.prev = ret.prev;
}

function unlift(call: Entry): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next) ret.next.prev = ret;
  call.prev!.next = call;
  if (call.next) call.next.prev = call;
}

/** Deterministic 32-bit values for Zobrist hashing of the linearized set. */
function zobrist(n: number): Uint32Array {
  const z = new Uint32Array(n);
  let x = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    // xorshift32
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    z[i] = x;
  }
  return z;
}

interface MemoEntry {
  bits: Uint32Array;
  state: number;
}

type KeyOutcome =
  | { kind: 'ok'; order: number[] }
  | { kind: 'fail'; stuck: MOp; placed: number; total: number; state: State }
  | { kind: 'timeout' };

class Deadline {
  private counter = 0;
  constructor(private readonly at: number) {}
  expired(): boolean {
    if (this.at === Infinity) return false;
    if ((++this.counter & 1023) !== 0) return false;
    return performance.now() > this.at;
  }
}

function checkKey(ops: MOp[], deadline: Deadline): KeyOutcome {
  const n = ops.length;
  let remainingCompleted = 0;
  for (const op of ops) if (!op.pending) remainingCompleted++;
  if (remainingCompleted === 0) return { kind: 'ok', order: [] };

  const head = buildList(ops);
  const words = (n + 31) >>> 5;
  const bits = new Uint32Array(words);
  const z = zobrist(n);
  let hash = 0;
  const stateIds = new Map<State, number>();
  const stateOf = (s: State): number => {
    let id = stateIds.get(s);
    if (id === undefined) {
      id = stateIds.size;
      stateIds.set(s, id);
    }
    return id;
  };
  const memo = new Map<number, MemoEntry[]>();
  /** Adds (bits, state) to the memo; false when it was already there. */
  const remember = (h: number, sid: number): boolean => {
    const key = (h ^ Math.imul(sid + 1, 0x85ebca6b)) >>> 0;
    let bucket = memo.get(key);
    if (bucket === undefined) {
      bucket = [];
      memo.set(key, bucket);
    } else {
      outer: for (const m of bucket) {
        if (m.state !== sid) continue;
        for (let w = 0; w < words; w++) if (m.bits[w] !== bits[w]) continue outer;
        return false;
      }
    }
    bucket.push({ bits: bits.slice(), state: sid });
    return true;
  };

  const stack: { entry: Entry; state: State }[] = [];
  let state: State = null;
  let entry = head.next;
  let best = { placed: -1, stuck: ops[0], state: null as State };

  while (entry !== null) {
    if (deadline.expired()) return { kind: 'timeout' };
    if (entry.isCall) {
      const op = ops[entry.id];
      const next = step(state, op);
      if (next !== undefined) {
        const id = entry.id;
        bits[id >>> 5] |= 1 << (id & 31);
        const h = (hash ^ z[id]) >>> 0;
        if (remember(h, stateOf(next))) {
          hash = h;
          stack.push({ entry, state });
          state = next;
          lift(entry);
          if (!op.pending && --remainingCompleted === 0) {
            return { kind: 'ok', order: stack.map((s) => ops[s.entry.id].index) };
          }
          entry = head.next;
          continue;
        }
        bits[id >>> 5] &= ~(1 << (id & 31));
      }
      entry = entry.next;
    } else {
      // The return of an unplaced op: it cannot be placed any later. Undo the last choice.
      if (stack.length > best.placed) best = { placed: stack.length, stuck: ops[entry.id], state };
      const top = stack.pop();
      if (top === undefined) return { kind: 'fail', stuck: best.stuck, placed: best.placed, total: n, state: best.state };
      const call = top.entry;
      const op = ops[call.id];
      if (!op.pending) remainingCompleted++;
      state = top.state;
      bits[call.id >>> 5] &= ~(1 << (call.id & 31));
      hash = (hash ^ z[call.id]) >>> 0;
      unlift(call);
      entry = call.next;
    }
  }
  // Unreachable: returns of completed ops are finite, so the loop ends through one of the returns above.
  return { kind: 'ok', order: stack.map((s) => ops[s.entry.id].index) };
}

function fmtValue(v: unknown): string {
  return v === undefined ? 'undefined' : JSON.stringify(v);
}

/** A one-line description of an operation, for reports. */
export function describeOp(op: Op): string {
  let s = `process ${fmtValue(op.process)} ${op.op}(${fmtValue(op.key)}`;
  if (op.op === 'cas') s += `, expected ${fmtValue(op.expected ?? null)}`;
  if (op.value !== undefined) s += `, ${fmtValue(op.value)}`;
  s += ')';
  if (op.complete === null) s += ' -> pending';
  else if (op.ok === false) s += ' -> failed';
  else s += ` -> ${fmtValue(op.result === undefined && op.op === 'set' ? 'OK' : op.result)}`;
  s += ` [${op.invoke}, ${op.complete === null ? '∞' : op.complete}]`;
  return s;
}

/**
 * Decides whether a key-value history is linearizable with respect to a single sequential KV store
 * whose keys start absent. Operations are validated first (throws `HistoryFormatError` naming the op
 * index). See docs/history-format.md for the semantics of each field.
 */
export function checkHistory(ops: readonly Op[], opts: CheckOptions = {}): CheckResult {
  for (let i = 0; i < ops.length; i++) validateOp(ops[i], `op #${i}`);
  const deadline = new Deadline(opts.timeoutMs === undefined ? Infinity : performance.now() + opts.timeoutMs);

  const byKey = new Map<string, MOp[]>();
  for (let i = 0; i < ops.length; i++) {
    const m = toModelOp(ops[i], i);
    if (m === undefined) continue;
    let list = byKey.get(ops[i].key);
    if (list === undefined) {
      list = [];
      byKey.set(ops[i].key, list);
    }
    list.push(m);
  }

  let checkedKeys = 0;
  const witness = opts.witness ? new Map<string, number[]>() : undefined;
  for (const [key, list] of byKey) {
    const out = checkKey(list, deadline);
    if (out.kind === 'timeout') {
      return {
        ok: false,
        timedOut: true,
        key,
        reason: `search timed out after ${opts.timeoutMs} ms on key ${fmtValue(key)} (${list.length} ops); ${checkedKeys} of ${byKey.size} keys checked`,
        checkedKeys,
      };
    }
    checkedKeys++;
    if (out.kind === 'fail') {
      const op = ops[out.stuck.index];
      return {
        ok: false,
        key,
        op,
        opIndex: out.stuck.index,
        reason:
          `key ${fmtValue(key)} is not linearizable: at best ${out.placed} of its ${out.total} ops can be ordered, ` +
          `after which op #${out.stuck.index} (${describeOp(op)}) cannot take effect before it completes ` +
          `(the key then holds ${fmtValue(out.state)})`,
        checkedKeys,
      };
    }
    witness?.set(key, out.order);
  }
  return witness ? { ok: true, checkedKeys, witness } : { ok: true, checkedKeys };
}
