/**
 * Breadth-first ("frontier") search over one key's history: the events are swept in time order
 * while keeping every configuration the history could be in at that moment. A configuration is the
 * set of open (invoked, not yet returned) completed ops already linearized, the key's value, and how
 * many pending ops of each effect class have been placed. Everything returned earlier is linearized
 * in every surviving configuration, so configurations reached by different orders merge, and the
 * cost grows with the history's length times the number of configurations of its concurrency window,
 * whether or not the history is linearizable. At the return of op X, configurations that have not
 * linearized X are dropped; none left means X cannot take effect before it completes: a violation,
 * reported with the values the key could hold at that moment.
 *
 * Reductions (each keeps a configuration that dominates the ones it drops):
 *  - an op that cannot change the state (get, del → 0, cas → false) is linearized as soon as its
 *    result matches, instead of branching;
 *  - among configurations with the same open set and value, one that has placed, for every pending
 *    class, no more ops than another dominates it (a pending op may also never take effect);
 *  - a pending op that would leave the value as it is is never placed;
 *  - a run of pending ops is only placed together with the completed op that reads its result, which
 *    must follow it (see isBlindWrite in model.ts), so such runs never enter the frontier.
 *
 * Relaxed mode drops the rule that a pending op takes effect at most once for pending set, del and
 * cas (once invoked, such an op may be placed any number of times; pending incr stays exact, or the
 * values would grow without end). Configurations then differ only in how many pending incrs they
 * used, so the frontier stays small however many pending writes there are. Its verdict "not linearizable" is
 * final (the relaxation only admits more histories); "linearizable" is final when the linearization
 * it found (each configuration keeps the representative that reused pending ops least) uses no
 * pending op twice, and is otherwise reported as `inconclusive`, for the exact mode to decide.
 *
 * Windows wider than 30 open ops on one key are not supported here (`undefined` is returned).
 */
import { Deadline, K, StateIds, isBlindWrite, step, type KeyOutcome, type MOp, type State } from './model.ts';

interface Trail {
  index: number;
  prev: Trail | null;
}

interface Config {
  mask: number;
  state: State;
  sid: number;
  used: Int32Array;
  /** Relaxed mode: placements of pending ops beyond the members invoked so far (reuses). */
  reuse: number;
  /** Pending ops placed. */
  placedPending: number;
  trail: Trail | null;
  dead: boolean;
}

/** The end of a run of pending ops placed from some configuration (never stored in the frontier). */
interface RunEnd {
  state: State;
  sid: number;
  used: Int32Array;
  /** Reuses of pending ops within the run (relaxed mode). */
  reuse: number;
  /** Input index of the run's last op (-1 for the empty run) and the run before it. */
  member: number;
  prev: RunEnd | null;
  length: number;
  dead: boolean;
}

/** Lexicographic preference of relaxed-mode representatives: fewer reuses, then fewer pending ops placed. */
function better(a: Pick<Config, 'reuse' | 'placedPending'>, b: Pick<Config, 'reuse' | 'placedPending'>): boolean {
  return a.reuse < b.reuse || (a.reuse === b.reuse && a.placedPending < b.placedPending);
}

const MAX_WINDOW = 30;

const enum Ev {
  Call,
  Avail,
  Return,
}

export function searchFrontier(
  comp: MOp[],
  classes: MOp[][],
  deadline: Deadline,
  relaxed = false,
): KeyOutcome | undefined {
  const nc = comp.length;
  if (nc === 0) return { kind: 'ok', order: [] };
  const ncls = classes.length;

  // Events: calls and pending availabilities before returns at equal times.
  const evKind: Ev[] = [];
  const evId: number[] = [];
  const evTime: number[] = [];
  for (let id = 0; id < nc; id++) {
    evKind.push(Ev.Call, Ev.Return);
    evId.push(id, id);
    evTime.push(comp[id].invoke, comp[id].complete);
  }
  for (let c = 0; c < ncls; c++)
    for (const m of classes[c]) {
      evKind.push(Ev.Avail);
      evId.push(c);
      evTime.push(m.invoke);
    }
  const order = evKind.map((_, i) => i);
  order.sort(
    (a, b) =>
      evTime[a] - evTime[b] ||
      (evKind[a] === Ev.Return ? 1 : 0) - (evKind[b] === Ev.Return ? 1 : 0) ||
      evKind[a] - evKind[b] ||
      evId[a] - evId[b],
  );

  const states = new StateIds();
  const slotOf = new Int32Array(nc).fill(-1);
  const slotOp = new Int32Array(MAX_WINDOW).fill(-1);
  let freeSlots = ((1 << MAX_WINDOW) - 1) >>> 0;
  const avail = new Int32Array(ncls);
  let newOps: number[] = [];
  let newClasses = new Set<number>();
  let openMask = 0;

  let frontier: Config[] = [
    {
      mask: 0,
      state: null,
      sid: states.of(null),
      used: new Int32Array(ncls),
      reuse: 0,
      placedPending: 0,
      trail: null,
      dead: false,
    },
  ];

  /** Classes counted exactly (all in exact mode; incr only in relaxed mode). */
  const exactClasses: number[] = [];
  for (let c = 0; c < ncls; c++) if (!relaxed || classes[c][0].kind === K.Incr) exactClasses.push(c);
  /** a ≤ b on the exactly counted classes. */
  const leq = (a: Int32Array, b: Int32Array): boolean => {
    for (const c of exactClasses) if (a[c] > b[c]) return false;
    return true;
  };
  const isExact = new Uint8Array(ncls);
  for (const c of exactClasses) isExact[c] = 1;

  /** Linearizes every open observer op that the value allows (in place). */
  const saturate = (cfg: Config): boolean => {
    let changed = false;
    let todo = openMask & ~cfg.mask;
    while (todo !== 0) {
      const bit = todo & -todo;
      todo ^= bit;
      const op = comp[slotOp[31 - Math.clz32(bit)]];
      if (op.observer && step(cfg.state, op) !== undefined) {
        cfg.mask |= bit;
        cfg.trail = { index: op.index, prev: cfg.trail };
        changed = true;
      }
    }
    return changed;
  };

  /** Adds op (an open completed op, by its mask bit) after `from`; undefined when the model refuses it. */
  const placeCompleted = (from: Config, bit: number, op: MOp): Config | undefined => {
    const next = step(from.state, op);
    if (next === undefined) return undefined;
    const child: Config = {
      mask: from.mask | bit,
      state: next,
      sid: states.of(next),
      used: from.used,
      reuse: from.reuse,
      placedPending: from.placedPending,
      trail: { index: op.index, prev: from.trail },
      dead: false,
    };
    saturate(child);
    return child;
  };

  /** Runs of pending ops from (value, used), cached until more pending ops become available. */
  let chainCache = new Map<string, RunEnd[]>();
  /** Classes with an invoked member: blind writes, and the others. */
  let availBlind: number[] = [];
  let availOther: number[] = [];

  /**
   * Runs of pending ops from (state, used), breadth first; undefined on timeout. A run end is dropped
   * when another with the same value used no more of any exactly counted class (it dominates).
   */
  const runsFrom = (state: State, used0: Int32Array): RunEnd[] | undefined => {
    const ends: RunEnd[] = [];
    const bySid = new Map<number, RunEnd[]>();
    const start: RunEnd = {
      state,
      sid: states.of(state),
      used: used0,
      reuse: 0,
      member: -1,
      prev: null,
      length: 0,
      dead: false,
    };
    bySid.set(start.sid, [start]); // a run back to the start's value is dominated by the empty run
    const queue: RunEnd[] = [start];
    for (let qi = 0; qi < queue.length; qi++) {
      if (deadline.expired()) return undefined;
      const link = queue[qi];
      if (link.dead) continue;
      // Only the first op of a run may be a blind write: one later would make the run before it useless.
      for (let pass = link.length === 0 ? 0 : 1; pass < 2; pass++) {
        for (const c of pass === 0 ? availBlind : availOther) {
          const u = link.used[c];
          if (u >= avail[c] && isExact[c] === 1) continue;
          const reused = u >= avail[c];
          const member = classes[c][reused ? avail[c] - 1 : u];
          const next = step(link.state, member);
          if (next === undefined || next === link.state) continue;
          const sid = states.of(next);
          let same = bySid.get(sid);
          if (same === undefined) {
            same = [];
            bySid.set(sid, same);
          }
          // used after this op, compared without copying: link.used + 1 at c
          let dominated = false;
          for (const o of same) {
            if (o.dead) continue;
            let le = true;
            for (const x of exactClasses)
              if (o.used[x] > link.used[x] + (x === c ? 1 : 0)) {
                le = false;
                break;
              }
            if (le) {
              dominated = true;
              break;
            }
          }
          if (dominated) continue;
          const used = link.used.slice();
          used[c]++;
          for (const o of same) if (!o.dead && o !== start && leq(used, o.used)) o.dead = true;
          const end: RunEnd = {
            state: next,
            sid,
            used,
            reuse: link.reuse + (reused ? 1 : 0),
            member: member.index,
            prev: link,
            length: link.length + 1,
            dead: false,
          };
          same.push(end);
          ends.push(end);
          queue.push(end);
        }
      }
    }
    return ends.filter((e) => !e.dead);
  };

  /**
   * Closes the frontier under "linearize one more completed op, possibly preceded by a run of pending
   * ops". Runs of pending ops are explored here and never stored: a run is only useful when a
   * completed op that reads the value follows it, and only its first op may be a blind write (see
   * isBlindWrite in model.ts). Old configurations (closed already) only try what is new: new ops,
   * and runs when new pending ops became available.
   */
  const closure = (): boolean => {
    const groups = new Map<number, Config[]>();
    const work: { cfg: Config; all: boolean }[] = [];
    const add = (cfg: Config, all: boolean): void => {
      const key = cfg.mask * 1048576 + cfg.sid; // exact while sid < 2^20 (checked below)
      let g = groups.get(key);
      if (g === undefined) {
        g = [];
        groups.set(key, g);
      } else {
        for (const o of g) {
          if (o.dead || o.state !== cfg.state || !leq(o.used, cfg.used)) continue;
          // o dominates cfg (or they are equal in relaxed mode, where o may still be the worse witness)
          if (relaxed && leq(cfg.used, o.used) && better(cfg, o)) {
            o.dead = true;
            break;
          }
          return;
        }
        for (const o of g) if (!o.dead && o.state === cfg.state && leq(cfg.used, o.used)) o.dead = true;
      }
      g.push(cfg);
      work.push({ cfg, all });
    };
    for (const cfg of frontier) add(cfg, saturate(cfg));
    const newMask = newOps.reduce((m, id) => m | (1 << slotOf[id]), 0);
    let readersMask = 0; // open completed ops that read the value
    for (let m = openMask; m !== 0; m &= m - 1) {
      const bit = m & -m;
      if (!isBlindWrite(comp[slotOp[31 - Math.clz32(bit)]])) readersMask |= bit;
    }
    const anyNewClass = newClasses.size > 0;
    while (work.length > 0) {
      if (deadline.expired()) return false;
      const { cfg, all } = work.pop()!;
      if (cfg.dead) continue;
      for (let todo = (all ? openMask : newMask) & ~cfg.mask; todo !== 0; todo &= todo - 1) {
        const bit = todo & -todo;
        const op = comp[slotOp[31 - Math.clz32(bit)]];
        if (op.observer) continue; // saturated already when possible
        const child = placeCompleted(cfg, bit, op);
        if (child !== undefined) add(child, true);
      }
      if (ncls === 0) continue;
      const readers = (all || anyNewClass ? readersMask : readersMask & newMask) & ~cfg.mask;
      if (readers === 0) continue;
      // Runs of pending ops from cfg, each followed by one reader.
      const key = `${cfg.sid}|${cfg.used.join(',')}`;
      let ends = chainCache.get(key);
      if (ends === undefined) {
        ends = runsFrom(cfg.state, cfg.used);
        if (ends === undefined) return false;
        chainCache.set(key, ends);
      }
      for (const end of ends) {
        for (let todo = readers; todo !== 0; todo &= todo - 1) {
          const bit = todo & -todo;
          const op = comp[slotOp[31 - Math.clz32(bit)]];
          const next = step(end.state, op);
          if (next === undefined) continue;
          const members: number[] = [];
          for (let r: RunEnd | null = end; r !== null && r.member >= 0; r = r.prev) members.push(r.member);
          let trail = cfg.trail;
          for (let j = members.length - 1; j >= 0; j--) trail = { index: members[j], prev: trail };
          const child: Config = {
            mask: cfg.mask | bit,
            state: next,
            sid: states.of(next),
            used: end.used,
            reuse: cfg.reuse + end.reuse,
            placedPending: cfg.placedPending + end.length,
            trail: { index: op.index, prev: trail },
            dead: false,
          };
          saturate(child);
          add(child, true);
        }
      }
    }
    frontier = [];
    for (const g of groups.values()) for (const cfg of g) if (!cfg.dead) frontier.push(cfg);
    newOps = [];
    newClasses = new Set();
    return true;
  };

  for (const e of order) {
    const kind = evKind[e];
    const id = evId[e];
    if (kind === Ev.Call) {
      if (freeSlots === 0) return undefined; // window too wide for this search
      const bit = freeSlots & -freeSlots;
      const slot = 31 - Math.clz32(bit);
      freeSlots &= ~bit;
      slotOf[id] = slot;
      slotOp[slot] = id;
      openMask |= bit;
      newOps.push(id);
    } else if (kind === Ev.Avail) {
      avail[id]++;
      newClasses.add(id);
      chainCache = new Map();
      availBlind = [];
      availOther = [];
      for (let c = 0; c < ncls; c++) if (avail[c] > 0) (isBlindWrite(classes[c][0]) ? availBlind : availOther).push(c);
    } else {
      if (newOps.length > 0 || newClasses.size > 0) {
        if (!closure()) return { kind: 'timeout' };
      }
      const bit = 1 << slotOf[id];
      const kept: Config[] = [];
      for (const cfg of frontier) {
        if ((cfg.mask & bit) !== 0) {
          cfg.mask &= ~bit;
          kept.push(cfg);
        }
      }
      if (kept.length === 0) {
        const values = [...new Set(frontier.map((c) => c.state))];
        return { kind: 'fail', stuck: comp[id], states: values, total: nc };
      }
      frontier = kept;
      openMask &= ~bit;
      freeSlots |= bit;
      slotOp[slotOf[id]] = -1;
      if (states.size > 1 << 20) return undefined;
    }
  }
  // Every completed op has returned, so it is linearized in every surviving configuration.
  let best = frontier[0];
  for (const cfg of frontier) if (better(cfg, best)) best = cfg;
  if (best.reuse > 0) return { kind: 'inconclusive' };
  const out: number[] = [];
  for (let t = best.trail; t !== null; t = t.prev) out.push(t.index);
  return { kind: 'ok', order: out.reverse() };
}
