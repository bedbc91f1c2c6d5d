import { type Env, Rng } from './env.ts';

interface Task {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/**
 * A deterministic discrete-event scheduler: virtual time, timers and deferred work in one queue,
 * ordered by (time, insertion). One seed and one scheduler give one exact execution.
 */
export class SimScheduler {
  private heap: Task[] = [];
  private seq = 0;
  private time = 0;
  readonly rng: Rng;
  /** tasks executed so far */
  steps = 0;

  constructor(seed: number) {
    this.rng = new Rng(seed);
  }

  now(): number {
    return this.time;
  }

  at(time: number, fn: () => void): Task {
    const t: Task = { at: Math.max(time, this.time), seq: this.seq++, fn, cancelled: false };
    this.push(t);
    return t;
  }

  after(ms: number, fn: () => void): Task {
    return this.at(this.time + Math.max(0, ms), fn);
  }

  cancel(t: unknown): void {
    if (t && typeof t === 'object' && 'cancelled' in t) (t as Task).cancelled = true;
  }

  /** An Env whose clock, timers, randomness and deferral all come from this scheduler. */
  env(rng: Rng = this.rng.fork()): Env {
    return {
      clock: {
        now: () => this.time,
        wallMs: () => Math.floor(this.time),
        setTimeout: (fn, ms) => this.after(ms, fn),
        clearTimeout: (h) => this.cancel(h),
      },
      random: () => rng.next(),
      defer: (fn) => {
        this.after(0, fn);
      },
    };
  }

  get pending(): number {
    return this.heap.length;
  }

  /** Runs one task; false when there is none. */
  step(): boolean {
    for (;;) {
      const t = this.pop();
      if (!t) return false;
      if (t.cancelled) continue;
      this.time = t.at;
      this.steps++;
      t.fn();
      return true;
    }
  }

  /** Runs every task due up to `time`, then sets the clock to `time`. */
  runUntil(time: number, maxSteps = 50_000_000): void {
    let n = 0;
    for (let next = this.peek(); next !== undefined && next.at <= time; next = this.peek()) {
      this.step();
      if (++n > maxSteps) throw new Error(`scheduler: more than ${maxSteps} steps before t=${time}`);
    }
    if (time > this.time) this.time = time;
  }

  runFor(ms: number): void {
    this.runUntil(this.time + ms);
  }

  /** Runs until `cond` holds (checked after each task) or `timeoutMs` of virtual time pass. */
  runUntilCond(cond: () => boolean, timeoutMs: number): boolean {
    const end = this.time + timeoutMs;
    if (cond()) return true;
    for (let next = this.peek(); next !== undefined && next.at <= end; next = this.peek()) {
      this.step();
      if (cond()) return true;
    }
    if (end > this.time) this.time = end;
    return cond();
  }

  /** The next live task (cancelled ones at the head are discarded), without running it. */
  private peek(): Task | undefined {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.pop();
    return this.heap[0];
  }

  private push(t: Task): void {
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p]!, t)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = t;
  }

  private pop(): Task | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      const n = h.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && less(h[r]!, h[l]!) ? r : l;
        if (less(last, h[c]!)) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}

function less(a: Task, b: Task): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
