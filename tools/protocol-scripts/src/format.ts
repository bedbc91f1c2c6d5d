/**
 * How protocol values print in a script, and how a script writes them. Every form below parses back
 * to what it prints (tested in test/format.test.ts).
 *
 * - ballot `3.r2` (round 3, leader r2); the zero ballot `0`
 * - slot value `noop`, `batch(a,b)`, `config(e2:r1,r2,r4)`; a batch or config whose origin, incarnation
 *   or first id are not the defaults (origin `x`, 1, 1) adds `@origin`, `/inc`, `#firstId`:
 *   `batch(c3,c4)@r1#3`; flags follow as `+excl`, `+last`, `+at=1700000000000`, `+cookie=…`
 * - command bytes: the text when it is plain (letters, digits, `_.:/-`), else `0x` and hex
 * - configuration `e2:r1,r2,r4@6` (epoch 2, members r1 r2 r4, from slot 6)
 * - accepted entry `4:3.r2:batch(a)` (slot, ballot, value); chosen entry `4:batch(a)`
 * - lists `[item item]` (entries, items); id lists `(r1,r2)`; the Decide of an exec-mark `9:3.r2`
 * - submit item `7:c` (id 7, command c), flags `+excl`, `+last`
 */
import {
  type AcceptedEntry,
  type Ballot,
  type ChosenEntry,
  type Configuration,
  type SlotValue,
  type StoreRecord,
  type SubmitItem,
  DECIDED_META,
  EXECUTED_META,
  ZERO_BALLOT,
  decodeDecidedMeta,
  decodeSlotMeta,
} from '@decree/protocol';
import { ScriptError, parseIntStrict, splitTop, tokenize } from './syntax.ts';

/** The origin of a value written without `@origin`: a replica no script runs. */
export const DEFAULT_ORIGIN = 'x';

const enc = new TextEncoder();
const dec = new TextDecoder();

// ---- ballots

export function fmtBallot(b: Ballot): string {
  return b.round === 0 && b.leader === '' ? '0' : `${b.round}.${b.leader}`;
}
export function parseBallot(s: string): Ballot {
  if (s === '0') return ZERO_BALLOT;
  const m = /^(\d+)\.([A-Za-z0-9_-]+)$/.exec(s);
  if (!m) throw new ScriptError(`not a ballot (round.leader): ${s}`);
  return { round: Number(m[1]), leader: m[2]! };
}

// ---- bytes

const PLAIN = /^[A-Za-z0-9_.:/-]+$/;
export function fmtBytes(b: Uint8Array): string {
  const s = dec.decode(b);
  if (PLAIN.test(s) && !s.startsWith('0x') && s !== '-' && enc.encode(s).length === b.length) return s;
  return `0x${Buffer.from(b).toString('hex')}`;
}
export function parseBytes(s: string): Uint8Array {
  if (s.startsWith('0x')) {
    const hex = s.slice(2);
    if (!/^([0-9a-fA-F]{2})*$/.test(hex)) throw new ScriptError(`bad hex bytes: ${s}`);
    return new Uint8Array(Buffer.from(hex, 'hex'));
  }
  if (s.startsWith('"')) return enc.encode(JSON.parse(s) as string);
  return enc.encode(s);
}

// ---- slot values

function originSuffix(origin: string, inc: number, firstId: number): string {
  if (origin === DEFAULT_ORIGIN && inc === 1 && firstId === 1) return '';
  return `@${origin}${inc !== 1 ? `/${inc}` : ''}${firstId !== 1 ? `#${firstId}` : ''}`;
}

export function fmtValue(v: SlotValue): string {
  switch (v.k) {
    case 'noop':
      return 'noop';
    case 'batch': {
      let s = `batch(${v.cmds.map(fmtBytes).join(',')})${originSuffix(v.origin, v.inc, v.firstId)}`;
      if (v.excl) s += '+excl';
      if (v.last) s += '+last';
      if (v.at !== undefined) s += `+at=${v.at}`;
      return s;
    }
    case 'config': {
      let s = `config(e${v.epoch}:${v.members.join(',')})${originSuffix(v.origin, v.inc, v.firstId)}`;
      if (v.cookie) s += `+cookie=${fmtBytes(v.cookie)}`;
      return s;
    }
  }
}

const ORIGIN = String.raw`(?:@([A-Za-z0-9_-]+)(?:\/(\d+))?(?:#(\d+))?)?`;
const VALUE = new RegExp(String.raw`^(batch|config)\((.*)\)${ORIGIN}((?:\+[a-z]+(?:=[^+]*)?)*)$`, 's');

export function parseValue(s: string): SlotValue {
  if (s === 'noop') return { k: 'noop' };
  const m = VALUE.exec(s);
  if (!m) throw new ScriptError(`not a slot value (noop, batch(a,b), config(e2:r1,r2)): ${s}`);
  const origin = m[3] ?? DEFAULT_ORIGIN;
  const inc = m[4] !== undefined ? Number(m[4]) : 1;
  const firstId = m[5] !== undefined ? Number(m[5]) : 1;
  const flags = new Map<string, string>();
  for (const f of (m[6] ?? '').split('+').filter(Boolean)) {
    const eq = f.indexOf('=');
    flags.set(eq < 0 ? f : f.slice(0, eq), eq < 0 ? '' : f.slice(eq + 1));
  }
  if (m[1] === 'batch') {
    const cmds = m[2] === '' ? [] : splitTop(m[2]!, ',').map(parseBytes);
    for (const k of flags.keys()) {
      if (!['excl', 'last', 'at'].includes(k)) throw new ScriptError(`batch: unknown flag +${k}`);
    }
    return {
      k: 'batch',
      origin,
      inc,
      firstId,
      cmds,
      ...(flags.has('excl') ? { excl: true } : {}),
      ...(flags.has('last') ? { last: true } : {}),
      ...(flags.has('at') ? { at: parseIntStrict(flags.get('at')!, 'batch +at') } : {}),
    };
  }
  const c = /^e(\d+):(.*)$/.exec(m[2]!);
  if (!c) throw new ScriptError(`config value: expected config(e<epoch>:<members>): ${s}`);
  for (const k of flags.keys()) if (k !== 'cookie') throw new ScriptError(`config: unknown flag +${k}`);
  return {
    k: 'config',
    epoch: Number(c[1]),
    members: c[2] === '' ? [] : c[2]!.split(','),
    origin,
    inc,
    firstId,
    ...(flags.has('cookie') ? { cookie: parseBytes(flags.get('cookie')!) } : {}),
  };
}

// ---- configurations, entries, lists

export function fmtConfig(c: Configuration): string {
  return `e${c.epoch}:${c.members.join(',')}@${c.startSlot}`;
}
export function parseConfig(s: string): Configuration {
  const m = /^e(\d+):([^@]*)@(\d+)$/.exec(s);
  if (!m) throw new ScriptError(`not a configuration (e<epoch>:<members>@<startSlot>): ${s}`);
  return { epoch: Number(m[1]), members: m[2] === '' ? [] : m[2]!.split(','), startSlot: Number(m[3]) };
}

export const fmtAccepted = (e: AcceptedEntry): string => `${e.slot}:${fmtBallot(e.ballot)}:${fmtValue(e.value)}`;
export function parseAccepted(s: string): AcceptedEntry {
  const p = splitTop(s, ':', 3);
  if (p.length !== 3) throw new ScriptError(`not an accepted entry (slot:ballot:value): ${s}`);
  return { slot: parseIntStrict(p[0]!, 'entry slot'), ballot: parseBallot(p[1]!), value: parseValue(p[2]!) };
}
export const fmtChosen = (e: ChosenEntry): string => `${e.slot}:${fmtValue(e.value)}`;
export function parseChosen(s: string): ChosenEntry {
  const p = splitTop(s, ':', 2);
  if (p.length !== 2) throw new ScriptError(`not a chosen entry (slot:value): ${s}`);
  return { slot: parseIntStrict(p[0]!, 'entry slot'), value: parseValue(p[1]!) };
}

export function fmtItem(it: SubmitItem): string {
  let s = `${it.id}:${fmtBytes(it.cmd)}`;
  if (it.excl) s += '+excl';
  if (it.last) s += '+last';
  return s;
}
export function parseItem(s: string): SubmitItem {
  const m = /^(\d+):([^+]*)((?:\+[a-z]+)*)$/.exec(s);
  if (!m) throw new ScriptError(`not a submit item (id:cmd[+excl][+last]): ${s}`);
  const flags = (m[3] ?? '').split('+').filter(Boolean);
  for (const f of flags) if (f !== 'excl' && f !== 'last') throw new ScriptError(`submit item: unknown flag +${f}`);
  return {
    id: Number(m[1]),
    cmd: parseBytes(m[2]!),
    ...(flags.includes('excl') ? { excl: true } : {}),
    ...(flags.includes('last') ? { last: true } : {}),
  };
}

/** The items of `[a b c]`. */
export function parseList(s: string): string[] {
  if (!s.startsWith('[') || !s.endsWith(']')) throw new ScriptError(`not a list [item item]: ${s}`);
  return tokenize(s.slice(1, -1));
}
/** The items of `(a,b,c)`. */
export function parseTuple(s: string): string[] {
  if (!s.startsWith('(') || !s.endsWith(')')) throw new ScriptError(`not a tuple (a,b): ${s}`);
  const inner = s.slice(1, -1);
  return inner === '' ? [] : splitTop(inner, ',');
}

// ---- fields of messages and events, by name

/** How one field prints: a word, or a list that may wrap (one item a line) when the line is long. */
export type Rendered = { readonly text: string } | { readonly items: readonly string[] };

interface FieldCodec {
  fmt(v: unknown): Rendered;
  parse(s: string): unknown;
}

const word = (text: string): Rendered => ({ text });
const str = (v: unknown): string => {
  const s = String(v);
  return /^[A-Za-z0-9_.:/@-]+$/.test(s) ? s : JSON.stringify(s);
};

const INT: FieldCodec = { fmt: (v) => word(String(v)), parse: (s) => parseIntStrict(s, 'field') };
const NUM: FieldCodec = {
  fmt: (v) => word(String(v)),
  parse: (s) => {
    const n = Number(s);
    if (!Number.isFinite(n)) throw new ScriptError(`not a number: ${s}`);
    return n;
  },
};
const STR: FieldCodec = { fmt: (v) => word(str(v)), parse: (s) => (s.startsWith('"') ? (JSON.parse(s) as string) : s) };
const BOOL: FieldCodec = {
  fmt: (v) => word(String(v)),
  parse: (s) => {
    if (s !== 'true' && s !== 'false') throw new ScriptError(`not a boolean: ${s}`);
    return s === 'true';
  },
};
const BALLOT: FieldCodec = { fmt: (v) => word(fmtBallot(v as Ballot)), parse: parseBallot };
const VALUE_F: FieldCodec = { fmt: (v) => word(fmtValue(v as SlotValue)), parse: parseValue };
const CONFIG: FieldCodec = { fmt: (v) => word(fmtConfig(v as Configuration)), parse: parseConfig };
const BYTES: FieldCodec = { fmt: (v) => word(fmtBytes(v as Uint8Array)), parse: parseBytes };
const IDS: FieldCodec = {
  fmt: (v) => word(`(${(v as readonly string[]).join(',')})`),
  parse: (s) => parseTuple(s),
};
const INTS: FieldCodec = {
  fmt: (v) => word(`(${(v as readonly number[]).join(',')})`),
  parse: (s) => parseTuple(s).map((x) => parseIntStrict(x, 'id')),
};
const RESULTS: FieldCodec = {
  fmt: (v) => {
    const results = v as readonly (Uint8Array | undefined)[];
    return word(`(${results.map((r) => (r === undefined ? '-' : fmtBytes(r))).join(',')})`);
  },
  parse: (s) => parseTuple(s).map((x) => (x === '-' ? undefined : parseBytes(x))),
};
const ACCEPTED: FieldCodec = {
  fmt: (v) => ({ items: (v as readonly AcceptedEntry[]).map(fmtAccepted) }),
  parse: (s) => parseList(s).map(parseAccepted),
};
const CHOSEN: FieldCodec = {
  fmt: (v) => ({ items: (v as readonly ChosenEntry[]).map(fmtChosen) }),
  parse: (s) => parseList(s).map(parseChosen),
};
const ITEMS: FieldCodec = {
  fmt: (v) => ({ items: (v as readonly SubmitItem[]).map(fmtItem) }),
  parse: (s) => parseList(s).map(parseItem),
};
const DECIDED: FieldCodec = {
  fmt: (v) => {
    const d = v as { ballot: Ballot; upTo: number };
    return word(`${d.upTo}:${fmtBallot(d.ballot)}`);
  },
  parse: (s) => {
    const p = splitTop(s, ':', 2);
    if (p.length !== 2) throw new ScriptError(`not a decide (upTo:ballot): ${s}`);
    return { upTo: parseIntStrict(p[0]!, 'decided upTo'), ballot: parseBallot(p[1]!) };
  },
};

/** Every field a script may write or a role may send, by name. A name missing here is a script error. */
export const FIELDS: Readonly<Record<string, FieldCodec>> = {
  ballot: BALLOT,
  promised: BALLOT,
  value: VALUE_F,
  accepted: ACCEPTED,
  entries: CHOSEN,
  fills: CHOSEN,
  items: ITEMS,
  members: IDS,
  observers: IDS,
  peers: IDS,
  ids: INTS,
  results: RESULTS,
  config: CONFIG,
  configuration: CONFIG,
  decided: DECIDED,
  cookie: BYTES,
  payload: BYTES,
  data: BYTES,
  flush: BOOL,
  maybeChosen: BOOL,
  busy: BOOL,
  relinquished: BOOL,
  ok: BOOL,
  requested: BOOL,
  watch: BOOL,
  granted: BOOL,
  from: STR,
  to: STR,
  ring: STR,
  reason: STR,
  leaderHint: STR,
  state: STR,
  origin: STR,
  error: STR,
  code: STR,
  peer: STR,
  kind: STR,
  fromSlot: INT,
  toSlot: INT,
  slot: INT,
  upTo: INT,
  pageFrom: INT,
  more: INT,
  truncatedBelow: INT,
  executedUpTo: INT,
  chosenUpTo: INT,
  decidedUpTo: INT,
  appliedUpTo: INT,
  round: INT,
  maxRound: INT,
  id: INT,
  inc: INT,
  firstId: INT,
  seq: INT,
  below: INT,
  epoch: INT,
  usedBytes: NUM,
  capacityBytes: NUM,
  bytes: NUM,
};

export function fmtField(name: string, v: unknown): Rendered {
  const c = FIELDS[name];
  if (c) return c.fmt(v);
  // a field this table does not know yet (a new protocol field): shown raw, so the diff shows it
  return word(JSON.stringify(v, (_k, x: unknown) => (x instanceof Uint8Array ? fmtBytes(x) : x)) ?? 'undefined');
}
export function parseField(name: string, s: string): unknown {
  const c = FIELDS[name];
  if (!c) throw new ScriptError(`unknown field ${name}=`);
  try {
    return c.parse(s);
  } catch (e) {
    throw new ScriptError(`${name}=: ${(e as Error).message}`);
  }
}

// ---- store records

export function fmtRecord(r: StoreRecord): string {
  switch (r.t) {
    case 'promise':
      return `promise ${fmtBallot(r.ballot)}`;
    case 'accept':
      return `accept ${r.slot} ${fmtBallot(r.ballot)} ${fmtValue(r.value)}`;
    case 'chosen':
      return `chosen ${r.slot} ${fmtValue(r.value)}`;
    case 'truncate':
      return `truncate ${r.below}`;
    case 'meta':
      if (r.key === EXECUTED_META) return `meta executed ${decodeSlotMeta(r.value)}`;
      if (r.key === DECIDED_META) {
        const d = decodeDecidedMeta(r.value);
        if (d) return `meta decided ${d.upTo} ${fmtBallot(d.ballot)}`;
      }
      return `meta ${str(r.key)} 0x${Buffer.from(r.value).toString('hex')}`;
  }
}
