/**
 * Depth-first search (Wing & Gong with Lowe's just-in-time linearization, in the shape Porcupine
 * uses), with memoisation of visited configurations. Fast on linearizable histories, including wide
 * ones (many concurrent ops on one key); exhaustive on non-linearizable ones.
 *
 *  - The completed ops of one key become a doubly linked list of call and return events sorted by
 *    time (on equal times calls come first, so touching intervals count as concurrent).
 *  - Walking the list from the head, a call event is a candidate for the next linearization point:
 *    if the model accepts it from the current state and the resulting configuration was not seen
 *    before, the op is linearized and its call and return events are lifted out of the list.
 *  - Reaching a return event means that op's deadline has passed with the op still unplaced: the
 *    last choice is undone (backtracking) and the next candidate is tried.
 */
import { Deadline, StateIds, isBlindWrite, step, type KeyOutcome, type MOp, type State } from './model.ts';

interface Entry {
  isCall: boolean;
  id: number;
  time: number;
  match: Entry | null; // call → its return
  prev: Entry | null;
  next: Entry | null;
}

/** The call/return events of completed ops (ids = positions in `comp`), sorted; returns a sentinel head. */
function buildList(comp: MOp[]): { head: Entry; calls: Entry[] } {
  const events: Entry[] = [];
  const calls: Entry[] = [];
  for (let id = 0; id < comp.length; id++) {
    const ret: Entry = { isCall: false, id, time: comp[id].complete, match: null, prev: null, next: null };
    const call: Entry = { isCall: true, id, time: comp[id].invoke, match: ret, prev: null, next: null };
    events.push(call, ret);
    calls.push(call);
  }
  // By time; on equal times calls first (touching intervals are concurrent), then by id.
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.id - b.id : a.isCall ? -1 : 1));
  const head: Entry = { isCall: false, id: -1, time: -Infinity, match: null, prev: null, next: null };
  let last = head;
  for (const e of events) {
    last.next = e;
    e.prev = last;
    last = e;
  }
  return { head, calls };
}

function lift(call: Entry): void {
  call.prev!.next = call.next;
  if (call.next) call.next.prev = call.prev;
  const ret = call.match!;
  ret.prev!.next = ret.next;
  if (ret.next) ret.next.prev = ret.prev;
}

function unlift(call: Entry): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next) ret.next.prev = ret;
  call.prev!.next = call;
  if (call.next) call.next.prev = call;
}

/** Deterministic 32-bit values for Zobrist hashing of the linearized set. */
function zobrist(n: number): Uint32Array {
  const z = new Uint32Array(n);
  let x = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    z[i] = x;
  }
  return z;
}

/**
 * A visited configuration. The set of linearized completed ops is stored compactly: every op with
 * id < k (ids in invocation order) plus `extras` (ids > k, all inside the current concurrency window).
 * `used[c]` counts the pending ops of effect class c already placed.
 */
interface MemoEntry {
  k: number;
  extras: number[];
  state: number;
  used: Int32Array;
}

/** One configuration on the search stack and the choices still to try from it. */
interface Frame {
  state: State;
  /** The last op placed was pending (see isBlindWrite): no blind write may come next. */
  chain: boolean;
  /** Candidates: a completed op id (≥ 0) or a pending class as -(class + 1). */
  cands: number[];
  nexts: State[];
  i: number;
  /** The candidate taken to reach the frame above. */
  chosen: number;
  /** The op whose return bounds this configuration (must be placed before time `T`). */
  blocker: number;
}

/**
 * Searches one key's sub-history.
 *
 * Completed ops live in the event list. Pending ops (complete = null) stay out of it: they have no
 * deadline and accept any result, so the only things that matter about them are which have been
 * invoked by now and which are already placed. Pending ops with the same effect (kind, value,
 * expected, delta) are interchangeable, so they are grouped in classes and always placed earliest
 * invocation first; a configuration then records only how many of each class are used.
 *
 * Two prunings on top of the memo of visited configurations (sound because a pending op may also
 * never take effect, and pending ops constrain no other op's real-time order):
 *  - a configuration is skipped when one with the same completed set and state, and a subset of its
 *    pending ops placed (componentwise fewer per class), was visited before;
 *  - placing a pending op that leaves the state as it is is never tried;
 *  - a run of pending ops is never followed by a blind write (see isBlindWrite).
 */
export function searchDfs(comp: MOp[], classes: MOp[][], deadline: Deadline, budget = Infinity): KeyOutcome {
  const nc = comp.length;
  if (nc === 0) return { kind: 'ok', order: [] };
  const ncls = classes.length;
  const used = new Int32Array(ncls);

  const { head, calls } = buildList(comp);
  const lin = new Uint8Array(nc);
  let k = 0; // first unlinearized completed id
  let remaining = nc;
  const z = zobrist(nc);
  let hash = 0;
  const stateIds = new StateIds();
  const stateOf = (s: State): number => stateIds.of(s);
  let visits = 0;
  /** Ids [0, hiOf(T)) are the completed ops invoked at or before T. */
  const hiOf = (T: number): number => {
    let lo = k;
    let hi = nc;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (comp[mid].invoke <= T) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };

  const memo = new Map<number, MemoEntry[]>();
  /** Records the current configuration; false when it (or one that dominates it) was visited. */
  const visit = (state: State, chain: boolean, T: number): boolean => {
    const sid = stateOf(state) * 2 + (chain ? 1 : 0);
    const extras: number[] = [];
    const hi = hiOf(T);
    for (let id = k + 1; id < hi; id++) if (lin[id] === 1) extras.push(id);
    const key = (hash ^ Math.imul(sid + 1, 0x85ebca6b)) >>> 0;
    let bucket = memo.get(key);
    if (bucket === undefined) {
      bucket = [];
      memo.set(key, bucket);
    } else {
      outer: for (const m of bucket) {
        if (m.state !== sid || m.k !== k || m.extras.length !== extras.length) continue;
        for (let j = 0; j < extras.length; j++) if (m.extras[j] !== extras[j]) continue outer;
        for (let c = 0; c < ncls; c++) if (m.used[c] > used[c]) continue outer;
        return false;
      }
    }
    bucket.push({ k, extras, state: sid, used: used.slice() });
    return true;
  };

  /** Builds the frame of the current configuration; also returns its deadline T. */
  const enter = (state: State, chain: boolean): { frame: Frame; T: number } => {
    const cands: number[] = [];
    const nexts: State[] = [];
    let e = head.next;
    while (e !== null && e.isCall) {
      const op = comp[e.id];
      const next = chain && isBlindWrite(op) ? undefined : step(state, op);
      if (next !== undefined) {
        if (op.observer) {
          // Placing an op that cannot change the state right away dominates every alternative.
          cands.length = 0;
          nexts.length = 0;
          cands.push(e.id);
          nexts.push(next);
          while (e.isCall) e = e.next!;
          return { frame: { state, chain, cands, nexts, i: 0, chosen: 0, blocker: e.id }, T: e.time };
        }
        cands.push(e.id);
        nexts.push(next);
      }
      e = e.next;
    }
    // e is the return of an unplaced completed op (remaining > 0 here).
    const T = e!.time;
    for (let c = 0; c < ncls; c++) {
      const member = classes[c][used[c]];
      if (member === undefined || member.invoke > T || (chain && isBlindWrite(member))) continue;
      const next = step(state, member);
      if (next === undefined || next === state) continue;
      cands.push(-(c + 1));
      nexts.push(next);
    }
    return { frame: { state, chain, cands, nexts, i: 0, chosen: 0, blocker: e!.id }, T };
  };

  const apply = (c: number): void => {
    if (c >= 0) {
      lin[c] = 1;
      lift(calls[c]);
      hash = (hash ^ z[c]) >>> 0;
      remaining--;
      if (c === k) while (k < nc && lin[k] === 1) k++;
    } else {
      used[-c - 1]++;
    }
  };
  const undo = (c: number): void => {
    if (c >= 0) {
      lin[c] = 0;
      unlift(calls[c]);
      hash = (hash ^ z[c]) >>> 0;
      remaining++;
      if (c < k) k = c;
    } else {
      used[-c - 1]--;
    }
  };
  const root = enter(null, false);
  visit(null, false, root.T);
  const frames: Frame[] = [root.frame];
  let best = { placed: -1, stuck: comp[0], state: null as State };

  for (;;) {
    if (deadline.expired()) return { kind: 'timeout' };
    if (++visits > budget) return { kind: 'budget' };
    const f = frames[frames.length - 1];
    if (f.i < f.cands.length) {
      const c = f.cands[f.i];
      const next = f.nexts[f.i];
      f.i++;
      apply(c);
      f.chosen = c;
      if (remaining === 0) {
        // Placed pending ops are reported in order; a class's members were used earliest first.
        const out: number[] = [];
        const seen = new Int32Array(ncls);
        for (const fr of frames) {
          if (fr.chosen >= 0) out.push(comp[fr.chosen].index);
          else {
            const cl = -fr.chosen - 1;
            out.push(classes[cl][seen[cl]++].index);
          }
        }
        return { kind: 'ok', order: out };
      }
      const chain = c < 0;
      const child = enter(next, chain);
      if (visit(next, chain, child.T)) frames.push(child.frame);
      else undo(c);
    } else {
      const placed = nc - remaining;
      if (placed > best.placed) best = { placed, stuck: comp[f.blocker], state: f.state };
      frames.pop();
      const parent = frames[frames.length - 1];
      if (parent === undefined)
        return { kind: 'fail', stuck: best.stuck, placed: best.placed, total: nc, states: [best.state] };
      undo(parent.chosen);
    }
  }
}
