/**
 * The WAL's small synchronous appends while the next segment is preallocated (issue #19 point 4): a
 * FileWalStore (64 MiB segments, O_DSYNC) is filled past half its segment, which starts the zero-fill
 * of the next one, then one 150-byte accept is appended at a time (an unpipelined SET) for `seconds`.
 * The zero-fill made durable by one fdatasync at its end (the old way: preallocateSyncBytes = the
 * segment) against 1 MiB at a time (the default), alternating; p50 / p99 / max of the appends.
 *
 *   node --conditions=source --import tsx apps/bench/src/wal-prealloc-ab.ts [seconds=3] [rounds=2]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileWalStore } from '@decree/storage';
import { acceptOf, appendOne } from './wal-records.ts';

const seconds = Number(process.argv[2] ?? 3);
const rounds = Number(process.argv[3] ?? 2);
const SEG = 64 << 20;

for (let round = 0; round < rounds; round++)
  for (const [name, syncBytes] of [
    ['one fdatasync per segment', SEG],
    ['1 MiB at a time', 1 << 20],
  ] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'decree-prealloc-'));
    const s = new FileWalStore({ dir, segmentBytes: SEG, preallocateSyncBytes: syncBytes });
    await s.recover();
    let slot = 1;
    for (let i = 0; i < 33; i++) await appendOne(s, acceptOf(slot++, 1 << 20)); // past half: the spare starts
    const lat: number[] = [];
    const end = performance.now() + seconds * 1000;
    while (performance.now() < end) {
      const t0 = performance.now();
      await appendOne(s, acceptOf(slot++, 150));
      lat.push(performance.now() - t0);
    }
    await s.close();
    rmSync(dir, { recursive: true, force: true });
    lat.sort((a, b) => a - b);
    const q = (p: number) => lat[Math.min(lat.length - 1, Math.ceil(p * lat.length) - 1)]!.toFixed(3);
    console.log(`round ${round}, ${name}: ${lat.length} appends; p50 ${q(0.5)} p99 ${q(0.99)} max ${q(1)} ms`);
  }
