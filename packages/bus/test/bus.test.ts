import { fc, test } from '@fast-check/vitest';
import { MESSAGE_TYPES, ROLE_OF, ROLES, type Message, type Role } from '@decree/protocol';
import { describe, expect, it } from 'vitest';
import { Bus, realEnv, SimScheduler, type Transport } from '../src/index.ts';
import { accepted, decide, executed, heartbeat, prepare, tag } from './helpers.ts';

type Got = { role: Role; replica: string; ring: string; m: Message };

function setup(transport?: Transport) {
  const sched = new SimScheduler(1);
  const bus = new Bus(sched.env(), transport);
  const got: Got[] = [];
  const reg = (ring: string, replica: string, role: Role) =>
    bus.register(ring, replica, role, (m) => got.push({ role, replica, ring, m }));
  return { sched, bus, got, reg };
}

/** A transport that records what it is given and lets the test inject arrivals. */
function fakeTransport() {
  const sent: Message[] = [];
  let receiver: ((m: Message) => void) | undefined;
  let closed = false;
  const t: Transport = {
    send: (m) => sent.push(m),
    setReceiver: (r) => (receiver = r),
    isConnected: () => true,
    close: async () => {
      closed = true;
    },
  };
  return { t, sent, arrive: (m: Message) => receiver!(m), isClosed: () => closed };
}

/** A minimal valid message of any type, addressed as given. */
function minimal(type: Message['type'], ring: string, from: string, to: string): Message {
  return { type, ring, from, to } as unknown as Message; // routing reads only type, ring and to
}

describe('Bus routing by (ring, replica, role)', () => {
  it(
    'every message type reaches the role ROLE_OF names, of ' + 'the replica and ring it is addressed to, and no other',
    () => {
      const s = setup();
      for (const ring of ['r', 'q'])
        for (const replica of ['a', 'b']) for (const role of ROLES) s.reg(ring, replica, role);
      for (const type of MESSAGE_TYPES) s.bus.send(minimal(type, 'q', 'a', 'b'));
      s.sched.runFor(1);
      expect(s.got).toHaveLength(MESSAGE_TYPES.length);
      s.got.forEach((g, i) => {
        expect(g.m.type).toBe(MESSAGE_TYPES[i]);
        expect(g.role).toBe(ROLE_OF[g.m.type]);
        expect(g.replica).toBe('b');
        expect(g.ring).toBe('q');
      });
      expect(s.bus.delivered).toBe(MESSAGE_TYPES.length);
      expect(s.bus.dropped).toBe(0);
    },
  );

  it('a message for a role not registered on a hosted replica is dropped (not sent to the transport)', () => {
    const ft = fakeTransport();
    const { sched, bus, got, reg } = setup(ft.t);
    reg('r', 'a', 'learner');
    bus.send(accepted('a', 'a', 1)); // proposer of a: not registered, a is hosted here
    sched.runFor(1);
    expect(got).toEqual([]);
    expect(ft.sent).toEqual([]);
    expect(bus.dropped).toBe(1);
  });

  it('without a transport, a message for an unknown replica is dropped', () => {
    const { sched, bus, got, reg } = setup();
    reg('r', 'a', 'learner');
    bus.send(decide('a', 'zz', 1));
    bus.send(decide('a', 'a', 2, 'other-ring'));
    sched.runFor(1);
    expect(got).toEqual([]);
    expect(bus.dropped).toBe(2);
  });

  it('registering the same (ring, replica, role) twice throws', () => {
    const { reg } = setup();
    reg('r', 'a', 'learner');
    expect(() => reg('r', 'a', 'learner')).toThrow(/already registered/);
    expect(() => reg('r', 'a', 'proposer')).not.toThrow();
    expect(() => reg('q', 'a', 'learner')).not.toThrow();
  });
});

describe('Bus delivery', () => {
  it('is asynchronous: nothing is delivered inside send', () => {
    const { sched, bus, got, reg } = setup();
    reg('r', 'a', 'learner');
    bus.send(decide('x', 'a', 1));
    expect(got).toHaveLength(0);
    sched.runFor(1);
    expect(got).toHaveLength(1);
  });

  test.prop([
    fc.array(fc.tuple(fc.constantFrom('a', 'b'), fc.constantFrom(decide, accepted, prepare, heartbeat, executed)), {
      maxLength: 80,
    }),
  ])('is FIFO across all local handlers', (plan) => {
    const { sched, bus, got, reg } = setup();
    for (const replica of ['a', 'b']) for (const role of ROLES) reg('r', replica, role);
    plan.forEach(([to, mk], i) => bus.send(mk('x', to, i)));
    sched.runFor(1);
    expect(got.map((g) => tag(g.m))).toEqual(plan.map((_, i) => i));
  });

  it('is never re-entrant: a handler that sends is not called again before it returns', () => {
    const { sched, bus } = setup();
    let depth = 0;
    let maxDepth = 0;
    const order: number[] = [];
    bus.register('r', 'a', 'learner', (m) => {
      depth++;
      maxDepth = Math.max(maxDepth, depth);
      const n = tag(m);
      order.push(n);
      if (n < 5) bus.send(decide('a', 'a', n + 10)); // to itself
      depth--;
    });
    for (let i = 0; i < 5; i++) bus.send(decide('x', 'a', i));
    sched.runFor(1);
    expect(maxDepth).toBe(1);
    // what handlers send goes after everything already queued
    expect(order).toEqual([0, 1, 2, 3, 4, 10, 11, 12, 13, 14]);
  });

  it('a handler that throws: the error surfaces, later messages stay queued and arrive in order (regression)', () => {
    const { sched, bus, got, reg } = setup();
    reg('r', 'b', 'learner');
    bus.register('r', 'a', 'learner', (m) => {
      if (tag(m) === 1) throw new Error('handler bug');
      got.push({ role: 'learner', replica: 'a', ring: 'r', m });
    });
    ['a', 'a', 'b', 'a', 'b'].forEach((to, i) => bus.send(decide('x', to, i)));
    expect(() => sched.runFor(1)).toThrow('handler bug');
    sched.runFor(1);
    expect(got.map((g) => tag(g.m))).toEqual([0, 2, 3, 4]);
  });

  it('with the real environment, delivery happens after the current task, FIFO', async () => {
    const bus = new Bus(realEnv());
    const seen: number[] = [];
    bus.register('r', 'a', 'learner', (m) => {
      seen.push(tag(m));
      if (tag(m) === 0) bus.send(decide('a', 'a', 99));
    });
    for (let i = 0; i < 3; i++) bus.send(decide('x', 'a', i));
    expect(seen).toEqual([]);
    await new Promise((r) => setTimeout(r, 10));
    expect(seen).toEqual([0, 1, 2, 99]);
  });
});

describe('Bus unregister and hosts', () => {
  it('after unregister nothing more is delivered, queued messages included; hosts() follows registrations', () => {
    const { sched, bus, got, reg } = setup();
    const offL = reg('r', 'a', 'learner');
    const offP = reg('r', 'a', 'proposer');
    expect(bus.hosts('r', 'a')).toBe(true);
    expect(bus.hosts('q', 'a')).toBe(false);
    bus.send(decide('x', 'a', 1)); // queued
    offL();
    sched.runFor(1);
    expect(got).toEqual([]);
    expect(bus.dropped).toBe(1);
    expect(bus.hosts('r', 'a')).toBe(true); // the proposer is still there
    offP();
    offP(); // twice is harmless
    expect(bus.hosts('r', 'a')).toBe(false);
    reg('r', 'a', 'learner'); // can register again
    bus.send(decide('x', 'a', 2));
    sched.runFor(1);
    expect(got.map((g) => tag(g.m))).toEqual([2]);
  });

  it('a stale unregister does not remove a newer registration', () => {
    const { sched, bus, got, reg } = setup();
    const off = reg('r', 'a', 'learner');
    off();
    reg('r', 'a', 'learner');
    off();
    bus.send(decide('x', 'a', 1));
    sched.runFor(1);
    expect(got).toHaveLength(1);
  });
});

describe('Bus taps', () => {
  it('see local, outgoing and incoming messages before delivery, and can be removed', () => {
    const ft = fakeTransport();
    const { sched, bus, reg } = setup(ft.t);
    reg('r', 'a', 'learner');
    const seen: string[] = [];
    const off = bus.tap((m, dir) => seen.push(`${dir}:${m.type}:${tag(m)}`));
    bus.send(decide('a', 'a', 1)); // local
    bus.send(accepted('a', 'b', 2)); // out (b not hosted)
    ft.arrive(decide('b', 'a', 3)); // in
    expect(seen).toEqual(['local:decide:1', 'out:accepted:2', 'in:decide:3']);
    off();
    bus.send(decide('a', 'a', 4));
    sched.runFor(1);
    expect(seen).toHaveLength(3);
  });

  it('two taps both see every message; removing one keeps the other', () => {
    const { bus, reg } = setup();
    reg('r', 'a', 'learner');
    const a: number[] = [];
    const b: number[] = [];
    const offA = bus.tap((m) => a.push(tag(m)));
    bus.tap((m) => b.push(tag(m)));
    bus.send(decide('x', 'a', 1));
    offA();
    bus.send(decide('x', 'a', 2));
    expect(a).toEqual([1]);
    expect(b).toEqual([1, 2]);
  });
});

describe('Bus transport path', () => {
  it('messages for replicas not hosted here go to the transport, synchronously and unchanged', () => {
    const ft = fakeTransport();
    const { bus, got, reg } = setup(ft.t);
    reg('r', 'a', 'proposer');
    const m = prepare('a', 'b', 7);
    bus.send(m);
    expect(ft.sent).toEqual([m]);
    expect(ft.sent[0]).toBe(m);
    expect(got).toEqual([]);
  });

  it('messages from the transport are delivered to local handlers like local ones, after queued local ones', () => {
    const ft = fakeTransport();
    const { sched, bus, got, reg } = setup(ft.t);
    reg('r', 'a', 'learner');
    bus.send(decide('a', 'a', 1));
    ft.arrive(decide('b', 'a', 2));
    ft.arrive(decide('b', 'nobody', 3)); // not hosted: dropped at delivery
    expect(got).toHaveLength(0);
    sched.runFor(1);
    expect(got.map((g) => tag(g.m))).toEqual([1, 2]);
    expect(bus.dropped).toBe(1);
  });

  it('attach() replaces the transport; close() clears handlers and closes the transport', async () => {
    const t1 = fakeTransport();
    const t2 = fakeTransport();
    const { sched, bus, got, reg } = setup(t1.t);
    bus.attach(t2.t);
    reg('r', 'a', 'learner');
    bus.send(decide('a', 'b', 1));
    expect(t1.sent).toEqual([]);
    expect(t2.sent).toHaveLength(1);
    t2.arrive(decide('b', 'a', 2));
    await bus.close();
    expect(t2.isClosed()).toBe(true);
    sched.runFor(1);
    expect(got).toEqual([]);
    expect(bus.hosts('r', 'a')).toBe(false);
  });
});
