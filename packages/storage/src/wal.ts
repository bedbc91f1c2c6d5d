import { open, mkdir, readdir, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { constants as fsConstants } from 'node:fs';
import { crc32c } from '@node-rs/crc32';
import {
  CONTRACTS,
  type AcceptorStore,
  type RecoveredState,
  type StoreRecord,
  type StoreStats,
  applyRecord,
  copyRecoveredState,
  emptyRecoveredState,
  emptyStoreStats,
  requires,
} from '@decree/protocol';
import { StorageClosedError, StorageCorruptionError, StorageError, fsError } from './errors.ts';
import { checkpointRecords, decodeRecord, encodeRecordParts } from './records.ts';

/*
 * On-disk format (all integers little-endian), see docs/operations.md "Storage":
 *
 * segment file  wal-<20-digit index>.log, preallocated (zero-filled) to segmentBytes
 *   header      64 bytes: "DECREWAL" | version u32 | header bytes u32 | segment index u64 | crc32c(0..24) u32 | zeros
 *   frames      [crc32c u32][len u32][batch u48][flags u8][magic u8 = 0xEC][payload: len bytes of MessagePack]
 *               crc covers bytes 4..16+len; flags = 0xD0 | 1 on the last frame of a batch (one write + one fdatasync)
 *   rest        zeros
 *
 * Batches never span segments; every segment's first batch starts with checkpoint records (promise,
 * truncate, meta) so older segments can be deleted once a truncate record covers their accepts.
 */

const MAGIC = Buffer.from('DECREWAL', 'ascii');
const VERSION = 1;
export const WAL_HEADER_BYTES = 64;
export const WAL_FRAME_HEADER_BYTES = 16;
const FRAME_MAGIC = 0xec;
const FLAG_BASE = 0xd0;
const FLAG_LAST = 0x01;
const ZERO_BLOCK = Buffer.alloc(4096);
const ZERO_CHUNK = Buffer.alloc(1 << 20);
const SEG_RE = /^wal-(\d{20})\.log$/;

export interface FileWalStoreOptions {
  /** the data directory (created if missing) */
  dir: string;
  /** recover() also returns the `chosen` records (offline replay) */
  keepChosen?: boolean;
  /** size each segment file is preallocated to; default 64 MiB */
  segmentBytes?: number;
  /** upper bound on one group-commit write; default segmentBytes / 4 */
  maxBatchBytes?: number;
  /** zero-fill segments ahead of use so fdatasync has no block allocation to flush; default true */
  preallocate?: boolean;
  /**
   * The zero-fill of a segment is made durable this many bytes at a time (default 1 MiB): one
   * fdatasync of the whole segment at the end would hand the disk 64 MiB at once, and the log's own
   * small synchronous writes would queue behind it (a stall of hundreds of ms on this project's disk).
   */
  preallocateSyncBytes?: number;
  /**
   * How a batch is made durable: 'dsync' (default) opens segments with O_DSYNC so the one write is
   * durable when it returns (one thread-pool round trip per batch); 'fdatasync' writes, then syncs
   * (two). Both give data-integrity completion (the replica's config: `wal.sync`).
   */
  sync?: 'dsync' | 'fdatasync';
  /**
   * test hook: called before each file operation ('preallocate': before a spare segment is made and
   * before each fdatasync of its zero-fill); throw an errno-style error to inject a fault
   */
  faults?: (op: 'open' | 'write' | 'datasync' | 'preallocate', path: string) => void;
}

interface Segment {
  index: number;
  path: string;
  /** highest accept slot in the segment, -1 if none */
  maxAcceptSlot: number;
}

interface Pending {
  records: readonly StoreRecord[];
  /** each record's bytes, in parts laid down one after the other (encodeRecordParts) */
  payloads: Uint8Array[][];
  bytes: number;
  done: (err: Error | null) => void;
  /** no accept or chosen records (promises, meta, truncation): may use a segment's reserved tail */
  control: boolean;
}

interface Spare {
  index: number;
  tmpPath: string;
}

const segName = (index: number) => `wal-${String(index).padStart(20, '0')}.log`;

interface ParsedFrame {
  len: number;
  seq: number;
  last: boolean;
}

/** Reads the frame at `off`, or null if there is no valid frame there. */
function readFrame(buf: Buffer, off: number): ParsedFrame | null {
  if (off + WAL_FRAME_HEADER_BYTES > buf.length) return null;
  if (buf[off + 15] !== FRAME_MAGIC || (buf[off + 14]! & 0xf0) !== FLAG_BASE) return null;
  const len = buf.readUInt32LE(off + 4);
  if (len === 0 || off + WAL_FRAME_HEADER_BYTES + len > buf.length) return null;
  if (crc32c(buf.subarray(off + 4, off + WAL_FRAME_HEADER_BYTES + len)) !== buf.readUInt32LE(off)) return null;
  return { len, seq: buf.readUIntLE(off + 8, 6), last: (buf[off + 14]! & FLAG_LAST) !== 0 };
}

/** Every valid frame at or after `from` (scans byte by byte; zero blocks are skipped fast). */
function scanFrames(buf: Buffer, from: number): Array<{ off: number; seq: number }> {
  const out: Array<{ off: number; seq: number }> = [];
  let p = from;
  while (p + WAL_FRAME_HEADER_BYTES <= buf.length) {
    if ((p & 4095) === 0 && p + 4096 <= buf.length && buf.subarray(p, p + 4096).equals(ZERO_BLOCK)) {
      p += 4096 - 8; // a frame starting before p+4088 would have its len bytes in this zero block
      continue;
    }
    const f = readFrame(buf, p);
    if (f) {
      out.push({ off: p, seq: f.seq });
      p += WAL_FRAME_HEADER_BYTES + f.len;
    } else p++;
  }
  return out;
}

function isZero(buf: Buffer, from: number): boolean {
  for (let p = from; p < buf.length; p += 4096) {
    const end = Math.min(buf.length, p + 4096);
    if (!buf.subarray(p, end).equals(ZERO_BLOCK.subarray(0, end - p))) return false;
  }
  return true;
}

function segmentHeader(index: number): Buffer {
  const h = Buffer.alloc(WAL_HEADER_BYTES);
  MAGIC.copy(h, 0);
  h.writeUInt32LE(VERSION, 8);
  h.writeUInt32LE(WAL_HEADER_BYTES, 12);
  h.writeBigUInt64LE(BigInt(index), 16);
  h.writeUInt32LE(crc32c(h.subarray(0, 24)), 24);
  return h;
}

function checkHeader(buf: Buffer, index: number): string | null {
  if (buf.length < WAL_HEADER_BYTES) return 'file shorter than the segment header';
  if (!buf.subarray(0, 8).equals(MAGIC)) return 'bad segment magic';
  if (buf.readUInt32LE(24) !== crc32c(buf.subarray(0, 24))) return 'segment header checksum mismatch';
  if (buf.readUInt32LE(8) !== VERSION) return `unsupported segment version ${buf.readUInt32LE(8)}`;
  if (buf.readBigUInt64LE(16) !== BigInt(index)) return 'segment index does not match its file name';
  return null;
}

function rethrowLater(e: unknown): void {
  queueMicrotask(() => {
    throw e;
  });
}

/**
 * The embedded durable store: a segmented write-ahead log with group commit.
 *
 * `append` never blocks: records are encoded at once and queued; one flush loop writes everything
 * queued with one `write` and one `fdatasync`, then fires the `done`s of exactly those records.
 * Appends that arrive while a sync is in flight are the next batch.
 */
const partsBytes = (parts: readonly Uint8Array[]): number => {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
};

/** the largest batch written from the reused write buffer */
const WRITE_BUFFER_MAX = 1 << 20;

export class FileWalStore implements AcceptorStore {
  readonly dir: string;
  private readonly keepChosen: boolean;
  private readonly dsync: boolean;
  private readonly segmentBytes: number;
  private readonly maxBatchBytes: number;
  private readonly preallocate: boolean;
  private readonly preallocateSyncBytes: number;
  private readonly faults: FileWalStoreOptions['faults'];

  private readonly st: StoreStats = emptyStoreStats();
  /** the state of every durable record (checkpoints are taken from it) */
  private durable: RecoveredState = emptyRecoveredState();
  private segments: Segment[] = [];
  private fh: FileHandle | null = null;
  private writePos = 0;
  private nextSeq = 1;
  private nextIndex = 1;
  private spare: Promise<Spare> | null = null;
  private pending: Pending[] = [];
  private flushing = false;
  private recovered = false;
  private closed = false;
  private failed: Error | null = null;
  private truncPending = 0;
  /** the tail of each segment kept for control records (a truncation on a full disk) */
  private readonly reserveBytes: number;
  private dropping: Promise<void> = Promise.resolve();
  private drained: Array<() => void> = [];

  constructor(opts: FileWalStoreOptions) {
    CONTRACTS && requires(typeof opts.dir === 'string' && opts.dir.length > 0, 'FileWalStore needs a dir');
    this.dir = opts.dir;
    this.keepChosen = opts.keepChosen ?? false;
    const mode = opts.sync ?? 'dsync';
    this.dsync = mode === 'dsync';
    this.segmentBytes = Math.max(opts.segmentBytes ?? 64 << 20, 4096);
    this.maxBatchBytes = Math.max(opts.maxBatchBytes ?? Math.floor(this.segmentBytes / 4), 1024);
    this.preallocate = opts.preallocate ?? true;
    this.preallocateSyncBytes = Math.max(opts.preallocateSyncBytes ?? ZERO_CHUNK.length, 4096);
    this.reserveBytes = Math.min(64 << 10, Math.floor(this.segmentBytes / 16));
    this.faults = opts.faults;
  }

  // ------------------------------------------------------------------ recovery
  async recover(): Promise<RecoveredState> {
    CONTRACTS && requires(!this.recovered, 'recover() is called once');
    const t0 = performance.now();
    try {
      await mkdir(this.dir, { recursive: true });
    } catch (e) {
      throw fsError(e, this.dir, 'mkdir');
    }
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      throw fsError(e, this.dir, 'readdir');
    }
    for (const n of names) if (n.endsWith('.tmp')) await unlink(join(this.dir, n)).catch(() => {});
    const segs: Segment[] = names
      .map((n) => SEG_RE.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ index: Number(m[1]), path: join(this.dir, m[0]), maxAcceptSlot: -1 }))
      .sort((a, b) => a.index - b.index);

    const state = emptyRecoveredState();
    if (this.keepChosen) state.chosen = new Map();
    let lastSeq = -1; // last complete batch
    let cut: { seg: number; off: number } | null = null;
    let endPos = WAL_HEADER_BYTES;
    let cutLen = 0;
    // one segment in memory at a time (a later one is read only to tell a torn tail from corruption)
    const readSeg = async (s: Segment): Promise<Buffer> => {
      this.st.reads++;
      try {
        return await readFile(s.path);
      } catch (e) {
        throw fsError(e, s.path, 'read');
      }
    };

    for (let si = 0; si < segs.length; si++) {
      const seg = segs[si]!;
      const buf = await readSeg(seg);
      const bad = checkHeader(buf, seg.index);
      if (bad) throw new StorageCorruptionError(seg.path, 0, bad);
      let off = WAL_HEADER_BYTES;
      let batch: { seq: number; start: number; records: StoreRecord[] } | null = null;
      for (;;) {
        const f = readFrame(buf, off);
        const expected = batch ? batch.seq : lastSeq >= 0 ? lastSeq + 1 : -1;
        if (!f || (expected >= 0 && f.seq !== expected)) break;
        let rec: StoreRecord;
        try {
          // a copy, so recovered values do not pin the whole segment buffer
          rec = decodeRecord(
            Buffer.from(buf.subarray(off + WAL_FRAME_HEADER_BYTES, off + WAL_FRAME_HEADER_BYTES + f.len)),
          );
        } catch (e) {
          throw new StorageCorruptionError(
            seg.path,
            off,
            `record with a valid checksum does not decode (${(e as Error).message})`,
          );
        }
        if (!batch) batch = { seq: f.seq, start: off, records: [] };
        batch.records.push(rec);
        off += WAL_FRAME_HEADER_BYTES + f.len;
        if (f.last) {
          for (const r of batch.records) {
            applyRecord(state, r);
            if ((r.t === 'accept' || r.t === 'chosen') && r.slot > seg.maxAcceptSlot) seg.maxAcceptSlot = r.slot;
          }
          lastSeq = batch.seq;
          batch = null;
        }
      }
      // [off, end) holds no further frame of this log in sequence
      if (!batch && isZero(buf, off)) {
        endPos = off;
        continue; // clean end of this segment (the log goes on in the next one, if any)
      }
      // a bad or out-of-sequence frame at `off` (or a batch without its last frame): a torn tail
      // if everything valid after it belongs to the one batch that can have been in flight
      const inflight = batch ? batch.seq : lastSeq >= 0 ? lastSeq + 1 : -1;
      const after = scanFrames(buf, off).map((x) => ({ ...x, si }));
      for (let sj = si + 1; sj < segs.length; sj++) {
        const later = await readSeg(segs[sj]!);
        if (checkHeader(later, segs[sj]!.index) === null)
          after.push(...scanFrames(later, WAL_HEADER_BYTES).map((x) => ({ ...x, si: sj })));
        else after.push({ off: 0, seq: -2, si: sj });
      }
      const seqs = new Set(after.map((x) => x.seq));
      const torn = seqs.size === 0 || (seqs.size === 1 && (inflight < 0 || seqs.has(inflight)) && !seqs.has(-2));
      if (!torn) {
        const later = after.find((x) => x.seq !== inflight) ?? after[0]!;
        throw new StorageCorruptionError(
          seg.path,
          off,
          `bad record followed by valid records of a later batch (${segs[later.si]!.path} ` +
            `offset ${later.off}); a crash cannot explain this`,
        );
      }
      cut = { seg: si, off: batch ? batch.start : off };
      cutLen = buf.length;
      break;
    }

    // Repair a torn tail: zero it (so no stale frame survives to confuse a later recovery) and drop later segments.
    if (cut) {
      const seg = segs[cut.seg]!;
      endPos = cut.off;
      await this.zeroFrom(seg.path, cut.off, cutLen);
      for (const s of segs.splice(cut.seg + 1))
        await unlink(s.path).catch((e) => Promise.reject(fsError(e, s.path, 'unlink')));
      await this.syncDir();
    }

    this.durable = state;
    this.truncPending = state.truncatedBelow;
    this.segments = segs;
    this.nextSeq = lastSeq + 1 >= 1 ? lastSeq + 1 : 1;
    if (segs.length === 0) {
      const spare = await this.makeSpare(1);
      await this.activate(spare);
    } else {
      const cur = segs[segs.length - 1]!;
      this.nextIndex = cur.index + 1;
      try {
        this.faults?.('open', cur.path);
        this.fh = await open(cur.path, this.segmentFlags());
      } catch (e) {
        throw fsError(e, cur.path, 'open');
      }
      this.writePos = endPos;
    }
    this.st.readMs += performance.now() - t0;
    this.recovered = true;
    return copyRecoveredState(state);
  }

  /** read-write; with O_DSYNC in 'dsync' mode */
  private segmentFlags(): number {
    return fsConstants.O_RDWR | (this.dsync ? fsConstants.O_DSYNC : 0);
  }

  private async zeroFrom(path: string, from: number, to: number): Promise<void> {
    let fh: FileHandle | null = null;
    try {
      fh = await open(path, 'r+');
      for (let p = from; p < to; ) {
        const n = Math.min(ZERO_CHUNK.length, to - p);
        await fh.write(ZERO_CHUNK, 0, n, p);
        p += n;
      }
      await fh.datasync();
    } catch (e) {
      throw fsError(e, path, 'repair torn tail');
    } finally {
      await fh?.close();
    }
  }

  private async syncDir(): Promise<void> {
    let fh: FileHandle | null = null;
    try {
      fh = await open(this.dir, 'r');
      await fh.sync();
    } catch (e) {
      throw fsError(e, this.dir, 'fsync directory');
    } finally {
      await fh?.close();
    }
  }

  // ------------------------------------------------------------------ segments
  /** Creates `wal-N.log.tmp`: header + zeros to segmentBytes, synced. */
  private async makeSpare(index: number): Promise<Spare> {
    const tmpPath = join(this.dir, segName(index) + '.tmp');
    let fh: FileHandle | null = null;
    try {
      this.faults?.('preallocate', tmpPath);
      fh = await open(tmpPath, 'w');
      await fh.write(segmentHeader(index), 0, WAL_HEADER_BYTES, 0);
      if (this.preallocate) {
        let unsynced = 0;
        for (let p = WAL_HEADER_BYTES; p < this.segmentBytes; ) {
          const n = Math.min(ZERO_CHUNK.length, this.preallocateSyncBytes - unsynced, this.segmentBytes - p);
          await fh.write(ZERO_CHUNK, 0, n, p);
          p += n;
          unsynced += n;
          if (unsynced >= this.preallocateSyncBytes && p < this.segmentBytes) {
            this.faults?.('preallocate', tmpPath);
            await fh.datasync(); // a little at a time: the log's writes are not stuck behind the whole segment
            unsynced = 0;
          }
        }
      }
      await fh.datasync();
    } catch (e) {
      await fh?.close().catch(() => {});
      fh = null;
      await unlink(tmpPath).catch(() => {});
      throw fsError(e, tmpPath, 'preallocate segment');
    } finally {
      await fh?.close();
    }
    return { index, tmpPath };
  }

  private ensureSpare(): void {
    if (this.spare || this.closed) return;
    const index = this.nextIndex;
    this.spare = this.makeSpare(index);
    this.spare.catch(() => {}); // reported to the batch that needs it
  }

  /** Renames a spare into the log and makes it the segment being written. */
  private async activate(spare: Spare): Promise<void> {
    const path = join(this.dir, segName(spare.index));
    try {
      await rename(spare.tmpPath, path);
    } catch (e) {
      throw fsError(e, path, 'rename segment');
    }
    await this.syncDir();
    const old = this.fh;
    try {
      this.faults?.('open', path);
      this.fh = await open(path, this.segmentFlags());
    } catch (e) {
      throw fsError(e, path, 'open');
    }
    await old?.close().catch(() => {});
    this.segments.push({ index: spare.index, path, maxAcceptSlot: -1 });
    this.nextIndex = spare.index + 1;
    this.writePos = WAL_HEADER_BYTES;
  }

  private async roll(): Promise<void> {
    const early = this.spare;
    this.spare = null;
    let s: Spare;
    try {
      // a spare made ahead of need may have failed then (a full disk) and succeed now
      s = await (early ?? this.makeSpare(this.nextIndex)).catch((e: unknown) =>
        early ? this.makeSpare(this.nextIndex) : Promise.reject(e),
      );
    } catch (e) {
      throw e instanceof StorageError ? e : fsError(e, this.dir, 'preallocate segment');
    }
    await this.activate(s);
    this.ensureSpare();
  }

  // ------------------------------------------------------------------ appends
  append(records: readonly StoreRecord[], done: (err: Error | null) => void): void {
    CONTRACTS && requires(Array.isArray(records), 'append takes an array of records');
    const err = this.closed
      ? new StorageClosedError(this.dir, 'closed')
      : (this.failed ?? (this.recovered ? null : new StorageClosedError(this.dir, 'recover() has not run')));
    if (err) {
      queueMicrotask(() => done(err));
      return;
    }
    this.st.appends++;
    if (records.length === 0) {
      // nothing to write, but done must still mean "everything before is durable": queue it
      this.pending.push({ records, payloads: [], bytes: 0, done, control: true });
    } else {
      const payloads = records.map(encodeRecordParts);
      let bytes = 0;
      for (const p of payloads) bytes += WAL_FRAME_HEADER_BYTES + partsBytes(p);
      const control = records.every((r) => r.t !== 'accept' && r.t !== 'chosen');
      this.pending.push({ records, payloads, bytes, done, control });
    }
    this.kick();
  }

  /**
   * Records the truncation point ahead of the appends queued (it commutes with them: an accept
   * below it is dropped either way), in the segment's reserved tail if need be, so that a full disk
   * can always free whole segments.
   */
  truncateBelow(slot: number): void {
    CONTRACTS && requires(Number.isSafeInteger(slot) && slot >= 0, 'truncateBelow takes a slot');
    if (slot <= this.truncPending || this.closed || this.failed) return;
    this.truncPending = slot;
    const records: StoreRecord[] = [{ t: 'truncate', below: slot }];
    const payloads = records.map(encodeRecordParts);
    const done = (err: Error | null) => {
      if (!err) this.dropSegments();
    };
    this.st.appends++;
    this.pending.unshift({
      records,
      payloads,
      bytes: WAL_FRAME_HEADER_BYTES + partsBytes(payloads[0]!),
      done,
      control: true,
    });
    this.kick();
  }

  private kick(): void {
    if (this.flushing) return;
    this.flushing = true;
    queueMicrotask(() => void this.flushLoop());
  }

  private async flushLoop(): Promise<void> {
    while (this.pending.length > 0 && !this.failed) {
      // take as many whole appends as fit one write (control records alone when they lead: they may
      // use a segment's reserved tail when the disk has no room for the next segment)
      let bytes = 0;
      let n = 0;
      const control = this.pending[0]!.control;
      while (
        n < this.pending.length &&
        (n === 0 || (bytes + this.pending[n]!.bytes <= this.maxBatchBytes && (!control || this.pending[n]!.control)))
      )
        bytes += this.pending[n++]!.bytes;
      const batch = this.pending.splice(0, n);
      try {
        await this.writeBatch(batch, bytes);
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        for (const p of batch) this.safeDone(p.done, err);
        continue;
      }
      for (const p of batch) this.safeDone(p.done, null);
      await null; // let appends made by the callbacks join the next batch
    }
    if (this.failed) {
      const failed = this.failed;
      for (const p of this.pending.splice(0)) this.safeDone(p.done, failed);
    }
    this.flushing = false;
    for (const f of this.drained.splice(0)) f();
  }

  private safeDone(done: (err: Error | null) => void, err: Error | null): void {
    try {
      done(err);
    } catch (e) {
      rethrowLater(e);
    }
  }

  private async writeBatch(batch: Pending[], bytes: number): Promise<void> {
    const seg = this.segments[this.segments.length - 1];
    let pre: Uint8Array[][] = [];
    const control = batch.every((p) => p.control);
    const limit = control ? this.segmentBytes : this.segmentBytes - this.reserveBytes;
    const needRoll = !seg || (this.writePos > WAL_HEADER_BYTES && this.writePos + bytes > limit);
    if (needRoll) await this.roll(); // throws StorageFullError etc.; nothing was written
    if (this.writePos === WAL_HEADER_BYTES) {
      // first batch of a segment: re-state promise / truncation / meta so older segments can go
      pre = checkpointRecords(this.durable).map(encodeRecordParts);
      for (const p of pre) bytes += WAL_FRAME_HEADER_BYTES + partsBytes(p);
    }
    const payloads: Uint8Array[][] = [...pre];
    for (const p of batch) for (const x of p.payloads) payloads.push(x);
    if (payloads.length === 0) return; // only empty appends: everything before them is already durable

    const buf = this.writeBuffer(bytes);
    const seq = this.nextSeq;
    let o = 0;
    for (let i = 0; i < payloads.length; i++) {
      const parts = payloads[i]!;
      const len = partsBytes(parts);
      buf.writeUInt32LE(len, o + 4);
      buf.writeUIntLE(seq, o + 8, 6);
      buf[o + 14] = FLAG_BASE | (i === payloads.length - 1 ? FLAG_LAST : 0);
      buf[o + 15] = FRAME_MAGIC;
      let at = o + WAL_FRAME_HEADER_BYTES;
      for (const part of parts) {
        buf.set(part, at);
        at += part.length;
      }
      buf.writeUInt32LE(crc32c(buf.subarray(o + 4, o + WAL_FRAME_HEADER_BYTES + len)), o);
      o += WAL_FRAME_HEADER_BYTES + len;
    }
    const cur = this.segments[this.segments.length - 1]!;
    const fh = this.fh!;
    const t0 = performance.now();
    try {
      for (let w = 0; w < buf.length; ) {
        this.faults?.('write', cur.path);
        const { bytesWritten } = await fh.write(buf, w, buf.length - w, this.writePos + w);
        w += bytesWritten;
      }
      this.faults?.('datasync', cur.path);
      if (!this.dsync) await fh.datasync(); // with O_DSYNC the write above returned durable
    } catch (e) {
      // After a failed write or fdatasync the page cache is in an unknown state: stop here.
      const err = fsError(e, cur.path, 'append');
      this.failed = err;
      throw err;
    }
    this.st.writeMs += performance.now() - t0;
    this.st.syncs++;
    this.st.bytes += buf.length;
    this.writePos += buf.length;
    if (this.writePos > this.segmentBytes / 2) this.ensureSpare(); // preallocate the next segment ahead of need
    this.nextSeq = seq + 1;
    for (const p of batch) {
      this.st.records += p.records.length;
      for (const r of p.records) {
        applyRecord(this.durable, r);
        if ((r.t === 'accept' || r.t === 'chosen') && r.slot > cur.maxAcceptSlot) cur.maxAcceptSlot = r.slot;
      }
    }
  }

  /**
   * The bytes of one batch, in a buffer kept from write to write (one write is in flight at a time,
   * and nothing holds it after): a fresh Buffer per batch was external memory to V8, and its growth
   * started a major GC every few hundred milliseconds under load ("external memory pressure").
   * Batches of up to 1 MiB reuse it; a larger one (a big value) gets its own.
   */
  private writeBuffer(bytes: number): Buffer {
    if (bytes > WRITE_BUFFER_MAX) return Buffer.allocUnsafe(bytes);
    if (this.scratch.length < bytes) this.scratch = Buffer.allocUnsafe(Math.min(WRITE_BUFFER_MAX, 2 * bytes));
    return this.scratch.subarray(0, bytes);
  }
  private scratch: Buffer = Buffer.alloc(0);

  /** Deletes whole segments whose accepts are all below the durable truncation point. */
  private dropSegments(): void {
    this.dropping = this.dropping.then(async () => {
      const below = this.durable.truncatedBelow;
      let dropped = 0;
      // the last segment stays; the one after a dropped segment must have its checkpoint written
      while (this.segments.length > 1 && this.segments[0]!.maxAcceptSlot < below) {
        const s = this.segments[0]!;
        if (this.segments.length === 2 && this.writePos === WAL_HEADER_BYTES) break;
        try {
          await unlink(s.path);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') break;
        }
        this.segments.shift();
        dropped++;
      }
      if (dropped > 0) await this.syncDir().catch(() => {});
    });
  }

  /** Segment files currently part of the log (oldest first). */
  segmentFiles(): string[] {
    return this.segments.map((s) => s.path);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.flushing) await new Promise<void>((r) => this.drained.push(r));
    this.closed = true;
    await this.dropping.catch(() => {});
    await this.fh?.close().catch(() => {});
    this.fh = null;
    const spare = this.spare;
    this.spare = null;
    if (spare) {
      const s = await spare.catch(() => null);
      if (s) await unlink(s.tmpPath).catch(() => {});
    }
  }

  stats(): StoreStats {
    return { ...this.st };
  }
}
