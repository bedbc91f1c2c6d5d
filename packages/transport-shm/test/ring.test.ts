/**
 * The ring protocol on the shared-memory backend, driven directly (no transport): random frame
 * sizes across wrap-around, a full ring pushing back, torn frames (test hook and a SIGKILLed writer).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  addonPath,
  createShmRing,
  frameBytes,
  loadRdmaAddon,
  openShmRing,
  type NativeShmRing,
} from '@decree/rdma-transport';
import { payload, tempDir } from './helpers.ts';

const tmp = tempDir('ring');
afterAll(() => tmp.remove());
let n = 0;
const fresh = (cap = 4096) => {
  const p = join(tmp.dir, `r${n++}.ring`);
  const rx = createShmRing(p, cap);
  const tx = openShmRing(p);
  return { p, rx, tx, close: () => (rx.close(), tx.close()) };
};
const TORN = 0xee;

describe('shm ring', () => {
  it('loads the addon and reports the layout', () => {
    const a = loadRdmaAddon();
    expect(a.headerBytes).toBe(4096);
    expect(a.frameHeaderBytes).toBe(16);
    const { rx, tx, close } = fresh();
    expect(rx.capacity).toBe(4096);
    expect(tx.maxPayload).toBe(4096 / 4 - 16);
    expect(rx.readerPid).toBe(process.pid);
    expect(tx.writerPid).toBe(process.pid);
    close();
  });

  it('delivers every frame exactly once, in order, for random sizes and poll sizes across wrap-around', () => {
    let wrapped = 0;
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({
              op: fc.constant('send' as const),
              sizes: fc.array(fc.integer({ min: 0, max: 1008 }), { minLength: 1, maxLength: 6 }),
            }),
            fc.record({ op: fc.constant('poll' as const), max: fc.integer({ min: 1, max: 8 }) }),
          ),
          { minLength: 1, maxLength: 80 },
        ),
        (ops) => {
          const { rx, tx, close } = fresh(4096);
          try {
            const pending: Buffer[] = [];
            let next = 0;
            for (const o of ops) {
              if (o.op === 'send') {
                const frames = o.sizes
                  .map((s) => payload(next + 0, s))
                  .map((b, i) => (b.length >= 4 && b.writeUInt32LE(next + i, 0), b));
                const k = tx.sendMany(frames);
                expect(k).toBeGreaterThanOrEqual(0);
                expect(k).toBeLessThanOrEqual(frames.length);
                pending.push(...frames.slice(0, k));
                next += k;
                // never more than the capacity between head and tail
                expect(tx.tail - rx.head).toBeLessThanOrEqual(4096);
              } else {
                const got = rx.poll(o.max);
                expect(got.length).toBeLessThanOrEqual(o.max);
                for (const g of got) expect(g.equals(pending.shift()!)).toBe(true);
              }
            }
            for (const g of rx.poll(100_000)) expect(g.equals(pending.shift()!)).toBe(true);
            expect(pending).toEqual([]);
            expect(rx.head).toBe(tx.tail);
            expect(rx.stats().torn).toBe(0);
            expect(rx.stats().frames).toBe(next);
            if (tx.tail > 4096) wrapped++;
          } finally {
            close();
          }
        },
      ),
      { numRuns: 150, seed: 4242 },
    );
    expect(wrapped).toBeGreaterThan(10); // the property did exercise wrap-around
  });

  it('a full ring pushes back (send returns false, nothing overwritten) and drains', () => {
    const { rx, tx, close } = fresh(4096);
    const sent: Buffer[] = [];
    for (let i = 0; ; i++) {
      const b = payload(i, 200);
      if (!tx.send(b)) break;
      sent.push(b);
    }
    expect(sent.length).toBe(Math.floor(4096 / frameBytes(200)));
    // 18 frames of 224 bytes leave 64: two 1-byte frames (32 bytes each) still fit, a third does not
    expect(tx.send(payload(998, 1))).toBe(true);
    expect(tx.send(payload(999, 1))).toBe(true);
    expect(tx.send(payload(997, 1))).toBe(false);
    sent.push(payload(998, 1), payload(999, 1));
    expect(tx.tail - rx.head).toBe(4096);
    expect(tx.sendMany([payload(1000, 200), payload(1001, 200)])).toBe(0);
    expect(tx.stats().full).toBeGreaterThanOrEqual(2);
    const got = rx.poll(1_000);
    expect(got.length).toBe(sent.length);
    for (let i = 0; i < sent.length; i++) expect(got[i]!.equals(sent[i]!)).toBe(true);
    // room again: the next frames wrap around the end and arrive intact
    const more = Array.from({ length: 30 }, (_, i) => payload(2000 + i, 300));
    let delivered = 0;
    for (const m of more) {
      if (!tx.send(m)) {
        for (const g of rx.poll()) expect(g.equals(more[delivered++]!)).toBe(true);
        expect(tx.send(m)).toBe(true);
      }
    }
    for (const g of rx.poll()) expect(g.equals(more[delivered++]!)).toBe(true);
    expect(delivered).toBe(more.length);
    expect(rx.stats().pads).toBeGreaterThan(0);
    expect(rx.stats().torn).toBe(0);
    close();
  });

  it('a frame larger than the largest frame is refused with ETOOBIG', () => {
    const { tx, close } = fresh(4096);
    expect(() => tx.send(Buffer.alloc(tx.maxPayload + 1))).toThrow(expect.objectContaining({ code: 'ETOOBIG' }));
    close();
  });

  it(
    'a torn frame (test hook: partial bytes, bad crc, tail ' +
      'published or not) is never delivered; the ring recovers',
    () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 6 }),
          fc.integer({ min: 1, max: 600 }),
          fc.integer({ min: 0, max: 700 }),
          fc.boolean(),
          fc.boolean(),
          fc.integer({ min: 1, max: 6 }),
          fc.integer({ min: 0, max: 20 }),
          (before, tornLen, written, corruptCrc, publish, after, warm) => {
            const { rx, tx, close } = fresh(8192);
            try {
              // move the ring to some position first
              for (let i = 0; i < warm; i++) tx.send(payload(500 + i, 333));
              rx.poll(1000);
              const good1 = Array.from({ length: before }, (_, i) => payload(i, 50 + i * 13));
              expect(tx.sendMany(good1)).toBe(before);
              // a frame whose full bytes are written is complete, not torn, unless its crc is spoiled
              const w = corruptCrc ? written : Math.min(written, 16 + tornLen - 1);
              tx.writeTorn(Buffer.alloc(tornLen, TORN), w, corruptCrc, publish);
              const got1 = rx.poll(1000);
              const good2 = Array.from({ length: after }, (_, i) => payload(100 + i, 40 + i * 17));
              expect(tx.sendMany(good2)).toBe(after);
              const got2 = rx.poll(1000);
              const all = [...got1, ...got2];
              for (const g of all) expect(g.length > 0 && g.every((x) => x === TORN)).toBe(false);
              // everything before the torn frame and everything after it arrives, in order
              expect(all.length).toBe(before + after);
              [...good1, ...good2].forEach((g, i) => expect(all[i]!.equals(g)).toBe(true));
              if (publish) expect(rx.stats().torn).toBeGreaterThanOrEqual(1);
              else expect(rx.stats().torn).toBe(0);
              expect(rx.head).toBe(tx.tail);
            } finally {
              close();
            }
          },
        ),
        { numRuns: 200, seed: 77 },
      );
    },
  );

  it('a writer SIGKILLed mid-frame (tail not advanced) leaves nothing deliverable; a new writer goes on', async () => {
    const p = join(tmp.dir, 'killed.ring');
    const rx: NativeShmRing = createShmRing(p, 8192);
    const script = `
      const a = require(${JSON.stringify(addonPath)});
      const tx = new a.ShmRing(${JSON.stringify(p)}, 'writer');
      for (let i = 0; i < 5; i++) tx.send(Buffer.alloc(100 + i, 65 + i));
      tx.writeTorn(Buffer.alloc(900, ${TORN}), 500, false, false); // the header and part of the payload, then death
      process.stdout.write('ready\\n');
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
        child.once('exit', (c) => reject(new Error(`child exited ${c}`)));
      });
      expect(rx.tail).toBeGreaterThan(0);
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) =>
        child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r),
      );
    }
    const got = rx.poll();
    expect(got.map((g) => g.length)).toEqual([100, 101, 102, 103, 104]);
    expect(got.every((g, i) => g.every((x) => x === 65 + i))).toBe(true);
    // a restarted writer continues after the committed tail and overwrites the partial frame
    const tx = openShmRing(p);
    expect(tx.sendMany([payload(1, 700), payload(2, 30)])).toBe(2);
    const after = rx.poll();
    expect(after.length).toBe(2);
    expect(after[0]!.equals(payload(1, 700))).toBe(true);
    expect(after[1]!.equals(payload(2, 30))).toBe(true);
    expect(rx.stats().torn).toBe(0);
    expect(rx.stats().seqGaps).toBe(0);
    tx.close();
    rx.close();
  });

  it('the poll thread wakes JS without blocking the event loop', async () => {
    const { rx, tx, close } = fresh(1 << 16);
    const got: Buffer[] = [];
    const done = new Promise<void>((resolve) => {
      rx.startPolling(() => {
        got.push(...rx.poll());
        if (got.length === 300) resolve();
      });
    });
    let ticks = 0;
    const t = setInterval(() => ticks++, 1);
    for (let i = 0; i < 300; i++) {
      while (!tx.send(payload(i, 100))) await new Promise((r) => setTimeout(r, 1));
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    await done;
    clearInterval(t);
    rx.stopPolling();
    expect(got.every((g, i) => g.equals(payload(i, 100)))).toBe(true);
    expect(ticks).toBeGreaterThan(0); // timers ran meanwhile
    close();
  });

  it('a reader reopening a valid ring keeps its head; a ring of another capacity is replaced', () => {
    const p = join(tmp.dir, 'reopen.ring');
    const rx = createShmRing(p, 4096);
    const tx = openShmRing(p);
    tx.sendMany([payload(1, 10), payload(2, 10)]);
    expect(rx.poll(1).length).toBe(1);
    rx.close();
    expect(tx.readerClosed).toBe(true);
    const rx2 = createShmRing(p, 4096);
    expect(rx2.inode).toBe(tx.inode);
    expect(rx2.poll().map((b) => b.readUInt32LE(0))).toEqual([2]);
    rx2.close();
    const rx3 = createShmRing(p, 8192);
    expect(rx3.inode).not.toBe(tx.inode);
    expect(rx3.capacity).toBe(8192);
    rx3.close();
    tx.close();
  });
});
