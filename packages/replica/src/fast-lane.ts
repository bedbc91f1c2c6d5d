import type { Actor, AnyStateMachine } from 'xstate';

/**
 * The fast lane of a role's actor (decision 0014): an event that XState would answer with a targetless
 * transition (no change of state) whose actions are the machine's own named actions runs those
 * actions directly on the actor's context, skipping XState's macrostep (the selection sets, the
 * snapshot copy, the exit and entry sets): about half of the cost of a message on the hot path.
 * Anything else goes to XState as before: a transition with a target, a built-in action (assign,
 * raise, …), a guard it cannot evaluate, an actor that is not running. After a fast event the
 * eventless (`always`) transitions of the active states are checked with their guards; if one is
 * enabled XState is woken to take it. Observers are told of the snapshot as XState tells them, and an
 * action that throws fails the actor as XState would (status `error`, the error observers called).
 *
 * Ordering is XState's: an event sent to the actor while one of its fast actions runs (a synchronous
 * callback) waits until that action's event is done. Returns the function that delivers an event.
 * Off (`enabled` false) it is `actor.send`: the XState inspector then sees every event.
 */
export function fastLane<E extends { type: string } = { type: string }>(
  actor: Actor<AnyStateMachine>,
  enabled = true,
): (event: E) => void {
  const send = (e: { type: string }) => actor.send(e as never);
  const machine = actor.logic as unknown as XMachine;
  if (!enabled || !laneable(machine.root)) return send;
  const x = actor as unknown as XActor;
  const impls = machine.implementations;
  const self = {
    send: (e: { type: string }) => lane(e),
    getSnapshot: () => actor.getSnapshot(),
    get id() {
      return actor.id;
    },
  };
  let busy = false;
  const queue: { type: string }[] = [];
  let seen: unknown;
  let atomic: XNode | undefined;
  let withAlways: XNode[] = [];

  const one = (e: { type: string }): void => {
    const snap = actor.getSnapshot() as XSnapshot;
    if (snap.status !== 'active') return send(e);
    if (snap !== seen) {
      seen = snap;
      const atoms = snap._nodes.filter((n) => n.type === 'atomic');
      atomic = atoms.length === 1 ? atoms[0] : undefined;
      withAlways = snap._nodes.filter((n) => n.always !== undefined && n.always.length > 0);
    }
    if (atomic === undefined) return send(e);
    const ctx = snap.context;
    const t = select(atomic, e, ctx, impls);
    if (t === undefined) return send(e);
    if (t !== null) {
      const acts = actionsOf(t, impls);
      if (acts === undefined) return send(e);
      try {
        for (const [fn, params] of acts) fn({ context: ctx, event: e, self, system: actor.system }, params);
      } catch (err) {
        // as XState does with an action that throws: the actor is done for, its error observers hear why
        x._snapshot = { ...x._snapshot, status: 'error', error: err };
        x._error(err);
        return;
      }
    }
    // an eventless transition the actions enabled: XState takes it (and tells the observers itself)
    if (withAlways.length > 0 && alwaysEnabled(withAlways, ctx, e, impls)) return send({ type: SETTLE });
    for (const o of x.observers) {
      try {
        o.next?.(snap);
      } catch (err) {
        setTimeout(() => {
          throw err;
        });
      }
    }
  };

  const lane = (e: { type: string }): void => {
    if (busy) {
      queue.push(e);
      return;
    }
    busy = true;
    try {
      one(e);
      for (let n = queue.shift(); n !== undefined; n = queue.shift()) one(n);
    } finally {
      busy = false;
      queue.length = 0;
    }
  };
  return lane;
}

/** The event that wakes XState to take an eventless transition a fast event enabled (no machine handles it). */
export const SETTLE = 'decree.fast-lane.settle';

// ---- the parts of XState v5's machine and actor the lane reads (checked by packages/replica/test/fast-lane.test.ts)

interface XTransition {
  readonly target?: readonly unknown[] | undefined;
  readonly reenter?: boolean;
  readonly guard?: unknown;
  readonly actions: readonly unknown[];
}
interface XNode {
  readonly type: string;
  readonly parent?: XNode;
  readonly transitions: Map<string, XTransition[]>;
  readonly always?: XTransition[];
  readonly states: Record<string, XNode>;
}
interface XImpls {
  readonly actions: Record<string, unknown>;
  readonly guards: Record<string, unknown>;
}
interface XMachine {
  readonly root: XNode;
  readonly implementations: XImpls;
}
interface XSnapshot {
  readonly status: string;
  readonly context: unknown;
  readonly _nodes: readonly XNode[];
}
interface XActor {
  _snapshot: object;
  _error(err: unknown): void;
  readonly observers: Set<{ next?: (s: unknown) => void }>;
}
type Fn = (args: object, params: unknown) => unknown;

/** No wildcard or partial event descriptors anywhere (the lane matches event types exactly). */
function laneable(n: XNode): boolean {
  for (const k of n.transitions.keys()) if (k === '*' || k.endsWith('.*')) return false;
  return Object.values(n.states ?? {}).every(laneable);
}

/**
 * XState's choice for an event in one atomic state: from the state up to the root, the first
 * candidate whose guard holds. null: no transition; undefined: a guard the lane cannot evaluate.
 */
function select(atomic: XNode, e: { type: string }, ctx: unknown, impls: XImpls): XTransition | null | undefined {
  for (let n: XNode | undefined = atomic; n !== undefined; n = n.parent) {
    const cands = n.transitions.get(e.type);
    if (cands === undefined) continue;
    for (const t of cands) {
      const ok = t.guard === undefined ? true : guardHolds(t.guard, ctx, e, impls);
      if (ok === undefined) return undefined;
      if (ok) return t;
    }
  }
  return null;
}

/**
 * A guard's or an action's implementation and params as XState resolves them (a name, an inline
 * function, or `{ type, params }`); undefined for a built-in (it carries `builtinMark`: `check` for
 * guards, `resolve` for actions) or for dynamic params: those need XState.
 */
function plainImpl(x: unknown, table: Record<string, unknown>, builtinMark: string): [Fn, unknown] | undefined {
  let fn: unknown;
  let params: unknown;
  if (typeof x === 'string') fn = table[x];
  else if (typeof x === 'function') fn = x;
  else if (x !== null && typeof x === 'object' && typeof (x as { type?: unknown }).type === 'string') {
    fn = table[(x as { type: string }).type];
    params = (x as { params?: unknown }).params;
  }
  if (typeof fn !== 'function' || builtinMark in fn || typeof params === 'function') return undefined;
  return [fn as Fn, params];
}

function guardHolds(g: unknown, ctx: unknown, e: { type: string }, impls: XImpls): boolean | undefined {
  // built-in guards (and, or, not, stateIn) carry a `check`
  const impl = plainImpl(g, impls.guards, 'check');
  return impl === undefined ? undefined : Boolean(impl[0]({ context: ctx, event: e }, impl[1]));
}

const ACTIONS = new WeakMap<XTransition, [Fn, unknown][] | null>();
/** The transition's actions, if it stays in its state and every action is a plain one of the machine's. */
function actionsOf(t: XTransition, impls: XImpls): [Fn, unknown][] | undefined {
  let acts = ACTIONS.get(t);
  if (acts === undefined) {
    acts = (t.target !== undefined && t.target.length > 0) || t.reenter ? null : plainActions(t.actions, impls);
    ACTIONS.set(t, acts);
  }
  return acts ?? undefined;
}

function plainActions(actions: readonly unknown[], impls: XImpls): [Fn, unknown][] | null {
  const out: [Fn, unknown][] = [];
  for (const a of actions) {
    // built-in actions (assign, raise, sendTo, enqueueActions, …) carry a `resolve`: XState runs those
    const impl = plainImpl(a, impls.actions, 'resolve');
    if (impl === undefined) return null;
    out.push(impl);
  }
  return out;
}

function alwaysEnabled(nodes: readonly XNode[], ctx: unknown, e: { type: string }, impls: XImpls): boolean {
  for (const n of nodes)
    for (const t of n.always!) {
      if (t.guard === undefined) return true;
      if (guardHolds(t.guard, ctx, e, impls) !== false) return true;
    }
  return false;
}
