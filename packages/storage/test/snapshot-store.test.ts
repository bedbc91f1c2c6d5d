import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SnapshotCorruptError, type SnapshotStore, loadLatestValid } from '@decree/protocol';
import { FileSnapshotStore, MemorySnapshotStore, snapshotFileName } from '../src/index.ts';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'decree-snap-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

describe.each([
  ['memory', () => new MemorySnapshotStore() as SnapshotStore],
  ['file', () => new FileSnapshotStore(tmp()) as SnapshotStore],
])('%s snapshot store', (_name, make) => {
  it('saves, lists newest first, loads what was saved, prunes to the newest K', async () => {
    const s = make();
    expect(await s.list()).toEqual([]);
    expect(await loadLatestValid(s)).toBeUndefined();
    await s.save(10, ['a', 'b', 'c'], bytes(1000, 1));
    await s.save(30, ['a', 'b', 'c'], bytes(5, 3));
    await s.save(20, ['a', 'b'], bytes(0, 2));
    expect((await s.list()).map((m) => m.slot)).toEqual([30, 20, 10]);
    const l = await s.load(snapshotFileName(20));
    expect(l.meta).toMatchObject({ slot: 20, members: ['a', 'b'], length: 0 });
    expect(new Uint8Array((await s.load(snapshotFileName(10))).data)).toEqual(bytes(1000, 1));
    const latest = await loadLatestValid(s);
    expect(latest!.meta.slot).toBe(30);
    expect(new Uint8Array(latest!.data)).toEqual(bytes(5, 3));
    await s.prune(2);
    expect((await s.list()).map((m) => m.slot)).toEqual([30, 20]);
  });
});

describe('file snapshot store', () => {
  it('writes header + payload and leaves no temp file', async () => {
    const dir = tmp();
    const s = new FileSnapshotStore(dir);
    const meta = await s.save(7, ['r1', 'r2', 'r3'], bytes(300, 9));
    expect(readdirSync(dir)).toEqual([snapshotFileName(7)]);
    const raw = readFileSync(join(dir, meta.name));
    expect(raw.subarray(0, 4).toString('latin1')).toBe('DSNP');
    expect(raw.length).toBe(36 + JSON.stringify(['r1', 'r2', 'r3']).length + 300);
  });

  it('a file made durable a little at a time (syncEveryBytes) has the bytes of one written at once', async () => {
    const data = bytes(70_000, 3);
    const whole = new FileSnapshotStore(tmp(), { syncEveryBytes: 1 << 30 });
    const pieces = new FileSnapshotStore(tmp(), { syncEveryBytes: 4096 }); // 18 pieces, the last one short
    const a = await whole.save(9, ['r1', 'r2'], data);
    const b = await pieces.save(9, ['r1', 'r2'], data);
    expect(readFileSync(join(pieces.dir, b.name))).toEqual(readFileSync(join(whole.dir, a.name)));
    expect(Buffer.from((await pieces.load(b.name)).data)).toEqual(Buffer.from(data));
  });

  it('a corrupt newest snapshot falls back to the one before; every kind of damage is detected', async () => {
    const dir = tmp();
    const s = new FileSnapshotStore(dir);
    await s.save(100, ['a'], bytes(4096, 1));
    const newest = await s.save(200, ['a'], bytes(4096, 2));
    const p = join(dir, newest.name);
    const good = readFileSync(p);
    const damages: [string, (b: Buffer) => Buffer][] = [
      [
        'payload bit flip',
        (b) => {
          const c = Buffer.from(b);
          c[c.length - 10]! ^= 1;
          return c;
        },
      ],
      [
        'header bit flip',
        (b) => {
          const c = Buffer.from(b);
          c[9]! ^= 1;
          return c;
        },
      ],
      ['torn (short) file', (b) => b.subarray(0, b.length - 100)],
      ['empty file', () => Buffer.alloc(0)],
      ['extra bytes', (b) => Buffer.concat([b, Buffer.from([1, 2, 3])])],
    ];
    for (const [what, damage] of damages) {
      writeFileSync(p, damage(good));
      await expect(s.load(newest.name), what).rejects.toBeInstanceOf(SnapshotCorruptError);
      const skipped: string[] = [];
      const l = await loadLatestValid(s, (n) => skipped.push(n));
      expect(l!.meta.slot, what).toBe(100);
      expect(new Uint8Array(l!.data)).toEqual(bytes(4096, 1));
      expect(skipped).toEqual([newest.name]);
    }
    writeFileSync(p, good);
    expect((await loadLatestValid(s))!.meta.slot).toBe(200);
  });

  it('an unfinished save (temp file) is ignored and cleaned up', async () => {
    const dir = tmp();
    const s = new FileSnapshotStore(dir);
    await s.save(5, ['a'], bytes(10, 0));
    writeFileSync(join(dir, `.tmp-1-1-${snapshotFileName(9)}`), Buffer.from('half'));
    expect((await s.list()).map((m) => m.slot)).toEqual([5]);
    expect(readdirSync(dir)).toEqual([snapshotFileName(5)]);
  });
});

describe('memory snapshot store', () => {
  it('detects a corrupted payload', async () => {
    const s = new MemorySnapshotStore();
    await s.save(1, [], bytes(10, 0));
    const m = await s.save(2, [], bytes(10, 1));
    s.corrupt(m.name, 3);
    await expect(s.load(m.name)).rejects.toBeInstanceOf(SnapshotCorruptError);
    expect((await loadLatestValid(s))!.meta.slot).toBe(1);
  });
});
