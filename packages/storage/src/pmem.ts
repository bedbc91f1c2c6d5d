import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
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
  if (ne?.code === 'ELOGFULL') return new StorageFullError(path, `${op}: the circular log is full; truncate below a snapshot or recreate it bigger`, e);
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
  private drained: Array<() => void> = [];

  constructor(opts: PmemStoreOptions) {
    CONTRACTS && requires(typeof opts.path === 'string' && opts.path.length > 0, 'PmemStore needs a path');
    this.path = opts.path;
    this.capacity = opts.capacity ?? 64 << 20;
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
  logInfo(): { head: number; tail: number; capacity: number } | null {
    return this.log ? { head: this.log.head, tail: this.log.tail, capacity: this.log.capacity } : null;
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
        throw new StorageCorruptionError(this.path, addon.headerBytes + (offsets[i]! % log.capacity), `record with a valid checksum does not decode (${(e as Error).message})`);
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
    this.compactedFor = 0;
    this.recovered = true;
    return copyRecoveredState(state);
  }

  append(records: readonly StoreRecord[], done: (err: Error | null) => void): void {
    CONTRACTS && requires(Array.isArray(records), 'append takes an array of records');
    const err = this.closed
      ? new StorageClosedError(this.path, 'closed')
      : this.failed ?? (this.recovered ? null : loadOrNotRecovered(this.path));
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

  truncateBelow(slot: number): void {
    CONTRACTS && requires(Number.isSafeInteger(slot) && slot >= 0, 'truncateBelow takes a slot');
    if (slot <= this.truncPending || this.closed || this.failed || !this.recovered) return;
    this.truncPending = slot;
    this.append([{ t: 'truncate', below: slot }], () => {});
  }

  private kick(): void {
    if (this.flushing) return;
    this.flushing = true;
    queueMicrotask(() => void this.flushLoop());
  }

  private async flushLoop(): Promise<void> {
    while (!this.failed && (this.pending.length > 0 || this.compactedFor < this.durable.truncatedBelow)) {
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
      await null; // appends made by the callbacks join the next batch
    }
    if (this.failed) {
      const failed = this.failed;
      for (const p of this.pending.splice(0)) p.done(failed);
    }
    this.flushing = false;
    for (const f of this.drained.splice(0)) f();
  }

  /** The head position that drops every unit whose accepts are all below the durable truncation point. */
  private reclaimableHead(): { head: number; units: number } {
    const below = this.durable.truncatedBelow;
    let n = 0;
    while (n < this.units.length && this.units[n]!.maxAcceptSlot < below) n++;
    const log = this.log!;
    return { head: n < this.units.length ? this.units[n]!.start : log.tail, units: n };
  }

  private async commitBatch(batch: Pending[]): Promise<void> {
    const log = this.log!;
    let payloads: Uint8Array[] = [];
    for (const p of batch) for (const x of p.payloads) payloads.push(x);
    let head = log.head;
    let dropUnits = 0;
    const start = log.tail;
    const tryAppend = (withCheckpoint: boolean): boolean => {
      const all = withCheckpoint ? [...checkpointRecords(this.durable).map(encodeRecord), ...payloads] : payloads;
      try {
        log.appendMany(all);
        return true;
      } catch (e) {
        if ((e as NativeError).code === 'ELOGFULL') return false;
        throw mapNativeError(e, this.path, 'append');
      }
    };
    // move the head when a new truncation point is durable, or when the log is full
    let compact = this.compactedFor < this.durable.truncatedBelow;
    let ok: boolean;
    if (compact) ok = tryAppend(true);
    else {
      ok = tryAppend(false);
      if (!ok && this.reclaimableHead().head > log.head) {
        compact = true;
        ok = tryAppend(true);
      }
    }
    if (compact) {
      const r = this.reclaimableHead();
      head = r.head;
      dropUnits = r.units;
    }
    if (!ok) {
      if (!compact || head === log.head) throw new StorageFullError(this.path, `append of ${payloads.length} records: the circular log (${log.capacity} bytes) is full; truncate below a snapshot or recreate it bigger`);
      // make room first: a checkpoint-only commit that moves the head, then the batch
      payloads = [];
      if (!tryAppend(true)) throw new StorageFullError(this.path, 'no room even for a checkpoint');
      await this.commit(log.tentativeTail, head, start, dropUnits, []);
      this.compactedFor = this.durable.truncatedBelow;
      for (const p of batch) for (const x of p.payloads) payloads.push(x);
      if (!tryAppend(false)) throw new StorageFullError(this.path, `append of ${payloads.length} records: the circular log (${log.capacity} bytes) is full even after moving its head`);
      await this.commit(log.tentativeTail, log.head, log.tail, 0, batch);
      return;
    }
    if (log.tentativeTail === start && head === log.head) {
      if (compact) this.compactedFor = this.durable.truncatedBelow;
      return; // nothing to write: everything before is durable already
    }
    await this.commit(log.tentativeTail, head, start, dropUnits, batch);
    if (compact) this.compactedFor = this.durable.truncatedBelow;
  }

  private async commit(upTo: number, head: number, start: number, dropUnits: number, batch: Pending[]): Promise<void> {
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
