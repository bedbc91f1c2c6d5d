import { searchDfs } from './dfs.ts';
import { validateOp } from './format.ts';
import { searchFrontier } from './frontier.ts';
import { Deadline, pendingClasses, toModelOp, type KeyOutcome, type MOp } from './model.ts';
import type { CheckOptions, CheckResult, Op } from './types.ts';

/*
 * The checker: validates the ops, partitions them per key, and decides each key with the searches in
 * dfs.ts (Wing–Gong/Lowe backtracking with memoisation, as in Porcupine) and frontier.ts (a sweep over
 * time keeping every reachable configuration, which stays polynomial on non-linearizable histories
 * and with many pending ops, where backtracking is exponential).
 */
function fmtValue(v: unknown): string {
  return v === undefined ? 'undefined' : JSON.stringify(v);
}

/** A one-line description of an operation, for reports. */
export function describeOp(op: Op): string {
  let s = `process ${fmtValue(op.process)} ${op.op}(${fmtValue(op.key)}`;
  if (op.op === 'cas') s += `, expected ${fmtValue(op.expected ?? null)}`;
  if (op.value !== undefined) s += `, ${fmtValue(op.value)}`;
  s += ')';
  if (op.complete === null) s += ' -> pending';
  else if (op.ok === false) s += ' -> failed';
  else s += ` -> ${fmtValue(op.result === undefined && op.op === 'set' ? 'OK' : op.result)}`;
  s += ` [${op.invoke}, ${op.complete === null ? '∞' : op.complete}]`;
  return s;
}

/**
 * Searches one key: a cheap depth-first attempt (usually enough for a linearizable history); then the
 * relaxed frontier sweep (final on violations, and on success when its witness reuses no pending op);
 * then the exact sweep; the unbounded DFS for windows too wide for the sweeps.
 */
function checkKey(all: MOp[], deadline: Deadline): KeyOutcome {
  const comp = all.filter((o) => !o.pending).sort((a, b) => a.invoke - b.invoke || a.index - b.index);
  const classes = pendingClasses(all.filter((o) => o.pending));
  const quick = searchDfs(comp, classes, deadline, 20 * comp.length + 10_000);
  if (quick.kind === 'ok' || quick.kind === 'timeout') return quick;
  const relaxed = searchFrontier(comp, classes, deadline, true);
  if (relaxed !== undefined) {
    if (relaxed.kind === 'fail' || relaxed.kind === 'ok') return relaxed;
    if (relaxed.kind === 'timeout') return quick.kind === 'fail' ? quick : relaxed;
  }
  if (quick.kind === 'fail') return quick; // final; the sweeps only add a better explanation
  const exact = relaxed === undefined ? undefined : searchFrontier(comp, classes, deadline, false);
  if (exact !== undefined) return exact;
  return searchDfs(comp, classes, deadline);
}

/**
 * Decides whether a key-value history is linearizable with respect to a single sequential KV store
 * whose keys start absent. Operations are validated first (throws `HistoryFormatError` naming the op
 * index). See docs/history-format.md for the semantics of each field.
 *
 * Operations on different keys commute and touch disjoint state, so the history is linearizable iff
 * each key's sub-history is (locality, Herlihy & Wing): each key is checked on its own.
 */
export function checkHistory(ops: readonly Op[], opts: CheckOptions = {}): CheckResult {
  for (let i = 0; i < ops.length; i++) validateOp(ops[i], `op #${i}`);
  const deadline = new Deadline(opts.timeoutMs === undefined ? Infinity : performance.now() + opts.timeoutMs);

  const byKey = new Map<string, MOp[]>();
  for (let i = 0; i < ops.length; i++) {
    const m = toModelOp(ops[i], i);
    if (m === undefined) continue;
    let list = byKey.get(ops[i].key);
    if (list === undefined) {
      list = [];
      byKey.set(ops[i].key, list);
    }
    list.push(m);
  }

  let checkedKeys = 0;
  const witness = opts.witness ? new Map<string, number[]>() : undefined;
  for (const [key, list] of byKey) {
    const out = checkKey(list, deadline);
    if (out.kind === 'timeout' || out.kind === 'budget' || out.kind === 'inconclusive') {
      return {
        ok: false,
        timedOut: true,
        key,
        reason:
          `search timed out after ${opts.timeoutMs} ms on key ${fmtValue(key)} ` +
          `(${list.length} ops); ${checkedKeys} of ${byKey.size} keys checked`,
        checkedKeys,
      };
    }
    checkedKeys++;
    if (out.kind === 'fail') {
      const op = ops[out.stuck.index];
      let reason =
        `key ${fmtValue(key)} is not linearizable: op #${out.stuck.index} ` +
        `(${describeOp(op)}) cannot take effect before it completes`;
      if (out.placed === undefined && out.states !== undefined) {
        const shown = out.states.slice(0, 8).map(fmtValue).join(', ');
        reason +=
          `; by then the key can only hold ` +
          `${out.states.length === 1 ? shown : `one of ${shown}${out.states.length > 8 ? ', ...' : ''}`}`;
      } else if (out.placed !== undefined) {
        reason +=
          ` (the deepest search placed ${out.placed} of the key's ${out.total} ` +
          `completed ops; the key then held ${fmtValue(out.states?.[0] ?? null)})`;
      }
      return { ok: false, key, op, opIndex: out.stuck.index, reason, checkedKeys };
    }
    witness?.set(key, out.order);
  }
  return witness ? { ok: true, checkedKeys, witness } : { ok: true, checkedKeys };
}
