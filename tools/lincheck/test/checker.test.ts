import { describe, expect, it } from 'vitest';
import { checkHistory, HistoryFormatError, type Op } from '../src/index.ts';
import { randomHistory } from '../src/generate.ts';
import { bruteForce, runStrategy, verifyWitness } from './reference.ts';

// Shorthands: [invoke, complete] intervals; complete null = pending.
let pid = 0;
const op = (o: Partial<Op> & Pick<Op, 'op' | 'invoke' | 'complete'>): Op =>
  ({ process: o.process ?? pid++, key: 'x', ...o }) as Op;
const set = (value: string, invoke: number, complete: number | null, extra: Partial<Op> = {}) =>
  op({ op: 'set', value, invoke, complete, ...(complete === null ? {} : { result: 'OK' }), ...extra });
const get = (result: string | null, invoke: number, complete: number | null, extra: Partial<Op> = {}) =>
  op({ op: 'get', invoke, complete, ...(complete === null ? {} : { result }), ...extra });
const del = (result: number, invoke: number, complete: number | null, extra: Partial<Op> = {}) =>
  op({ op: 'del', invoke, complete, ...(complete === null ? {} : { result }), ...extra });
const incr = (result: number | string, invoke: number, complete: number | null, extra: Partial<Op> = {}) =>
  op({ op: 'incr', invoke, complete, ...(complete === null ? {} : { result }), ...extra });
const cas = (
  expected: string | null,
  value: string,
  result: boolean,
  invoke: number,
  complete: number | null,
  extra: Partial<Op> = {},
) => op({ op: 'cas', expected, value, invoke, complete, ...(complete === null ? {} : { result }), ...extra });

/** Checks the verdict, agreement with brute force and with every strategy, and the witness. */
function expectVerdict(ops: Op[], ok: boolean) {
  const res = checkHistory(ops, { witness: true });
  expect(res.ok).toBe(ok);
  expect(res.timedOut).toBeUndefined();
  if (ops.length <= 9) expect(bruteForce(ops)).toBe(ok);
  expect(runStrategy(ops, 'dfs')).toBe(ok ? 'ok' : 'fail');
  expect(runStrategy(ops, 'frontier')).toBe(ok ? 'ok' : 'fail');
  if (ok) expect(verifyWitness(ops, res.witness!)).toBeUndefined();
  else {
    expect(res.key).toBeDefined();
    expect(res.reason).toMatch(/not linearizable/);
  }
  return res;
}

describe('reads and writes', () => {
  it('accepts an empty history and a sequential one', () => {
    expect(checkHistory([])).toEqual({ ok: true, checkedKeys: 0 });
    expectVerdict(
      [get(null, 0, 1), set('1', 2, 3), get('1', 4, 5), del(1, 6, 7), get(null, 8, 9), del(0, 10, 11)],
      true,
    );
  });

  it('rejects a stale read after a completed write', () => {
    const res = expectVerdict([set('1', 0, 10), set('2', 20, 30), get('1', 40, 50)], false);
    expect(res.opIndex).toBe(2);
    expect(res.reason).toContain('"2"');
  });

  it('rejects a read of a value never written', () => {
    const res = expectVerdict([set('1', 0, 10), get('7', 5, 15)], false);
    expect(res.op?.result).toBe('7');
  });

  it('rejects reading absent after a completed write', () => {
    expectVerdict([set('1', 0, 10), get(null, 11, 12)], false);
  });

  it('accepts concurrent overlapping ops in either order', () => {
    // The write overlaps both reads: one sees the old value, one the new.
    expectVerdict([set('a', 0, 1), set('b', 10, 50), get('a', 20, 30), get('b', 25, 35)], true);
    expectVerdict([set('a', 0, 1), set('b', 10, 50), get('b', 20, 30), get('a', 25, 35)], true);
    // ...but once a read saw the new value, a later read (after it completed) cannot see the old one.
    expectVerdict([set('a', 0, 1), set('b', 10, 50), get('b', 20, 30), get('a', 31, 40)], false);
  });

  it('treats touching intervals as concurrent', () => {
    expectVerdict([set('1', 0, 10), get(null, 10, 12)], true);
    expectVerdict([set('1', 0, 10), get(null, 10.001, 12)], false);
  });

  it('rejects a lost update (two incrs returning the same value)', () => {
    expectVerdict([incr(1, 0, 10), incr(1, 5, 15)], false);
    expectVerdict([incr(1, 0, 10), incr(2, 5, 15)], true);
  });

  it('rejects a lost update through read-modify-write by cas', () => {
    // Both clients read 0 and both cas 0 -> their value succeeds: only one can.
    expectVerdict(
      [set('0', 0, 1), get('0', 2, 3), get('0', 2, 3), cas('0', 'A', true, 4, 8), cas('0', 'B', true, 5, 9)],
      false,
    );
    expectVerdict(
      [set('0', 0, 1), get('0', 2, 3), get('0', 2, 3), cas('0', 'A', true, 4, 8), cas('0', 'B', false, 5, 9)],
      true,
    );
  });

  it('keeps keys independent', () => {
    const ops = [set('1', 0, 10, { key: 'a' }), get(null, 20, 30, { key: 'b' }), get('1', 20, 30, { key: 'a' })];
    expect(checkHistory(ops)).toEqual({ ok: true, checkedKeys: 2 });
    const bad = [...ops, get('1', 40, 50, { key: 'b' })];
    const res = checkHistory(bad);
    expect(res.ok).toBe(false);
    expect(res.key).toBe('b');
  });
});

describe('pending and failed ops', () => {
  it('a pending write may appear', () => {
    expectVerdict([set('1', 0, null), get('1', 100, 110)], true);
  });

  it('a pending write may not appear', () => {
    expectVerdict([set('1', 0, null), get(null, 100, 110)], true);
  });

  it('a pending write may appear late, even after a later read missed it', () => {
    expectVerdict([set('1', 0, null), get(null, 100, 110), get('1', 200, 210)], true);
  });

  it('a pending write cannot take effect before it was invoked', () => {
    expectVerdict([get('1', 0, 10), set('1', 20, null)], false);
  });

  it('a pending write takes effect at most once', () => {
    expectVerdict([set('1', 0, null), get('1', 10, 11), set('2', 20, 21), get('1', 30, 31)], false);
    // two pending writes of the same value can explain two appearances
    expectVerdict([set('1', 0, null), set('1', 1, null), get('1', 10, 11), set('2', 20, 21), get('1', 30, 31)], true);
  });

  it('once a later read saw the pending write gone, an earlier value cannot come back', () => {
    expectVerdict([set('1', 0, 5), set('2', 6, null), get('2', 10, 11), get('1', 20, 21)], false);
  });

  it('pending incrs may each apply or not', () => {
    expectVerdict([incr(0, 0, null), incr(0, 1, null, { value: '2' }), get('3', 10, 11)], true);
    expectVerdict([incr(0, 0, null), incr(0, 1, null, { value: '2' }), get('2', 10, 11)], true);
    expectVerdict([incr(0, 0, null), incr(0, 1, null, { value: '2' }), get('4', 10, 11)], false);
  });

  it('a failed op (ok: false) never happened', () => {
    expectVerdict([set('1', 0, 5, { ok: false, result: 'ERR' }), get(null, 10, 11)], true);
    expectVerdict([set('1', 0, 5, { ok: false, result: 'ERR' }), get('1', 10, 11)], false);
  });

  it('a pending get constrains nothing', () => {
    expectVerdict([set('1', 0, 5), op({ op: 'get', invoke: 10, complete: null, result: 'whatever' })], true);
  });
});

describe('cas semantics', () => {
  it('succeeds only when the value matches, and then writes', () => {
    expectVerdict([set('a', 0, 1), cas('a', 'b', true, 2, 3), get('b', 4, 5)], true);
    expectVerdict([set('a', 0, 1), cas('z', 'b', true, 2, 3)], false);
    expectVerdict([set('a', 0, 1), cas('a', 'b', false, 2, 3)], false);
    expectVerdict([set('a', 0, 1), cas('z', 'b', false, 2, 3), get('a', 4, 5)], true);
    expectVerdict([set('a', 0, 1), cas('z', 'b', false, 2, 3), get('b', 4, 5)], false);
  });

  it('expected null means the key must be absent', () => {
    expectVerdict([cas(null, 'a', true, 0, 1), get('a', 2, 3)], true);
    expectVerdict([set('x', 0, 1), cas(null, 'a', true, 2, 3)], false);
    expectVerdict([op({ op: 'cas', value: 'a', invoke: 0, complete: 1, result: true }), get('a', 2, 3)], true);
  });

  it('a pending cas applies only where it matches', () => {
    expectVerdict([set('a', 0, 1), cas('a', 'b', false, 2, null), get('b', 10, 11)], true);
    expectVerdict([set('a', 0, 1), cas('z', 'b', false, 2, null), get('b', 10, 11)], false);
  });
});

describe('incr semantics', () => {
  it('counts from absent as 0, by the increment given', () => {
    expectVerdict(
      [incr(1, 0, 1), incr(6, 2, 3, { value: '5' }), incr('4', 4, 5, { value: '-2' }), get('4', 6, 7)],
      true,
    );
    expectVerdict([incr(2, 0, 1)], false);
  });

  it('works on integer strings written by set, and compares results as integers', () => {
    expectVerdict([set('41', 0, 1), incr('42', 2, 3)], true);
    expectVerdict([set('41', 0, 1), incr(42, 2, 3), get('42', 4, 5)], true);
    expectVerdict([set('41', 0, 1), incr(43, 2, 3)], false);
  });

  it('cannot succeed on a non-integer value', () => {
    expectVerdict([set('abc', 0, 1), incr(1, 2, 3)], false);
    // the refusal is an error reply: recorded as failed, it changes nothing
    expectVerdict(
      [set('abc', 0, 1), incr(1, 2, 3, { ok: false, result: 'ERR not an integer' }), get('abc', 4, 5)],
      true,
    );
  });

  it('handles values beyond 2^53 exactly', () => {
    expectVerdict([set('9007199254740993', 0, 1), incr('9007199254740994', 2, 3)], true);
    expectVerdict([set('9007199254740993', 0, 1), incr('9007199254740995', 2, 3)], false);
  });

  it('del reports whether the key existed', () => {
    expectVerdict([del(0, 0, 1), set('a', 2, 3), del(1, 4, 5), del(0, 6, 7), get(null, 8, 9)], true);
    expectVerdict([set('a', 0, 1), del(0, 2, 3)], false);
  });
});

describe('input checking and limits', () => {
  it('throws a HistoryFormatError naming the op for a bad op', () => {
    expect(() => checkHistory([{ process: 1, op: 'get', key: 'x', invoke: 0, complete: 1 } as Op])).toThrow(
      /op #0: completed get needs "result"/,
    );
    expect(() => checkHistory([set('1', 5, 1)])).toThrow(HistoryFormatError);
  });

  it('reports a timeout instead of a verdict when the budget is exhausted', () => {
    // A hard instance: one hot key, many timeouts, and a violation at the very end.
    const { ops } = randomHistory(7, { ops: 20_000, keys: 1, clients: 10, timeoutRate: 0.2 });
    const res = checkHistory(ops, { timeoutMs: 0 }); // the clock is polled every 1024 steps; this needs far more
    expect(res.timedOut).toBe(true);
    expect(res.ok).toBe(false);
    expect(res.reason).toMatch(/timed out/);
  });

  it('checks 10k ops over 100 keys with 8 clients (timing is in the benchmark, not asserted)', () => {
    const { ops } = randomHistory(1, { ops: 10_000, keys: 100, clients: 8 });
    const res = checkHistory(ops, { witness: true });
    expect(res).toMatchObject({ ok: true, checkedKeys: 100 });
    expect(verifyWitness(ops, res.witness!)).toBeUndefined();
  });
});
