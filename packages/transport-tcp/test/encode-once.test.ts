import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage, type Message } from '@decree/protocol';
import { EncodeOnce } from '../src/encode-once.ts';
import { arbMessage } from './helpers.ts';

const cmds = Array.from({ length: 64 }, (_, i) => new Uint8Array(64).fill(i));
const accept = (to: string): Message => ({
  type: 'accept',
  ring: 'default',
  from: 'r1',
  to,
  ballot,
  slot: 7,
  value,
  decidedUpTo: 6,
});
const ballot = { round: 3, leader: 'r1' };
const value = { k: 'batch', origin: 'r1', inc: 1, firstId: 10, cmds } as const;

describe('EncodeOnce', () => {
  it('the copy for a second peer is the same bytes as encoding it, without packing again', () => {
    const e = new EncodeOnce(256);
    for (const to of ['r2', 'r3', 'replica-with-a-longer-name', 'x'.repeat(40), 'r2']) {
      const m = accept(to);
      expect(Buffer.from(e.encode(m)).equals(Buffer.from(encodeMessage(m)))).toBe(true);
      expect(decodeMessage(e.encode(accept(to)))).toMatchObject({ to, slot: 7 });
    }
    expect(e.hits).toBeGreaterThan(0);
  });

  it('never reuses across different values, headers, small messages or unknown layouts', () => {
    const e = new EncodeOnce(256);
    e.encode(accept('r2'));
    const other = { ...accept('r3'), slot: 8 };
    expect(decodeMessage(e.encode(other))).toMatchObject({ to: 'r3', slot: 8 });
    const traced = { ...accept('r3'), headers: { traceparent: 'x' } } as Message;
    expect(Buffer.from(e.encode(traced)).equals(Buffer.from(encodeMessage(traced)))).toBe(true);
    // `to` after a non-string field: its offset is not computed, the message is packed each time
    const late = {
      type: 'accept',
      ballot,
      ring: 'default',
      from: 'r1',
      to: 'r2',
      slot: 7,
      value,
      decidedUpTo: 6,
    } as Message;
    const before = e.hits;
    e.encode(late);
    e.encode({ ...late, to: 'r3' } as Message);
    expect(e.hits).toBe(before);
  });

  it('any message sent to two peers encodes as packing each would', () => {
    fc.assert(
      fc.property(arbMessage('r1', 'r2', 'default'), fc.constantFrom('r2', 'r3', 'b', 'node-17'), (m, to2) => {
        const e = new EncodeOnce(0);
        const a = e.encode(m);
        const m2 = { ...m, to: to2 } as Message;
        const b = e.encode(m2);
        expect(Buffer.from(a).equals(Buffer.from(encodeMessage(m)))).toBe(true);
        expect(Buffer.from(b).equals(Buffer.from(encodeMessage(m2)))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
