/**
 * Messages in a script: `> type to=… field=…` out, `type from=… field=…` in.
 *
 * Out: the header's `ring` is left out (one ring a script), `from` is shown only when it is not the
 * role's own replica, `to` always except on a message between two roles of the role's own replica
 * (`LOCAL_TYPES`: a `learn` to its learner, a `leader-state` to its elector). The same message to
 * several replicas in a row (a broadcast) prints once, `to=r1,r2,r3`. Fields come in a fixed order
 * per type (`ORDER`), any other in the order the role wrote them, so a new field shows in the diff.
 */
import { type Message, type MessageType, ROLE_OF, validateMessage } from '@decree/protocol';
import { type Rendered, fmtField, parseField } from './format.ts';
import { type ArgReader, ScriptError } from './syntax.ts';

/** The order fields print in, per message type (lists last: they may wrap). */
export const ORDER: Partial<Record<MessageType, readonly string[]>> = {
  prepare: ['ballot', 'fromSlot', 'pageFrom', 'cookie'],
  promise: ['ballot', 'fromSlot', 'pageFrom', 'truncatedBelow', 'executedUpTo', 'more', 'accepted'],
  accept: ['ballot', 'slot', 'decidedUpTo', 'value'],
  accepted: ['ballot', 'slot'],
  nack: ['ballot', 'promised', 'slot', 'reason'],
  learn: ['ballot', 'slot', 'decidedUpTo', 'value'],
  decide: ['ballot', 'upTo'],
  'catchup-req': ['fromSlot', 'toSlot'],
  'catchup-rep': ['chosenUpTo', 'truncatedBelow', 'entries'],
  'leader-state': [
    'state',
    'ballot',
    'maxRound',
    'decidedUpTo',
    'executedUpTo',
    'leaderHint',
    'relinquished',
    'config',
    'observers',
  ],
  progress: ['executedUpTo', 'chosenUpTo', 'config'],
  submit: ['items'],
  campaign: ['round', 'cookie'],
  executed: ['slot', 'inc', 'firstId', 'results'],
  aborted: ['ids', 'maybeChosen', 'busy', 'leaderHint'],
  recovered: ['ballot', 'upTo'],
  'exec-mark': ['upTo', 'decided', 'flush', 'fills'],
  'log-full': ['usedBytes', 'capacityBytes'],
  reconfigured: ['slot', 'config', 'origin', 'inc', 'firstId', 'cookie'],
  'config-refused': ['id', 'maybeChosen', 'reason', 'leaderHint'],
  'read-confirm': ['ballot', 'seq'],
  'read-ack': ['ballot', 'seq', 'ok'],
};

const HEADER = new Set(['type', 'ring', 'from', 'to', 'headers']);

/**
 * Messages between the roles of one replica (an acceptor's `learn` to its learner, a proposer's
 * `leader-state` to its elector…): printed without `to` when they go to the role's own replica.
 * Every other message shows `to`, its own replica included (a Prepare to its own acceptor).
 */
export const LOCAL_TYPES: ReadonlySet<string> = new Set<MessageType>([
  'learn',
  'leader-state',
  'progress',
  'exec-mark',
  'executed',
  'aborted',
  'recovered',
  'reconfigured',
  'log-full',
  'log-truncate',
  'retain-truncate',
  'config-refused',
  'config-proposal',
  'set-observers',
  'campaign',
  'resign',
  'submit',
  'learner-event',
  'snap-executed',
  'snap-need',
  'snap-take',
  'snap-data',
  'snap-install',
  'snap-installed',
  'watch-peers',
  'peer-progress',
  'config-notice',
]);

/** A message's fields, rendered, in print order (header fields aside). */
export function renderFields(m: Message | ({ type: string } & Record<string, unknown>)): [string, Rendered][] {
  const rec = m as unknown as Record<string, unknown>;
  const order = ORDER[m.type as MessageType] ?? [];
  const names = [...order.filter((k) => rec[k] !== undefined)];
  for (const k of Object.keys(rec)) if (!HEADER.has(k) && !names.includes(k) && rec[k] !== undefined) names.push(k);
  return names.map((k) => [k, fmtField(k, rec[k])]);
}

/** Max characters of a line of output; a longer one wraps its lists, one item a line. */
export const MAX_LINE = 120;

/**
 * One line (or a few) for a message, `head` first (`> promise to=r2` or similar). A line longer than
 * MAX_LINE wraps: the fields that are words fill lines (the next ones indented by two spaces), then
 * each list that has items goes `  name=[`, `    item` per item, `  ]`.
 */
export function renderLine(head: string, fields: readonly [string, Rendered][]): string[] {
  const flat = (f: Rendered): string => ('text' in f ? f.text : `[${f.items.join(' ')}]`);
  const one = [head, ...fields.map(([k, f]) => `${k}=${flat(f)}`)].join(' ');
  if (one.length <= MAX_LINE) return [one];
  const words = fields.filter(([, f]) => 'text' in f || f.items.length === 0).map(([k, f]) => `${k}=${flat(f)}`);
  const lists = fields.filter(([, f]) => 'items' in f && f.items.length > 0);
  const lines = [head];
  for (const w of words) {
    const last = lines[lines.length - 1]!;
    if (last.length + 1 + w.length <= MAX_LINE) lines[lines.length - 1] = `${last} ${w}`;
    else lines.push(`  ${w}`);
  }
  for (const [k, f] of lists) {
    const items = (f as { items: readonly string[] }).items;
    lines.push(`  ${k}=[`, ...items.map((i) => `    ${i}`), '  ]');
  }
  return lines;
}

/** What every message a script builds carries by default (the header aside). */
const DEFAULTS: Partial<Record<MessageType, Record<string, unknown>>> = {
  accept: { decidedUpTo: 0 },
  learn: { decidedUpTo: 0 },
  promise: { accepted: [], truncatedBelow: 0 },
  'catchup-rep': { entries: [] },
  'exec-mark': { fills: [] },
  submit: { items: [] },
};

/** Types whose sender is the ballot's leader: `from=` may be left out. */
const FROM_BALLOT = new Set<string>(['prepare', 'accept', 'decide']);

/**
 * An event from a script command: a protocol message (its type is in ROLE_OF; it gets the header
 * and is checked with the codec's validateMessage) or one of the role's internal events (`tick`,
 * `truncate`…: just the fields given; `internal` for one named like a message, such as the learner's
 * `bootstrap`). Every key=value of the command is a field.
 */
export function buildEvent(
  type: string,
  args: ArgReader,
  ring: string,
  self: string,
  internal = false,
): { type: string } & Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const { key, value } of args.rest()) fields[key] = parseField(key, value);
  if (args.positional().length > 0) throw new ScriptError(`${type}: fields are written key=value`);
  if (internal || !Object.prototype.hasOwnProperty.call(ROLE_OF, type)) return { type, ...fields };
  const ballot = fields.ballot as { leader: string } | undefined;
  const from = fields.from ?? (FROM_BALLOT.has(type) && ballot ? ballot.leader : self);
  const raw = { type, ring, from, to: self, ...DEFAULTS[type as MessageType], ...fields };
  try {
    return validateMessage(raw) as unknown as { type: string } & Record<string, unknown>;
  } catch (e) {
    throw new ScriptError(`${type}: ${(e as Error).message}`);
  }
}
