/**
 * Generators of linearizable histories, for tests and benchmarks: processes issue operations with
 * random intervals; each operation gets a linearization point inside its interval (or anywhere after
 * its invocation when it times out); a sequential KV applied in linearization-point order gives the
 * results. By construction such a history is linearizable.
 */
import type { Op, OpKind } from './types.ts';

const INTEGER = /^-?\d+$/;

/** The sequential specification: a map of keys to string values, keys start absent. */
export class SequentialKV {
  private readonly data = new Map<string, string>();

  get(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  /**
   * Applies one operation; returns its result, or `{ error }` when the store refuses it (incr of a
   * non-integer value), in which case nothing changed.
   */
  apply(op: Pick<Op, 'op' | 'key' | 'value' | 'expected'>): Op['result'] | { error: string } {
    const cur = this.get(op.key);
    switch (op.op) {
      case 'get':
        return cur;
      case 'set':
        this.data.set(op.key, op.value!);
        return 'OK';
      case 'del':
        return this.data.delete(op.key) ? 1 : 0;
      case 'incr': {
        if (cur !== null && !INTEGER.test(cur)) return { error: 'ERR value is not an integer' };
        const next = (BigInt(cur ?? '0') + BigInt(op.value ?? '1')).toString();
        this.data.set(op.key, next);
        const n = Number(next);
        return Number.isSafeInteger(n) ? n : next;
      }
      case 'cas': {
        if (cur !== (op.expected ?? null)) return false;
        this.data.set(op.key, op.value!);
        return true;
      }
    }
  }
}

export type Outcome = 'ok' | 'timeout-applied' | 'timeout-lost' | 'failed';

/** One planned operation; every number is a small non-negative integer (fast-check friendly). */
export interface PlannedOp {
  /** Logical client (0..processes-1). After a timeout it continues under a fresh process id. */
  client: number;
  kind: OpKind;
  key: number;
  /** Chooses the value / expected value / increment. */
  arg: number;
  /** Idle time before the invocation. */
  think: number;
  /** complete - invoke. */
  duration: number;
  /** Where inside the interval the op takes effect (taken modulo duration+1; for timeouts, up to 3×). */
  at: number;
  outcome: Outcome;
}

export interface GeneratedHistory {
  ops: Op[];
  /** Linearization points, by op index (NaN for ops that never took effect). */
  points: number[];
}

function valueFor(arg: number): string {
  return arg % 3 === 0 ? String(arg % 7) : `v${arg % 5}`;
}

/** Builds a linearizable history from a plan (deterministic). `incrDeltas`: the increments incr draws from. */
export function buildHistory(
  plan: readonly PlannedOp[],
  clients = 8,
  incrDeltas: readonly number[] = [-2, -1, 0, 1, 2],
): GeneratedHistory {
  const clock = new Array<number>(clients).fill(0);
  const pid = Array.from({ length: clients }, (_, i) => i);
  let nextPid = clients;
  const ops: Op[] = [];
  const points: number[] = [];
  const effective: number[] = []; // indices of ops that take effect
  for (const p of plan) {
    const c = p.client % clients;
    const invoke = clock[c] + p.think;
    const complete = invoke + p.duration;
    const key = `k${p.key}`;
    const op: Op = { process: pid[c], op: p.kind, key, invoke, complete };
    if (p.kind === 'set') op.value = valueFor(p.arg);
    else if (p.kind === 'incr') op.value = String(incrDeltas[p.arg % incrDeltas.length]);
    else if (p.kind === 'cas') {
      op.value = valueFor(p.arg + 1);
      // expected: decided when applied (see below) for arg%3 === 0, else a fixed guess
      op.expected = p.arg % 3 === 1 ? null : valueFor(p.arg >> 1);
    }
    let point = NaN;
    if (p.outcome === 'ok') point = invoke + (p.at % (p.duration + 1));
    else if (p.outcome === 'timeout-applied') point = invoke + (p.at % (3 * p.duration + 1));
    if (p.outcome === 'timeout-applied' || p.outcome === 'timeout-lost') {
      op.complete = null;
      pid[c] = nextPid++; // the client gives up on this connection and goes on as a new process
    } else if (p.outcome === 'failed') {
      op.ok = false;
      op.result = 'ERR refused';
    }
    clock[c] = complete;
    ops.push(op);
    points.push(point);
    if (!Number.isNaN(point)) effective.push(ops.length - 1);
  }
  // Apply in linearization-point order (ties: issue order).
  effective.sort((a, b) => points[a] - points[b] || a - b);
  const kv = new SequentialKV();
  for (const i of effective) {
    const op = ops[i];
    if (op.op === 'cas' && plan[i].arg % 3 === 0) op.expected = kv.get(op.key); // a cas meant to succeed
    const r = kv.apply(op);
    if (typeof r === 'object' && r !== null) {
      // The store refused it (incr of a non-integer): a completed op is recorded as failed.
      if (op.complete !== null) {
        op.ok = false;
        op.result = r.error;
      }
      points[i] = NaN;
    } else if (op.complete !== null) {
      op.result = r;
    }
  }
  return { ops, points };
}

/** A small deterministic PRNG (mulberry32). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface RandomHistoryOptions {
  ops: number;
  keys: number;
  clients: number;
  /** Probability that an op times out (half of those take effect). Default 0.02. */
  timeoutRate?: number;
  /** Probability that an op fails (ok:false). Default 0.01. */
  failRate?: number;
  /** Maximum op duration in ms. Default 20. */
  maxDuration?: number;
  /** Operation mix weights [get, set, del, incr, cas]. Default [50, 25, 5, 10, 10]. */
  mix?: [number, number, number, number, number];
  /** The increments incr draws from. Default [-2, -1, 0, 1, 2]. */
  incrDeltas?: number[];
}

/** A random linearizable history (deterministic for a seed). */
export function randomHistory(seed: number, o: RandomHistoryOptions): GeneratedHistory {
  const rnd = mulberry32(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const mix = o.mix ?? [50, 25, 5, 10, 10];
  const total = mix.reduce((a, b) => a + b, 0);
  const kinds: OpKind[] = ['get', 'set', 'del', 'incr', 'cas'];
  const timeoutRate = o.timeoutRate ?? 0.02;
  const failRate = o.failRate ?? 0.01;
  const maxDuration = o.maxDuration ?? 20;
  const plan: PlannedOp[] = [];
  for (let i = 0; i < o.ops; i++) {
    let w = int(total);
    let k = 0;
    while (w >= mix[k]) w -= mix[k++];
    const r = rnd();
    const outcome: Outcome =
      r < timeoutRate / 2
        ? 'timeout-applied'
        : r < timeoutRate
          ? 'timeout-lost'
          : r < timeoutRate + failRate
            ? 'failed'
            : 'ok';
    plan.push({
      client: int(o.clients),
      kind: kinds[k],
      key: int(o.keys),
      arg: int(1000),
      think: int(3),
      duration: int(maxDuration + 1),
      at: int(1 << 20),
      outcome,
    });
  }
  return buildHistory(plan, o.clients, o.incrDeltas);
}
