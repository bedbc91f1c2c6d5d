/**
 * The WAL's small synchronous appends while a snapshot file is saved (issue #19 point 4): one 150-byte
 * accept at a time (an unpipelined SET) for `seconds`, and meanwhile, every second, an 8.4 MB snapshot
 * (100,000 keys of 64 bytes) saved by a FileSnapshotStore on the same disk. The file made durable by one
 * fsync at its end (the old way) against 1 MiB at a time (the default), alternating; p50 / p99 / max
 * of the appends, and how long the saves took.
 *
 *   node --conditions=source --import tsx apps/bench/src/snapshot-sync-ab.ts [seconds=4] [rounds=2]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSnapshotStore, FileWalStore } from '@decree/storage';
import { acceptOf, appendOne } from './wal-records.ts';

const seconds = Number(process.argv[2] ?? 4);
const rounds = Number(process.argv[3] ?? 2);
const snapshot = Buffer.alloc(8_400_000, 7);

for (let round = 0; round < rounds; round++)
  for (const [name, syncEveryBytes] of [
    ['one fsync per snapshot', 1 << 30],
    ['1 MiB at a time', 1 << 20],
  ] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'decree-snapsync-'));
    const wal = new FileWalStore({ dir: join(dir, 'wal'), segmentBytes: 64 << 20 });
    await wal.recover();
    const snaps = new FileSnapshotStore(join(dir, 'snaps'), { syncEveryBytes });
    let slot = 1;
    const saves: number[] = [];
    let saving = false;
    const timer = setInterval(() => {
      if (saving) return;
      saving = true;
      const t0 = performance.now();
      void snaps.save(slot, ['r1'], snapshot).then(() => {
        saves.push(performance.now() - t0);
        saving = false;
      });
    }, 1000);
    const lat: number[] = [];
    const end = performance.now() + seconds * 1000;
    while (performance.now() < end) {
      const t0 = performance.now();
      await appendOne(wal, acceptOf(slot++, 150));
      lat.push(performance.now() - t0);
    }
    clearInterval(timer);
    while (saving) await new Promise((r) => setTimeout(r, 10));
    await wal.close();
    rmSync(dir, { recursive: true, force: true });
    lat.sort((a, b) => a - b);
    const q = (p: number) => lat[Math.min(lat.length - 1, Math.ceil(p * lat.length) - 1)]!.toFixed(3);
    const s = saves.map((x) => x.toFixed(0)).join('/');
    console.log(
      `round ${round}, ${name}: ${lat.length} appends; p50 ${q(0.5)} p99 ${q(0.99)} max ${q(1)} ms; saves ${s} ms`,
    );
  }
