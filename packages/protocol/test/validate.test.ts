import { describe, expect, it } from 'vitest';
import { DecodeError, MESSAGE_TYPES, validateMessage, validateSlotValue, type MessageType } from '../src/index.ts';
import { samples } from './arbitraries.ts';

/** The optional fields of each message (and of nested values): leaving them out is fine. */
const OPTIONAL: Record<MessageType, string[]> = {
  prepare: ['cookie', 'pageFrom'],
  accept: ['value.excl', 'value.last'],
  promise: [
    'executedUpTo',
    'pageFrom',
    'more',
    'accepted[*].value.cookie',
    'accepted[*].value.excl',
    'accepted[*].value.last',
  ],
  accepted: [],
  nack: ['slot', 'reason'],
  learn: ['value.excl', 'value.last'],
  decide: [],
  'catchup-req': [],
  'catchup-rep': ['entries[*].value.excl', 'entries[*].value.last'],
  heartbeat: ['cookie'],
  'heartbeat-ack': ['payload'],
  campaign: ['cookie'],
  resign: [],
  'leader-state': ['leaderHint', 'relinquished', 'config', 'observers'],
  progress: ['config'],
  submit: ['items[*].excl', 'items[*].last'],
  executed: [],
  aborted: ['leaderHint', 'busy'],
  recovered: [],
  'learner-event': [],
  'client-req': ['inc'],
  'client-rep': ['results', 'error', 'leaderHint', 'maybeExecuted', 'inc', 'slot', 'failed'],
  'read-confirm': [],
  'read-ack': [],
  'snap-req': [],
  'snap-chunk': ['epoch'],
  'pre-vote': [],
  'pre-vote-ack': [],
  bootstrap: [],
  'bootstrap-ack': ['error'],
  'snap-executed': [],
  'snap-need': [],
  'snap-take': ['forced'],
  'snap-data': ['config', 'error', 'requested', 'refused'],
  'snap-saved': [],
  'snap-install': ['config'],
  'snap-installed': ['error'],
  'log-truncate': [],
  'retain-truncate': [],
  'exec-mark': ['fills[*].value.excl', 'fills[*].value.last', 'flush', 'decided'],
  'log-full': [],
  'config-change': ['cookie', 'inc'],
  'config-proposal': ['cookie'],
  'config-result': ['epoch', 'members', 'slot', 'error', 'code', 'leaderHint', 'maybeChosen', 'inc'],
  'config-notice': ['cookie', 'reason'],
  'config-refused': ['leaderHint'],
  'set-observers': [],
  reconfigured: ['origin', 'inc', 'firstId', 'cookie'],
  'watch-peers': [],
  'peer-progress': ['leader'],
};

type Path = (string | number)[];
const show = (p: Path) =>
  p
    .map((k) => (typeof k === 'number' ? `[${k}]` : `.${k}`))
    .join('')
    .slice(1);
const pattern = (p: Path) => show(p).replace(/\[\d+\]/g, '[*]');

/** Every path into a sample (object keys and array items), not descending into bytes. */
function paths(x: unknown, prefix: Path = []): Path[] {
  if (x instanceof Uint8Array || typeof x !== 'object' || x === null) return [];
  const out: Path[] = [];
  for (const [k, v] of Object.entries(x)) {
    const p = [...prefix, Array.isArray(x) ? Number(k) : k];
    out.push(p, ...paths(v, p));
  }
  return out;
}
function edit(
  msg: unknown,
  p: Path,
  f: (parent: Record<string | number, unknown>, key: string | number) => void,
): unknown {
  const copy = deepCopy(msg) as Record<string | number, unknown>;
  let o = copy;
  for (const k of p.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
  f(o, p[p.length - 1]!);
  return copy;
}
/** A deep copy that shares nothing (structuredClone would keep the samples' shared ballot objects shared). */
function deepCopy(x: unknown): unknown {
  if (x instanceof Uint8Array) return Uint8Array.from(x);
  if (Array.isArray(x)) return x.map(deepCopy);
  if (typeof x === 'object' && x !== null)
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, deepCopy(v)]));
  return x;
}
/** A value of another type than `v`. */
const wrongType = (v: unknown): unknown => (typeof v === 'string' ? 12345 : 'x');
/** The field the error must name: ballots are checked whole, so a ballot's round or leader names the ballot. */
function named(t: string, p: Path): string {
  const i = p.findIndex((k) => k === 'ballot' || k === 'promised');
  const q = i >= 0 ? p.slice(0, i + 1) : p;
  return `${t}.${show(q)}`;
}
const rejects = (m: unknown, field: string) => {
  let err: unknown;
  try {
    validateMessage(m);
  } catch (e) {
    err = e;
  }
  expect(err, `expected a DecodeError naming ${field}`).toBeInstanceOf(DecodeError);
  expect((err as Error).message).toContain(field);
};

describe('validateMessage', () => {
  it.each(MESSAGE_TYPES)('%s: accepts the sample', (t) => {
    expect(validateMessage(deepCopy(samples[t]))).toBeTruthy();
  });

  it.each(MESSAGE_TYPES)(
    '%s: each missing required field is rejected, naming the field; optional ones may be left out',
    (t) => {
      let required = 0;
      for (const p of paths(samples[t])) {
        if (typeof p[p.length - 1] === 'number') continue; // array items cannot be "missing"
        if (p[0] === 'headers' || p[0] === 'type') continue; // checked below
        const m = edit(samples[t], p, (o, k) => delete o[k]);
        if (OPTIONAL[t].includes(pattern(p))) {
          expect(() => validateMessage(m), `${t}.${show(p)} is optional`).not.toThrow();
        } else {
          rejects(m, named(t, p));
          required++;
        }
      }
      expect(required).toBeGreaterThanOrEqual(3); // ring, from, to at least
    },
  );

  it.each(MESSAGE_TYPES)('%s: each ill-typed field is rejected, naming the field', (t) => {
    for (const p of paths(samples[t])) {
      if (p[0] === 'type') continue;
      const m = edit(samples[t], p, (o, k) => {
        o[k] = wrongType(o[k]);
      });
      rejects(m, p[0] === 'headers' ? `${t}.headers` : named(t, p));
    }
  });

  it.each(MESSAGE_TYPES)('%s: negative and fractional numbers are rejected, naming the field', (t) => {
    for (const p of paths(samples[t])) {
      const m0 = edit(samples[t], p, () => {});
      let v: unknown = m0;
      for (const k of p) v = (v as Record<string | number, unknown>)[k];
      if (typeof v !== 'number') continue;
      for (const bad of [-1, 0.5, Number.NaN, Infinity, 2 ** 53])
        rejects(
          edit(samples[t], p, (o, k) => (o[k] = bad)),
          named(t, p),
        );
    }
  });

  it('type: missing, unknown or inherited names are rejected', () => {
    rejects({ ...samples.decide, type: undefined }, 'type');
    rejects({ ...samples.decide, type: 'nope' }, 'unknown type');
    rejects({ ...samples.decide, type: 'toString' }, 'unknown type');
    rejects({ ...samples.decide, type: { toString: 1 } }, 'unknown type');
    for (const x of [null, undefined, 5, 'decide', [], new Uint8Array(3)]) rejects(x, 'not an object');
  });

  it('the error stays short when the bad value is huge', () => {
    let msg = '';
    try {
      validateMessage({ ...samples.decide, upTo: 'x'.repeat(100_000) });
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toContain('decide.upTo');
    expect(msg.length).toBeLessThan(120);
  });

  it('headers must be an object of strings', () => {
    rejects({ ...samples.decide, headers: 'x' }, 'decide.headers');
    rejects({ ...samples.decide, headers: { a: 'ok', b: 3 } }, 'decide.headers.b');
    expect(() => validateMessage({ ...samples.decide, headers: {} })).not.toThrow();
  });

  it('a nil optional field is removed; a nil required one is rejected', () => {
    const m = validateMessage({ ...samples.nack, slot: null, reason: null, headers: null });
    expect(Object.keys(m)).not.toContain('slot');
    expect(Object.keys(m)).not.toContain('reason');
    expect(Object.keys(m)).not.toContain('headers');
    rejects({ ...samples.nack, promised: null }, 'nack.promised');
  });

  it('validateSlotValue: unknown kinds and bad commands are named', () => {
    expect(() => validateSlotValue({ k: 'other' })).toThrow(/value\.k/);
    expect(() =>
      validateSlotValue({ k: 'batch', origin: 'a', inc: 0, firstId: 0, cmds: [new Uint8Array(1), 'x'] }),
    ).toThrow(/value\.cmds\[1\]/);
    expect(() =>
      validateSlotValue({ k: 'config', epoch: 1, origin: 'a', inc: 0, firstId: 0, members: ['a', 3] }, 'v'),
    ).toThrow(/v\.members\[1\]/);
    expect(validateSlotValue({ k: 'noop' })).toEqual({ k: 'noop' });
  });
});
