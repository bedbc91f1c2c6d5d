import {
  type AcceptorStore,
  type RecoveredState,
  type StoreRecord,
  type StoreStats,
  applyRecord,
  emptyRecoveredState,
  emptyStoreStats,
} from '@decree/protocol';
import type { Env, Rng } from '@decree/bus';

export interface SimDiskOptions {
  /** sync latency bounds in ms */
  minSyncMs: number;
  maxSyncMs: number;
  /** probability that one sync fails (the acceptor then stops voting until restarted) */
  failRate: number;
}

/**
 * A simulated disk behind the acceptor store interface: appends become durable only when their
 * (group-committed) sync completes after a random latency; a crash loses every write not yet
 * synced; a sync may fail. Lives across simulated crashes, like a real disk.
 */
export class SimDisk implements AcceptorStore {
  private durable: RecoveredState = emptyRecoveredState();
  private pending: { records: readonly StoreRecord[]; done: (err: Error | null) => void }[] = [];
  private syncing: { records: readonly StoreRecord[]; done: (err: Error | null) => void }[] | null = null;
  private epoch = 0;
  private readonly st: StoreStats = emptyStoreStats();
  opts: SimDiskOptions;

  constructor(
    private readonly env: Env,
    private readonly rng: Rng,
    opts: Partial<SimDiskOptions> = {},
  ) {
    this.opts = { minSyncMs: 0.05, maxSyncMs: 0.5, failRate: 0, ...opts };
  }

  async recover(): Promise<RecoveredState> {
    const s = this.durable;
    return { promised: s.promised, accepted: new Map(s.accepted), truncatedBelow: s.truncatedBelow, meta: new Map(s.meta) };
  }

  append(records: readonly StoreRecord[], done: (err: Error | null) => void): void {
    this.st.appends++;
    this.st.records += records.length;
    this.pending.push({ records, done });
    if (!this.syncing) this.startSync();
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
        for (const b of batch) b.done(err);
      } else {
        for (const b of batch) for (const r of b.records) applyRecord(this.durable, r);
        for (const b of batch) b.done(null);
      }
      if (this.pending.length > 0) this.startSync();
    }, delay);
  }

  /** The process died: unsynced writes are gone, and their callbacks never fire. */
  crash(): void {
    this.epoch++;
    this.pending = [];
    this.syncing = null;
  }

  truncateBelow(slot: number): void {
    applyRecord(this.durable, { t: 'truncate', below: slot });
  }

  async close(): Promise<void> {}

  stats(): StoreStats {
    return { ...this.st };
  }
}
