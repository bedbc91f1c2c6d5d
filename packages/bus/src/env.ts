/** Time, timers, randomness and deferral: everything a role would otherwise take from the global scope. */
export interface Clock {
  now(): number;
  /** wall-clock ms since the Unix epoch (the simulator: its virtual time); for timestamps in the log */
  wallMs?(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}
export interface Env {
  readonly clock: Clock;
  /** uniform in [0, 1) */
  random(): number;
  /** run fn soon, after the current handler, in FIFO order */
  defer(fn: () => void): void;
}

/** A seeded PRNG (sfc32): the same seed gives the same sequence on every run. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.next();
  }
  /** uniform in [0, 1) */
  next(): number {
    let { a, b, c, d } = this;
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    this.a = a;
    this.b = b;
    this.c = c;
    this.d = d;
    return (t >>> 0) / 4294967296;
  }
  /** integer in [lo, hi] */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  /** a new independent generator derived from this one */
  fork(): Rng {
    return new Rng(Math.floor(this.next() * 4294967296));
  }
}

/**
 * Passes of the deferred queue run in one turn of the event loop: work deferred while draining (a
 * message handled, then the message it sends, then the next) goes on in the same turn up to this many
 * passes, and while the turn has taken less than REAL_ENV_TURN_BUDGET_MS; then it waits for the next
 * turn so that timers and socket I/O get theirs (under load a pass is long: one pass per turn, as before).
 */
export const REAL_ENV_PASSES_PER_TURN = 4;
export const REAL_ENV_TURN_BUDGET_MS = 1;

/**
 * The real environment: wall clock, Math.random, deferral to the end of the current turn of the event
 * loop (setImmediate), and what that deferred work defers in turn in the same turn, for up to
 * REAL_ENV_PASSES_PER_TURN passes within REAL_ENV_TURN_BUDGET_MS (each pass after the microtasks of the
 * one before it, as if it were its own task); then on the next turn.
 */
export function realEnv(passesPerTurn = REAL_ENV_PASSES_PER_TURN, turnBudgetMs = REAL_ENV_TURN_BUDGET_MS): Env {
  let queue: (() => void)[] = [];
  let scheduled = false;
  /** passes run in this turn and when it started (reset by a drain that starts a turn) */
  let passes = 0;
  let turnStart = 0;
  const drain = () => {
    // `scheduled` stays true while the pass runs: what it defers is scheduled below, not by defer()
    passes++;
    // Run what was queued before this pass; what it queues runs in the next pass (after this pass's
    // microtasks), in this turn while passes remain, else on the next turn, so timers and socket I/O
    // get their turn in between (an unbounded microtask chain would starve them).
    const q = queue;
    queue = [];
    let i = 0;
    try {
      for (; i < q.length; i++) q[i]!();
    } finally {
      if (i + 1 < q.length) {
        // a task threw: drop it, keep the rest (ahead of anything queued since) for the next turn
        queue = q.slice(i + 1).concat(queue);
      }
      if (queue.length === 0) scheduled = false;
      else if (passes < passesPerTurn && performance.now() - turnStart < turnBudgetMs) queueMicrotask(drain);
      else setImmediate(startTurn);
    }
  };
  const startTurn = () => {
    passes = 0;
    turnStart = performance.now();
    drain();
  };
  return {
    clock: {
      now: () => performance.now(),
      wallMs: () => Date.now(),
      setTimeout: (fn, ms) => setTimeout(fn, ms),
      clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
    },
    random: Math.random,
    defer(fn) {
      queue.push(fn);
      if (!scheduled) {
        scheduled = true;
        setImmediate(startTurn);
      }
    },
  };
}
