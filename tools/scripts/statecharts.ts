/**
 * Generates a Mermaid statechart of each role (docs/statecharts/<role>.md) FROM the XState machine
 * definitions, so the diagrams cannot drift from the code.
 *   node --conditions=source --import tsx tools/scripts/statecharts.ts          writes the files
 *   node --conditions=source --import tsx tools/scripts/statecharts.ts --check  exits 1 when they differ
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { acceptorMachine } from '@decree/acceptor';
import { electorMachine } from '@decree/elector';
import { learnerMachine } from '@decree/learner';
import { proposerMachine } from '@decree/proposer';
import { snapshotterMachine } from '@decree/snapshotter';
import { configManagerMachine } from '@decree/config-manager';

export const ROLE_MACHINES = {
  elector: electorMachine,
  proposer: proposerMachine,
  acceptor: acceptorMachine,
  learner: learnerMachine,
  snapshotter: snapshotterMachine,
  'config-manager': configManagerMachine,
} as const;

interface TransitionDef {
  target?: readonly unknown[] | undefined;
  guard?: unknown;
  eventType: string;
  reenter?: boolean;
  delay?: unknown;
}
interface StateDef {
  id: string;
  key: string;
  type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  initial?: { target: readonly unknown[] } | undefined;
  states: Record<string, StateDef>;
  transitions: readonly TransitionDef[];
  description?: string;
}

/** a target is a StateNode (its id) or, in JSON form, '#id' */
const tid = (t: unknown): string => (typeof t === 'string' ? t.replace(/^#/, '') : (t as { id: string }).id);
const mid = (id: string, rootId: string) =>
  (id === rootId ? rootId : id.slice(rootId.length + 1)).replace(/[^A-Za-z0-9_]/g, '_');
const guardName = (g: unknown): string | undefined =>
  g === undefined
    ? undefined
    : typeof g === 'string'
      ? g
      : typeof g === 'function'
        ? g.name || 'guard'
        : ((g as { type?: string }).type ?? 'guard');

function eventLabel(t: TransitionDef): string {
  const e = t.eventType;
  if (e === '') return 'always';
  const after = /^xstate\.after\.([^.]+)\./.exec(e);
  if (after) return `after ${after[1]}`;
  if (e.startsWith('xstate.done.actor.')) return `done ${e.slice('xstate.done.actor.'.length)}`;
  if (e.startsWith('xstate.error.actor.')) return `error ${e.slice('xstate.error.actor.'.length)}`;
  return e;
}

/** The Mermaid stateDiagram-v2 text of a machine definition. */
export function mermaidOf(machine: { definition: unknown; root?: unknown }): string {
  const root = machine.definition as StateDef;
  const rootId = root.id;
  // eventless (`always`) transitions are on the state nodes, not in their definitions
  const always = new Map<string, readonly TransitionDef[]>();
  const collect = (n: { id: string; always?: readonly TransitionDef[]; states?: Record<string, unknown> }) => {
    if (n.always?.length) always.set(n.id, n.always);
    for (const c of Object.values(n.states ?? {})) collect(c as typeof n);
  };
  if (machine.root) collect(machine.root as Parameters<typeof collect>[0]);
  const lines: string[] = ['stateDiagram-v2'];
  const edges: string[] = [];
  const topLevel = Object.values(root.states);

  const addEdges = (from: string, s: StateDef, excludeSelfOf?: string) => {
    for (const t of [...s.transitions, ...(always.get(s.id) ?? [])]) {
      if (!t.target?.length) continue; // actions only: not a state change
      const g = guardName(t.guard);
      const label = `${eventLabel(t)}${g ? ` [${g}]` : ''}`.replace(/:/g, '∶');
      for (const target of t.target) {
        const to = mid(tid(target), rootId);
        if (excludeSelfOf && to === excludeSelfOf) continue;
        edges.push(`  ${from} --> ${to} : ${label}`);
      }
    }
  };

  const walk = (s: StateDef, indent: string) => {
    const children = Object.values(s.states);
    if (s.initial?.target?.length) lines.push(`${indent}[*] --> ${mid(tid(s.initial.target[0]), rootId)}`);
    children.forEach((c, i) => {
      const id = mid(c.id, rootId);
      if (s.type === 'parallel' && i > 0) lines.push(`${indent}--`);
      if (Object.keys(c.states).length) {
        lines.push(`${indent}state "${c.key}" as ${id} {`);
        walk(c, indent + '  ');
        lines.push(`${indent}}`);
      } else if (id !== c.key) lines.push(`${indent}state "${c.key}" as ${id}`);
      else lines.push(`${indent}${id}`);
      if (c.type === 'final') lines.push(`${indent}${id} --> [*]`);
      if (c.description) lines.push(`${indent}note right of ${id} : ${c.description.replace(/\n/g, ' ')}`);
      addEdges(id, c);
    });
  };
  walk(root, '  ');
  // transitions on the machine itself apply in every top-level state
  for (const s of topLevel) if (s.type !== 'final') addEdges(mid(s.id, rootId), root, mid(s.id, rootId));
  return [...lines, ...edges].join('\n') + '\n';
}

export function statechartDoc(role: string, machine: { definition: unknown }): string {
  const src = `packages/${role}/src/${role}.ts`;
  const name = role.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
  return `<!-- generated by tools/scripts/statecharts.ts from ${src}; do not edit: regenerate with \`node --conditions=source --import tsx tools/scripts/statecharts.ts\` -->
# ${role} statechart

Generated from \`${name}Machine\` (${src}): every state and every transition that changes state, labelled
\`event [guard]\`; \`after X\` is a delayed transition, \`always\` an eventless one. Transitions declared on the
machine itself are drawn from every top-level state. Transitions that only run actions are left out.

\`\`\`mermaid
${mermaidOf(machine)}\`\`\`
`;
}

export function generateStatecharts(): Record<string, string> {
  return Object.fromEntries(Object.entries(ROLE_MACHINES).map(([role, m]) => [`${role}.md`, statechartDoc(role, m)]));
}

export const STATECHART_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../docs/statecharts');

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const check = process.argv.includes('--check');
  let stale = 0;
  mkdirSync(STATECHART_DIR, { recursive: true });
  for (const [file, text] of Object.entries(generateStatecharts())) {
    const path = join(STATECHART_DIR, file);
    let old = '';
    try {
      old = readFileSync(path, 'utf8');
    } catch {}
    if (old === text) continue;
    if (check) {
      console.error(`statecharts: ${path} is stale (run tools/scripts/statecharts.ts)`);
      stale++;
    } else {
      writeFileSync(path, text);
      console.log(`statecharts: wrote ${path}`);
    }
  }
  process.exit(stale ? 1 : 0);
}
