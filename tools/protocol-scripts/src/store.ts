/**
 * An acceptor store a script completes by hand. Every record handed to `append` prints as a
 * `write …` line at once; the append stays pending until the script says `sync` (durable),
 * `sync fail` (an I/O error) or `sync full` (a StorageFullError: no room). What was synced is the
 * durable log a `restart` recovers from; what was not is lost with the crash.
 */
import {
  type AcceptorStore,
  type RecoveredState,
  type Slot,
  type StoreRecord,
  type StoreUsage,
  applyRecord,
  copyRecoveredState,
  emptyRecoveredState,
  emptyStoreStats,
} from '@decree/protocol';
import { fmtRecord } from './format.ts';

export type SyncOutcome = 'ok' | 'fail' | 'full';

/** A store error named like the storage package's, which the acceptor recognizes as "full". */
export class ScriptStorageFullError extends Error {
  constructor() {
    super('the log is full');
    this.name = 'StorageFullError';
  }
}

export class ScriptStore implements AcceptorStore {
  private pending: { records: readonly StoreRecord[]; done: (err: Error | null) => void }[] = [];
  private durable: RecoveredState;
  private readonly statsValue = emptyStoreStats();
  /** what usage() reports (a store of fixed capacity); undefined: a store without one */
  usageValue: StoreUsage | undefined;

  constructor(
    private readonly note: (line: string) => void,
    initial: RecoveredState = emptyRecoveredState(),
  ) {
    this.durable = copyRecoveredState(initial);
  }

  async recover(): Promise<RecoveredState> {
    return copyRecoveredState(this.durable);
  }
  /** the durable state, as a restart would read it */
  recovered(): RecoveredState {
    return copyRecoveredState(this.durable);
  }

  append(records: readonly StoreRecord[], done: (err: Error | null) => void): void {
    for (const r of records) this.note(`write ${fmtRecord(r)}`);
    this.statsValue.appends++;
    this.statsValue.records += records.length;
    this.pending.push({ records, done });
  }

  truncateBelow(slot: Slot): void {
    this.note(`store truncate-below ${slot}`);
    applyRecord(this.durable, { t: 'truncate', below: slot });
  }

  get pendingAppends(): number {
    return this.pending.length;
  }

  /** Completes the oldest pending append; false when none is pending. */
  complete(outcome: SyncOutcome): boolean {
    const p = this.pending.shift();
    if (!p) return false;
    if (outcome === 'ok') {
      this.statsValue.syncs++;
      for (const r of p.records) applyRecord(this.durable, r);
      p.done(null);
    } else p.done(outcome === 'full' ? new ScriptStorageFullError() : new Error('I/O error'));
    return true;
  }

  /** The crash: pending appends never complete; returns how many were lost. */
  crash(): number {
    const n = this.pending.length;
    this.pending = [];
    return n;
  }

  usage(): StoreUsage | undefined {
    return this.usageValue;
  }
  async close(): Promise<void> {}
  stats() {
    return { ...this.statsValue };
  }
}
