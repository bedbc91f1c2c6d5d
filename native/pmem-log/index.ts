import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/**
 * @decree/pmem-log: a crash-consistent circular log in a memory-mapped file, built by node-gyp
 * from src/pmem_log.cc over libpmem (or plain mmap + msync where libpmem is missing).
 * The format and the commit protocol are described at the top of src/pmem_log.cc.
 */

export type PmemBackend = 'libpmem' | 'mmap';

/** One open log (the native object). Offsets are logical byte positions that only grow. */
export interface NativePmemLog {
  /** tentative append of one record; returns its logical offset. Throws code ELOGFULL when it does not fit. */
  append(record: Uint8Array): number;
  /** tentative append of several records (all or nothing); returns the tentative tail after them */
  appendMany(records: readonly Uint8Array[]): number;
  /** makes everything up to `upTo` durable and moves the head to `head`, off the event loop */
  commit(upTo: number, head: number, cb: (err: (Error & { code?: string }) | null) => void): void;
  commitSync(upTo?: number, head?: number): void;
  /** every durable record from head to tail (copies), checking each record's crc (code ECORRUPT + offset) */
  read(): { payloads: Buffer[]; offsets: number[] };
  /** forgets tentative records that were not committed */
  discardTentative(): void;
  close(): void;
  readonly head: number;
  readonly tail: number;
  readonly tentativeTail: number;
  readonly capacity: number;
  /** true on real persistent memory (pmem_persist), false on an ordinary file (msync) */
  readonly isPmem: boolean;
  /** metadata commit sequence number */
  readonly seq: number;
  /**
   * true when open found the last commit torn (a crash during its flush: never acknowledged) and
   * went back to the commit before it
   */
  readonly rolledBack: boolean;
}

export interface PmemAddon {
  PmemLog: new (path: string, capacity: number) => NativePmemLog;
  backend: PmemBackend;
  crc32c(data: Uint8Array): number;
  headerBytes: number;
}

export class PmemNotBuiltError extends Error {
  constructor(
    readonly addonPath: string,
    cause?: unknown,
  ) {
    super(
      `pmem addon not built (${addonPath} is missing or does not load): run \`node tools/scripts/build-native.mjs\` ` +
        `(needs g++, make and python3; libpmem-dev for the libpmem backend)`,
      { cause },
    );
    this.name = 'PmemNotBuiltError';
  }
}

const here = dirname(fileURLToPath(import.meta.url));
/** where node-gyp puts the addon; DECREE_PMEM_ADDON points elsewhere (a prebuilt addon, or a bundled script) */
export const addonPath = process.env.DECREE_PMEM_ADDON || join(here, 'build', 'Release', 'pmem_log.node');

let cached: PmemAddon | null = null;
let loadError: unknown = null;

/** Loads the addon (once); throws PmemNotBuiltError when it was not built. */
export function loadPmemAddon(): PmemAddon {
  if (cached) return cached;
  try {
    cached = loadPmemAddonFrom(addonPath);
  } catch (e) {
    loadError = e;
    throw e;
  }
  return cached;
}

/** Loads an addon file (tests point it at a missing file to see the error). */
export function loadPmemAddonFrom(path: string): PmemAddon {
  if (!existsSync(path)) throw new PmemNotBuiltError(path);
  try {
    return createRequire(import.meta.url)(path) as PmemAddon;
  } catch (e) {
    throw new PmemNotBuiltError(path, e);
  }
}

/** The backend the addon was built with, or null when it is not built. */
export function pmemBackend(): PmemBackend | null {
  try {
    return loadPmemAddon().backend;
  } catch {
    return null;
  }
}

export function pmemLoadError(): unknown {
  return loadError;
}

/** Opens (or creates with `capacity` data bytes) the log at `path`. */
export function openPmemLog(path: string, capacity: number): NativePmemLog {
  const addon = loadPmemAddon();
  return new addon.PmemLog(path, capacity);
}

/** Promise form of `log.commit`. */
export function commitLog(log: NativePmemLog, upTo = log.tentativeTail, head = log.head): Promise<void> {
  return new Promise((resolve, reject) => log.commit(upTo, head, (err) => (err ? reject(err) : resolve())));
}

/** Bytes one record of `len` payload bytes takes in the log (8-byte header, padded to 8). */
export const recordBytes = (len: number): number => 8 + ((len + 7) & ~7);
