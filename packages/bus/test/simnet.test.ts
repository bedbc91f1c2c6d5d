import { fc, test } from '@fast-check/vitest';
import { DecodeError, type Message } from '@decree/protocol';
import { describe, expect, it } from 'vitest';
import { Bus, SimNetwork, SimScheduler, type SimNetworkOptions } from '../src/index.ts';
import { decide, tag } from './helpers.ts';

interface Arrival {
  to: string;
  from: string;
  n: number;
  at: number;
  m: Message;
}

/** Three replicas a, b, c, one bus each, joined by a simulated network; every learner records arrivals. */
function cluster(seed: number, opts: SimNetworkOptions = {}, ids = ['a', 'b', 'c']) {
  const sched = new SimScheduler(seed);
  const net = new SimNetwork(sched, sched.rng.fork(), opts);
  const arrivals: Arrival[] = [];
  const buses = new Map<string, Bus>();
  for (const id of ids) {
    const bus = new Bus(sched.env(), net.endpoint(id));
    bus.register('r', id, 'learner', (m) => arrivals.push({ to: id, from: m.from, n: tag(m), at: sched.now(), m }));
    buses.set(id, bus);
  }
  const send = (from: string, to: string, n: number) => buses.get(from)!.send(decide(from, to, n));
  return { sched, net, arrivals, buses, send };
}

/** Sends `count` messages round-robin between all ordered pairs, one per 0.1 ms, and runs to quiescence. */
function traffic(seed: number, opts: SimNetworkOptions, count: number) {
  const c = cluster(seed, opts);
  const pairs = [
    ['a', 'b'],
    ['b', 'c'],
    ['c', 'a'],
    ['a', 'c'],
    ['b', 'a'],
    ['c', 'b'],
  ] as const;
  for (let i = 0; i < count; i++) {
    const [f, t] = pairs[i % pairs.length]!;
    c.sched.at(i * 0.1, () => c.send(f, t, i));
  }
  c.sched.runFor(count * 0.1 + 1000);
  return c;
}

describe('SimNetwork determinism', () => {
  test.prop([fc.integer({ min: 0, max: 2 ** 31 })], { numRuns: 15 })(
    'same seed, same delivery order and times',
    (seed) => {
      const opts = { minDelayMs: 0.1, maxDelayMs: 5, dropRate: 0.1, duplicateRate: 0.1 };
      const x = traffic(seed, opts, 200).arrivals.map((a) => `${a.to}<${a.n}@${a.at}`);
      const y = traffic(seed, opts, 200).arrivals.map((a) => `${a.to}<${a.n}@${a.at}`);
      expect(x).toEqual(y);
    },
  );

  it('different seeds give different orders; a delay spread reorders messages', () => {
    const opts = { minDelayMs: 0.1, maxDelayMs: 5 };
    const x = traffic(1, opts, 300).arrivals.map((a) => a.n);
    const y = traffic(2, opts, 300).arrivals.map((a) => a.n);
    expect(x).not.toEqual(y);
    const sorted = [...x].sort((p, q) => p - q);
    expect(x).not.toEqual(sorted); // some overtaking happened
    expect(sorted).toEqual(Array.from({ length: 300 }, (_, i) => i)); // nothing lost or duplicated
  });

  it('every delay is within [minDelayMs, maxDelayMs]', () => {
    const c = cluster(3, { minDelayMs: 2, maxDelayMs: 4 });
    const sentAt = new Map<number, number>();
    for (let i = 0; i < 200; i++) {
      c.sched.at(i, () => {
        sentAt.set(i, c.sched.now());
        c.send('a', 'b', i);
      });
    }
    c.sched.runFor(1000);
    expect(c.arrivals).toHaveLength(200);
    for (const a of c.arrivals) {
      const d = a.at - sentAt.get(a.n)!;
      expect(d).toBeGreaterThanOrEqual(2);
      expect(d).toBeLessThanOrEqual(4);
    }
  });
});

describe('SimNetwork faults: rates', () => {
  it('dropRate 0.2 drops about a fifth (deterministic seed, wide bounds)', () => {
    const c = traffic(42, { dropRate: 0.2 }, 3000);
    expect(c.net.sent).toBe(3000);
    expect(c.arrivals.length).toBeGreaterThan(2100); // 2400 expected
    expect(c.arrivals.length).toBeLessThan(2700);
    expect(c.net.droppedCount).toBe(3000 - c.arrivals.length);
    expect(new Set(c.arrivals.map((a) => a.n)).size).toBe(c.arrivals.length); // no duplicates
  });

  it('duplicateRate 0.2 duplicates about a fifth', () => {
    const c = traffic(43, { duplicateRate: 0.2 }, 3000);
    expect(c.arrivals.length).toBeGreaterThan(3300); // 3600 expected
    expect(c.arrivals.length).toBeLessThan(3900);
    const counts = new Map<number, number>();
    for (const a of c.arrivals) counts.set(a.n, (counts.get(a.n) ?? 0) + 1);
    expect(counts.size).toBe(3000); // nothing lost
    expect(Math.max(...counts.values())).toBe(2); // never more than one extra copy
    expect(c.net.droppedCount).toBe(0);
  });

  it('rates of 0 lose and duplicate nothing; dropRate 1 loses everything', () => {
    expect(traffic(5, {}, 500).arrivals).toHaveLength(500);
    const all = traffic(5, { dropRate: 1 }, 500);
    expect(all.arrivals).toHaveLength(0);
    expect(all.net.droppedCount).toBe(500);
  });
});

describe('SimNetwork faults: partitions, links, crashed nodes', () => {
  const received = (c: ReturnType<typeof cluster>) => c.arrivals.map((a) => `${a.from}>${a.to}`).sort();

  it('partition isolates groups both ways; inside a group messages flow; heal restores', () => {
    const c = cluster(1);
    c.net.partition([['a'], ['b', 'c']]);
    for (const [f, t] of [
      ['a', 'b'],
      ['b', 'a'],
      ['a', 'c'],
      ['c', 'a'],
      ['b', 'c'],
      ['c', 'b'],
    ])
      c.send(f!, t!, 0);
    c.sched.runFor(10);
    expect(received(c)).toEqual(['b>c', 'c>b']);
    expect(c.net.linkUp('a', 'b')).toBe(false);
    expect(c.net.linkUp('b', 'c')).toBe(true);
    c.net.heal();
    c.arrivals.length = 0;
    c.send('a', 'b', 1);
    c.send('c', 'a', 2);
    c.sched.runFor(10);
    expect(received(c)).toEqual(['a>b', 'c>a']);
  });

  it('a new partition replaces the previous one; replicas in no group are not cut', () => {
    const c = cluster(1, {}, ['a', 'b', 'c', 'd']);
    c.net.partition([['a'], ['b']]);
    c.net.partition([['a', 'b'], ['c']]);
    expect(c.net.linkUp('a', 'b')).toBe(true);
    expect(c.net.linkUp('a', 'c')).toBe(false);
    expect(c.net.linkUp('d', 'a')).toBe(true);
    expect(c.net.linkUp('c', 'd')).toBe(true);
  });

  it('a message in flight when the partition starts is lost', () => {
    const c = cluster(1, { minDelayMs: 5, maxDelayMs: 5 });
    c.send('a', 'b', 1);
    c.sched.runFor(1);
    c.net.partition([['a'], ['b', 'c']]);
    c.sched.runFor(10);
    expect(c.arrivals).toEqual([]);
    expect(c.net.droppedCount).toBe(1);
  });

  it('cutLink cuts one direction or both; transports report it through isConnected', () => {
    const c = cluster(1);
    const ta = c.net.endpoint('x');
    c.net.cutLink('a', 'b', false);
    expect(c.net.linkUp('a', 'b')).toBe(false);
    expect(c.net.linkUp('b', 'a')).toBe(true);
    c.send('a', 'b', 1);
    c.send('b', 'a', 2);
    c.sched.runFor(10);
    expect(received(c)).toEqual(['b>a']);
    c.net.cutLink('a', 'c');
    expect(c.net.linkUp('a', 'c')).toBe(false);
    expect(c.net.linkUp('c', 'a')).toBe(false);
    c.net.cutLink('x', 'b');
    expect(ta.isConnected('b')).toBe(false);
    expect(ta.isConnected('a')).toBe(true);
  });

  it('a crashed node neither sends nor receives, and loses what was in flight to it; it can come back', () => {
    const c = cluster(1, { minDelayMs: 5, maxDelayMs: 5 });
    c.send('a', 'b', 1); // in flight when b goes down
    c.sched.runFor(1);
    c.net.setDown('b', true);
    c.send('b', 'c', 2);
    c.send('c', 'b', 3);
    c.send('a', 'c', 4);
    c.sched.runFor(20);
    expect(received(c)).toEqual(['a>c']);
    expect(c.net.linkUp('a', 'b')).toBe(false);
    c.net.setDown('b', false);
    c.send('c', 'b', 5);
    c.sched.runFor(20);
    expect(c.arrivals.map((a) => a.n)).toEqual([4, 5]);
  });

  it('an endpoint hosting several replicas checks links with the real sender (regression)', () => {
    const sched = new SimScheduler(1);
    const net = new SimNetwork(sched, sched.rng.fork());
    const got: string[] = [];
    const ab = new Bus(sched.env(), net.endpoint(['a', 'b']));
    const cBus = new Bus(sched.env(), net.endpoint('c'));
    for (const id of ['a', 'b']) ab.register('r', id, 'learner', (m) => got.push(`${m.from}>${id}`));
    cBus.register('r', 'c', 'learner', (m) => got.push(`${m.from}>c`));
    net.cutLink('b', 'c');
    ab.send(decide('a', 'c', 1));
    ab.send(decide('b', 'c', 2));
    cBus.send(decide('c', 'a', 3));
    cBus.send(decide('c', 'b', 4));
    sched.runFor(10);
    expect(got.sort()).toEqual(['a>c', 'c>a']);
  });

  it('a closed endpoint receives nothing more', async () => {
    const c = cluster(1);
    await c.buses.get('b')!.close();
    c.send('a', 'b', 1);
    c.sched.runFor(10);
    expect(c.arrivals).toEqual([]);
  });
});

describe('SimNetwork serialize mode', () => {
  it('delivers a decoded copy: equal content, bytes intact, not the same object', () => {
    const c = cluster(1, { serialize: true });
    const m: Message = {
      type: 'accept',
      ring: 'r',
      from: 'a',
      to: 'b',
      ballot: { round: 2, leader: 'a' },
      slot: 5,
      decidedUpTo: 4,
      value: {
        k: 'batch',
        origin: 'a',
        inc: 1,
        firstId: 0,
        cmds: [new Uint8Array([1, 2, 3]), new Uint8Array(64).fill(7)],
      },
    };
    const got: Message[] = [];
    c.buses.get('b')!.register('r', 'b', 'acceptor', (x) => got.push(x));
    c.buses.get('a')!.send(m);
    c.sched.runFor(10);
    expect(got).toHaveLength(1);
    expect(got[0]).not.toBe(m);
    const back = got[0]!;
    if (back.type !== 'accept' || back.value.k !== 'batch') throw new Error('wrong shape');
    expect(back.value.cmds[0]).toBeInstanceOf(Uint8Array);
    expect(Array.from(back.value.cmds[0]!)).toEqual([1, 2, 3]);
    expect(Array.from(back.value.cmds[1]!)).toEqual(new Array(64).fill(7));
    expect({ ...back, value: undefined }).toEqual({ ...m, value: undefined });
  });

  it('without serialize the same object is delivered', () => {
    const c = cluster(1);
    const m = decide('a', 'b', 1);
    c.buses.get('a')!.send(m);
    c.sched.runFor(10);
    expect(c.arrivals[0]!.m).toBe(m);
  });

  it('a message the wire would reject surfaces as a DecodeError in the simulation', () => {
    const c = cluster(1, { serialize: true });
    c.buses.get('a')!.send({ ...decide('a', 'b', 1), upTo: -3 } as Message);
    expect(() => c.sched.runFor(10)).toThrow(DecodeError);
  });
});
