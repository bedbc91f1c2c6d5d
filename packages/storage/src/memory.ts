import {
  type AcceptorStore,
  type RecoveredState,
  type StoreRecord,
  type StoreStats,
  applyRecord,
  emptyRecoveredState,
  emptyStoreStats,
} from '@decree/protocol';

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
      promised: s.promised, accepted: new Map(s.accepted), truncatedBelow: s.truncatedBelow, meta: new Map(s.meta),
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
