import { fc, test } from '@fast-check/vitest';
import lite from 'msgpack-lite';
import { describe, expect, it } from 'vitest';
import {
  DecodeError,
  decodeMessage,
  encodeMessage,
  MESSAGE_TYPES,
  validateMessage,
  type Message,
} from '../src/index.ts';
import { anyMessage, samples, withBuffers } from './arbitraries.ts';

/** decodeMessage either returns a message that validates and re-encodes, or throws DecodeError. */
function decodeOrDecodeError(buf: Uint8Array): 'ok' | 'rejected' {
  let m: Message;
  try {
    m = decodeMessage(buf);
  } catch (e) {
    if (!(e instanceof DecodeError))
      throw new Error(`decodeMessage threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
    expect(e.message.length).toBeGreaterThan(0);
    return 'rejected';
  }
  expect(MESSAGE_TYPES).toContain(m.type);
  expect(validateMessage(m)).toBe(m);
  decodeMessage(encodeMessage(m)); // what we accept we can also write and read back
  return 'ok';
}

// JSON-ish values with the keys a message uses, so that many are nearly valid
const keys = fc.constantFrom(
  'type',
  'ring',
  'from',
  'to',
  'ballot',
  'round',
  'leader',
  'slot',
  'fromSlot',
  'value',
  'k',
  'cmds',
  'origin',
  'inc',
  'firstId',
  'accepted',
  'entries',
  'items',
  'id',
  'cmd',
  'results',
  'ids',
  'headers',
  'cookie',
  'upTo',
  'decidedUpTo',
  '__proto__',
  'toString',
  'valueOf',
  'constructor',
  'hasOwnProperty',
);
const leaves = fc.oneof(
  fc.constantFrom(...MESSAGE_TYPES, 'noop', 'batch', 'config', 'leading', null, true, false, 0, -1, 1.5, 2 ** 53, NaN),
  fc.string({ maxLength: 5 }),
  fc.integer(),
  fc.double(),
  fc.uint8Array({ maxLength: 4 }),
);
const jsonish = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaves, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.dictionary(keys, tie('value'), { maxKeys: 8 }),
})).value;

/** A valid message with one field (at any depth) replaced by a random value. */
const mutated = fc.tuple(anyMessage, fc.nat(), leaves).map(([m, pick, v]) => {
  const copy = structuredClone(m) as unknown as Record<string, unknown>;
  const slots: [Record<string, unknown> | unknown[], string | number][] = [];
  const walk = (o: unknown) => {
    if (o instanceof Uint8Array || typeof o !== 'object' || o === null) return;
    for (const [k, x] of Object.entries(o)) {
      slots.push([o as Record<string, unknown>, Array.isArray(o) ? Number(k) : k]);
      walk(x);
    }
  };
  walk(copy);
  const [obj, k] = slots[pick % slots.length]!;
  (obj as Record<string | number, unknown>)[k] = v;
  return copy;
});

describe('decodeMessage fuzz: a valid message or DecodeError, nothing else', () => {
  test.prop([fc.uint8Array({ maxLength: 200 })], { numRuns: 3000 })('random bytes', (bytes) => {
    decodeOrDecodeError(bytes);
  });

  test.prop([anyMessage, fc.nat(), fc.integer({ min: 0, max: 255 })], { numRuns: 1500 })(
    'one corrupted byte of a valid encoding',
    (m, pos, byte) => {
      const buf = Uint8Array.from(encodeMessage(m));
      buf[pos % buf.length] = byte;
      decodeOrDecodeError(buf);
    },
  );

  test.prop([anyMessage, fc.nat()], { numRuns: 500 })('a truncated valid encoding is always rejected', (m, cut) => {
    const buf = encodeMessage(m);
    expect(decodeOrDecodeError(buf.subarray(0, cut % buf.length))).toBe('rejected');
  });

  test.prop([jsonish], { numRuns: 2000 })('random JSON-ish values, encoded by msgpack-lite', (v) => {
    decodeOrDecodeError(lite.encode(withBuffers(v)));
  });

  test.prop([jsonish], { numRuns: 2000 })('random JSON-ish values given to validateMessage directly', (v) => {
    try {
      validateMessage(v);
    } catch (e) {
      expect(e).toBeInstanceOf(DecodeError);
    }
  });

  test.prop([mutated], { numRuns: 2000 })('valid messages with one field replaced', (v) => {
    decodeOrDecodeError(lite.encode(withBuffers(v)));
  });

  it('hostile corner cases', () => {
    const cases: Uint8Array[] = [
      new Uint8Array([]),
      new Uint8Array([0xc1]), // never used
      new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff]), // array32 of 4G items, no data
      new Uint8Array([0xdf, 0xff, 0xff, 0xff, 0xff]), // map32 of 4G entries, no data
      new Uint8Array([0xdb, 0xff, 0xff, 0xff, 0xff]), // str32 of 4 GB
      new Uint8Array([0xc6, 0xff, 0xff, 0xff, 0xff]), // bin32 of 4 GB
      new Uint8Array(100_000).fill(0x91), // 100k nested arrays
      new Uint8Array(100_000).fill(0x81), // 100k nested maps
      new Uint8Array([0xd4, 0x00, 0x00]), // msgpackr's undefined
      new Uint8Array([0xd6, 0xff, 0, 0, 0, 0]), // timestamp ext
      new Uint8Array([0xd4, 0x72, 0x00]), // msgpackr record definition ext
      new Uint8Array([0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // uint64 max
      lite.encode({ ...samples.decide, upTo: -1 }),
      lite.encode({ ...samples.decide, upTo: 1.5 }),
      lite.encode({ ...samples.decide, upTo: 2 ** 53 }),
      lite.encode({ type: { toString: 1, valueOf: 2 } }),
      lite.encode({ __proto__: 1, type: 'decide' }),
      lite.encode({
        ...samples.decide,
        ballot: { round: 1, leader: 'a', __proto__: { x: 1 } },
        headers: { toString: 'x' },
      }),
      encodeMessage({ ...samples.decide, type: 'constructor' } as unknown as Message),
      encodeMessage({ ...samples.decide, type: 'hasOwnProperty' } as unknown as Message),
    ];
    for (const c of cases) decodeOrDecodeError(c);
    expect(decodeOrDecodeError(cases[0]!)).toBe('rejected');
    expect(decodeOrDecodeError(cases[1]!)).toBe('rejected');
  });

  it('a map key "__proto__" does not set the prototype of the decoded object', () => {
    // a Decide whose required fields are only on a "__proto__" map: must not pass as a Decide
    const inner = lite.encode(withBuffers(samples.decide));
    const buf = Buffer.concat([Buffer.from([0x81, 0xa9]), Buffer.from('__proto__'), inner]);
    expect(() => decodeMessage(buf)).toThrow(DecodeError);
  });
});
