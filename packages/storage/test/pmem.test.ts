import { existsSync, openSync, readFileSync, writeSync, closeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { crc32c } from '@node-rs/crc32';
import type { StoreRecord } from '@decree/protocol';
import {
  PmemNotBuiltError,
  commitLog,
  loadPmemAddon,
  loadPmemAddonFrom,
  openPmemLog,
  recordBytes,
} from '@decree/pmem-log';
import { PmemStore } from '../src/pmem.ts';
import { StorageCorruptionError, StorageFullError } from '../src/errors.ts';
import { encodeRecord } from '../src/records.ts';
import { acceptRec, appendP, expected, plain, recordArb, tempDir } from './helpers.ts';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});
function dir(): string {
  const t = tempDir('decree-pmem-');
  cleanups.push(t.cleanup);
  return t.dir;
}
function flip(path: string, offset: number): void {
  const b = Buffer.from([readFileSync(path)[offset]! ^ 0x5a]);
  const fd = openSync(path, 'r+');
  writeSync(fd, b, 0, 1, offset);
  closeSync(fd);
}
async function open(path: string, capacity = 1 << 20) {
  const s = new PmemStore({ path, capacity });
  const state = await s.recover();
  return { s, state };
}
const HEADER = 4096;

describe('native pmem-log addon', () => {
  it('is built, and with libpmem when libpmem-dev is installed', () => {
    const addon = loadPmemAddon(); // throws PmemNotBuiltError if `node tools/scripts/build-native.mjs` failed
    expect(['libpmem', 'mmap']).toContain(addon.backend);
    const havePmem = spawnSync('pkg-config', ['--exists', 'libpmem']).status === 0;
    if (havePmem && process.env.DECREE_PMEM_BACKEND !== 'mmap') expect(addon.backend).toBe('libpmem');
    expect(PmemStore.backend()).toBe(addon.backend);
  });

  it('says "pmem addon not built" when the addon file is missing', () => {
    expect(() => loadPmemAddonFrom('/nonexistent/pmem_log.node')).toThrow(PmemNotBuiltError);
    expect(() => loadPmemAddonFrom('/nonexistent/pmem_log.node')).toThrow(/pmem addon not built/);
  });

  it('computes the same crc32c as @node-rs/crc32', () => {
    const { crc32c: native } = loadPmemAddon();
    for (const n of [0, 1, 7, 8, 9, 63, 4096, 10_001]) {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = (i * 131 + n) & 0xff;
      expect(native(b)).toBe(crc32c(b));
    }
  });

  it('keeps committed records and loses tentative ones across reopen', async () => {
    const p = join(dir(), 'a.plog');
    const log = openPmemLog(p, 8192);
    log.append(Buffer.from('one'));
    log.appendMany([Buffer.from('two'), Buffer.alloc(100, 3)]);
    await commitLog(log);
    log.append(Buffer.from('tentative')); // never committed: a crash here loses it
    expect(log.tentativeTail).toBeGreaterThan(log.tail);
    log.close();
    const again = openPmemLog(p, 0);
    const { payloads, offsets } = again.read();
    expect(payloads.map((b) => b.length)).toEqual([3, 3, 100]);
    expect(payloads[1]!.toString()).toBe('two');
    expect(offsets).toEqual([0, recordBytes(3), 2 * recordBytes(3)]);
    expect(again.tail).toBe(2 * recordBytes(3) + recordBytes(100));
    again.close();
  });

  it('wraps records around the end of the circular area and moves its head atomically with a commit', () => {
    const p = join(dir(), 'w.plog');
    const log = openPmemLog(p, 4096);
    const rec = (i: number) => Buffer.alloc(1000, i);
    let head = 0;
    const live: number[] = [];
    for (let i = 1; i <= 20; i++) {
      if (log.tentativeTail + recordBytes(1000) - log.head > log.capacity) {
        head += recordBytes(1000); // drop the oldest record
        live.shift();
        log.commitSync(log.tentativeTail, head);
      }
      log.append(rec(i));
      live.push(i);
      log.commitSync();
    }
    expect(log.tail).toBeGreaterThan(4 * log.capacity); // wrapped several times
    log.close();
    const again = openPmemLog(p, 0);
    const got = again.read().payloads.map((b) => b[0]);
    expect(got).toEqual(live);
    expect(again.read().payloads.every((b, i) => b.equals(rec(live[i]!)))).toBe(true);
    again.close();
  });

  it('refuses a record that does not fit (ELOGFULL)', () => {
    const log = openPmemLog(join(dir(), 'f.plog'), 4096);
    expect(() => log.append(Buffer.alloc(5000))).toThrow(expect.objectContaining({ code: 'ELOGFULL' }));
    log.close();
  });

  it('reports a damaged record of an earlier commit with its file offset (ECORRUPT)', () => {
    const p = join(dir(), 'c.plog');
    const log = openPmemLog(p, 8192);
    log.appendMany([Buffer.alloc(40, 1), Buffer.alloc(40, 2), Buffer.alloc(40, 3)]);
    log.commitSync();
    log.append(Buffer.alloc(40, 4));
    log.commitSync(); // the last commit adds only the fourth record
    log.close();
    flip(p, HEADER + recordBytes(40) + 8 + 5); // inside the second record
    const again = openPmemLog(p, 0);
    expect(again.rolledBack).toBe(false);
    expect(() => again.read()).toThrow(expect.objectContaining({ code: 'ECORRUPT', offset: HEADER + recordBytes(40) }));
    again.close();
  });

  // One msync per commit on a file: its pages reach the disk in no set order, so a crash during the
  // flush can leave the new metadata copy without its records (or the copy half written). Such a
  // commit was never acknowledged: open goes back to the commit before it.
  it('goes back to the previous commit when the last one is torn (a record it adds is damaged)', () => {
    const p = join(dir(), 't.plog');
    const log = openPmemLog(p, 8192);
    log.appendMany([Buffer.alloc(40, 1), Buffer.alloc(40, 2)]);
    log.commitSync();
    const before = { seq: log.seq, tail: log.tail };
    log.appendMany([Buffer.alloc(40, 3), Buffer.alloc(40, 4)]);
    log.commitSync();
    log.close();
    flip(p, HEADER + 3 * recordBytes(40) + 8 + 1); // the fourth record never reached the disk
    const again = openPmemLog(p, 0);
    expect(again.rolledBack).toBe(true);
    expect({ seq: again.seq, tail: again.tail }).toEqual(before);
    expect(again.read().payloads.map((b) => b[0])).toEqual([1, 2]);
    // the next commit overwrites the torn one: both survive the next open
    again.append(Buffer.alloc(40, 5));
    again.commitSync();
    again.close();
    const third = openPmemLog(p, 0);
    expect(third.rolledBack).toBe(false);
    expect(third.read().payloads.map((b) => b[0])).toEqual([1, 2, 5]);
    third.close();
  });

  it('goes back to the previous commit when the newer metadata copy is damaged', () => {
    const p = join(dir(), 'm.plog');
    const log = openPmemLog(p, 8192);
    log.append(Buffer.from('x'));
    log.commitSync(); // seq 1 lives in copy 1
    log.append(Buffer.from('y'));
    log.commitSync(); // seq 2 in copy 0
    log.close();
    flip(p, 128 + 8); // copy 0's head
    const again = openPmemLog(p, 0);
    expect(again.rolledBack).toBe(true);
    expect(again.seq).toBe(1);
    expect(again.read().payloads.map((b) => b.toString())).toEqual(['x']);
    again.close();
  });

  it('property: a byte damaged anywhere in the records of the last commit rolls back exactly that commit', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 4 }), {
          minLength: 2,
          maxLength: 12,
        }),
        fc.nat(),
        (commits, pick) => {
          const t = tempDir('decree-pmemt-');
          try {
            const p = join(t.dir, 'p.plog');
            const log = openPmemLog(p, 4096);
            const kept: number[] = [];
            let lastFrom = 0;
            let n = 0;
            for (const [ci, sizes] of commits.entries()) {
              const total = sizes.reduce((a, x) => a + recordBytes(x), 0);
              if (log.tentativeTail + total - log.head > log.capacity) {
                kept.splice(0); // start over: drop every record (the head moves to the tail)
                log.commitSync(log.tail, log.tail);
              }
              if (ci === commits.length - 1) lastFrom = log.tail;
              else for (let k = 0; k < sizes.length; k++) kept.push(n + k);
              log.appendMany(sizes.map((x, k) => Buffer.alloc(x, (n + k) & 0xff)));
              n += sizes.length;
              log.commitSync();
            }
            const lastTo = log.tail;
            log.close();
            const at = lastFrom + (pick % (lastTo - lastFrom));
            // a pad byte is not covered by the crc: damage a header or payload byte instead
            flip(p, HEADER + (at % 4096));
            const again = openPmemLog(p, 0);
            const got = again.read().payloads.map((b) => b[0]);
            const whole = !again.rolledBack;
            again.close();
            if (whole) return true; // the byte was padding
            expect(got).toEqual(kept.map((k) => k & 0xff));
            return true;
          } finally {
            t.cleanup();
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('refuses a log whose two metadata copies are both damaged (ECORRUPT)', () => {
    const p = join(dir(), 'b.plog');
    const log = openPmemLog(p, 8192);
    log.append(Buffer.from('x'));
    log.commitSync();
    log.close();
    flip(p, 128 + 8);
    flip(p, 192 + 8);
    expect(() => openPmemLog(p, 0)).toThrow(expect.objectContaining({ code: 'ECORRUPT' }));
  });
});

describe('PmemStore', () => {
  it('round-trips records across close and reopen', async () => {
    const p = join(dir(), 'r.plog');
    const recs: StoreRecord[] = [
      { t: 'promise', ballot: { round: 2, leader: 'a' } },
      acceptRec(1),
      acceptRec(2, 2, 500),
      { t: 'meta', key: 'k', value: new Uint8Array([5]) },
    ];
    const { s, state } = await open(p);
    expect(plain(state)).toEqual(plain(expected([])));
    expect(typeof s.isPmem).toBe('boolean');
    await appendP(s, recs.slice(0, 3));
    await appendP(s, recs.slice(3));
    await s.close();
    const r = await open(p);
    expect(plain(r.state)).toEqual(plain(expected(recs)));
    await r.s.close();
  });

  it('coalesces concurrent appends into few commits, each done after the commit covering it', async () => {
    const { s } = await open(join(dir(), 'g.plog'), 8 << 20);
    let late = 0;
    let acked = 0;
    await new Promise<void>((resolve, reject) => {
      let running = 200;
      const loop = (id: number, n: number) => {
        if (n === 10) return void (--running === 0 && resolve());
        const at = s.stats().syncs;
        s.append([acceptRec(id * 10 + n + 1)], (err) => {
          if (err) return reject(err);
          if (s.stats().syncs <= at) late++;
          acked++;
          loop(id, n + 1);
        });
      };
      for (let i = 0; i < 200; i++) loop(i, 0);
    });
    expect(acked).toBe(2000);
    expect(late).toBe(0);
    expect(s.stats().records).toBe(2000);
    expect(s.stats().syncs).toBeLessThanOrEqual(40);
    await s.close();
  });

  it('reclaims space after truncateBelow: the head moves and promise/meta survive', async () => {
    const p = join(dir(), 't.plog');
    const { s } = await open(p, 8 * 1024);
    const promise: StoreRecord = { t: 'promise', ballot: { round: 9, leader: 'b' } };
    const meta: StoreRecord = { t: 'meta', key: 'cfg', value: new Uint8Array([1, 2]) };
    await appendP(s, [promise, meta]);
    const all: StoreRecord[] = [promise, meta];
    // far more bytes than the log holds, truncating as a snapshotter would
    for (let i = 1; i <= 150; i++) {
      const r = acceptRec(i, 9, 200);
      all.push(r);
      await appendP(s, [r]);
      if (i % 10 === 0) s.truncateBelow(i - 5);
    }
    const info = s.logInfo()!;
    expect(info.tail).toBeGreaterThan(3 * info.capacity);
    expect(info.head).toBeGreaterThan(0);
    await s.close();
    const r = await open(p);
    expect(plain(r.state)).toEqual(plain(expected([...all, { t: 'truncate', below: 145 }])));
    expect(r.state.promised).toEqual({ round: 9, leader: 'b' });
    expect(Array.from(r.state.meta.get('cfg')!)).toEqual([1, 2]);
    await r.s.close();
  });

  it('fails appends with StorageFullError when the log is full and nothing can be truncated', async () => {
    const p = join(dir(), 'full.plog');
    const { s } = await open(p, 8192);
    let err: unknown = null;
    for (let i = 1; i <= 100 && !err; i++) await appendP(s, [acceptRec(i, 1, 300)]).catch((e: unknown) => (err = e));
    expect(err).toBeInstanceOf(StorageFullError);
    expect((err as StorageFullError).path).toBe(p);
    expect((err as Error).message).toContain(p);
    await s.close();
  });

  it(
    'a full log is not a failed one: after truncateBelow ' + 'the head moves and appends succeed again (no spin)',
    async () => {
      const p = join(dir(), 'refill.plog');
      const { s } = await open(p, 16384);
      let slot = 0;
      let err: unknown = null;
      while (!err && slot < 1000) await appendP(s, [acceptRec(++slot, 1, 300)]).catch((e: unknown) => (err = e));
      expect(err).toBeInstanceOf(StorageFullError);
      const full = s.usage()!;
      expect(full.capacityBytes).toBe(16384);
      expect(full.usedBytes).toBeGreaterThan(16384 * 0.9);
      // nothing spins: the flush loop is idle until the next append or truncation
      await new Promise((r) => setTimeout(r, 20));
      expect(s.stats().syncs).toBeLessThan(slot + 2);
      s.truncateBelow(slot - 2);
      await appendP(s, [acceptRec(slot, 1, 300)]); // the same record again: room now
      expect(s.usage()!.usedBytes).toBeLessThan(full.usedBytes / 2);
      await appendP(s, [acceptRec(slot + 1, 1, 300)]);
      await s.close();
      const { s: again, state } = await open(p, 16384);
      expect(state.truncatedBelow).toBe(slot - 2);
      // the slots at and above the truncation point, including the one first refused as full
      expect([...state.accepted.keys()].sort((a, b) => a - b)).toEqual([slot - 2, slot - 1, slot, slot + 1]);
      await again.close();
    },
  );

  it('reports a damaged record as StorageCorruptionError with the file and offset', async () => {
    const p = join(dir(), 'x.plog');
    const { s } = await open(p);
    for (let i = 1; i <= 4; i++) await appendP(s, [acceptRec(i)]);
    await s.close();
    const second = HEADER + recordBytes(encodeRecord(acceptRec(1)).length);
    flip(p, second + 12);
    const err = await new PmemStore({ path: p }).recover().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageCorruptionError);
    expect((err as StorageCorruptionError).file).toBe(p);
    expect((err as StorageCorruptionError).offset).toBe(second);
    expect(existsSync(p)).toBe(true);
  });

  it('property: random record sequences recover to applyRecord over the acknowledged records', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(recordArb, { maxLength: 6 }), { minLength: 1, maxLength: 25 }),
        fc.integer({ min: 1, max: 24 }),
        async (batches, reopenAt) => {
          const t = tempDir('decree-pmemp-');
          const p = join(t.dir, 'p.plog');
          try {
            let { s } = await open(p, 64 * 1024);
            const acked: StoreRecord[] = [];
            const first = batches.slice(0, reopenAt);
            await Promise.all(first.map((b) => appendP(s, b)));
            for (const b of first) acked.push(...b);
            await s.close();
            ({ s } = await open(p));
            for (const b of batches.slice(reopenAt)) {
              await appendP(s, b);
              acked.push(...b);
            }
            await s.close();
            const r = await open(p);
            await r.s.close();
            expect(plain(r.state)).toEqual(plain(expected(acked)));
          } finally {
            t.cleanup();
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});
