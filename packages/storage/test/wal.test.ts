import { openSync, readFileSync, readdirSync, writeSync, closeSync, truncateSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { StoreRecord } from '@decree/protocol';
import { FileWalStore, WAL_FRAME_HEADER_BYTES, WAL_HEADER_BYTES } from '../src/wal.ts';
import {
  StorageClosedError,
  StorageCorruptionError,
  StorageError,
  StorageFullError,
  StoragePermissionError,
} from '../src/errors.ts';
import { encodeRecord, encodeRecordParts } from '../src/records.ts';
import { acceptRec, appendP, expected, plain, recordArb, tempDir } from './helpers.ts';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});
function dir(): string {
  const t = tempDir('decree-wal-');
  cleanups.push(t.cleanup);
  return t.dir;
}
const segFiles = (d: string) =>
  readdirSync(d)
    .filter((n) => n.endsWith('.log'))
    .sort()
    .map((n) => join(d, n));
function flip(path: string, offset: number): void {
  const fd = openSync(path, 'r+');
  const b = Buffer.alloc(1);
  const buf = readFileSync(path);
  b[0] = buf[offset]! ^ 0x5a;
  writeSync(fd, b, 0, 1, offset);
  closeSync(fd);
}
async function open(d: string, opts: Partial<ConstructorParameters<typeof FileWalStore>[0]> = {}) {
  const s = new FileWalStore({ dir: d, segmentBytes: 64 * 1024, ...opts });
  const state = await s.recover();
  return { s, state };
}

describe('FileWalStore', () => {
  it('round-trips records across close and reopen', async () => {
    const d = dir();
    const recs: StoreRecord[] = [
      { t: 'promise', ballot: { round: 3, leader: 'b' } },
      acceptRec(1),
      acceptRec(2, 3, 300),
      { t: 'meta', key: 'config', value: new Uint8Array([1, 2, 3]) },
      { t: 'accept', slot: 3, ballot: { round: 3, leader: 'b' }, value: { k: 'noop' } },
    ];
    const { s, state } = await open(d);
    expect(plain(state)).toEqual(plain(expected([])));
    await appendP(s, recs.slice(0, 2));
    await appendP(s, recs.slice(2));
    await s.close();
    const r = await open(d);
    expect(plain(r.state)).toEqual(plain(expected(recs)));
    await appendP(r.s, [acceptRec(4)]);
    await r.s.close();
    const r2 = await open(d);
    expect(plain(r2.state)).toEqual(plain(expected([...recs, acceptRec(4)])));
    await r2.s.close();
  });

  it('coalesces concurrent appends into few write+fdatasync rounds, each done after the sync covering it', async () => {
    const { s } = await open(dir(), { segmentBytes: 8 << 20 });
    const appenders = 200;
    const perAppender = 10;
    let acked = 0;
    let lateAck = 0;
    await new Promise<void>((resolve, reject) => {
      let running = appenders;
      const loop = (id: number, n: number) => {
        if (n === perAppender) {
          if (--running === 0) resolve();
          return;
        }
        const syncsAtAppend = s.stats().syncs;
        s.append([acceptRec(id * perAppender + n + 1)], (err) => {
          if (err) return reject(err);
          if (s.stats().syncs <= syncsAtAppend) lateAck++; // acked without a sync after its append
          acked++;
          loop(id, n + 1);
        });
      };
      for (let i = 0; i < appenders; i++) loop(i, 0);
    });
    const st = s.stats();
    expect(acked).toBe(appenders * perAppender);
    expect(lateAck).toBe(0);
    expect(st.appends).toBe(appenders * perAppender);
    expect(st.records).toBe(appenders * perAppender);
    expect(st.syncs).toBeLessThanOrEqual((appenders * perAppender) / 50);
    expect(st.bytes).toBeGreaterThan(appenders * perAppender * WAL_FRAME_HEADER_BYTES);
    await s.close();
  });

  it('cuts a torn tail: a truncated last record', async () => {
    const d = dir();
    const { s } = await open(d, { preallocate: false });
    await appendP(s, [acceptRec(1)]);
    await appendP(s, [acceptRec(2, 1, 200)]);
    await s.close();
    const [f] = segFiles(d);
    const size = statSync(f!).size;
    truncateSync(f!, size - 50); // the last record lost its end
    const r = await open(d, { preallocate: false });
    expect(plain(r.state)).toEqual(plain(expected([acceptRec(1)])));
    await appendP(r.s, [acceptRec(3)]);
    await r.s.close();
    const r2 = await open(d);
    expect(plain(r2.state)).toEqual(plain(expected([acceptRec(1), acceptRec(3)])));
    await r2.s.close();
  });

  it('cuts a torn tail: flipped bits in the last batch, even with valid records of that batch after them', async () => {
    const d = dir();
    const { s } = await open(d);
    await appendP(s, [acceptRec(1)]);
    await appendP(s, [acceptRec(2)]);
    await appendP(s, [acceptRec(3), acceptRec(4), acceptRec(5)]); // one batch of 3 frames
    await s.close();
    const [f] = segFiles(d);
    const frame = WAL_FRAME_HEADER_BYTES + encodeRecord(acceptRec(1)).length;
    flip(f!, WAL_HEADER_BYTES + 3 * frame + 20); // inside record 4; record 5 stays valid
    const r = await open(d);
    expect(plain(r.state)).toEqual(plain(expected([acceptRec(1), acceptRec(2)])));
    // the repaired log keeps working and recovers again cleanly
    await appendP(r.s, [acceptRec(6)]);
    await r.s.close();
    const r2 = await open(d);
    expect(plain(r2.state)).toEqual(plain(expected([acceptRec(1), acceptRec(2), acceptRec(6)])));
    await r2.s.close();
  });

  it('reports corruption in the middle of the log with the file and offset', async () => {
    const d = dir();
    const { s } = await open(d);
    for (let i = 1; i <= 5; i++) await appendP(s, [acceptRec(i)]);
    await s.close();
    const [f] = segFiles(d);
    const frame = WAL_FRAME_HEADER_BYTES + encodeRecord(acceptRec(1)).length;
    const badAt = WAL_HEADER_BYTES + frame; // record 2
    flip(f!, badAt + 25);
    const s2 = new FileWalStore({ dir: d, segmentBytes: 64 * 1024 });
    const err = await s2.recover().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StorageCorruptionError);
    const ce = err as StorageCorruptionError;
    expect(ce.file).toBe(f);
    expect(ce.offset).toBe(badAt);
    expect(ce.message).toContain(f!);
    expect(ce.message).toContain(`offset ${badAt}`);
    // and it did not repair (destroy) anything: the file still holds the later records
    expect(
      readFileSync(f!)
        .subarray(badAt + frame, badAt + 2 * frame)
        .some((x) => x !== 0),
    ).toBe(true);
  });

  it('reports a zeroed-out record followed by later batches as corruption', async () => {
    const d = dir();
    const { s } = await open(d);
    for (let i = 1; i <= 4; i++) await appendP(s, [acceptRec(i)]);
    await s.close();
    const [f] = segFiles(d);
    const frame = WAL_FRAME_HEADER_BYTES + encodeRecord(acceptRec(1)).length;
    const fd = openSync(f!, 'r+');
    writeSync(fd, Buffer.alloc(frame), 0, frame, WAL_HEADER_BYTES + frame);
    closeSync(fd);
    await expect(new FileWalStore({ dir: d }).recover()).rejects.toThrow(StorageCorruptionError);
  });

  it('truncateBelow drops whole segments and keeps promise, meta and later accepts', async () => {
    const d = dir();
    const { s } = await open(d, { segmentBytes: 8192 });
    const promise: StoreRecord = { t: 'promise', ballot: { round: 7, leader: 'c' } };
    const meta: StoreRecord = { t: 'meta', key: 'cfg', value: new Uint8Array([9, 9]) };
    await appendP(s, [promise, meta]);
    const all: StoreRecord[] = [promise, meta];
    for (let i = 1; i <= 200; i++) {
      const r = acceptRec(i, 7, 120);
      all.push(r);
      await appendP(s, [r]);
    }
    const before = s.segmentFiles().length;
    expect(before).toBeGreaterThan(5);
    s.truncateBelow(150);
    await appendP(s, []); // after the truncate record is durable
    await s.close();
    const after = segFiles(d).length;
    expect(after).toBeLessThan(before);
    expect(after).toBeLessThanOrEqual(Math.ceil(before / 4) + 1);
    const r = await open(d, { segmentBytes: 8192 });
    expect(plain(r.state)).toEqual(plain(expected([...all, { t: 'truncate', below: 150 }])));
    expect(r.state.promised).toEqual({ round: 7, leader: 'c' });
    expect([...r.state.accepted.keys()].sort((a, b) => a - b)[0]).toBe(150);
    await r.s.close();
  });

  it('names the path on a full disk (ENOSPC) and keeps going once space is back', async () => {
    const d = dir();
    let full = false;
    const { s } = await open(d, {
      segmentBytes: 4096,
      faults: (op) => {
        if (full && op === 'preallocate') throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      },
    });
    await new Promise((r) => setTimeout(r, 50)); // the first spare is made before the disk "fills"
    full = true;
    let err: unknown = null;
    for (let i = 1; i <= 100 && !err; i++) await appendP(s, [acceptRec(i, 1, 200)]).catch((e: unknown) => (err = e));
    expect(err).toBeInstanceOf(StorageFullError);
    expect((err as StorageFullError).path.startsWith(d)).toBe(true);
    expect((err as Error).message).toMatch(/no space left for .*wal-\d+\.log\.tmp/);
    full = false;
    await appendP(s, [acceptRec(500)]);
    await s.close();
  });

  it(
    'on a full disk a truncation still gets written (the ' +
      'segment tail is reserved for it) and frees whole segments',
    async () => {
      const d = dir();
      let full = false;
      const { s } = await open(d, {
        segmentBytes: 8192,
        faults: (op) => {
          if (full && op === 'preallocate')
            throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
        },
      });
      for (let i = 1; i <= 150; i++) await appendP(s, [acceptRec(i, 1, 120)]);
      const before = s.segmentFiles().length;
      full = true;
      let err: unknown = null;
      let i = 150;
      while (!err && i < 400) await appendP(s, [acceptRec(++i, 1, 120)]).catch((e: unknown) => (err = e));
      expect(err).toBeInstanceOf(StorageFullError);
      s.truncateBelow(i - 2); // a snapshot covers everything up to here
      await new Promise((r) => setTimeout(r, 50)); // the truncate record is durable; old segments go
      expect(s.segmentFiles().length).toBeLessThan(before);
      full = false; // the space freed (or the operator's) lets the next segment be made
      await appendP(s, [acceptRec(i, 1, 120)]);
      await s.close();
      const r = await open(d, { segmentBytes: 8192 });
      expect(r.state.truncatedBelow).toBe(i - 2);
      expect([...r.state.accepted.keys()].sort((a, b) => a - b)).toEqual([i - 2, i - 1, i]);
      await r.s.close();
    },
  );

  it('makes a spare segment durable a little at a time, not with one fdatasync of the whole segment', async () => {
    const d = dir();
    const ops: string[] = [];
    const { s } = await open(d, {
      segmentBytes: 4 << 20,
      preallocateSyncBytes: 1 << 20,
      faults: (op, path) => {
        if (op === 'preallocate') ops.push(path);
      },
    });
    // the first segment was made by recover(): one call before it, then one before each 1 MiB sync but the last
    const spare = ops.filter((p) => p.endsWith('wal-00000000000000000001.log.tmp'));
    expect(spare.length).toBeGreaterThanOrEqual(4);
    await appendP(s, [acceptRec(1)]);
    await s.close();
    expect(statSync(segFiles(d)[0]!).size).toBe(4 << 20);
  });

  it('names the path on a permission error (EACCES) at open', async () => {
    const d = dir();
    await (await open(d)).s.close();
    const s = new FileWalStore({
      dir: d,
      faults: (op) => {
        if (op === 'open') throw Object.assign(new Error('permission denied'), { code: 'EACCES' });
      },
    });
    const err = await s.recover().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoragePermissionError);
    expect((err as StoragePermissionError).path).toBe(segFiles(d)[0]);
    expect((err as Error).message).toContain('permission denied on');
  });

  it('fails every later append after an fdatasync error (no silent loss)', async () => {
    const { s } = await open(dir(), {
      faults: (op) => {
        if (op === 'datasync') throw Object.assign(new Error('I/O error'), { code: 'EIO' });
      },
    });
    await expect(appendP(s, [acceptRec(1)])).rejects.toBeInstanceOf(StorageError);
    await expect(appendP(s, [acceptRec(2)])).rejects.toBeInstanceOf(StorageError);
    await s.close();
    await expect(appendP(s, [acceptRec(3)])).rejects.toBeInstanceOf(StorageClosedError);
  });

  it('a record in parts is byte for byte the record (the value bytes are laid down, not copied first)', () => {
    fc.assert(
      fc.property(recordArb, (r) => {
        expect(Buffer.concat(encodeRecordParts(r))).toEqual(Buffer.from(encodeRecord(r)));
      }),
      { numRuns: 500 },
    );
  });

  it('batches above the reused write buffer (1 MiB) and below it, one after the other, all recover', async () => {
    const d = dir();
    let { s } = await open(d, { segmentBytes: 16 << 20 });
    const sizes = [1_500_000, 100, 300_000, 2_000_000, 10];
    const recs = sizes.map((n, i) => acceptRec(i + 1, 1, n));
    for (const r of recs) await appendP(s, [r]);
    await s.close();
    ({ s } = await open(d, { segmentBytes: 16 << 20 }));
    await s.close();
    const r = await open(d, { segmentBytes: 16 << 20 });
    await r.s.close();
    expect(plain(r.state)).toEqual(plain(expected(recs)));
  });

  it('property: random record sequences recover to applyRecord over the acknowledged records', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(recordArb, { minLength: 0, maxLength: 6 }), { minLength: 1, maxLength: 25 }),
        fc.integer({ min: 1, max: 24 }),
        async (batches, reopenAt) => {
          const t = tempDir('decree-walp-');
          try {
            let { s } = await open(t.dir, { segmentBytes: 4096 });
            const acked: StoreRecord[] = [];
            // half the batches concurrently (group commit), with a reopen in between
            const first = batches.slice(0, reopenAt);
            await Promise.all(first.map((b) => appendP(s, b)));
            for (const b of first) acked.push(...b);
            await s.close();
            ({ s } = await open(t.dir, { segmentBytes: 4096 }));
            for (const b of batches.slice(reopenAt)) {
              await appendP(s, b);
              acked.push(...b);
            }
            await s.close();
            const r = await open(t.dir, { segmentBytes: 4096 });
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
