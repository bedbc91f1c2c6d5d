import { describe, expect, it } from 'vitest';
import { Rng } from '@decree/chaos';
import { Ledger } from '../src/ledger.ts';
import { bigValueIntact, makeTemplate, parseValue, smallValue, valueHeader } from '../src/values.ts';

const check = (l: Ledger, values: Record<string, string | null>) =>
  l.check(new Map(Object.entries(values)), parseValue);

describe('values', () => {
  it('small values are 64 bytes and name their key and writer', () => {
    const v = smallValue('k:17', 'b2.345');
    expect(v.length).toBe(64);
    expect(parseValue(v)).toEqual({ key: 'k:17', id: 'b2.345' });
    expect(parseValue('garbage')).toBeUndefined();
  });

  it('a big value is intact only with the exact template body', () => {
    const t = makeTemplate(1000, new Rng(1));
    const ts = t.toString('latin1');
    const h = valueHeader('big:3', 'b1.9');
    const v = h + ts.slice(0, 1000 - h.length);
    expect(parseValue(v)).toEqual({ key: 'big:3', id: 'b1.9' });
    expect(bigValueIntact(v, ts, 1000)).toBe(true);
    expect(bigValueIntact(v.slice(0, -1) + (v.endsWith('!') ? '"' : '!'), ts, 1000)).toBe(false);
    expect(bigValueIntact(v.slice(0, 999), ts, 1000)).toBe(false);
  });
});

describe('Ledger: SET keys', () => {
  it('the last acknowledged write read back: nothing lost', () => {
    const l = new Ledger();
    const a = l.setInvoked('k', 'w.1', 0);
    l.setAcked(a, 5);
    const b = l.setInvoked('k', 'w.2', 10);
    l.setAcked(b, 15);
    const r = check(l, { k: smallValue('k', 'w.2') });
    expect(r.lost).toEqual([]);
    expect(r.corrupt).toEqual([]);
    expect(r.ackedSets).toBe(2);
  });

  it('an older write read back after a later acknowledged one: lost', () => {
    const l = new Ledger();
    const a = l.setInvoked('k', 'w.1', 0);
    l.setAcked(a, 5);
    const b = l.setInvoked('k', 'w.2', 10);
    l.setAcked(b, 15);
    const r = check(l, { k: smallValue('k', 'w.1') });
    expect(r.lost.map((x) => x.key)).toEqual(['k']);
  });

  it('concurrent writes (same pipeline) may end in either order', () => {
    const l = new Ledger();
    const a = l.setInvoked('k', 'w.1', 0);
    const b = l.setInvoked('k', 'w.2', 0);
    l.setAcked(a, 5);
    l.setAcked(b, 6);
    expect(check(l, { k: smallValue('k', 'w.1') }).lost).toEqual([]);
    expect(check(l, { k: smallValue('k', 'w.2') }).lost).toEqual([]);
  });

  it('a write with an unknown outcome may be the final value whenever it was sent', () => {
    const l = new Ledger();
    const u = l.setInvoked('k', 'w.1', 0);
    l.setUnknown(u);
    const b = l.setInvoked('k', 'x.1', 100);
    l.setAcked(b, 105);
    expect(check(l, { k: smallValue('k', 'w.1') }).lost).toEqual([]);
  });

  it('absent although a SET was acknowledged: lost; absent with only unknown SETs: fine', () => {
    const l = new Ledger();
    l.setAcked(l.setInvoked('k', 'w.1', 0), 1);
    l.setUnknown(l.setInvoked('j', 'w.2', 0));
    const r = check(l, { k: null, j: null });
    expect(r.lost.map((x) => x.key)).toEqual(['k']);
  });

  it('a CAS that answered 0 cannot be the final value', () => {
    const l = new Ledger();
    l.setAcked(l.setInvoked('k', 'w.1', 0), 1);
    l.setNotApplied(l.setInvoked('k', 'w.2', 2));
    const r = check(l, { k: smallValue('k', 'w.2') });
    expect(r.lost.length + r.corrupt.length).toBeGreaterThan(0);
  });

  it('a value never sent, or sent to another key, is corrupt; a key not read is unread', () => {
    const l = new Ledger();
    l.setAcked(l.setInvoked('k', 'w.1', 0), 1);
    l.setAcked(l.setInvoked('j', 'w.2', 0), 1);
    l.setAcked(l.setInvoked('m', 'w.3', 0), 1);
    const r = check(l, { k: smallValue('k', 'w.99'), j: smallValue('k', 'w.1') });
    expect(r.corrupt.length).toBe(2);
    expect(r.unread).toBe(1);
  });
});

describe('Ledger: counters', () => {
  it('below the highest acknowledged answer or the acknowledged count: lost; above the INCRs sent: corrupt', () => {
    const l = new Ledger();
    for (let i = 0; i < 5; i++) l.incrInvoked('c');
    l.incrAcked('c', 2);
    l.incrAcked('c', 4);
    expect(check(l, { c: '4' }).lost).toEqual([]);
    expect(check(l, { c: '5' }).lost).toEqual([]);
    expect(check(l, { c: '3' }).lost.length).toBe(1);
    expect(check(l, { c: null }).lost.length).toBe(1);
    expect(check(l, { c: '6' }).corrupt.length).toBe(1);
  });
});
