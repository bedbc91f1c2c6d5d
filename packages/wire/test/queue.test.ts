/**
 * The bounded per-peer queue: each lane bounded in bytes and in messages, drops counted per lane,
 * control written ahead of bulk, FIFO within a lane, and a model check under random operations.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FRAME_HEADER_BYTES, FrameReader, LaneQueue, PeerQueue } from '../src/index.ts';

const bytes = (n: number, fill = 0): Uint8Array => new Uint8Array(n).fill(fill);

function unframe(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  new FrameReader(
    1 << 30,
    (p) => (out.push(Buffer.from(p)), true),
    () => {},
  ).push(buf);
  return out;
}

describe('LaneQueue', () => {
  it('is bounded in messages: the one past the bound is dropped and counted', () => {
    const q = new LaneQueue({ maxBytes: 1 << 20, maxMessages: 3 });
    expect([1, 2, 3, 4, 5].map((i) => q.offer(bytes(1, i)))).toEqual([true, true, true, false, false]);
    expect(q.length).toBe(3);
    expect(q.drops).toBe(2);
  });

  it('is bounded in bytes, each payload counted with its frame header', () => {
    const q = new LaneQueue({ maxBytes: 20, maxMessages: 100 });
    expect(q.offer(bytes(6))).toBe(true); // 10 bytes
    expect(q.offer(bytes(6))).toBe(true); // 20
    expect(q.offer(bytes(0))).toBe(false); // 24 > 20
    expect(q.bytes).toBe(2 * (6 + FRAME_HEADER_BYTES));
    expect(q.drops).toBe(1);
    const raw = new LaneQueue({ maxBytes: 12, maxMessages: 100 }, 0); // a ring counts payload bytes only
    expect([raw.offer(bytes(6)), raw.offer(bytes(6)), raw.offer(bytes(1))]).toEqual([true, true, false]);
    expect(raw.bytes).toBe(12);
  });

  it('an empty lane takes one payload of any size (delayed, never refused for its size alone)', () => {
    const q = new LaneQueue({ maxBytes: 10, maxMessages: 5 });
    expect(q.offer(bytes(1000))).toBe(true);
    expect(q.offer(bytes(1))).toBe(false);
    expect(q.drops).toBe(1);
  });

  it('takeFramed takes from the head up to a byte budget (at least one), as frames in one buffer', () => {
    const q = new LaneQueue({ maxBytes: 1 << 20, maxMessages: 100 });
    for (let i = 0; i < 5; i++) q.offer(bytes(10, i));
    const first = q.takeFramed(30); // two frames of 14 bytes fit in 30
    expect(first.count).toBe(2);
    expect(first.bytes).toBe(28);
    expect(unframe(first.buf).map((p) => p[0])).toEqual([0, 1]);
    const big = q.takeFramed(1); // the budget is below one frame: one goes anyway
    expect(big.count).toBe(1);
    expect(unframe(big.buf).map((p) => p[0])).toEqual([2]);
    expect(q.length).toBe(2);
    expect(q.bytes).toBe(28);
    expect(unframe(q.takeFramed(1 << 20).buf).map((p) => p[0])).toEqual([3, 4]);
    expect(q.length).toBe(0);
    expect(q.bytes).toBe(0);
  });

  it('items and shift: what a ring accepted leaves the head, the rest waits in order', () => {
    const q = new LaneQueue({ maxBytes: 1 << 20, maxMessages: 100 }, 0);
    for (let i = 0; i < 4; i++) q.offer(bytes(3, i));
    expect(q.items().map((p) => p[0])).toEqual([0, 1, 2, 3]);
    expect(q.shift(3)).toBe(9);
    expect(q.items().map((p) => p[0])).toEqual([3]);
    q.offer(bytes(3, 4));
    expect(q.items().map((p) => p[0])).toEqual([3, 4]);
    expect(q.bytes).toBe(6);
    expect(q.clear()).toBe(2);
    expect(q.drops).toBe(0); // a clear is not a drop
  });
});

describe('PeerQueue', () => {
  const bounds = { control: { maxBytes: 100, maxMessages: 4 }, bulk: { maxBytes: 40, maxMessages: 2 } };

  it('control is written ahead of bulk, FIFO within each lane', () => {
    const q = new PeerQueue(bounds);
    q.offer(bytes(1, 0xb1), 'bulk');
    q.offer(bytes(1, 0xc1), 'control');
    q.offer(bytes(1, 0xb2), 'bulk');
    q.offer(bytes(1, 0xc2), 'control');
    const order: number[] = [];
    for (let lane = q.next(); lane; lane = q.next()) {
      const { buf } = lane.takeFramed(5); // one frame per write
      order.push(...unframe(buf).map((p) => p[0]!));
      if (order.length === 1) q.offer(bytes(1, 0xc3), 'control'); // control arriving while bulk waits goes next
    }
    expect(order).toEqual([0xc1, 0xc2, 0xc3, 0xb1, 0xb2]);
    expect(q.length).toBe(0);
  });

  it('each lane has its own bounds and drop count: a full bulk lane never costs a heartbeat', () => {
    const q = new PeerQueue(bounds);
    for (let i = 0; i < 5; i++) q.offer(bytes(10), 'bulk'); // 14 bytes each: 2 fit (also the message bound)
    expect(q.bulk.length).toBe(2);
    expect(q.bulk.drops).toBe(3);
    for (let i = 0; i < 6; i++) expect(q.offer(bytes(1), 'control')).toBe(i < 4);
    expect(q.control.drops).toBe(2);
    expect(q.drops).toBe(5);
    expect(q.length).toBe(6);
    expect(q.bytes).toBe(2 * 14 + 4 * 5);
    expect(q.clear()).toBe(6);
    expect(q.next()).toBeUndefined();
  });

  it('matches a model under random offers and takes (bounds, drops, order)', () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('offer' as const),
        lane: fc.constantFrom('control' as const, 'bulk' as const),
        size: fc.nat(30),
      }),
      fc.record({ kind: fc.constant('take' as const), budget: fc.nat(80) }),
    );
    fc.assert(
      fc.property(
        fc.nat(60),
        fc.integer({ min: 1, max: 5 }),
        fc.nat(60),
        fc.integer({ min: 1, max: 5 }),
        fc.array(op, { maxLength: 60 }),
        (cb, cm, bb, bm, ops) => {
          const q = new PeerQueue({
            control: { maxBytes: cb, maxMessages: cm },
            bulk: { maxBytes: bb, maxMessages: bm },
          });
          const model = { control: [] as number[], bulk: [] as number[], drops: { control: 0, bulk: 0 } };
          const max = { control: { b: cb, m: cm }, bulk: { b: bb, m: bm } };
          let id = 0;
          for (const o of ops) {
            if (o.kind === 'offer') {
              const m = model[o.lane];
              const used = m.reduce((s, n) => s + (n >> 8) + 4, 0);
              const fits = m.length === 0 || (m.length < max[o.lane].m && used + o.size + 1 + 4 <= max[o.lane].b);
              const tag = id++ & 0xff;
              const p = bytes(o.size + 1, tag);
              expect(q.offer(p, o.lane)).toBe(fits);
              if (fits) m.push(((o.size + 1) << 8) | tag);
              else model.drops[o.lane]++;
            } else {
              const lane = q.next();
              const name = model.control.length ? 'control' : model.bulk.length ? 'bulk' : undefined;
              expect(lane && (lane === q.control ? 'control' : 'bulk')).toBe(name);
              if (!lane || !name) continue;
              const got = unframe(lane.takeFramed(o.budget).buf);
              const want = model[name].splice(0, got.length);
              expect(got.length).toBeGreaterThanOrEqual(1);
              expect(got.map((p) => (p.length << 8) | p[0]!)).toEqual(want);
            }
            for (const l of ['control', 'bulk'] as const) {
              const lane = q.lane(l);
              expect(lane.length).toBe(model[l].length);
              expect(lane.drops).toBe(model.drops[l]);
              expect(lane.length <= max[l].m || lane.length === 1).toBe(true);
              expect(lane.bytes <= max[l].b || lane.length === 1).toBe(true);
            }
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
