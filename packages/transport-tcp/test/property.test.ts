import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Message } from '@decree/protocol';
import {
  FrameReader,
  HandshakeError,
  KIND_AUTH,
  KIND_HELLO,
  KIND_WELCOME,
  MAGIC,
  decodeAuth,
  STATUS_OK,
  STATUS_VERSION,
  decodeHello,
  decodeWelcome,
  encodeHello,
  encodeWelcome,
  frames,
  negotiateVersion,
  type PeerAddress,
} from '../src/index.ts';
import { arbMessage, node, tick, waitFor, byLane, type Node } from './helpers.ts';

describe('framing properties', () => {
  it('any payloads, cut into any chunks, come out whole and in order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 30 }),
        fc.array(fc.nat({ max: 700 }), { maxLength: 40 }),
        (payloads, cuts) => {
          const wireBytes = frames(payloads);
          const out: Buffer[] = [];
          const r = new FrameReader(
            1000,
            (p) => (out.push(Buffer.from(p)), true),
            () => {
              throw new Error('no frame is oversized here');
            },
          );
          let off = 0;
          for (const c of cuts) {
            if (off >= wireBytes.length) break;
            r.push(wireBytes.subarray(off, off + c));
            off += c;
          }
          r.push(wireBytes.subarray(off));
          expect(out.map((b) => b.toString('hex'))).toEqual(payloads.map((p) => Buffer.from(p).toString('hex')));
          expect(r.buffered).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a frame inside one chunk is a view of it; one across chunks is copied alone, not the bytes after it', () => {
    const a = Buffer.from([1, 2, 3, 4, 5]);
    const b = Buffer.alloc(3000, 7);
    const wire = frames([a, b, a]);
    const out: Buffer[] = [];
    const r = new FrameReader(
      1 << 20,
      (p) => (out.push(p), true),
      () => {},
    );
    const first = wire.subarray(0, 2000); // all of a, the start of b
    r.push(first);
    expect(out).toHaveLength(1);
    expect(out[0]!.buffer).toBe(first.buffer); // a view, no copy
    r.push(wire.subarray(2000)); // the rest of b, and all of the last a
    expect(out.map((p) => p.length)).toEqual([5, 3000, 5]);
    expect(out[1]!.buffer).not.toBe(first.buffer); // b crossed the cut: copied
    expect(out[1]!.byteLength).toBe(3000);
    expect(out[2]!.buffer).toBe(wire.buffer); // the last a lies in the second chunk: a view again
    expect(r.buffered).toBe(0);
  });

  it('a length above the maximum stops the reader wherever the cut falls', () => {
    fc.assert(
      fc.property(fc.nat({ max: 7 }), (cut) => {
        const bad = Buffer.alloc(8);
        bad.writeUInt32BE(5000, 0);
        let oversize = -1;
        const r = new FrameReader(
          4096,
          () => true,
          (n) => (oversize = n),
        );
        r.push(bad.subarray(0, cut));
        r.push(bad.subarray(cut));
        expect(oversize).toBe(5000);
        expect(r.dead).toBe(true);
      }),
    );
  });

  it('hello and welcome round-trip; versions negotiate to the highest common one', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ minLength: 1, maxLength: 10 }), { minLength: 1, maxLength: 5 }),
        fc.nat({ max: 0xffff }),
        fc.nat({ max: 0xffff }),
        (ids, x, y) => {
          const [min, max] = x <= y ? [x, y] : [y, x];
          expect(decodeHello(encodeHello({ minVersion: min, maxVersion: max, ids, to: ids[0]! }))).toEqual({
            minVersion: min,
            maxVersion: max,
            ids,
            to: ids[0],
          });
          expect(decodeWelcome(encodeWelcome({ status: STATUS_OK, version: max, ids }))).toEqual({
            status: STATUS_OK,
            version: max,
            ids,
          });
          expect(decodeWelcome(encodeWelcome({ status: STATUS_VERSION, version: 0, ids, error: 'no' })).error).toBe(
            'no',
          );
          const v = negotiateVersion({ min, max }, { min: 1, max: 3 });
          if (max < 1 || min > 3) expect(v).toBeUndefined();
          else expect(v).toBe(Math.min(max, 3));
        },
      ),
    );
  });
});

describe('handshake decoders on hostile bytes', () => {
  it('throw HandshakeError or succeed, nothing else', () => {
    const prefix = (kind: number) =>
      fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.concat([MAGIC, Buffer.from([kind]), b]));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b)),
          prefix(KIND_HELLO),
          prefix(KIND_WELCOME),
          prefix(KIND_AUTH),
        ),
        (buf) => {
          for (const dec of [decodeHello, decodeWelcome, decodeAuth]) {
            try {
              dec(buf);
            } catch (e) {
              expect(e).toBeInstanceOf(HandshakeError);
            }
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('transport property', () => {
  let a: Node;
  let b: Node;
  beforeAll(async () => {
    const dir: Record<string, PeerAddress> = {};
    a = await node('A', dir);
    b = await node('B', dir);
    dir.A = { host: '127.0.0.1', port: a.port };
    dir.B = { host: '127.0.0.1', port: b.port };
  });
  afterAll(async () => {
    await Promise.all([a.t.close(), b.t.close()]);
  });

  it('any sequence of messages sent A->B (and B->A) arrives intact, in order within each lane', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        // batches: the messages of one batch are sent in one tick, batches in separate ticks
        fc.tuple(
          fc.array(fc.array(arbMessage('A', 'B', 'p'), { maxLength: 12 }), { maxLength: 6 }),
          fc.array(arbMessage('B', 'A', 'p'), { maxLength: 8 }),
        ),
        async ([batches, back]) => {
          const ring = `run-${run++}`;
          const ab: Message[] = batches.flat().map((m) => ({ ...m, ring }));
          const ba: Message[] = back.map((m) => ({ ...m, ring }));
          const onB = () => b.got.filter((m) => m.ring === ring);
          const onA = () => a.got.filter((m) => m.ring === ring);
          let i = 0;
          for (const batch of batches) {
            for (let j = 0; j < batch.length; j++) a.t.send(ab[i++]!);
            await tick();
          }
          for (const m of ba) b.t.send(m);
          await waitFor(() => onB().length >= ab.length && onA().length >= ba.length, 'everything');
          await tick();
          expect(byLane(onB())).toEqual(byLane(ab));
          expect(byLane(onA())).toEqual(byLane(ba));
        },
      ),
      { numRuns: 60 },
    );
    expect(a.t.stats().drops + b.t.stats().drops).toBe(0);
    expect(a.t.stats().decodeErrors + b.t.stats().decodeErrors).toBe(0);
    expect(b.t.stats().inboundAccepted).toBe(1);
  });
});
