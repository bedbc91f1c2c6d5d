import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import {
  applyRecord,
  compareBallots,
  emptyRecoveredState,
  emptyStoreStats,
  NOOP,
  slotValueEquals,
  type Ballot,
  type StoreRecord,
} from '../src/index.ts';
import { ballot, slotValue } from './arbitraries.ts';

const promiseRec = ballot.map((b): StoreRecord => ({ t: 'promise', ballot: b }));
const acceptRec = fc
  .record({ slot: fc.integer({ min: 1, max: 6 }), ballot, value: slotValue })
  .map((r): StoreRecord => ({ t: 'accept', ...r }));
const truncRec = fc.integer({ min: 0, max: 6 }).map((below): StoreRecord => ({ t: 'truncate', below }));
const metaRec = fc
  .record({ key: fc.constantFrom('x', 'y'), value: fc.uint8Array({ maxLength: 3 }) })
  .map((r): StoreRecord => ({ t: 'meta', ...r }));

describe('applyRecord (the recovery every store shares)', () => {
  test.prop([fc.array(fc.oneof(promiseRec, acceptRec, truncRec, metaRec), { maxLength: 40 })])(
    'promised is the highest promise; each kept slot holds its ' +
      'highest-ballot accept; nothing below the truncation point',
    (records) => {
      const s = emptyRecoveredState();
      for (const r of records) applyRecord(s, r);
      const promises = records.filter((r) => r.t === 'promise').map((r) => (r as { ballot: Ballot }).ballot);
      const best = promises.reduce((a, b) => (compareBallots(b, a) > 0 ? b : a), emptyRecoveredState().promised);
      expect(compareBallots(s.promised, best)).toBe(0);
      const trunc = Math.max(
        0,
        ...records.filter((r) => r.t === 'truncate').map((r) => (r as { below: number }).below),
      );
      expect(s.truncatedBelow).toBe(trunc);
      for (const [slot, acc] of s.accepted) {
        expect(slot).toBeGreaterThanOrEqual(trunc);
        for (const r of records)
          if (r.t === 'accept' && r.slot === slot)
            expect(compareBallots(acc.ballot, r.ballot)).toBeGreaterThanOrEqual(0);
      }
      // a slot at or above the final truncation point that was accepted after the last truncation is kept
      let lastTrunc = -1;
      records.forEach((r, i) => r.t === 'truncate' && r.below > 0 && (lastTrunc = i));
      records.forEach((r, i) => {
        if (r.t === 'accept' && i > lastTrunc && r.slot >= trunc) expect(s.accepted.has(r.slot)).toBe(true);
      });
    },
  );

  it('at the same slot and ballot the later accept wins; a lower ballot never replaces a higher one', () => {
    const s = emptyRecoveredState();
    const b1: Ballot = { round: 1, leader: 'a' };
    const b2: Ballot = { round: 2, leader: 'a' };
    const v: StoreRecord = { t: 'accept', slot: 1, ballot: b1, value: NOOP };
    applyRecord(s, v);
    applyRecord(s, {
      t: 'accept',
      slot: 1,
      ballot: b2,
      value: { k: 'batch', origin: 'a', inc: 0, firstId: 0, cmds: [] },
    });
    applyRecord(s, { t: 'accept', slot: 1, ballot: b1, value: NOOP });
    expect(s.accepted.get(1)!.ballot).toEqual(b2);
    expect(slotValueEquals(s.accepted.get(1)!.value, NOOP)).toBe(false);
    applyRecord(s, { t: 'meta', key: 'k', value: new Uint8Array([1]) });
    expect(Array.from(s.meta.get('k')!)).toEqual([1]);
    expect(emptyStoreStats()).toEqual({ appends: 0, records: 0, syncs: 0, bytes: 0, writeMs: 0, reads: 0, readMs: 0 });
  });
});
