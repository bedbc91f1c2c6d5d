/**
 * The chart model of an XState machine, read from its definition (`machine.definition`): the states
 * tree and the transitions that change state. One model for the generated Mermaid diagrams
 * (tools/scripts/statecharts.ts) and the status page's live statecharts (apps/replica).
 * Structural: no import of xstate.
 */

export type ChartStateType = 'atomic' | 'compound' | 'parallel' | 'final' | 'history';

export interface ChartState {
  /** XState's id (`machine.state.sub` unless the state names its own) */
  id: string;
  key: string;
  /** keys from the root joined by '.' ('' for the root): how the status page names a state */
  path: string;
  type: ChartStateType;
  /** path of the initial child (compound states) */
  initial: string | undefined;
  description: string | undefined;
  children: ChartState[];
}

export interface ChartTransition {
  /** path of the source state; '' for a transition declared on the machine (taken in any state) */
  from: string;
  /** paths of the targets */
  to: string[];
  /** 'campaign', 'always' (eventless), 'after heartbeat' (delayed), 'done <actor>', 'error <actor>' */
  event: string;
  guard: string | undefined;
}

export interface Chart {
  id: string;
  root: ChartState;
  /** in the order of a post-order walk (a state's descendants' first), the machine's own last */
  transitions: ChartTransition[];
}

interface TransitionDef {
  target?: readonly unknown[] | undefined;
  guard?: unknown;
  eventType: string;
}
interface StateDef {
  id: string;
  key: string;
  type: ChartStateType;
  initial?: { target: readonly unknown[] } | undefined;
  states: Record<string, StateDef>;
  transitions: readonly TransitionDef[];
  description?: string;
}

/** a target is a StateNode (its id) or, in JSON form, '#id' */
const targetId = (t: unknown): string => (typeof t === 'string' ? t.replace(/^#/, '') : (t as { id: string }).id);

const guardName = (g: unknown): string | undefined =>
  g === undefined
    ? undefined
    : typeof g === 'string'
      ? g
      : typeof g === 'function'
        ? g.name || 'guard'
        : ((g as { type?: string }).type ?? 'guard');

function eventLabel(e: string): string {
  if (e === '') return 'always';
  const after = /^xstate\.after\.([^.]+)\./.exec(e);
  if (after) return `after ${after[1]}`;
  if (e.startsWith('xstate.done.actor.')) return `done ${e.slice('xstate.done.actor.'.length)}`;
  if (e.startsWith('xstate.error.actor.')) return `error ${e.slice('xstate.error.actor.'.length)}`;
  return e;
}

interface NodeWithAlways {
  id: string;
  always?: readonly TransitionDef[];
  states?: Record<string, unknown>;
}

/** The chart model of a machine (anything with XState's `definition`, and its `root` state node). */
export function chartOf(machine: { definition: unknown; root?: unknown }): Chart {
  const def = machine.definition as StateDef;
  // eventless (`always`) transitions live on the state nodes, not in their definitions
  const always = new Map<string, readonly TransitionDef[]>();
  const collect = (n: NodeWithAlways) => {
    if (n.always?.length) always.set(n.id, n.always);
    for (const c of Object.values(n.states ?? {})) collect(c as NodeWithAlways);
  };
  if (machine.root) collect(machine.root as NodeWithAlways);
  const pathOfId = new Map<string, string>();
  const build = (s: StateDef, path: string): ChartState => {
    pathOfId.set(s.id, path);
    const children = Object.values(s.states).map((c) => build(c, path ? `${path}.${c.key}` : c.key));
    return {
      id: s.id,
      key: s.key,
      path,
      type: s.type,
      initial: undefined,
      description: s.description,
      children,
    };
  };
  const root = build(def, '');
  const pathOf = (t: unknown) => pathOfId.get(targetId(t)) ?? targetId(t);
  const transitions: ChartTransition[] = [];
  const walk = (s: StateDef, c: ChartState) => {
    if (s.initial?.target?.length) c.initial = pathOf(s.initial.target[0]);
    Object.values(s.states).forEach((sub, i) => {
      walk(sub, c.children[i]!);
      for (const t of [...sub.transitions, ...(always.get(sub.id) ?? [])]) {
        if (!t.target?.length) continue; // actions only: not a state change
        transitions.push({
          from: c.children[i]!.path,
          to: t.target.map(pathOf),
          event: eventLabel(t.eventType),
          guard: guardName(t.guard),
        });
      }
    });
  };
  walk(def, root);
  for (const t of def.transitions)
    if (t.target?.length)
      transitions.push({
        from: '',
        to: t.target.map(pathOf),
        event: eventLabel(t.eventType),
        guard: guardName(t.guard),
      });
  return { id: def.id, root, transitions };
}

/**
 * The paths of the active states of a state value, outermost first: `{ leading: 'steady' }` gives
 * ['leading', 'leading.steady']; parallel regions give each region's path.
 */
export function activePaths(value: unknown, prefix = ''): string[] {
  const at = (k: string) => (prefix ? `${prefix}.${k}` : k);
  if (typeof value === 'string') return [at(value)];
  if (!value || typeof value !== 'object') return [];
  const out: string[] = [];
  for (const [k, sub] of Object.entries(value as Record<string, unknown>)) {
    out.push(at(k));
    if (sub !== undefined && !(typeof sub === 'object' && sub && Object.keys(sub).length === 0))
      out.push(...activePaths(sub, at(k)));
  }
  return out;
}
