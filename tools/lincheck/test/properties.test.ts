import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { checkHistory, parseHistory, serializeHistory } from '../src/index.ts';
import { buildHistory, type PlannedOp } from '../src/generate.ts';
import type { Op } from '../src/types.ts';
import { bruteForce, runStrategy, verifyWitness } from './reference.ts';

const kinds = ['get', 'set', 'del', 'incr', 'cas'] as const;

const plannedOp: fc.Arbitrary<PlannedOp> = fc.record({
  client: fc.nat(9),
  kind: fc.constantFrom(...kinds),
  key: fc.nat(2),
  arg: fc.nat(50),
  think: fc.nat(5),
  duration: fc.nat(30),
  at: fc.nat(1000),
  outcome: fc.oneof(
    { weight: 12, arbitrary: fc.constant('ok' as const) },
    { weight: 1, arbitrary: fc.constant('timeout-applied' as const) },
    { weight: 1, arbitrary: fc.constant('timeout-lost' as const) },
    { weight: 1, arbitrary: fc.constant('failed' as const) },
  ),
});

const plan = fc.tuple(fc.array(plannedOp, { minLength: 1, maxLength: 120 }), fc.integer({ min: 1, max: 10 }));

describe('generated linearizable histories', () => {
  test.prop([plan], { numRuns: 300 })('are accepted, with a valid witness', ([p, clients]) => {
    const { ops } = buildHistory(p, clients);
    const res = checkHistory(ops, { witness: true, timeoutMs: 20_000 });
    expect(res.timedOut).toBeUndefined();
    expect(res.ok).toBe(true);
    expect(verifyWitness(ops, res.witness!)).toBeUndefined();
  });

  test.prop([plan, fc.nat()], { numRuns: 300 })(
    'are rejected once a completed get reads a value never written',
    ([p, clients], pick) => {
      const { ops } = buildHistory(p, clients);
      const gets = ops
        .map((o, i) => i)
        .filter((i) => ops[i].op === 'get' && ops[i].complete !== null && ops[i].ok !== false);
      fc.pre(gets.length > 0);
      const victim = gets[pick % gets.length];
      const mutated = ops.map((o) => ({ ...o }));
      mutated[victim].result = 'never-written';
      const res = checkHistory(mutated, { timeoutMs: 20_000 });
      expect(res.ok).toBe(false);
      expect(res.timedOut).toBeUndefined();
      expect(res.key).toBe(ops[victim].key);
    },
  );

  test.prop([plan], { numRuns: 100 })('are accepted by each search strategy alone', ([p, clients]) => {
    const { ops } = buildHistory(p, clients);
    expect(runStrategy(ops, 'dfs')).toBe('ok');
    expect(['ok', 'unsupported']).toContain(runStrategy(ops, 'frontier'));
    expect(['ok', 'inconclusive', 'unsupported']).toContain(runStrategy(ops, 'relaxed'));
  });
});

// Tiny arbitrary histories (linearizable or not) for comparison with brute force.
const tinyOp = (opKinds: readonly Op['op'][] = kinds, pendingWeight = 1): fc.Arbitrary<Op> =>
  fc
    .record({
      process: fc.nat(3),
      op: fc.constantFrom(...opKinds),
      key: fc.constantFrom('a', 'a', 'a', 'b'),
      value: fc.constantFrom('1', '2', 'x'),
      delta: fc.constantFrom(undefined, '1', '-1', '2'),
      expected: fc.constantFrom(null, '1', '2'),
      invoke: fc.nat(20),
      duration: fc.nat(12),
      outcome: fc.oneof(
        { weight: 4, arbitrary: fc.constant('ok') },
        { weight: pendingWeight, arbitrary: fc.constant('pending') },
        { weight: 1, arbitrary: fc.constant('failed') },
      ),
      getResult: fc.constantFrom(null, '1', '2', 'x', '3'),
      delResult: fc.constantFrom(0, 1),
      incrResult: fc.constantFrom(1, 2, 3, -1, 0, '2', '4'),
      casResult: fc.boolean(),
    })
    .map((r) => {
      const op: Op = { process: r.process, op: r.op, key: r.key, invoke: r.invoke, complete: r.invoke + r.duration };
      if (r.op === 'set' || r.op === 'cas') op.value = r.value;
      if (r.op === 'incr' && r.delta !== undefined) op.value = r.delta;
      if (r.op === 'cas') op.expected = r.expected;
      if (r.op === 'get') op.result = r.getResult;
      if (r.op === 'set') op.result = 'OK';
      if (r.op === 'del') op.result = r.delResult;
      if (r.op === 'incr') op.result = r.incrResult;
      if (r.op === 'cas') op.result = r.casResult;
      if (r.outcome === 'pending') {
        op.complete = null;
        delete op.result;
      } else if (r.outcome === 'failed') op.ok = false;
      return op;
    });

describe('agreement with brute force on tiny histories', () => {
  test.prop(
    [
      fc.oneof(
        fc.array(tinyOp(), { minLength: 1, maxLength: 7 }),
        fc.array(tinyOp(['get', 'incr', 'set', 'cas'], 4), { minLength: 1, maxLength: 7 }),
        fc.array(tinyOp(['get', 'set', 'del'], 4), { minLength: 1, maxLength: 7 }),
      ),
    ],
    { numRuns: 2500 },
  )('checkHistory and every strategy give the brute-force verdict', (ops) => {
    const expected = bruteForce(ops);
    const res = checkHistory(ops, { witness: true });
    expect(res.ok).toBe(expected);
    if (res.ok) expect(verifyWitness(ops, res.witness!)).toBeUndefined();
    expect(runStrategy(ops, 'dfs')).toBe(expected ? 'ok' : 'fail');
    expect(runStrategy(ops, 'frontier')).toBe(expected ? 'ok' : 'fail');
    const relaxed = runStrategy(ops, 'relaxed');
    if (expected) expect(['ok', 'inconclusive']).toContain(relaxed);
    else expect(['fail', 'inconclusive']).toContain(relaxed);
  });

  test('brute force itself: a stale read is not linearizable, a concurrent one is', () => {
    const w: Op = { process: 0, op: 'set', key: 'a', value: '1', invoke: 0, complete: 10, result: 'OK' };
    expect(bruteForce([w, { process: 1, op: 'get', key: 'a', invoke: 11, complete: 12, result: null }])).toBe(false);
    expect(bruteForce([w, { process: 1, op: 'get', key: 'a', invoke: 5, complete: 12, result: null }])).toBe(true);
  });
});

describe('the searches agree on medium histories', () => {
  // Generated histories with some results replaced by plausible values: often not linearizable,
  // and long enough for the frontier's incremental closure and caches to matter.
  const plausible = (op: Op, r: number): Op['result'] => {
    switch (op.op) {
      case 'get':
        return [null, '0', '1', '2', 'v0', 'v1', 'v2'][r % 7];
      case 'del':
        return r % 2;
      case 'incr':
        return (r % 7) - 2;
      case 'cas':
        return r % 2 === 0;
      default:
        return op.result;
    }
  };
  test.prop(
    [
      fc.array(
        plannedOp.map((o) => ({
          ...o,
          key: 0,
          outcome: o.outcome === 'ok' && o.arg % 4 === 0 ? ('timeout-applied' as const) : o.outcome,
        })),
        {
          minLength: 5,
          maxLength: 40,
        },
      ),
      fc.integer({ min: 1, max: 6 }),
      fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 3 }),
      fc.constantFrom([-2, -1, 0, 1, 2], [1]),
    ],
    { numRuns: 400 },
  )('DFS, exact frontier and relaxed frontier give consistent verdicts', (p, clients, mutations, deltas) => {
    const { ops } = buildHistory(p, clients, deltas);
    for (const [i, r] of mutations) {
      const op = ops[i % ops.length];
      if (op.complete !== null && op.ok !== false) op.result = plausible(op, r);
    }
    const dfs = runStrategy(ops, 'dfs');
    const exact = runStrategy(ops, 'frontier');
    const relaxed = runStrategy(ops, 'relaxed');
    expect(['ok', 'fail']).toContain(dfs);
    if (exact !== 'unsupported') expect(exact).toBe(dfs);
    if (relaxed === 'ok' || relaxed === 'fail') expect(relaxed).toBe(dfs);
    const res = checkHistory(ops, { witness: true });
    expect(res.ok).toBe(dfs === 'ok');
    if (res.ok) expect(verifyWitness(ops, res.witness!)).toBeUndefined();
  });
});

describe('format round trip', () => {
  const anyOp: fc.Arbitrary<Op> = fc
    .record({
      process: fc.oneof(fc.integer(), fc.string()),
      op: fc.constantFrom(...kinds),
      key: fc.string({ unit: 'grapheme' }),
      value: fc.string({ unit: 'binary' }),
      delta: fc.option(fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }), { nil: undefined }),
      expected: fc.option(fc.string(), { nil: null }),
      omitExpected: fc.boolean(),
      invoke: fc.double({ min: -1e9, max: 1e9, noNaN: true, noDefaultInfinity: true }),
      duration: fc.option(fc.double({ min: 0, max: 1e6, noNaN: true, noDefaultInfinity: true }), { nil: null }),
      ok: fc.constantFrom(undefined, true, false),
      getResult: fc.option(fc.string(), { nil: null }),
      incrAsString: fc.boolean(),
      n: fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
      bool: fc.boolean(),
      omitSetResult: fc.boolean(),
    })
    .map((r) => {
      const invoke = Object.is(r.invoke, -0) ? 0 : r.invoke;
      const op: Op = {
        process: r.process,
        op: r.op,
        key: r.key,
        invoke,
        complete: r.duration === null ? null : invoke + r.duration,
      };
      if (r.op === 'set' || r.op === 'cas') op.value = r.value;
      if (r.op === 'incr' && r.delta !== undefined) op.value = r.delta.toString();
      if (r.op === 'cas' && !r.omitExpected) op.expected = r.expected;
      if (op.complete !== null) {
        if (r.op === 'get') op.result = r.getResult;
        if (r.op === 'set' && !r.omitSetResult) op.result = 'OK';
        if (r.op === 'del') op.result = r.bool ? 1 : 0;
        if (r.op === 'incr') op.result = r.incrAsString ? String(r.n) : r.n;
        if (r.op === 'cas') op.result = r.bool;
      }
      if (r.ok !== undefined) op.ok = r.ok;
      return op;
    });

  test.prop([fc.array(anyOp, { maxLength: 30 })], { numRuns: 300 })(
    'parseHistory(serializeHistory(ops)) equals ops',
    (ops) => {
      const text = serializeHistory(ops);
      expect(text.split('\n').length).toBe(ops.length + 1); // one line per op, no raw newline inside
      expect(parseHistory(text)).toStrictEqual(ops);
    },
  );
});
