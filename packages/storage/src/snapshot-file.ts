import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import {
  type ReplicaId,
  type Slot,
  type Snapshot,
  type SnapshotConfig,
  type SnapshotMeta,
  type SnapshotStore,
  SnapshotCorruptError,
} from '@decree/protocol';

/** The CRC32C of snapshot payloads and headers, unsigned. */
export const crc32cOf = (data: Uint8Array): number => crc32c(data) >>> 0;

const withConfig = (config: SnapshotConfig | undefined) =>
  config ? { epoch: config.epoch, startSlot: config.startSlot } : {};

/**
 * File layout (little-endian):
 *
 *   magic "DSNP" | version u32 | slot u64 | length u64 | payload crc32c u32 | members bytes u32 |
 *   header crc32c u32 (of the 32 bytes before it and the members bytes) | members (JSON, UTF-8) | payload
 *
 * "members" is a JSON array of ids, or an object {members, epoch, startSlot} (with the configuration).
 */
const MAGIC = 0x504e5344; // "DSNP"
const VERSION = 1;
const FIXED = 36;
const PREFIX = 'snap-';
const SUFFIX = '.dsnap';

/** The name of the snapshot of `slot` (a file name; the memory store uses the same names). */
export const snapshotFileName = (slot: Slot): string => `${PREFIX}${String(slot).padStart(16, '0')}${SUFFIX}`;

export function encodeSnapshotFile(
  slot: Slot,
  members: readonly ReplicaId[],
  data: Uint8Array,
  config?: SnapshotConfig,
): { header: Buffer; crc: number } {
  const described = config ? { members, epoch: config.epoch, startSlot: config.startSlot } : members;
  const mem = Buffer.from(JSON.stringify(described), 'utf8');
  const header = Buffer.alloc(FIXED + mem.length);
  const crc = crc32cOf(data);
  header.writeUInt32LE(MAGIC, 0);
  header.writeUInt32LE(VERSION, 4);
  header.writeBigUInt64LE(BigInt(slot), 8);
  header.writeBigUInt64LE(BigInt(data.length), 16);
  header.writeUInt32LE(crc, 24);
  header.writeUInt32LE(mem.length, 28);
  mem.copy(header, FIXED);
  header.writeUInt32LE(crc32cOf(Buffer.concat([header.subarray(0, 32), mem])), 32);
  return { header, crc };
}

/** Parses a header; throws SnapshotCorruptError. */
export function decodeSnapshotHeader(buf: Buffer, name: string): { meta: SnapshotMeta; headerBytes: number } {
  if (buf.length < FIXED) throw new SnapshotCorruptError(name, 'short header');
  if (buf.readUInt32LE(0) !== MAGIC) throw new SnapshotCorruptError(name, 'bad magic');
  if (buf.readUInt32LE(4) !== VERSION) throw new SnapshotCorruptError(name, `unknown version ${buf.readUInt32LE(4)}`);
  const memLen = buf.readUInt32LE(28);
  if (memLen > 1 << 20 || buf.length < FIXED + memLen) throw new SnapshotCorruptError(name, 'short header');
  const mem = buf.subarray(FIXED, FIXED + memLen);
  if (crc32cOf(Buffer.concat([buf.subarray(0, 32), mem])) !== buf.readUInt32LE(32))
    throw new SnapshotCorruptError(name, 'header checksum mismatch');
  let parsed: unknown;
  try {
    parsed = JSON.parse(mem.toString('utf8'));
  } catch {
    throw new SnapshotCorruptError(name, 'bad members');
  }
  let config: SnapshotConfig | undefined;
  let members: unknown = parsed;
  if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
    const o = parsed as { members?: unknown; epoch?: unknown; startSlot?: unknown };
    if (!Number.isSafeInteger(o.epoch) || !Number.isSafeInteger(o.startSlot))
      throw new SnapshotCorruptError(name, 'bad configuration');
    members = o.members;
    config = { epoch: o.epoch as number, startSlot: o.startSlot as number };
  }
  if (!Array.isArray(members) || !members.every((m) => typeof m === 'string'))
    throw new SnapshotCorruptError(name, 'bad members');
  const slot = Number(buf.readBigUInt64LE(8));
  const length = Number(buf.readBigUInt64LE(16));
  const meta: SnapshotMeta = { slot, members, ...withConfig(config), length, crc: buf.readUInt32LE(24), name };
  return { meta, headerBytes: FIXED + memLen };
}

export interface FileSnapshotStoreOptions {
  /** fsync files and the directory (default true; tests on tmpfs may turn it off) */
  sync?: boolean;
  /**
   * With sync: make a file durable this many bytes at a time as it is written (default 1 MiB). One
   * fsync of a whole 8 MB snapshot at the end held the disk for tens of milliseconds, and every WAL
   * commit of this machine waited behind it (issue #19 point 4, the unpipelined maximum).
   */
  syncEveryBytes?: number;
}

/**
 * Snapshots as files in one directory. Save: write a temp file, fsync it, rename it into place,
 * fsync the directory; a crash leaves either the old set or the new file whole (temp files are
 * removed at the next list).
 */
export class FileSnapshotStore implements SnapshotStore {
  private readonly sync: boolean;
  private readonly syncEveryBytes: number;
  private tmpSeq = 0;
  /** temp files of saves in progress (a concurrent list must not take them for leftovers) */
  private readonly writing = new Set<string>();
  constructor(
    readonly dir: string,
    opts: FileSnapshotStoreOptions = {},
  ) {
    this.sync = opts.sync ?? true;
    this.syncEveryBytes = Math.max(4096, opts.syncEveryBytes ?? 1 << 20);
  }

  async save(
    slot: Slot,
    members: readonly ReplicaId[],
    data: Uint8Array,
    config?: SnapshotConfig,
  ): Promise<SnapshotMeta> {
    await fsp.mkdir(this.dir, { recursive: true });
    const name = snapshotFileName(slot);
    const tmpName = `.tmp-${process.pid}-${++this.tmpSeq}-${name}`;
    const tmp = join(this.dir, tmpName);
    const { header, crc } = encodeSnapshotFile(slot, members, data, config);
    this.writing.add(tmpName);
    try {
      const fh = await fsp.open(tmp, 'w');
      try {
        if (!this.sync || data.length <= this.syncEveryBytes) await fh.writev([header, data]);
        else {
          await fh.write(header, 0, header.length, 0);
          for (let at = 0; at < data.length; ) {
            const n = Math.min(this.syncEveryBytes, data.length - at);
            for (let w = 0; w < n; ) w += (await fh.write(data, at + w, n - w, header.length + at + w)).bytesWritten;
            at += n;
            if (at < data.length) await fh.datasync(); // a little at a time: WAL commits are not stuck behind it
          }
        }
        if (this.sync) await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, join(this.dir, name));
    } finally {
      this.writing.delete(tmpName);
    }
    if (this.sync) await syncDir(this.dir);
    return { slot, members: [...members], ...withConfig(config), length: data.length, crc, name };
  }

  async list(): Promise<SnapshotMeta[]> {
    let names: string[];
    try {
      names = await fsp.readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: SnapshotMeta[] = [];
    for (const n of names) {
      if (n.startsWith('.tmp-')) {
        if (this.writing.has(n)) continue;
        await fsp.rm(join(this.dir, n), { force: true }); // a save that did not finish
        continue;
      }
      if (!n.startsWith(PREFIX) || !n.endsWith(SUFFIX)) continue;
      const slot = Number(n.slice(PREFIX.length, -SUFFIX.length));
      if (!Number.isSafeInteger(slot)) continue;
      // the header is checked at load; list reports what the name says so a damaged newest one is
      // still tried and skipped
      out.push({ slot, members: [], length: -1, crc: 0, name: n });
    }
    return out.sort((a, b) => b.slot - a.slot);
  }

  async load(name: string): Promise<Snapshot> {
    let buf: Buffer;
    try {
      buf = await fsp.readFile(join(this.dir, name));
    } catch (e) {
      throw new SnapshotCorruptError(name, (e as Error).message);
    }
    const { meta, headerBytes } = decodeSnapshotHeader(buf, name);
    if (buf.length !== headerBytes + meta.length)
      throw new SnapshotCorruptError(name, `length ${buf.length - headerBytes}, header says ${meta.length}`);
    const data = buf.subarray(headerBytes);
    if (crc32cOf(data) !== meta.crc) throw new SnapshotCorruptError(name, 'checksum mismatch');
    if (snapshotFileName(meta.slot) !== name)
      throw new SnapshotCorruptError(name, `header slot ${meta.slot} does not match the name`);
    return { meta, data };
  }

  async prune(keep: number): Promise<void> {
    const all = await this.list();
    for (const m of all.slice(Math.max(0, keep))) await fsp.rm(join(this.dir, m.name), { force: true });
    if (this.sync && all.length > keep) await syncDir(this.dir);
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
