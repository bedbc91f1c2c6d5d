import fc from 'fast-check';
import { test } from '@fast-check/vitest';
import lite from 'msgpack-lite';
import { describe, expect, it } from 'vitest';
import {
  DecodeError,
  decodeMessage,
  decodeValue,
  encodeMessage,
  encodeValue,
  encodeWithValue,
  MESSAGE_TYPES,
  ROLE_OF,
  ROLES,
  packBatch,
  packedBatch,
  slotValueBytes,
  slotValueEquals,
  slotValueSize,
  validateMessage,
  wireCommands,
  commandCount,
  firstCommandAt,
  readBin,
  BIN_OFF,
  BIN_LEN,
  type Message,
  type SlotValue,
} from '../src/index.ts';
import { anyMessage, messageArbs, normal, samples, withBuffers } from './arbitraries.ts';

describe('message catalogue', () => {
  it('every message type has a role, a sample and an arbitrary', () => {
    expect(MESSAGE_TYPES.length).toBe(50);
    for (const t of MESSAGE_TYPES) {
      expect(ROLES).toContain(ROLE_OF[t]);
      expect(samples[t].type).toBe(t);
      expect(messageArbs[t]).toBeDefined();
    }
    expect(Object.keys(samples).sort()).toEqual([...MESSAGE_TYPES].sort());
  });
});

describe('codec round trip', () => {
  it.each(MESSAGE_TYPES)('%s: sample round-trips with bytes intact', (t) => {
    const m = samples[t];
    const back = decodeMessage(encodeMessage(m));
    expect(normal(back)).toEqual(normal(m));
    expect(back.type).toBe(t);
  });

  it('Uint8Array fields come back as Uint8Array with the same bytes', () => {
    const back = decodeMessage(encodeMessage(samples.accept));
    if (back.type !== 'accept' || back.value.k !== 'batch') throw new Error('wrong shape');
    expect(back.value.cmds).toHaveLength(3);
    for (const [i, c] of back.value.cmds.entries()) {
      expect(c).toBeInstanceOf(Uint8Array);
      expect(Array.from(c)).toEqual(Array.from((samples.accept.value as unknown as { cmds: Uint8Array[] }).cmds[i]!));
    }
    const p = decodeMessage(encodeMessage(samples.prepare));
    expect(p.type === 'prepare' && p.cookie).toBeInstanceOf(Uint8Array);
    expect(p.headers).toEqual({ traceparent: '00-abc-def-01' });
  });

  for (const t of MESSAGE_TYPES) {
    test.prop([messageArbs[t]], { numRuns: 60 })(`${t}: random messages round-trip`, (m) => {
      expect(normal(decodeMessage(encodeMessage(m as Message)))).toEqual(normal(m));
    });
  }

  it('an undefined optional field is left out of the encoding (plain MessagePack, no msgpackr extension)', () => {
    const withUndef = { ...samples.decide, headers: undefined };
    const without = { ...samples.decide };
    delete (without as { headers?: unknown }).headers;
    expect(Buffer.from(encodeMessage(withUndef)).equals(Buffer.from(encodeMessage(without)))).toBe(true);
    // fixext1 type 0 is msgpackr's private encoding of undefined: it must never appear
    const bytes = Buffer.from(encodeMessage(samples.executed)).toString('hex');
    expect(bytes).not.toContain('d40000');
  });

  it('an encoded buffer is not overwritten by later encodes', () => {
    const a = encodeMessage(samples.accept);
    const snapshot = Uint8Array.from(a);
    for (let i = 0; i < 5000; i++) encodeMessage({ ...samples.accept, slot: i });
    expect(Buffer.from(a).equals(Buffer.from(snapshot))).toBe(true);
  });

  it('decoded byte fields are views into the input buffer (documented: do not reuse it)', () => {
    const buf = Uint8Array.from(encodeMessage(samples.heartbeat));
    const m = decodeMessage(buf);
    if (m.type !== 'heartbeat') throw new Error('wrong type');
    expect(Array.from(m.cookie!)).toEqual([1]);
    buf.fill(0);
    expect(Array.from(m.cookie!)).toEqual([0]);
  });

  it('encodeValue/decodeValue round-trip plain values and reject garbage with DecodeError', () => {
    const v = { a: 1, b: [new Uint8Array([1, 2]), 'x', null], c: { d: true } };
    expect(normal(decodeValue(encodeValue(v)))).toEqual(normal(v));
    expect(() => decodeValue(new Uint8Array([0xc1]))).toThrow(DecodeError);
    expect(() => decodeValue(new Uint8Array([]))).toThrow(DecodeError);
  });
});

describe('interoperability with msgpack-lite', () => {
  it.each(MESSAGE_TYPES)('%s: msgpack-lite decodes what encodeMessage writes', (t) => {
    const m = samples[t];
    const viaLite = lite.decode(Buffer.from(encodeMessage(m)));
    expect(normal(viaLite)).toEqual(normal(m));
  });

  it.each(MESSAGE_TYPES)('%s: decodeMessage accepts what msgpack-lite encodes', (t) => {
    const m = samples[t];
    const back = decodeMessage(lite.encode(withBuffers(m)));
    expect(normal(back)).toEqual(normal(m));
  });

  test.prop([anyMessage], { numRuns: 300 })('random messages cross both ways', (m) => {
    expect(normal(lite.decode(Buffer.from(encodeMessage(m))))).toEqual(normal(m));
    expect(normal(decodeMessage(lite.encode(withBuffers(m))))).toEqual(normal(m));
  });

  it('msgpack-lite writes undefined properties as nil: decodeMessage takes nil as absent', () => {
    const m = { ...samples.nack, slot: undefined, reason: undefined, headers: undefined };
    const back = decodeMessage(lite.encode(withBuffers(m)));
    expect('slot' in back || 'reason' in back || 'headers' in back).toBe(false);
    expect(normal(back)).toEqual(normal(m));
    const ex = decodeMessage(lite.encode(withBuffers(samples.executed)));
    expect(ex.type === 'executed' && ex.results[1]).toBeUndefined();
  });

  it('but a nil required field is still rejected', () => {
    expect(() => decodeMessage(lite.encode({ ...samples.decide, upTo: null }))).toThrow(/decide\.upTo/);
  });
});

describe('a slot value encoded once (issue #19 point 1)', () => {
  test.prop([messageArbs.accept], { numRuns: 100 })(
    'an accept written with its value last decodes the same, with msgpack-lite too',
    (m) => {
      const bytes = encodeMessage(m);
      expect(normal(decodeMessage(bytes))).toEqual(normal(m));
      expect(normal(decodeMessage(encodeValue(lite.decode(Buffer.from(bytes)))))).toEqual(normal(m));
    },
  );

  test.prop([messageArbs.accept], { numRuns: 100 })(
    'a received accept keeps its value bytes: re-encoding writes them as they arrived',
    (m) => {
      // another encoder (msgpack-lite, value not last) sends it; the receiver re-encodes from what it kept
      const { value, ...rest } = m;
      const sent = lite.encode(withBuffers({ value, ...rest }));
      const got = decodeMessage(sent);
      if (got.type !== 'accept') throw new Error('not an accept');
      const kept = slotValueBytes(got.value);
      expect(Buffer.from(sent).includes(Buffer.from(kept))).toBe(true);
      expect(kept.buffer).toBe(sent.buffer); // a view of what arrived, not a new encoding
      expect(normal(decodeValue(kept))).toEqual(normal(m.value));
      expect(normal(decodeMessage(encodeMessage(got)))).toEqual(normal(m));
    },
  );

  it('a value is packed once: the cached bytes are reused by every later encoding', () => {
    const m = samples.accept;
    const first = slotValueBytes(m.value);
    expect(slotValueBytes(m.value)).toBe(first);
    const withValue = encodeWithValue({ t: 'accept', slot: 3 }, m.value);
    expect(normal(decodeValue(withValue))).toEqual(normal({ t: 'accept', slot: 3, value: m.value }));
  });
});

describe('accepts decoded with their commands left in the buffer (issue #19 point 1)', () => {
  /** the general path: msgpackr, then the full validation */
  const reference = (bytes: Uint8Array): Message => validateMessage(decodeValue(bytes));

  test.prop([messageArbs.accept], { numRuns: 200 })('the same message as the general decoder', (m) => {
    const bytes = encodeMessage(m);
    const got = decodeMessage(bytes);
    expect(normal(got)).toEqual(normal(reference(bytes)));
    if (got.type !== 'accept') throw new Error('not an accept');
    const v = got.value;
    if (v.k === 'batch') {
      const w = wireCommands(v);
      expect(w?.count).toBe(v.cmds.length); // the views, made on first read, match the count
      expect(slotValueSize(v)).toBe(slotValueSize((reference(bytes) as typeof got).value as SlotValue));
      expect(commandCount(v)).toBe(v.cmds.length);
    }
    // written again (to a WAL or a peer) from the bytes it arrived in
    expect(normal(decodeMessage(encodeMessage(got)))).toEqual(normal(m));
  });

  test.prop([messageArbs.accept, fc.nat(), fc.integer({ min: 0, max: 255 })], { numRuns: 500 })(
    'a damaged accept: the same message or a DecodeError, as the general decoder gives',
    (m, at, byte) => {
      const bytes = Buffer.from(encodeMessage(m));
      const i = 13 + (at % Math.max(1, bytes.length - 13));
      if (i < bytes.length) bytes[i] = byte;
      let ref: Message | DecodeError;
      try {
        ref = reference(bytes);
      } catch (e) {
        ref = e as DecodeError;
      }
      let got: Message | DecodeError;
      try {
        got = decodeMessage(bytes);
      } catch (e) {
        got = e as DecodeError;
      }
      if (ref instanceof Error) expect(got).toBeInstanceOf(DecodeError);
      else {
        expect(got).not.toBeInstanceOf(Error);
        expect(normal(got)).toEqual(normal(ref));
      }
    },
  );

  it('reads each command in place: firstCommandAt and readBin walk the same bytes as the views', () => {
    const m = samples.accept;
    const got = decodeMessage(encodeMessage(m));
    if (got.type !== 'accept' || got.value.k !== 'batch') throw new Error('wrong shape');
    const w = wireCommands(got.value)!;
    let p = firstCommandAt(w);
    const seen: number[][] = [];
    for (let i = 0; i < w.count; i++) {
      p = readBin(w.buf, p);
      seen.push(Array.from(w.buf.subarray(BIN_OFF, BIN_OFF + BIN_LEN)));
    }
    expect(p).toBe(w.end);
    expect(seen).toEqual(got.value.cmds.map((c) => Array.from(c)));
  });
});

describe('a batch value written by hand (the leader packs each slot once)', () => {
  const batchArb = messageArbs.accept.map((m) => m.value).filter((v) => v.k === 'batch');
  test.prop([batchArb], { numRuns: 300 })('decodes to the value, and is as long as msgpackr writes it', (v) => {
    if (v.k !== 'batch') return;
    const mine = packBatch(v);
    expect(mine).toBeDefined();
    expect(normal(decodeValue(mine!))).toEqual(normal(v));
    expect(normal(lite.decode(Buffer.from(mine!)))).toEqual(normal(v));
    expect(mine!.length).toBe(encodeValue(v).length);
  });

  it('large counts and lengths, an origin in UTF-8 and a log time past 2^32', () => {
    const v: SlotValue = {
      k: 'batch',
      origin: 'réplica-ü',
      inc: 70_000,
      firstId: 2 ** 33 + 5,
      cmds: [new Uint8Array(300).fill(7), new Uint8Array(70_000).fill(9), ...Array(70_000).fill(new Uint8Array(1))],
      excl: false,
      last: true,
      at: 1_765_000_000_000,
    };
    const mine = packBatch(v)!;
    expect(normal(decodeValue(mine))).toEqual(normal(v));
    expect(mine.length).toBe(encodeValue(v).length);
  });

  test.prop([batchArb], { numRuns: 300 })(
    'packedBatch: the same value, kept in its packed bytes (the commands read from them, no repacking)',
    (v) => {
      if (v.k !== 'batch') return;
      const p = packedBatch(v);
      const w = wireCommands(p);
      expect(w).toBeDefined();
      expect(slotValueBytes(p)).toBe(w!.buf); // the bytes it reads its commands from are the ones sent
      expect(Buffer.compare(Buffer.from(w!.buf), Buffer.from(packBatch(v)!))).toBe(0);
      expect(commandCount(p)).toBe(v.cmds.length);
      expect(w!.payloadBytes).toBe(v.cmds.reduce((n, c) => n + c.length, 0));
      expect(slotValueSize(p)).toBe(slotValueSize(v));
      const seen: number[][] = [];
      let at = firstCommandAt(w!);
      for (let i = 0; i < w!.count; i++) {
        at = readBin(w!.buf, at);
        seen.push(Array.from(w!.buf.subarray(BIN_OFF, BIN_OFF + BIN_LEN)));
      }
      expect(at).toBe(w!.end);
      expect(seen).toEqual(v.cmds.map((c) => Array.from(c)));
      expect(slotValueEquals(p, v)).toBe(true);
      expect(normal(p)).toEqual(normal(v));
      expect(packedBatch(p)).toBe(p);
    },
  );

  it('packedBatch leaves a value packBatch does not write as it is', () => {
    const v = { k: 'batch', origin: 'r1', inc: 1, firstId: 1, cmds: [], extra: 1 } as unknown as SlotValue;
    expect(packedBatch(v as Extract<SlotValue, { k: 'batch' }>)).toBe(v);
  });

  it('leaves a value with a field it does not know to msgpackr', () => {
    const v = { k: 'batch', origin: 'r1', inc: 1, firstId: 1, cmds: [], extra: 1 } as unknown as SlotValue;
    expect(packBatch(v as Extract<SlotValue, { k: 'batch' }>)).toBeUndefined();
    expect(normal(decodeValue(slotValueBytes(v)))).toEqual(normal(v));
  });
});
