import { createHash } from 'node:crypto';
import { encodeMessage, type Message, type SlotValue } from '@decree/protocol';
import { describe, expect, it } from 'vitest';
import {
  Bus,
  SimNetwork,
  SimScheduler,
  TCP_QUEUE_BYTES,
  controlOrBulk,
  estimateMessageSize,
  twoLanes,
  type SimNetworkOptions,
} from '../src/index.ts';
import { B, decide, heartbeat, tag } from './helpers.ts';

interface Arrival {
  to: string;
  n: number;
  at: number;
  type: string;
}

function cluster(seed: number, opts: SimNetworkOptions = {}, ids = ['a', 'b', 'c']) {
  const sched = new SimScheduler(seed);
  const net = new SimNetwork(sched, sched.rng.fork(), opts);
  const arrivals: Arrival[] = [];
  const buses = new Map<string, Bus>();
  for (const id of ids) {
    const bus = new Bus(sched.env(), net.endpoint(id));
    const rec = (m: Message) => arrivals.push({ to: id, n: tag(m), at: sched.now(), type: m.type });
    bus.register('r', id, 'learner', rec);
    bus.register('r', id, 'elector', rec);
    buses.set(id, bus);
  }
  const send = (m: Message) => buses.get(m.from)!.send(m);
  return { sched, net, arrivals, send };
}

/** A sizeOf that reads the size from the Decide's upTo field (n = size in thousands), minus the frame header. */
const sizeFromTag = (m: Message) => (m.type === 'decide' ? 1000 * Math.floor(m.upTo / 1000) : 100) - 4;

describe('SimNetwork without links: unchanged', () => {
  it('draws the same random numbers and delivers at the same times as before bounded links existed', () => {
    // fingerprint of this traffic computed with the SimNetwork of main before `links` (commit a61ad36)
    const c = cluster(7, { minDelayMs: 0.1, maxDelayMs: 5, dropRate: 0.1, duplicateRate: 0.1 });
    const pairs = [
      ['a', 'b'],
      ['b', 'c'],
      ['c', 'a'],
      ['a', 'c'],
      ['b', 'a'],
      ['c', 'b'],
    ] as const;
    for (let i = 0; i < 500; i++) {
      const [f, t] = pairs[i % 6]!;
      c.sched.at(i * 0.1, () => c.send(decide(f, t, i)));
    }
    c.sched.runFor(1000);
    const fp = c.arrivals.map((a) => `${a.to}<${a.n}@${a.at}`).join(',');
    expect(c.arrivals).toHaveLength(511);
    expect(createHash('sha256').update(fp).digest('hex').slice(0, 16)).toBe('0b2a1a42c97759ff');
    expect(c.net.linkStats()).toBeUndefined();
  });
});

describe('SimNetwork links: bounded queues', () => {
  it('a burst above the byte bound loses its tail, and counts each drop', () => {
    // 1 MB messages, 8 MB per lane: one goes on the wire at once, 8 wait, the other 11 are dropped
    const c = cluster(1, { links: { sizeOf: sizeFromTag, lanes: [{ name: 'default', maxBytes: 8_000_000 }] } });
    for (let i = 0; i < 20; i++) c.send(decide('a', 'b', 1_000_000 + i));
    c.sched.runFor(1000);
    expect(c.arrivals.map((a) => a.n - 1_000_000)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    const st = c.net.linkStats()!;
    expect(st.drops).toEqual({ full: 11, down: 0, loss: 0 });
    expect(st.fullByType).toEqual({ decide: 11 });
    expect(st.lanes[0]).toMatchObject({ name: 'default', sent: 9, sentBytes: 9_000_000, dropsFull: 11, queued: 0 });
    expect(st.lanes[0]!.maxQueuedBytes).toBe(8_000_000);
    expect(c.net.droppedCount).toBe(11);
  });

  it("the default bounds are the TCP transport's: 8 MiB and 16384 messages", () => {
    const c = cluster(1, { links: { bandwidthBytesPerMs: 1, sizeOf: sizeFromTag } });
    // 20000 small messages: the wire takes one, 16384 wait, the rest are dropped
    for (let i = 0; i < 20_000; i++) c.send(heartbeat('a', 'b', i));
    expect(c.net.linkStats()!.drops.full).toBe(20_000 - 1 - 16_384);
    // 600 KB messages on another link: 1 on the wire + floor(8 MiB / 600 KB) = 13 waiting
    for (let i = 0; i < 30; i++) c.send(decide('a', 'c', 600_000 + i));
    expect(c.net.queuedBytes('a', 'c')).toBe(13 * 600_000);
    expect(TCP_QUEUE_BYTES).toBe(8 * 1024 * 1024);
  });

  it('one oversized message is accepted into an empty lane (as the TCP transport does), not behind others', () => {
    const lanes = [{ name: 'x', maxBytes: 5000 }];
    const c = cluster(1, { links: { sizeOf: sizeFromTag, bandwidthBytesPerMs: 1000, lanes } });
    c.send(decide('a', 'b', 1000)); // on the wire
    c.send(decide('a', 'b', 9000)); // alone in the lane: accepted although above the bound
    c.send(decide('a', 'b', 1001)); // behind it, over the bound: dropped
    c.sched.runFor(100);
    expect(c.arrivals.map((a) => a.n)).toEqual([1000, 9000]);
    expect(c.net.linkStats()!.drops.full).toBe(1);
  });

  it('a lane full in messages drops', () => {
    const c = cluster(1, { links: { lanes: [{ name: 'x', maxMessages: 3 }] } });
    for (let i = 0; i < 10; i++) c.send(heartbeat('a', 'b', i));
    c.sched.runFor(100);
    expect(c.arrivals.map((a) => a.n)).toEqual([0, 1, 2, 3]);
  });
});

describe('SimNetwork links: bandwidth and order', () => {
  it('a message takes size / bandwidth of virtual time on the link, then the propagation delay', () => {
    const c = cluster(1, {
      minDelayMs: 1,
      maxDelayMs: 1,
      links: { sizeOf: sizeFromTag, bandwidthBytesPerMs: 1000 },
    });
    c.send(decide('a', 'b', 50_000)); // 50 ms on the wire
    c.send(decide('a', 'b', 20_000)); // then 20 ms
    c.send(decide('b', 'a', 10_000)); // another link: in parallel
    c.sched.runFor(1000);
    const at = new Map(c.arrivals.map((a) => [a.n, a.at]));
    expect(at.get(50_000)).toBeCloseTo(51, 6);
    expect(at.get(20_000)).toBeCloseTo(71, 6);
    expect(at.get(10_000)).toBeCloseTo(11, 6);
  });

  it('a link is FIFO even with a delay spread (TCP does not reorder)', () => {
    const c = cluster(3, { minDelayMs: 0.1, maxDelayMs: 5, links: {} });
    for (let i = 0; i < 300; i++) c.sched.at(i * 0.01, () => c.send(decide('a', 'b', i)));
    c.sched.runFor(1000);
    expect(c.arrivals.map((a) => a.n)).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });

  it('with two lanes a control message overtakes the bulk messages queued before it', () => {
    const c = cluster(1, {
      links: { ...twoLanes(), bandwidthBytesPerMs: 1000, sizeOf: (m) => (m.type === 'promise' ? 100_000 : 100) },
    });
    const page = (i: number): Message => ({
      type: 'promise',
      ring: 'r',
      from: 'a',
      to: 'b',
      ballot: B,
      fromSlot: i,
      accepted: [{ slot: i, ballot: B, value: { k: 'noop' } }],
      truncatedBelow: 0,
    });
    const got: number[] = [];
    const bus = new Bus(c.sched.env(), c.net.endpoint('b'));
    bus.register('r', 'b', 'proposer', (m) => got.push(m.type === 'promise' ? m.fromSlot : -1));
    bus.register('r', 'b', 'elector', () => got.push(-1));
    for (let i = 0; i < 5; i++) c.send(page(i));
    c.send(heartbeat('a', 'b', 0));
    c.sched.runFor(10_000);
    // page 0 was on the wire already; the heartbeat goes next, ahead of pages 1-4
    expect(got).toEqual([0, -1, 1, 2, 3, 4]);
    const st = c.net.linkStats()!;
    expect(st.lanes.map((l) => [l.name, l.sent])).toEqual([
      ['control', 1],
      ['bulk', 5],
    ]);
  });

  it('each lane has its own bound: a full bulk lane does not drop control messages', () => {
    const c = cluster(1, {
      links: { ...twoLanes({ bulk: { maxMessages: 2 } }), bandwidthBytesPerMs: 1 },
    });
    const page = (i: number): Message => ({
      type: 'catchup-rep',
      ring: 'r',
      from: 'a',
      to: 'b',
      entries: [{ slot: i, value: { k: 'noop' } }],
      truncatedBelow: 0,
      chosenUpTo: i,
    });
    for (let i = 0; i < 10; i++) c.send(page(i));
    for (let i = 0; i < 10; i++) c.send(heartbeat('a', 'b', i));
    const st = c.net.linkStats()!;
    expect(st.lanes.map((l) => [l.name, l.dropsFull])).toEqual([
      ['control', 0],
      ['bulk', 7],
    ]);
    expect(st.fullByType).toEqual({ 'catchup-rep': 7 });
  });

  it('controlOrBulk puts promise pages, catch-up replies and snapshot chunks in bulk, the rest in control', () => {
    const one = [{ slot: 1, ballot: B, value: { k: 'noop' as const } }];
    const types = [
      'promise',
      'catchup-rep',
      'snap-chunk',
      'client-req',
      'heartbeat',
      'pre-vote',
      'prepare',
      'accept',
      'accepted',
      'decide',
      'nack',
      'snap-req',
      'catchup-req',
    ] as const;
    const full = (t: (typeof types)[number]) => ({ type: t, accepted: one, entries: one }) as unknown as Message;
    expect(types.map((t) => controlOrBulk(full(t)))).toEqual([
      'bulk',
      'bulk',
      'bulk',
      'bulk',
      'control',
      'control',
      'control',
      'control',
      'control',
      'control',
      'control',
      'control',
      'control',
    ]);
    // an empty promise or catch-up answer is small: it travels with the control messages
    expect(controlOrBulk({ type: 'promise', accepted: [] } as unknown as Message)).toBe('control');
    expect(controlOrBulk({ type: 'catchup-rep', entries: [] } as unknown as Message)).toBe('control');
  });
});

describe('SimNetwork links: crashes, cuts, determinism', () => {
  it("a crashed node's queues are lost and counted; after a restart its links work again", () => {
    const c = cluster(1, { links: { bandwidthBytesPerMs: 0.1 } }); // ~1 s per heartbeat on the wire
    for (let i = 0; i < 10; i++) c.send(heartbeat('a', 'b', i));
    for (let i = 0; i < 4; i++) c.send(heartbeat('b', 'c', 100 + i));
    c.sched.runFor(1);
    c.net.setDown('b', true);
    c.sched.runFor(10_000);
    expect(c.arrivals).toEqual([]);
    expect(c.net.linkStats()!.drops.down).toBe(14);
    expect(c.net.droppedCount).toBe(14);
    c.net.setDown('b', false);
    c.send(heartbeat('a', 'b', 50));
    c.sched.runFor(10_000);
    expect(c.arrivals.map((a) => a.n)).toEqual([50]);
  });

  it('what a cut link carries is lost on arrival; drops by cause add up to droppedCount', () => {
    const c = cluster(1, { dropRate: 0.3, links: {} });
    for (let i = 0; i < 200; i++) c.send(heartbeat('a', 'b', i));
    c.net.cutLink('a', 'b');
    c.sched.runFor(100);
    for (let i = 0; i < 10; i++) c.send(heartbeat('a', 'b', i));
    const d = c.net.linkStats()!.drops;
    expect(c.arrivals).toEqual([]);
    expect(d.loss).toBeGreaterThan(30);
    expect(d.down).toBe(210 - d.loss);
    expect(d.full + d.down + d.loss).toBe(c.net.droppedCount);
  });

  it('the same seed gives the same arrivals and times', () => {
    const run = (seed: number) => {
      const c = cluster(seed, {
        minDelayMs: 0.1,
        maxDelayMs: 3,
        dropRate: 0.05,
        duplicateRate: 0.05,
        links: {
          ...twoLanes({ control: { maxMessages: 40 }, bulk: { maxMessages: 20 } }),
          bandwidthBytesPerMs: 50,
        },
      });
      for (let i = 0; i < 400; i++)
        c.sched.at(i * 0.05, () => c.send(i % 3 ? heartbeat('a', i % 2 ? 'b' : 'c', i) : decide('b', 'a', i)));
      c.sched.runFor(10_000);
      return c.arrivals.map((a) => `${a.to}<${a.n}@${a.at}`);
    };
    expect(run(9)).toEqual(run(9));
    expect(run(9)).not.toEqual(run(10));
  });

  it('with serialize, the size is the encoded length plus the frame header', () => {
    const c = cluster(1, { serialize: true, links: {} });
    const m = decide('a', 'b', 5);
    c.send(m);
    c.sched.runFor(10);
    expect(c.net.linkStats()!.lanes[0]!.sentBytes).toBe(encodeMessage(m).length + 4);
    expect(c.arrivals).toHaveLength(1);
  });
});

describe('estimateMessageSize', () => {
  const bytes = (n: number, fill = 7) => new Uint8Array(n).fill(fill);
  const batch = (sizes: number[]): SlotValue => ({
    k: 'batch',
    origin: 'r1',
    inc: 3,
    firstId: 1234,
    cmds: sizes.map((s) => bytes(s)),
  });
  const h = { ring: 'r', from: 'r1', to: 'r2' };
  const cases: [string, Message][] = [
    ['accept 100 KB', { type: 'accept', ...h, ballot: B, slot: 123456, value: batch([100_000]), decidedUpTo: 123455 }],
    [
      'accept 64 small cmds',
      {
        type: 'accept',
        ...h,
        ballot: B,
        slot: 7,
        value: batch(new Array(64).fill(20)),
        decidedUpTo: 6,
      },
    ],
    [
      'promise page',
      {
        type: 'promise',
        ...h,
        ballot: B,
        fromSlot: 10,
        truncatedBelow: 5,
        executedUpTo: 9,
        pageFrom: 10,
        more: 50,
        accepted: Array.from({ length: 40 }, (_, i) => ({ slot: 10 + i, ballot: B, value: batch([10_000, 30]) })),
      },
    ],
    [
      'catchup-rep',
      {
        type: 'catchup-rep',
        ...h,
        truncatedBelow: 0,
        chosenUpTo: 99,
        entries: Array.from({ length: 20 }, (_, i) => ({ slot: 80 + i, value: i % 2 ? batch([5000]) : { k: 'noop' } })),
      },
    ],
    [
      'snap-chunk',
      {
        type: 'snap-chunk',
        ...h,
        xfer: 1,
        slot: 900,
        members: ['r1', 'r2', 'r3'],
        length: 1 << 20,
        crc: 123456789,
        index: 3,
        count: 16,
        chunkCrc: 987654321,
        data: bytes(65536),
      },
    ],
    ['heartbeat', heartbeat('r1', 'r2', 77)],
    ['accepted', { type: 'accepted', ...h, ballot: B, slot: 1234 }],
    ['prepare', { type: 'prepare', ...h, ballot: B, fromSlot: 4321 }],
  ];
  it.each(cases.map(([name, m]) => ({ name, m })))('$name: within 10% + 64 bytes of the encoded length', ({ m }) => {
    const enc = encodeMessage(m).length;
    const est = estimateMessageSize(m);
    expect(Math.abs(est - enc)).toBeLessThanOrEqual(enc * 0.1 + 64);
  });
});
