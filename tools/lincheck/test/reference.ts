/**
 * Test helpers independent of the checker's search code: a brute-force linearizability decision for
 * tiny histories (every order, every subset of pending ops), a verifier for witnesses, and runners
 * for each search strategy on its own.
 */
import { searchDfs } from '../src/dfs.ts';
import { searchFrontier } from '../src/frontier.ts';
import { SequentialKV } from '../src/generate.ts';
import { Deadline, pendingClasses, toModelOp, type KeyOutcome, type MOp } from '../src/model.ts';
import type { Op } from '../src/types.ts';

/** Does `got` (a SequentialKV result) match the recorded result of a completed op? */
function sameResult(op: Op, got: Op['result'] | { error: string }): boolean {
  if (typeof got === 'object' && got !== null) return false; // refused by the store: cannot have completed ok
  switch (op.op) {
    case 'set':
      return got === 'OK';
    case 'incr':
      return String(op.result) === String(got);
    default:
      return op.result === got;
  }
}

function snapshot(kv: SequentialKV, keys: string[]): string {
  return JSON.stringify(keys.map((k) => kv.get(k)));
}

function replay(seq: Op[]): SequentialKV | undefined {
  const kv = new SequentialKV();
  for (const op of seq) {
    const got = kv.apply(op);
    if (op.complete !== null && !sameResult(op, got)) return undefined;
  }
  return kv;
}

/** Exhaustive search over every real-time-respecting order of every subset of pending ops. */
export function bruteForce(history: readonly Op[]): boolean {
  const ops = history.filter((o) => o.ok !== false);
  const n = ops.length;
  const keys = [...new Set(ops.map((o) => o.key))];
  const end = (o: Op) => (o.complete === null ? Infinity : o.complete);
  const memo = new Set<string>();
  const rec = (placed: number, seq: Op[]): boolean => {
    if (ops.every((o, i) => o.complete === null || (placed & (1 << i)) !== 0)) return true;
    const kv = replay(seq);
    if (kv === undefined) return false;
    const key = `${placed}|${snapshot(kv, keys)}`;
    if (memo.has(key)) return false;
    memo.add(key);
    for (let i = 0; i < n; i++) {
      if ((placed & (1 << i)) !== 0) continue;
      // every op that completed before i was invoked must already be placed
      let ready = true;
      for (let j = 0; j < n; j++)
        if (j !== i && (placed & (1 << j)) === 0 && end(ops[j]) < ops[i].invoke) ready = false;
      if (!ready) continue;
      const next = [...seq, ops[i]];
      if (replay(next) === undefined) continue;
      if (rec(placed | (1 << i), next)) return true;
    }
    return false;
  };
  return rec(0, []);
}

/**
 * Checks a witness: per key, the listed ops in order respect real time, every completed (not failed)
 * op is listed once, pending ops at most once, and replaying gives every completed op its result.
 */
export function verifyWitness(history: readonly Op[], witness: Map<string, number[]>): string | undefined {
  const seen = new Set<number>();
  const all: Op[] = [];
  for (const [key, order] of witness) {
    const seq = order.map((i) => history[i]);
    for (const i of order) {
      if (seen.has(i)) return `op #${i} listed twice`;
      seen.add(i);
      if (history[i].key !== key) return `op #${i} listed under the wrong key`;
      if (history[i].ok === false) return `failed op #${i} listed`;
    }
    for (let a = 0; a < seq.length; a++)
      for (let b = a + 1; b < seq.length; b++) {
        const cb = seq[b].complete;
        if (cb !== null && cb < seq[a].invoke)
          return `op #${order[b]} completed before op #${order[a]} was invoked but is ordered after it`;
      }
    if (replay(seq) === undefined) return `replaying key ${key} does not give the recorded results`;
    all.push(...seq);
  }
  for (let i = 0; i < history.length; i++) {
    const o = history[i];
    if (o.ok !== false && o.complete !== null && !seen.has(i)) return `completed op #${i} missing from the witness`;
  }
  return undefined;
}

export type Strategy = 'dfs' | 'frontier' | 'relaxed';

/** Runs one search strategy on every key; returns the verdict ('ok' | 'fail' | other outcome kinds). */
export function runStrategy(history: readonly Op[], strategy: Strategy): KeyOutcome['kind'] | 'unsupported' {
  const byKey = new Map<string, MOp[]>();
  history.forEach((op, i) => {
    const m = toModelOp(op, i);
    if (m === undefined) return;
    const list = byKey.get(op.key) ?? [];
    list.push(m);
    byKey.set(op.key, list);
  });
  for (const list of byKey.values()) {
    const comp = list.filter((o) => !o.pending).sort((a, b) => a.invoke - b.invoke || a.index - b.index);
    const classes = pendingClasses(list.filter((o) => o.pending));
    const deadline = new Deadline(performance.now() + 30_000);
    const out =
      strategy === 'dfs'
        ? searchDfs(comp, classes, deadline)
        : searchFrontier(comp, classes, deadline, strategy === 'relaxed');
    if (out === undefined) return 'unsupported';
    if (out.kind !== 'ok') return out.kind;
  }
  return 'ok';
}
