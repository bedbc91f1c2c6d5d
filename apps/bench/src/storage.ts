// Storage benchmark: appends/s, MB/s and records per sync of the acceptor stores under many
// concurrent appenders (group commit). Run alone:
//   node --conditions=source --import tsx apps/bench/src/storage.ts [--seconds 2] [--appenders 256]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AcceptorStore, StoreRecord } from '@decree/protocol';
import { FileWalStore, MemoryStore, PmemStore } from '@decree/storage';

export type StoreKind = 'memory' | 'wal' | 'pmem';

export interface StorageBenchOptions {
  stores?: StoreKind[];
  /** command payload sizes; default 64 B and 4 KiB */
  recordBytes?: number[];
  /** concurrent appenders, each with one append in flight; default 256 */
  appenders?: number;
  /** measured time per (store, size); default 2000 ms (after a 300 ms warm-up) */
  durationMs?: number;
  /** where the WAL and pmem files go; default a fresh dir under os.tmpdir(), removed afterwards */
  dir?: string;
  /** progress lines */
  log?: (line: string) => void;
}

export interface StorageBenchRow {
  store: string;
  recordBytes: number;
  appendsPerSec: number;
  /** command payload megabytes (1e6 bytes) per second */
  mbPerSec: number;
  /** records made durable by one write + sync (group commit); memory: per append */
  recordsPerSync: number;
}

function makeStore(kind: StoreKind, dir: string, n: number): AcceptorStore {
  switch (kind) {
    case 'memory':
      return new MemoryStore({ defer: (fn) => setImmediate(fn) }); // microtasks would starve the timers
    case 'wal':
      return new FileWalStore({ dir: join(dir, `wal-${n}`), segmentBytes: 64 << 20 });
    case 'pmem':
      return new PmemStore({ path: join(dir, `pmem-${n}.plog`), capacity: 64 << 20 });
  }
}

async function runOne(
  kind: StoreKind,
  recordBytes: number,
  appenders: number,
  durationMs: number,
  dir: string,
  n: number,
): Promise<StorageBenchRow> {
  const store = makeStore(kind, dir, n);
  await store.recover();
  const payload = new Uint8Array(recordBytes).fill(7);
  let slot = 1;
  let acked = 0;
  let measuring = false;
  let stopping = false;
  let maxAcked = 0;
  let inflight = 0;
  let failure: Error | null = null;
  let drained: () => void = () => {};
  const loop = (): void => {
    if (stopping || failure) {
      if (--inflight === 0) drained();
      return;
    }
    const s = slot++;
    const rec: StoreRecord = {
      t: 'accept',
      slot: s,
      ballot: { round: 1, leader: 'bench' },
      value: { k: 'batch', origin: 'bench', inc: 1, firstId: s, cmds: [payload] },
    };
    store.append([rec], (err) => {
      if (err) failure = err;
      else {
        if (measuring) acked++;
        if (s > maxAcked) maxAcked = s;
        // a snapshotter keeps the log bounded
        if (s % 4096 === 0) store.truncateBelow(maxAcked - 2048);
      }
      loop();
    });
  };
  for (let i = 0; i < appenders; i++) {
    inflight++;
    loop();
  }
  await new Promise((r) => setTimeout(r, 300));
  const before = store.stats();
  measuring = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, durationMs));
  measuring = false;
  const secs = (performance.now() - t0) / 1000;
  const after = store.stats();
  stopping = true;
  await new Promise<void>((r) => (inflight === 0 ? r() : (drained = r)));
  await store.close();
  if (failure) throw failure;
  const syncs = after.syncs - before.syncs;
  const records = after.records - before.records;
  return {
    store: kind === 'pmem' ? `pmem (${PmemStore.backend()})` : kind,
    recordBytes,
    appendsPerSec: Math.round(acked / secs),
    mbPerSec: Math.round(((acked * recordBytes) / secs / 1e6) * 100) / 100,
    recordsPerSync: syncs > 0 ? Math.round((records / syncs) * 10) / 10 : 0,
  };
}

export async function storageBench(opts: StorageBenchOptions = {}): Promise<StorageBenchRow[]> {
  const stores = opts.stores ?? (PmemStore.backend() ? ['memory', 'wal', 'pmem'] : ['memory', 'wal']);
  const sizes = opts.recordBytes ?? [64, 4096];
  const appenders = opts.appenders ?? 256;
  const durationMs = opts.durationMs ?? 2000;
  const own = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'decree-storage-bench-'));
  const rows: StorageBenchRow[] = [];
  let n = 0;
  try {
    for (const kind of stores)
      for (const size of sizes) {
        const row = await runOne(kind, size, appenders, durationMs, dir, n++);
        opts.log?.(formatRow(row));
        rows.push(row);
      }
  } finally {
    if (own) rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

function formatRow(r: StorageBenchRow): string {
  return (
    `${r.store.padEnd(16)} ${String(r.recordBytes).padStart(6)} ${String(r.appendsPerSec).padStart(12)} ` +
    `${r.mbPerSec.toFixed(2).padStart(9)} ${r.recordsPerSync.toFixed(1).padStart(15)}`
  );
}

export function formatTable(rows: StorageBenchRow[]): string {
  const head =
    `${'store'.padEnd(16)} ${'bytes'.padStart(6)} ${'appends/s'.padStart(12)} ` +
    `${'MB/s'.padStart(9)} ${'records/sync'.padStart(15)}`;
  return [head, ...rows.map(formatRow)].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (name: string, dflt: number) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : dflt;
  };
  const appenders = arg('appenders', 256);
  const seconds = arg('seconds', 2);
  console.log(`storage bench: ${appenders} concurrent appenders, ${seconds} s per row, one accept record per append`);
  const rows = await storageBench({ appenders, durationMs: seconds * 1000 });
  console.log(formatTable(rows));
}
