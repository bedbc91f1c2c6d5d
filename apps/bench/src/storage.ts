// Storage benchmark: appends/s, MB/s and records per sync of the acceptor stores under many
// concurrent appenders (group commit), and the commit time of one record alone (one appender: p50/p99
// µs from append to durable). Run alone:
//   node --conditions=source --import tsx apps/bench/src/storage.ts [--seconds 2] [--appenders 256]
//     [--stores memory,wal,pmem,pmem-nvm] [--json]
// `pmem-nvm` EMULATES persistent memory: the pmem log on /dev/shm, in a process started with
// PMEM_IS_PMEM_FORCE=1, so that libpmem takes its real flush path (cache-line flushes, no msync). It is
// not durable across power loss; it shows what the log costs on real NVM.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AcceptorStore, StoreRecord } from '@decree/protocol';
import { FileWalStore, MemoryStore, PmemStore } from '@decree/storage';

export type StoreKind = 'memory' | 'wal' | 'pmem' | 'pmem-nvm';

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
  /** one appender alone: µs from append to durable (a group of one), median and 99th percentile */
  commitP50us: number;
  commitP99us: number;
}

function makeStore(kind: StoreKind, dir: string, n: number): AcceptorStore {
  switch (kind) {
    case 'memory':
      return new MemoryStore({ defer: (fn) => setImmediate(fn) }); // microtasks would starve the timers
    case 'wal':
      return new FileWalStore({ dir: join(dir, `wal-${n}`), segmentBytes: 64 << 20 });
    case 'pmem':
      return new PmemStore({ path: join(dir, `pmem-${n}.plog`), capacity: 64 << 20 });
    case 'pmem-nvm':
      return new PmemStore({ path: join(NVM_DIR, `decree-bench-nvm-${process.pid}-${n}.plog`), capacity: 64 << 20 });
  }
}

/** where the emulated NVM log lives: memory (tmpfs) */
const NVM_DIR = '/dev/shm';

function storeLabel(kind: StoreKind, store: AcceptorStore): string {
  if (kind === 'pmem') return `pmem (${PmemStore.backend()})`;
  if (kind === 'pmem-nvm') {
    const real = (store as PmemStore).isPmem === true ? 'flushes' : 'NOT treated as pmem: msync';
    return `pmem, emulated NVM (/dev/shm, ${real})`;
  }
  return kind;
}

/** One appender: each record appended once the previous one is durable; µs per commit. */
async function commitTimes(store: AcceptorStore, payload: Uint8Array, firstSlot: number, count: number) {
  const us: number[] = [];
  for (let i = 0; i < count; i++) {
    const s = firstSlot + i;
    const rec: StoreRecord = {
      t: 'accept',
      slot: s,
      ballot: { round: 1, leader: 'bench' },
      value: { k: 'batch', origin: 'bench', inc: 1, firstId: s, cmds: [payload] },
    };
    const t0 = performance.now();
    await new Promise<void>((res, rej) => store.append([rec], (err) => (err ? rej(err) : res())));
    us.push((performance.now() - t0) * 1000);
    if (s % 4096 === 0) store.truncateBelow(s - 2048);
  }
  us.sort((a, b) => a - b);
  const at = (q: number) => Math.round(us[Math.min(us.length - 1, Math.floor(q * us.length))]! * 10) / 10;
  return { p50: at(0.5), p99: at(0.99) };
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
  if (failure) throw failure;
  const syncs = after.syncs - before.syncs;
  const records = after.records - before.records;
  // the commit time of a record alone: 2,000 appends one after another (fewer on a slow msync path)
  const label = storeLabel(kind, store);
  const one = await commitTimes(store, payload, slot + 1, kind === 'pmem' ? 300 : 2_000);
  await store.close();
  if (kind === 'pmem-nvm') rmSync(join(NVM_DIR, `decree-bench-nvm-${process.pid}-${n}.plog`), { force: true });
  return {
    store: label,
    recordBytes,
    appendsPerSec: Math.round(acked / secs),
    mbPerSec: Math.round(((acked * recordBytes) / secs / 1e6) * 100) / 100,
    recordsPerSync: syncs > 0 ? Math.round((records / syncs) * 10) / 10 : 0,
    commitP50us: one.p50,
    commitP99us: one.p99,
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

const W = 44;
function formatRow(r: StorageBenchRow): string {
  return [
    r.store.padEnd(W),
    String(r.recordBytes).padStart(6),
    String(r.appendsPerSec).padStart(12),
    r.mbPerSec.toFixed(2).padStart(9),
    r.recordsPerSync.toFixed(1).padStart(13),
    r.commitP50us.toFixed(1).padStart(14),
    r.commitP99us.toFixed(1).padStart(14),
  ].join(' ');
}

export function formatTable(rows: StorageBenchRow[]): string {
  const head = [
    'store'.padEnd(W),
    'bytes'.padStart(6),
    'appends/s'.padStart(12),
    'MB/s'.padStart(9),
    'records/sync'.padStart(13),
    'commit p50 µs'.padStart(14),
    'commit p99 µs'.padStart(14),
  ].join(' ');
  return [head, ...rows.map(formatRow)].join('\n');
}

/**
 * The emulated-NVM rows, from a child process started with PMEM_IS_PMEM_FORCE=1 (libpmem reads it
 * when it loads; this process loaded it without). Empty without the libpmem backend.
 */
export async function emulatedNvmRows(opts: { durationMs?: number } = {}): Promise<StorageBenchRow[]> {
  if (PmemStore.backend() !== 'libpmem') return [];
  const { execFileSync } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const src = fileURLToPath(new URL('../src/storage.ts', import.meta.url));
  const secs = String((opts.durationMs ?? 2000) / 1000);
  const out = execFileSync(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', src, '--stores', 'pmem-nvm', '--seconds', secs, '--json'],
    { env: { ...process.env, PMEM_IS_PMEM_FORCE: '1' }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return JSON.parse(out) as StorageBenchRow[];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (name: string, dflt: number) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : dflt;
  };
  const appenders = arg('appenders', 256);
  const seconds = arg('seconds', 2);
  const si = process.argv.indexOf('--stores');
  const stores = si > 0 ? (process.argv[si + 1]!.split(',') as StoreKind[]) : undefined;
  const json = process.argv.includes('--json');
  if (!json)
    console.log(`storage bench: ${appenders} concurrent appenders, ${seconds} s per row, one accept record per append`);
  const rows = await storageBench({ appenders, durationMs: seconds * 1000, ...(stores ? { stores } : {}) });
  console.log(json ? JSON.stringify(rows) : formatTable(rows));
}
