import type { Bus, Env } from '@decree/bus';
import type { SubmitOptions } from './types.ts';
import type { Message, MessageOf, ReplicaId, RingId, Slot, SubmitItem } from '@decree/protocol';
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

/** The results of a batch that must be all or nothing: throws batchError() when any command failed. */
export function resultsOrThrow(o: BatchOutcome): (Uint8Array | undefined)[] {
  const err = batchError(o);
  if (err) throw err;
  return o.results;
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

/**
 * A replica's client side of the proposer: commands go out as `submit` messages (those of one turn
 * of the event loop in one message), and each gets its outcome from the learner's `executed` or the
 * proposer's `aborted`.
 */
export class Submitter {
  private nextId: number;
  private readonly waiters = new WaiterTable();
  private outbox: SubmitItem[] = [];

  constructor(
    private readonly o: {
      ring: RingId;
      self: ReplicaId;
      inc: number;
      bus: Bus;
      env: Env;
      /** the first submission id (default 1) */
      firstId?: number;
      /**
       * a submission with no outcome after this long fails in doubt (NotLeaderError, maybeExecuted):
       * for a proposer in another process, which may be down. Default: none (the proposer is local).
       */
      timeoutMs?: number;
    },
    /** the leader as this replica knows it: the hint of an abort that names none */
    private readonly leaderHint: () => ReplicaId | undefined = () => undefined,
  ) {
    this.nextId = o.firstId ?? 1;
  }

  /** submissions waiting for their outcome */
  get pending(): number {
    return this.waiters.size;
  }

  submitEach(commands: readonly Uint8Array[], opts: SubmitOptions = {}): Promise<BatchOutcome> {
    const n = commands.length;
    if (n === 0) return Promise.resolve({ results: [], slot: 0 });
    return new Promise((resolve) => {
      const base = this.nextId;
      this.nextId += n;
      const { timeoutMs, env } = this.o;
      let timer: unknown;
      const w = new BatchWaiter(
        n,
        base,
        timeoutMs === undefined
          ? resolve
          : (o) => {
              env.clock.clearTimeout(timer);
              resolve(o);
            },
      );
      const last = opts.exclusive && opts.lastBeforeStepDown ? { last: true } : {};
      for (let i = 0; i < n; i++) {
        this.waiters.set(base + i, w);
        const cmd = commands[i]!;
        this.push(opts.exclusive ? { id: base + i, cmd, excl: true, ...last } : { id: base + i, cmd });
      }
      if (timeoutMs !== undefined) {
        // the commands still waiting may be in flight at the proposer: in doubt, never retried
        const ids = Array.from({ length: n }, (_, i) => base + i);
        timer = env.clock.setTimeout(
          () => this.waiters.failAll(ids, new NotLeaderError(undefined, true), true),
          timeoutMs,
        );
      }
    });
  }

  /** `executed` or `aborted` for this replica's submissions; false for any other message. */
  onMessage(m: Message): boolean {
    if (m.type === 'executed') {
      if (m.inc === this.o.inc) this.waiters.onExecuted(m);
      return true;
    }
    if (m.type === 'aborted') {
      const err = m.busy ? new BusyError() : new NotLeaderError(m.leaderHint ?? this.leaderHint(), m.maybeChosen);
      this.waiters.failAll(m.ids, err, m.maybeChosen);
      return true;
    }
    return false;
  }

  /** Every pending submission fails with `err`; they were in flight, so they may still be chosen. */
  stop(err: Error): void {
    this.outbox = [];
    this.waiters.failAll(this.waiters.keys(), err, true);
  }

  private push(item: SubmitItem): void {
    if (this.outbox.length === 0) this.o.env.defer(this.flush);
    this.outbox.push(item);
  }

  private readonly flush = (): void => {
    if (this.outbox.length === 0) return;
    const items = this.outbox;
    this.outbox = [];
    const { ring, self, bus } = this.o;
    bus.send({ type: 'submit', ring, from: self, to: self, items });
  };
}
