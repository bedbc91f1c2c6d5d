import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  CONTRACTS,
  type AcceptorStore,
  type RecoveredState,
  type StoreRecord,
  type StoreStats,
  type StoreUsage,
  applyRecord,
  copyRecoveredState,
  emptyRecoveredState,
  emptyStoreStats,
  requires,
} from '@decree/protocol';
import { type NativePmemLog, type PmemBackend, PmemNotBuiltError, loadPmemAddon, recordBytes } from '@decree/pmem-log';
import { StorageClosedError, StorageCorruptionError, StorageError, StorageFullError, fsError } from './errors.ts';
import { checkpointRecords, decodeRecord, encodeRecord } from './records.ts';

export { PmemNotBuiltError } from '@decree/pmem-log';

export interface PmemStoreOptions {
  /** the log file (created with `capacity` data bytes if missing; its directory too) */
  path: string;
  /** bytes of the circular data area when the file is created; default 64 MiB */
  capacity?: number;
  /** recover() also returns the `chosen` records (offline replay) */
  keepChosen?: boolean;
}

interface Pending {
  records: readonly StoreRecord[];
  payloads: Uint8Array[];
  bytes: number;
  done: (err: Error | null) => void;
}

/** A span of the log [start, end) and the highest accept slot in it (-1: none). */
interface Unit {
  start: number;
  end: number;
  maxAcceptSlot: number;
}

type NativeError = Error & { code?: string; offset?: number; path?: string };

function mapNativeError(e: unknown, path: string, op: string): StorageError {
  if (e instanceof StorageError) return e;
  const ne = e as NativeError;
  if (ne?.code === 'ECORRUPT') return new StorageCorruptionError(path, ne.offset ?? 0, ne.message);
  if (ne?.code === 'ELOGFULL')
    return new StorageFullError(
      path,
      `${op}: the circular log is full; truncate below a snapshot or recreate it bigger`,
      e,
    );
  return fsError(e, path, op);
}

/**
 * The acceptor store on the persistent-memory log (native/pmem-log): records go into a circular
 * log in a memory-mapped file; a batch becomes durable with one commit (persist the bytes, then
 * the metadata copy, then the flag), run off the event loop. Group commit as in FileWalStore:
 * while a commit is in flight, appends accumulate and go in the next one.
 *
 * Space comes back when the head moves: after a truncate record is durable, the next commit
 * re-states promise/meta/truncation (a checkpoint) and moves the head past every span whose
 * accepts are all below the truncation point, atomically.
 */
export class PmemStore implements AcceptorStore {
  readonly path: string;
  private readonly capacity: number;
  private log: NativePmemLog | null = null;
  private readonly st: StoreStats = emptyStoreStats();
  private durable: RecoveredState = emptyRecoveredState();
  private readonly keepChosen: boolean;
  private units: Unit[] = [];
  private pending: Pending[] = [];
  private flushing = false;
  private recovered = false;
  private closed = false;
  private failed: Error | null = null;
  private truncPending = 0;
  /** truncation point the head was last moved for */
  private compactedFor = 0;
  /** room kept free for checkpoints: a full log can always record a truncation and move its head */
  private readonly reserveBytes: number;
  private drained: Array<() => void> = [];

  constructor(opts: PmemStoreOptions) {
    CONTRACTS && requires(typeof opts.path === 'string' && opts.path.length > 0, 'PmemStore needs a path');
    this.path = opts.path;
    this.capacity = opts.capacity ?? 64 << 20;
    this.reserveBytes = Math.min(1 << 20, Math.max(1 << 10, Math.floor(this.capacity / 64)));
    this.keepChosen = opts.keepChosen ?? false;
  }

  /** 'libpmem' or 'mmap' (how the addon was built); null when it is not built */
  static backend(): PmemBackend | null {
    try {
      return loadPmemAddon().backend;
    } catch {
      return null;
    }
  }

  /** true on real persistent memory, false on an ordinary file (msync); null before recover() */
  get isPmem(): boolean | null {
    return this.log ? this.log.isPmem : null;
  }

  /** the native log's head/tail/capacity (logical byte offsets), for tests and status pages */
  logInfo(): { head: number; tail: number; capacity: number; rolledBack: boolean } | null {
    const l = this.log;
    // rolledBack: open found the last commit torn by a crash during its flush (never acknowledged)
    return l ? { head: l.head, tail: l.tail, capacity: l.capacity, rolledBack: l.rolledBack } : null;
  }

  async recover(): Promise<RecoveredState> {
    CONTRACTS && requires(!this.recovered, 'recover() is called once');
    const t0 = performance.now();
    const addon = loadPmemAddon(); // PmemNotBuiltError when missing
    try {
      await mkdir(dirname(this.path), { recursive: true });
    } catch (e) {
      throw fsError(e, dirname(this.path), 'mkdir');
    }
    let log: NativePmemLog;
    try {
      log = new addon.PmemLog(this.path, this.capacity);
    } catch (e) {
      throw mapNativeError(e, this.path, 'open');
    }
    let read: { payloads: Buffer[]; offsets: number[] };
    try {
      read = log.read();
    } catch (e) {
      log.close();
      throw mapNativeError(e, this.path, 'read');
    }
    const state = emptyRecoveredState();
    if (this.keepChosen) state.chosen = new Map();
    const { payloads, offsets } = read;
    let unit: Unit | null = null;
    for (let i = 0; i < payloads.length; i++) {
      let r: StoreRecord;
      try {
        r = decodeRecord(payloads[i]!);
      } catch (e) {
        log.close();
        throw new StorageCorruptionError(
          this.path,
          addon.headerBytes + (offsets[i]! % log.capacity),
          `record with a valid checksum does not decode (${(e as Error).message})`,
        );
      }
      applyRecord(state, r);
      const start = offsets[i]!;
      const end = i + 1 < offsets.length ? offsets[i + 1]! : log.tail;
      if (!unit || i % 256 === 0) {
        unit = { start, end, maxAcceptSlot: -1 };
        this.units.push(unit);
      }
      unit.end = end;
      if ((r.t === 'accept' || r.t === 'chosen') && r.slot > unit.maxAcceptSlot) unit.maxAcceptSlot = r.slot;
    }
    this.st.reads++;
    this.st.readMs += performance.now() - t0;
    this.log = log;
    this.durable = state;
    this.truncPending = state.truncatedBelow;
    this.compactedFor = 0; // the first commit moves the head past what the recovered truncation point dropped
    this.recovered = true;
    return copyRecoveredState(state);
  }

  append(records: readonly StoreRecord[], done: (err: Error | null) => void): void {
    CONTRACTS && requires(Array.isArray(records), 'append takes an array of records');
    const err = this.closed
      ? new StorageClosedError(this.path, 'closed')
      : (this.failed ?? (this.recovered ? null : loadOrNotRecovered(this.path)));
    if (err) {
      queueMicrotask(() => done(err));
      return;
    }
    this.st.appends++;
    const payloads = records.map(encodeRecord);
    let bytes = 0;
    for (const p of payloads) bytes += recordBytes(p.length);
    this.pending.push({ records, payloads, bytes, done });
    this.kick();
  }

  /** The head moves past the log below `slot` with the next commit (a checkpoint records the point). */
  truncateBelow(slot: number): void {
    CONTRACTS && requires(Number.isSafeInteger(slot) && slot >= 0, 'truncateBelow takes a slot');
    if (slot <= this.truncPending || this.closed || this.failed || !this.recovered) return;
    this.truncPending = slot;
    this.kick();
  }

  /** Bytes between head and tail, of the circular area's capacity. */
  usage(): StoreUsage | undefined {
    const log = this.log;
    return log ? { usedBytes: log.tail - log.head, capacityBytes: log.capacity } : undefined;
  }

  private kick(): void {
    if (this.flushing) return;
    this.flushing = true;
    queueMicrotask(() => void this.flushLoop());
  }

  private async flushLoop(): Promise<void> {
    while (!this.failed && (this.pending.length > 0 || this.compactedFor < this.truncPending)) {
      const batch = this.pending.splice(0);
      let err: Error | null = null;
      try {
        await this.commitBatch(batch);
      } catch (e) {
        err = e instanceof Error ? e : new Error(String(e));
      }
      for (const p of batch) {
        try {
          p.done(err);
        } catch (e) {
          queueMicrotask(() => {
            throw e;
          });
        }
      }
      // full: the callers hold their records and retry after a truncation (never spin here)
      if (err instanceof StorageFullError && this.pending.length === 0) break;
      await null; // appends made by the callbacks join the next batch
    }
    if (this.failed) {
      const failed = this.failed;
      for (const p of this.pending.splice(0)) p.done(failed);
    }
    this.flushing = false;
    for (const f of this.drained.splice(0)) f();
  }

  /** The head position that drops every unit whose accepts are all below `below`. */
  private reclaimableHead(below: number): { head: number; units: number } {
    let n = 0;
    while (n < this.units.length && this.units[n]!.maxAcceptSlot < below) n++;
    const log = this.log!;
    return { head: n < this.units.length ? this.units[n]!.start : log.tail, units: n };
  }

  /**
   * Moves the head past every unit below the truncation point `below`, in one commit that also
   * writes a checkpoint (promise, meta, truncate below) at the tail: after it, the log needs nothing
   * it dropped. It needs only the checkpoint's room (the reserve), so it works on a full log.
   */
  private async compact(below: number): Promise<void> {
    const log = this.log!;
    const { head, units } = this.reclaimableHead(below);
    const start = log.tail;
    const cp = checkpointRecords({ ...this.durable, truncatedBelow: below }).map(encodeRecord);
    try {
      log.appendMany(cp);
    } catch (e) {
      this.compactedFor = below; // tried; the next truncation tries again
      if ((e as NativeError).code === 'ELOGFULL')
        throw new StorageFullError(this.path, `no room for a checkpoint in the circular log (${log.capacity} bytes)`);
      throw mapNativeError(e, this.path, 'append');
    }
    await this.commit(log.tentativeTail, head, start, units, [], [{ t: 'truncate', below }]);
    this.compactedFor = below;
  }

  private async commitBatch(batch: Pending[]): Promise<void> {
    const log = this.log!;
    if (this.compactedFor < this.truncPending) await this.compact(this.truncPending);
    const payloads: Uint8Array[] = [];
    let need = 0;
    let data = false;
    for (const p of batch) {
      for (const x of p.payloads) payloads.push(x);
      need += p.bytes;
      if (!data) data = p.records.some((r) => r.t === 'accept' || r.t === 'chosen');
    }
    if (payloads.length === 0) return; // nothing to write: everything before is durable already
    // the last reserveBytes are kept for checkpoints and truncations, so a full log can always make room
    const free = log.capacity - (log.tentativeTail - log.head);
    if (data && free - need < this.reserveBytes)
      throw new StorageFullError(
        this.path,
        `append of ${payloads.length} records (${need} bytes): the circular log (${log.capacity} ` +
          `bytes, ${free} free) is full until a snapshot lets it be truncated`,
      );
    const start = log.tail;
    try {
      log.appendMany(payloads);
    } catch (e) {
      if ((e as NativeError).code === 'ELOGFULL')
        throw new StorageFullError(
          this.path,
          `append of ${payloads.length} records: the circular log (${log.capacity} bytes) is full`,
        );
      throw mapNativeError(e, this.path, 'append');
    }
    await this.commit(log.tentativeTail, log.head, start, 0, batch);
  }

  private async commit(
    upTo: number,
    head: number,
    start: number,
    dropUnits: number,
    batch: Pending[],
    extra: StoreRecord[] = [],
  ): Promise<void> {
    const log = this.log!;
    const t0 = performance.now();
    try {
      await new Promise<void>((resolve, reject) => log.commit(upTo, head, (err) => (err ? reject(err) : resolve())));
    } catch (e) {
      const err = mapNativeError(e, this.path, 'commit');
      log.discardTentative();
      this.failed = err; // msync/persist failed: the mapping's durability is unknown
      throw err;
    }
    this.st.writeMs += performance.now() - t0;
    this.st.syncs++;
    this.st.bytes += upTo - start;
    this.units.splice(0, dropUnits);
    const unit: Unit = { start, end: upTo, maxAcceptSlot: -1 };
    for (const r of extra) applyRecord(this.durable, r);
    for (const p of batch) {
      this.st.records += p.records.length;
      for (const r of p.records) {
        applyRecord(this.durable, r);
        if ((r.t === 'accept' || r.t === 'chosen') && r.slot > unit.maxAcceptSlot) unit.maxAcceptSlot = r.slot;
      }
    }
    if (upTo > start) this.units.push(unit);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.flushing) await new Promise<void>((r) => this.drained.push(r));
    this.closed = true;
    this.log?.close();
    this.log = null;
  }

  stats(): StoreStats {
    return { ...this.st };
  }
}

function loadOrNotRecovered(path: string): Error {
  try {
    loadPmemAddon();
  } catch (e) {
    return e instanceof PmemNotBuiltError ? e : new PmemNotBuiltError(String(e));
  }
  return new StorageClosedError(path, 'recover() has not run');
}
