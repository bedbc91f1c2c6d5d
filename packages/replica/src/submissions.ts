import type { MessageOf, Slot } from '@decree/protocol';
import { BusyError, NotLeaderError } from './errors.ts';

/** A command that did not execute here, or may have (its slot was in flight when leadership was lost). */
export interface CommandFailure {
  /** its index in the batch */
  readonly index: number;
  readonly error: Error;
  /** true: it was proposed before the failure and may still be chosen; false: it certainly never executes */
  readonly maybeExecuted: boolean;
}

/** Each command's own outcome, for a batch replicated together (issue #17: never all-or-nothing). */
export interface BatchOutcome {
  /** per command: the state machine's result (undefined also for a failed command: see `failed`) */
  readonly results: (Uint8Array | undefined)[];
  /** the highest slot in which a command of the batch executed (0 when none did): a freshness token */
  readonly slot: Slot;
  /** the commands that failed, by ascending index (absent when every command executed) */
  readonly failed?: readonly CommandFailure[];
}

/** The error a batch rejects with when it must be all-or-nothing: it may have executed if any part did. */
export function batchError(o: BatchOutcome): Error | undefined {
  const f = o.failed;
  if (!f || f.length === 0) return undefined;
  const first = f[0]!.error;
  const some = f.length < o.results.length || f.some((x) => x.maybeExecuted);
  if (first instanceof NotLeaderError) return new NotLeaderError(first.leaderHint, some);
  if (first instanceof BusyError && some) return new NotLeaderError(undefined, true);
  return first;
}

/**
 * The outcome of one batch, filled command by command from `executed` (per slot) and `aborted`
 * (per id) messages; resolves once every command has one.
 */
export class BatchWaiter {
  readonly results: (Uint8Array | undefined)[];
  failed: CommandFailure[] | undefined;
  slot: Slot = 0;
  remaining: number;
  /** 1 for each command that has its outcome */
  private readonly settledMask: Uint8Array;

  constructor(
    n: number,
    readonly base: number,
    readonly resolve: (o: BatchOutcome) => void,
  ) {
    this.results = new Array(n);
    this.remaining = n;
    this.settledMask = new Uint8Array(n);
  }

  /** first outcome wins (an `executed` after an `aborted` of the same id is ignored) */
  executed(id: number, result: Uint8Array | undefined, slot: Slot): boolean {
    const i = id - this.base;
    if (this.settledMask[i]) return false;
    this.settledMask[i] = 1;
    this.results[i] = result;
    if (slot > this.slot) this.slot = slot;
    return --this.remaining === 0;
  }

  fail(id: number, error: Error, maybeExecuted: boolean): boolean {
    const i = id - this.base;
    if (this.settledMask[i]) return false;
    this.settledMask[i] = 1;
    (this.failed ??= []).push({ index: i, error, maybeExecuted });
    return --this.remaining === 0;
  }

  outcome(): BatchOutcome {
    if (!this.failed) return { results: this.results, slot: this.slot };
    this.failed.sort((a, b) => a.index - b.index);
    return { results: this.results, slot: this.slot, failed: this.failed };
  }
}

/**
 * The submissions of one replica's clients waiting for their outcome, indexed by id. Ids are dense
 * and increasing and settle mostly in order, so a deque indexed by id beats a Map.
 */
export class WaiterTable {
  private slots: (BatchWaiter | undefined)[] = [];
  private head = 0; // index in `slots` of the first live entry
  private base = 1; // the id stored at slots[0]
  size = 0;

  set(id: number, w: BatchWaiter): void {
    if (this.slots.length === 0) {
      this.base = id;
      this.head = 0;
    }
    const i = id - this.base;
    while (this.slots.length < i) this.slots.push(undefined);
    this.slots[i] = w;
    this.size++;
  }

  get(id: number): BatchWaiter | undefined {
    const i = id - this.base;
    return i >= this.head && i < this.slots.length ? this.slots[i] : undefined;
  }

  delete(id: number): void {
    const i = id - this.base;
    if (i < this.head || i >= this.slots.length || this.slots[i] === undefined) return;
    this.slots[i] = undefined;
    this.size--;
    if (i === this.head) {
      while (this.head < this.slots.length && this.slots[this.head] === undefined) this.head++;
      if (this.head === this.slots.length) {
        this.slots = [];
        this.head = 0;
      } else if (this.head > 4096 && this.head * 2 > this.slots.length) {
        this.slots = this.slots.slice(this.head);
        this.base += this.head;
        this.head = 0;
      }
    }
  }

  keys(): number[] {
    const out: number[] = [];
    for (let i = this.head; i < this.slots.length; i++) if (this.slots[i] !== undefined) out.push(this.base + i);
    return out;
  }

  /** `executed` from the learner: the results of one slot's commands, ids firstId.. */
  onExecuted(m: MessageOf<'executed'>): void {
    const r = m.results;
    for (let k = 0; k < r.length; k++) {
      const id = m.firstId + k;
      const w = this.get(id);
      if (!w) continue;
      this.delete(id);
      if (w.executed(id, r[k], m.slot)) w.resolve(w.outcome());
    }
  }

  /** Every id gets this failure (aborted, stopped). */
  failAll(ids: Iterable<number>, error: Error, maybeExecuted: boolean): void {
    for (const id of ids) {
      const w = this.get(id);
      if (!w) continue;
      this.delete(id);
      if (w.fail(id, error, maybeExecuted)) w.resolve(w.outcome());
    }
  }
}
