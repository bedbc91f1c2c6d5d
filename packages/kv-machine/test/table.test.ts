import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ByteTable, type TableCopy } from '../src/table.ts';

const bin = (s: string) => Buffer.from(s, 'latin1');
const str = (b: Uint8Array) => Buffer.from(b).toString('latin1');

/** the entries of a table copy, as a Map of binary strings */
function copyEntries(c: TableCopy): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < c.count; i++) {
    const [slab, off, kl, vl] = c.rows.subarray(4 * i, 4 * i + 4);
    const s = c.slabs[slab!]!;
    m.set(str(s.subarray(off!, off! + kl!)), str(s.subarray(off! + kl!, off! + kl! + vl!)));
  }
  return m;
}

function tableEntries(t: ByteTable): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of t.entries()) m.set(t.keyStr(e), t.valueStr(e));
  return m;
}

// keys from a small pool (so that sets overwrite and deletes hit), values of every size class and beyond
const keyArb = fc.oneof(
  fc.constantFrom('', 'a', 'b', 'key:000000000001', 'key:000000000002', '\u0000\u00ff'),
  fc.string({ unit: 'binary-ascii', maxLength: 40 }),
);
const valueArb = fc.oneof(
  { weight: 8, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 300 }) },
  { weight: 1, arbitrary: fc.nat({ max: 150_000 }).map((n) => 'x'.repeat(n)) },
);
const opArb = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('set' as const), k: keyArb, v: valueArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('del' as const), k: keyArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('copy' as const) }) },
);

describe('ByteTable', () => {
  it('set and find from byte ranges of many buffers at any offsets (word-wise compares and copies)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ k: keyArb, v: valueArb, pad: fc.nat({ max: 7 }), fresh: fc.boolean() }), {
          maxLength: 80,
        }),
        (ops) => {
          const t = new ByteTable(7);
          const model = new Map<string, string>();
          let shared = Buffer.alloc(0);
          for (const o of ops) {
            // key and value at an odd place in a buffer that is new, or the one before rewritten
            const b = Buffer.from('\u0001'.repeat(o.pad) + o.k + o.v + '\u0002', 'latin1');
            const buf = o.fresh || shared.length < b.length ? b : (b.copy(shared), shared);
            shared = buf;
            t.set(buf, o.pad, o.k.length, buf, o.pad + o.k.length, o.v.length);
            model.set(o.k, o.v);
            const e = t.find(buf, o.pad, o.k.length);
            expect(e).toBeGreaterThanOrEqual(0);
            expect(t.valueStr(e)).toBe(o.v);
          }
          expect(tableEntries(t)).toEqual(model);
          // near misses: one byte more, or the last byte changed, are other keys
          for (const k of model.keys()) {
            const longer = `${k}\u0003`;
            const changed =
              k.length > 0 ? k.slice(0, -1) + String.fromCharCode(k.charCodeAt(k.length - 1) ^ 1) : '\u0004';
            for (const miss of [longer, changed]) if (!model.has(miss)) expect(t.findStr(miss)).toBe(-1);
          }
        },
      ),
    );
  });

  it('behaves as a Map of byte strings, and a copy keeps its contents while the table changes', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 120 }), fc.integer(), (ops, seed) => {
        const t = new ByteTable(seed);
        const model = new Map<string, string>();
        const copies: [TableCopy, Map<string, string>][] = [];
        for (const o of ops) {
          if (o.op === 'set') {
            const r = t.setStr(o.k, o.v);
            expect(r < 0).toBe(!model.has(o.k)); // negative: a new entry
            model.set(o.k, o.v);
          } else if (o.op === 'del') {
            expect(t.deleteStr(o.k)).toBe(model.delete(o.k));
          } else {
            copies.push([t.copy(), new Map(model)]);
          }
          expect(t.size).toBe(model.size);
        }
        expect(tableEntries(t)).toEqual(model);
        for (const [k, v] of model) {
          const e = t.findStr(k);
          expect(e).toBeGreaterThanOrEqual(0);
          expect(t.valueStr(e)).toBe(v);
          expect(t.valueEquals(e, bin(v), 0, v.length)).toBe(true);
        }
        for (const [c, m] of copies) expect(copyEntries(c)).toEqual(m);
      }),
      { numRuns: 300 },
    );
  });

  it('finds every key after many inserts and deletes (index growth and backward-shift deletion)', () => {
    const t = new ByteTable(7);
    const model = new Map<string, string>();
    for (let i = 0; i < 20_000; i++) {
      const k = `k${(i * 7919) % 5000}`;
      if (i % 3 === 2) {
        expect(t.deleteStr(k)).toBe(model.delete(k));
      } else {
        t.setStr(k, `v${i}`);
        model.set(k, `v${i}`);
      }
    }
    expect(t.size).toBe(model.size);
    for (let i = 0; i < 5000; i++) {
      const k = `k${i}`;
      const e = t.findStr(k);
      expect(e >= 0 ? t.valueStr(e) : undefined).toBe(model.get(k));
    }
  });

  it('overwrites a value that fits its chunk in place, and reuses freed chunks', () => {
    const t = new ByteTable(1);
    const v45 = 'v'.repeat(45);
    for (let i = 0; i < 1000; i++) t.setStr(`key:${String(i).padStart(12, '0')}`, v45);
    const before = t.memory();
    for (let r = 0; r < 5; r++)
      for (let i = 0; i < 1000; i++) t.setStr(`key:${String(i).padStart(12, '0')}`, `w${r}`.repeat(15));
    expect(t.memory()).toEqual(before);
    // delete everything and insert again: the same chunks, no new slab
    for (let i = 0; i < 1000; i++) expect(t.deleteStr(`key:${String(i).padStart(12, '0')}`)).toBe(true);
    expect(t.memory().chunkBytes).toBe(0);
    for (let i = 0; i < 1000; i++) t.setStr(`key:${String(i).padStart(12, '0')}`, v45);
    expect(t.memory()).toEqual(before);
  });

  it('gives a value over 64 KiB a slab of its own and drops it when it shrinks or is deleted', () => {
    const t = new ByteTable(1);
    t.setStr('big', 'b'.repeat(100_000));
    expect(t.memory().slabBytes).toBe(100_003);
    t.setStr('big', 'small');
    expect(t.memory().slabBytes).toBe(4 << 20); // one small-chunk slab, the big one dropped
    expect(t.valueStr(t.findStr('big'))).toBe('small');
    t.setStr('big2', 'c'.repeat(70_000));
    expect(t.deleteStr('big2')).toBe(true);
    expect(t.memory().slabBytes).toBe(4 << 20);
  });
});

describe('ByteTable.touch (prefetch)', () => {
  it('reads, changes nothing, and takes any entry numbers, stale or out of range', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.string({ maxLength: 6 }), fc.string({ maxLength: 40 })), { maxLength: 80 }),
        fc.array(fc.integer({ min: -5, max: 200 }), { maxLength: 50 }),
        (sets, junk) => {
          const t = new ByteTable(7);
          for (const [k, v] of sets) t.setStr(k, v);
          if (sets.length > 0) t.deleteStr(sets[0]![0]); // a freed entry among those touched
          const before = sets.map(([k]) => [k, t.findStr(k) >= 0 ? t.valueStr(t.findStr(k)) : undefined]);
          const homes = sets.map(([k]) => {
            const b = Buffer.from(k, 'latin1');
            return t.homeEntry(t.hash(b, 0, b.length));
          });
          const entries = Int32Array.from([...homes, ...junk]);
          t.touch(entries, entries.length);
          const after = sets.map(([k]) => [k, t.findStr(k) >= 0 ? t.valueStr(t.findStr(k)) : undefined]);
          expect(after).toEqual(before);
          expect(t.size).toBe(new Set(sets.map(([k]) => k)).size - (sets.length > 0 ? 1 : 0));
        },
      ),
      { numRuns: 300 },
    );
  });
});
