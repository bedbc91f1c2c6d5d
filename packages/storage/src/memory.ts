import {
  type AcceptorStore,
  type RecoveredState,
  type ReplicaId,
  type Slot,
  type Snapshot,
  type SnapshotConfig,
  type SnapshotMeta,
  type SnapshotStore,
  type StoreRecord,
  type StoreStats,
  SnapshotCorruptError,
  applyRecord,
  emptyRecoveredState,
  emptyStoreStats,
} from '@decree/protocol';
import { crc32cOf, snapshotFileName } from './snapshot-file.ts';

export interface MemoryStoreOptions {
  /** how completion callbacks are scheduled (the simulator passes its own); default queueMicrotask */
  defer?: (fn: () => void) => void;
}

/**
 * The in-memory store: durable for as long as the object lives. The simulator keeps one per
 * replica across simulated crashes (see `DurableMemory` in tools/sim for unsynced-write loss).
 */
export class MemoryStore implements AcceptorStore {
  private state: RecoveredState = emptyRecoveredState();
  private readonly st: StoreStats = emptyStoreStats();
  private readonly defer: (fn: () => void) => void;

  constructor(opts: MemoryStoreOptions = {}) {
    this.defer = opts.defer ?? queueMicrotask;
  }

  async recover(): Promise<RecoveredState> {
    const s = this.state;
    return {
      promised: s.promised,
      accepted: new Map(s.accepted),
      truncatedBelow: s.truncatedBelow,
      meta: new Map(s.meta),
      chosen: new Map(s.chosen),
    };
  }

  append(records: readonly StoreRecord[], done: (err: Error | null) => void): void {
    for (const r of records) applyRecord(this.state, r);
    this.st.appends++;
    this.st.records += records.length;
    this.st.syncs++;
    this.defer(() => done(null));
  }

  truncateBelow(slot: number): void {
    applyRecord(this.state, { t: 'truncate', below: slot });
  }

  async close(): Promise<void> {}

  stats(): StoreStats {
    return { ...this.st };
  }
}

/** Snapshots in memory (simulator and tests); `corrupt` damages one on purpose. */
export class MemorySnapshotStore implements SnapshotStore {
  private readonly snaps = new Map<string, { meta: SnapshotMeta; data: Uint8Array }>();
  saves = 0;

  async save(
    slot: Slot,
    members: readonly ReplicaId[],
    data: Uint8Array,
    config?: SnapshotConfig,
  ): Promise<SnapshotMeta> {
    const name = snapshotFileName(slot);
    const copy = new Uint8Array(data);
    const meta: SnapshotMeta = {
      slot,
      members: [...members],
      ...(config ? { epoch: config.epoch, startSlot: config.startSlot } : {}),
      length: copy.length,
      crc: crc32cOf(copy),
      name,
    };
    this.snaps.set(name, { meta, data: copy });
    this.saves++;
    return meta;
  }

  async list(): Promise<SnapshotMeta[]> {
    return [...this.snaps.values()].map((s) => s.meta).sort((a, b) => b.slot - a.slot);
  }

  async load(name: string): Promise<Snapshot> {
    const s = this.snaps.get(name);
    if (!s) throw new SnapshotCorruptError(name, 'missing');
    if (s.data.length !== s.meta.length) throw new SnapshotCorruptError(name, 'length mismatch');
    if (crc32cOf(s.data) !== s.meta.crc) throw new SnapshotCorruptError(name, 'checksum mismatch');
    return { meta: s.meta, data: s.data };
  }

  async prune(keep: number): Promise<void> {
    const all = await this.list();
    for (const m of all.slice(Math.max(0, keep))) this.snaps.delete(m.name);
  }

  /** TEST ONLY: flips a byte of a stored payload */
  corrupt(name: string, at = 0): void {
    const s = this.snaps.get(name);
    if (s && s.data.length > 0) s.data[at % s.data.length]! ^= 0xff;
  }
}
