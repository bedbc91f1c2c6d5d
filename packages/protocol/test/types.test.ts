import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import {
  ballotEq,
  ballotGte,
  ballotLt,
  ballotToString,
  bytesEqual,
  compareBallots,
  decodeValue,
  encodeValue,
  maxBallot,
  NOOP,
  quorumSize,
  slotValueEquals,
  slotValueSize,
  ZERO_BALLOT,
  type Ballot,
  type SlotValue,
} from '../src/index.ts';
import { anyBallot, ballot, slotValue } from './arbitraries.ts';

const sign = (n: number) => (n < 0 ? -1 : n > 0 ? 1 : 0);
// small ballots collide often (equal rounds, equal leaders), large ones exercise big rounds
const someBallot = fc.oneof(ballot, anyBallot);

describe('ballot order', () => {
  test.prop([someBallot, someBallot])('antisymmetric, and 0 exactly when equal', (a, b) => {
    expect(sign(compareBallots(a, b))).toBe(-sign(compareBallots(b, a)));
    expect(compareBallots(a, b) === 0).toBe(ballotEq(a, b));
    expect(compareBallots(a, a)).toBe(0);
  });

  test.prop([someBallot, someBallot, someBallot])('transitive', (a, b, c) => {
    if (compareBallots(a, b) <= 0 && compareBallots(b, c) <= 0) expect(compareBallots(a, c)).toBeLessThanOrEqual(0);
    if (compareBallots(a, b) < 0 && compareBallots(b, c) <= 0) expect(compareBallots(a, c)).toBeLessThan(0);
  });

  test.prop([someBallot, someBallot])('total: exactly one of <, =, > holds; lt/gte agree', (a, b) => {
    const c = compareBallots(a, b);
    expect([c < 0, c === 0, c > 0].filter(Boolean)).toHaveLength(1);
    expect(ballotLt(a, b)).toBe(c < 0);
    expect(ballotGte(a, b)).toBe(c >= 0);
    expect(ballotLt(a, b)).toBe(!ballotGte(a, b));
  });

  test.prop([someBallot, someBallot])('lexicographic: round first, then leader', (a, b) => {
    if (a.round !== b.round) expect(sign(compareBallots(a, b))).toBe(a.round < b.round ? -1 : 1);
    else expect(sign(compareBallots(a, b))).toBe(a.leader === b.leader ? 0 : a.leader < b.leader ? -1 : 1);
  });

  test.prop([fc.array(someBallot, { minLength: 1, maxLength: 12 })])(
    'sorting with it agrees with a fold of maxBallot',
    (bs) => {
      const sorted = [...bs].sort(compareBallots);
      for (let i = 1; i < sorted.length; i++) expect(compareBallots(sorted[i - 1]!, sorted[i]!)).toBeLessThanOrEqual(0);
      const m = bs.reduce(maxBallot);
      expect(ballotEq(m, sorted[sorted.length - 1]!)).toBe(true);
    },
  );

  test.prop([someBallot, someBallot])(
    'maxBallot returns one of its arguments, >= both, commutative up to equality',
    (a, b) => {
      const m = maxBallot(a, b);
      expect(m === a || m === b).toBe(true);
      expect(ballotGte(m, a) && ballotGte(m, b)).toBe(true);
      expect(ballotEq(m, maxBallot(b, a))).toBe(true);
    },
  );

  it('ZERO_BALLOT is below every real ballot; examples', () => {
    expect(compareBallots(ZERO_BALLOT, { round: 0, leader: 'a' })).toBe(-1);
    expect(compareBallots({ round: 2, leader: 'a' }, { round: 1, leader: 'z' })).toBe(1);
    expect(compareBallots({ round: 1, leader: 'r10' }, { round: 1, leader: 'r2' })).toBe(-1); // string order
    expect(Object.isFrozen(ZERO_BALLOT)).toBe(true);
    expect(ballotToString({ round: 7, leader: 'r3' })).toBe('7.r3');
  });
});

describe('quorumSize', () => {
  test.prop([fc.integer({ min: 1, max: 101 })])('is the smallest majority: two quorums always intersect', (n) => {
    const q = quorumSize({ epoch: 0, members: Array.from({ length: n }, (_, i) => `r${i}`), startSlot: 1 });
    expect(2 * q).toBeGreaterThan(n); // any two quorums share a member
    expect(2 * (q - 1)).toBeLessThanOrEqual(n); // one fewer would not
    expect(q).toBeLessThanOrEqual(n);
  });
  it('examples', () => {
    const qs = [1, 2, 3, 4, 5, 6, 7].map((n) =>
      quorumSize({ epoch: 1, members: Array.from({ length: n }, (_, i) => `${i}`), startSlot: 1 }),
    );
    expect(qs).toEqual([1, 2, 2, 3, 3, 4, 4]);
  });
});

describe('slotValueEquals', () => {
  const copy = (v: SlotValue) => decodeValue(encodeValue(v)) as SlotValue;

  test.prop([slotValue])('reflexive, and equal to its own deep copy through the codec', (v) => {
    expect(slotValueEquals(v, v)).toBe(true);
    expect(slotValueEquals(v, copy(v))).toBe(true);
    expect(slotValueEquals(copy(v), v)).toBe(true);
  });

  test.prop([slotValue, slotValue])('symmetric', (a, b) => {
    expect(slotValueEquals(a, b)).toBe(slotValueEquals(b, a));
  });

  test.prop([slotValue, slotValue])('equal values encode to the same bytes (modulo absent vs false flags)', (a, b) => {
    const norm = (v: SlotValue) => {
      const o = { ...v } as Record<string, unknown>;
      if (o.excl === false) delete o.excl;
      if (o.last === false) delete o.last;
      return o;
    };
    if (slotValueEquals(a, b)) expect(bytesEqual(encodeValue(norm(a)), encodeValue(norm(b)))).toBe(true);
  });

  const base: SlotValue = {
    k: 'batch',
    origin: 'r1',
    inc: 1,
    firstId: 5,
    cmds: [new Uint8Array([1, 2]), new Uint8Array([3])],
  };
  const cfg: SlotValue = { k: 'config', epoch: 2, origin: 'r1', inc: 1, firstId: 5, members: ['a', 'b'] };
  it.each([
    ['kind', NOOP],
    ['origin', { ...base, origin: 'r2' }],
    ['inc', { ...base, inc: 2 }],
    ['firstId', { ...base, firstId: 6 }],
    ['a command byte', { ...base, cmds: [new Uint8Array([1, 9]), new Uint8Array([3])] }],
    ['a command length', { ...base, cmds: [new Uint8Array([1, 2, 0]), new Uint8Array([3])] }],
    ['command count', { ...base, cmds: [new Uint8Array([1, 2])] }],
    ['excl', { ...base, excl: true }],
    ['last', { ...base, last: true }],
  ] as [string, SlotValue][])('batch: a change of %s is detected', (_what, other) => {
    expect(slotValueEquals(base, other)).toBe(false);
    expect(slotValueEquals(other, base)).toBe(false);
  });
  it('batch: absent and false flags are the same', () => {
    expect(slotValueEquals(base, { ...base, excl: false, last: false })).toBe(true);
  });
  it.each([
    ['members', { ...cfg, members: ['a', 'c'] }],
    ['member order', { ...cfg, members: ['b', 'a'] }],
    ['members joined by a comma', { ...cfg, members: ['a,b'] }],
    ['origin', { ...cfg, origin: 'x' }],
    ['epoch', { ...cfg, epoch: 3 }],
    ['cookie', { ...cfg, cookie: new Uint8Array([1]) }],
  ] as [string, SlotValue][])('config: a change of %s is detected', (_what, other) => {
    expect(slotValueEquals(cfg, other)).toBe(false);
    expect(slotValueEquals(other, cfg)).toBe(false);
  });
  it('slotValueSize grows with the commands', () => {
    expect(slotValueSize(NOOP)).toBe(16);
    expect(slotValueSize(base)).toBe(32 + 2 + 2 + 1 + 2);
  });
});

describe('ballot helpers never mutate', () => {
  test.prop([anyBallot, anyBallot])('inputs unchanged', (a: Ballot, b: Ballot) => {
    const sa = JSON.stringify(a);
    const sb = JSON.stringify(b);
    compareBallots(a, b);
    maxBallot(a, b);
    expect(JSON.stringify(a)).toBe(sa);
    expect(JSON.stringify(b)).toBe(sb);
  });
});
