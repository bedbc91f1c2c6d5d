import {
  type AcceptorStore,
  type RecoveredState,
  type Slot,
  type StoreRecord,
  type StoreStats,
  applyRecord,
  emptyRecoveredState,
  emptyStoreStats,
  slotValueSize,
} from '@decree/protocol';
import type { Env, Rng } from '@decree/bus';
import { StorageFullError } from '@decree/storage';

export interface SimDiskOptions {
  /** sync latency bounds in ms */
  minSyncMs: number;
  maxSyncMs: number;
  /** probability that one sync fails (the acceptor then stops voting until restarted) */
  failRate: number;
  /** bytes the store may hold (records charged by `recordBytes`); 0: unlimited */
  capacityBytes: number;
  /** names the disk in errors */
  name: string;
}

/** The bytes a record occupies in the simulated log (its value bytes plus framing, as in the WAL). */
export function recordBytes(r: StoreRecord): number {
  switch (r.t) {
    case 'accept':
      return slotValueSize(r.value) + 48;
    case 'chosen':
      return slotValueSize(r.value) + 32;
    case 'meta':
      return r.value.length + r.key.length + 24;
    default:
      return 32;
  }
}

interface Append {
  records: readonly StoreRecord[];
  done: (err: Error | null) => void;
  /** the append did not fit: it fails when its sync completes, and nothing of it is written */
  full?: Error;
  /** the bytes it was charged, by log position */
  charges?: [Slot, number][];
}

/**
 * A simulated disk behind the acceptor store interface: appends become durable only when their
 * (group-committed) sync completes after a random latency; a crash loses every write not yet
 * synced; a sync may fail. Lives across simulated crashes, like a real disk.
 *
 * With `capacityBytes`, the disk fills up like a log: each record is charged at its slot (records
 * without a slot at the highest slot written so far), an append that does not fit fails with the
 * storage package's `StorageFullError`, and `truncateBelow(s)` gives back what was charged below s.
 */
export class SimDisk implements AcceptorStore {
  private durable: RecoveredState = emptyRecoveredState();
  private pending: Append[] = [];
  private syncing: Append[] | null = null;
  private epoch = 0;
  private readonly st: StoreStats = emptyStoreStats();
  /** bytes charged per log position (slot) */
  private readonly charged = new Map<Slot, number>();
  private used = 0;
  private highSlot = 0;
  /** appends refused because the disk was full */
  fullErrors = 0;
  opts: SimDiskOptions;

  constructor(
    private readonly env: Env,
    private readonly rng: Rng,
    opts: Partial<SimDiskOptions> = {},
  ) {
    this.opts = { minSyncMs: 0.05, maxSyncMs: 0.5, failRate: 0, capacityBytes: 0, name: 'sim-disk', ...opts };
  }

  async recover(): Promise<RecoveredState> {
    const s = this.durable;
    return {
      promised: s.promised,
      accepted: new Map(s.accepted),
      truncatedBelow: s.truncatedBelow,
      meta: new Map(s.meta),
      // the learner's fills (values it executed that came from peers): a restart's local replay needs them
      chosen: new Map(s.chosen),
    };
  }

  /** Bytes the disk holds now (records written or being written, minus what truncation gave back). */
  usedBytes(): number {
    return this.used;
  }

  append(records: readonly StoreRecord[], done: (err: Error | null) => void): void {
    this.st.appends++;
    this.st.records += records.length;
    const a: Append = { records, done };
    if (this.opts.capacityBytes > 0) this.charge(a);
    this.pending.push(a);
    if (!this.syncing) this.startSync();
  }

  private charge(a: Append): void {
    const charges: [Slot, number][] = [];
    let total = 0;
    for (const r of a.records) {
      const slot = r.t === 'accept' || r.t === 'chosen' ? r.slot : this.highSlot;
      const b = recordBytes(r);
      charges.push([slot, b]);
      total += b;
    }
    if (this.used + total > this.opts.capacityBytes) {
      this.fullErrors++;
      const detail = `append of ${total} bytes with ${this.used} of ${this.opts.capacityBytes} used`;
      a.full = new StorageFullError(this.opts.name, `write: ENOSPC (${detail})`);
      return;
    }
    for (const [slot, b] of charges) {
      this.charged.set(slot, (this.charged.get(slot) ?? 0) + b);
      if (slot > this.highSlot) this.highSlot = slot;
    }
    this.used += total;
    a.charges = charges;
  }

  private refund(a: Append): void {
    for (const [slot, b] of a.charges ?? []) {
      const c = this.charged.get(slot);
      if (c === undefined) continue; // truncated meanwhile: already given back
      this.used -= b;
      if (c - b > 0) this.charged.set(slot, c - b);
      else this.charged.delete(slot);
    }
    a.charges = undefined;
  }

  private startSync(): void {
    const batch = this.pending;
    this.pending = [];
    this.syncing = batch;
    const epoch = this.epoch;
    const delay = this.opts.minSyncMs + this.rng.next() * (this.opts.maxSyncMs - this.opts.minSyncMs);
    const fail = this.rng.chance(this.opts.failRate);
    this.env.clock.setTimeout(() => {
      if (epoch !== this.epoch) return; // the process crashed meanwhile: these writes are lost
      this.syncing = null;
      this.st.syncs++;
      if (fail) {
        const err = new Error('simulated disk failure');
        for (const b of batch) this.refund(b);
        for (const b of batch) b.done(err);
      } else {
        for (const b of batch) if (!b.full) for (const r of b.records) applyRecord(this.durable, r);
        for (const b of batch) b.done(b.full ?? null);
      }
      if (this.pending.length > 0) this.startSync();
    }, delay);
  }

  /** The process died: unsynced writes are gone, and their callbacks never fire. */
  crash(): void {
    this.epoch++;
    for (const a of this.pending) this.refund(a);
    for (const a of this.syncing ?? []) this.refund(a);
    this.pending = [];
    this.syncing = null;
  }

  truncateBelow(slot: number): void {
    applyRecord(this.durable, { t: 'truncate', below: slot });
    if (this.opts.capacityBytes > 0)
      for (const [s, b] of this.charged)
        if (s < slot) {
          this.used -= b;
          this.charged.delete(s);
        }
  }

  async close(): Promise<void> {}

  stats(): StoreStats {
    return { ...this.st };
  }
}
