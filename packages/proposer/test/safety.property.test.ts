/**
 * Paxos safety of proposer + acceptor, under random schedules: three acceptors, three proposers
 * that campaign at random times with random rounds, random submissions, a network that delays,
 * reorders, drops and duplicates, acceptors that crash and come back with their store, and disks of
 * random speed. An observer on the wire checks, for every slot, that every (slot, ballot) accepted
 * by a majority (durably: the `accepted` replies) carries one and the same value.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { type Actor, assertEvent, createActor } from 'xstate';
import { Rng, SimScheduler } from '@decree/bus';
import { MemoryStore } from '@decree/storage/memory';
import {
  type Message,
  type ReplicaId,
  type SlotValue,
  ROLE_OF,
  ballotToString,
  slotValueEquals,
} from '@decree/protocol';
import { acceptorMachine, recordPromise } from '@decree/acceptor';
import { proposerMachine } from '../src/index.ts';
import { enc, stateInvariants } from './harness.ts';

const RING = 'ring';
const IDS = ['r1', 'r2', 'r3'];

/** A DELIBERATELY BROKEN acceptor (as the testkit's forgetfulAcceptorMachine): every ballot becomes its promise. */
const forgetfulAcceptor = acceptorMachine.provide({
  actions: {
    keepPromise: ({ context, event }) => {
      assertEvent(event, ['prepare', 'accept']);
      recordPromise(context, event.ballot);
    },
  },
});

type Action =
  | { k: 'campaign'; p: number; round: number }
  | { k: 'submit'; p: number; n: number }
  | { k: 'crash'; a: number }
  | { k: 'restart'; a: number };

interface Faults {
  drop: number;
  dup: number;
  maxDelay: number;
}

interface Outcome {
  violation: string | null;
  chosenSlots: number;
  errors: unknown[];
}

async function runSchedule(
  seed: number,
  actions: { gap: number; act: Action }[],
  faults: Faults,
  broken = false,
): Promise<Outcome> {
  const sched = new SimScheduler(seed);
  const rng = new Rng(seed ^ 0x5eed);
  const handlers = new Map<string, (m: Message) => void>();
  const stores = new Map<ReplicaId, MemoryStore>();
  const acceptors = new Map<ReplicaId, Actor<typeof acceptorMachine>>();
  const errors: unknown[] = [];
  const clock = {
    setTimeout: (fn: () => void, ms: number) => sched.after(ms, fn),
    clearTimeout: (h: unknown) => sched.cancel(h),
  };

  // the observer: value per (slot, ballot) from the acceptors' learns, durable votes from their Accepted
  const valueAt = new Map<string, SlotValue>();
  const votes = new Map<string, Set<ReplicaId>>();
  const chosen = new Map<number, { ballot: string; value: SlotValue }>();
  let violation: string | null = null;
  const observe = (m: Message): void => {
    if (m.type === 'learn') {
      const k = `${m.slot}@${ballotToString(m.ballot)}`;
      const v = valueAt.get(k);
      if (v && !slotValueEquals(v, m.value)) violation ??= `two values accepted at ${k}`;
      if (!v) valueAt.set(k, m.value);
    } else if (m.type === 'accepted') {
      const k = `${m.slot}@${ballotToString(m.ballot)}`;
      const set = votes.get(k) ?? new Set();
      set.add(m.from);
      votes.set(k, set);
      if (set.size >= 2) {
        const value = valueAt.get(k);
        if (!value) {
          violation ??= `accepted without a learn at ${k}`;
          return;
        }
        const prev = chosen.get(m.slot);
        if (prev && !slotValueEquals(prev.value, value))
          violation ??=
            `slot ${m.slot}: chosen at ${prev.ballot} and, ` + `with another value, at ${ballotToString(m.ballot)}`;
        if (!prev) chosen.set(m.slot, { ballot: ballotToString(m.ballot), value });
      }
    }
  };

  const send = (m: Message): void => {
    observe(m); // what a replica sends is what it said, whether or not the network delivers it
    if (m.from !== m.to && rng.chance(faults.drop)) return;
    const copies = m.from !== m.to && rng.chance(faults.dup) ? 2 : 1;
    for (let i = 0; i < copies; i++)
      sched.after(0.05 + rng.next() * faults.maxDelay, () => handlers.get(`${m.to}/${ROLE_OF[m.type]}`)?.(m));
  };

  const startAcceptor = async (id: ReplicaId): Promise<void> => {
    let store = stores.get(id);
    if (!store) {
      store = new MemoryStore({ defer: (fn) => sched.after(rng.next() * 2, fn) });
      stores.set(id, store);
    }
    const a = createActor(broken ? forgetfulAcceptor : acceptorMachine, {
      input: { ring: RING, self: id, store, recovered: await store.recover(), send },
      clock,
    });
    a.subscribe({ error: (e) => errors.push(e) });
    a.start();
    acceptors.set(id, a);
    handlers.set(`${id}/acceptor`, (m) => a.send(m as never));
  };
  const crash = (id: ReplicaId): void => {
    handlers.delete(`${id}/acceptor`);
    acceptors.get(id)?.stop();
    acceptors.delete(id);
  };

  for (const id of IDS) await startAcceptor(id);
  const proposers = IDS.map((id, i) => {
    const p = createActor(proposerMachine, {
      input: {
        ring: RING,
        self: id,
        inc: 1,
        members: IDS,
        send,
        now: () => sched.now(),
        options: { retransmitMs: 15, maxInflightSlots: 4, maxBatchCmds: 3 },
      },
      clock,
    });
    p.subscribe({
      // the substates agree with the data after every event (harness.ts)
      next: (s) => {
        const bad = stateInvariants(s);
        if (bad) errors.push(new Error(`${id}: proposer state invariant: ${bad}`));
      },
      error: (e) => errors.push(e),
    });
    p.start();
    handlers.set(`${id}/proposer`, (m) => p.send(m as never));
    const tick = () => {
      if (p.getSnapshot().status !== 'active') return;
      p.send({ type: 'tick' });
      sched.after(10, tick);
    };
    sched.after(10 + i, tick);
    return p;
  });

  let nextId = 1;
  for (const { gap, act } of actions) {
    sched.runFor(gap);
    const id = IDS[('p' in act ? act.p : act.a) % 3]!;
    switch (act.k) {
      case 'campaign':
        proposers[act.p % 3]!.send({ type: 'campaign', ring: RING, from: id, to: id, round: act.round });
        break;
      case 'submit': {
        const items = Array.from({ length: act.n }, () => ({ id: nextId, cmd: enc(`${id}:${nextId++}`) }));
        proposers[act.p % 3]!.send({ type: 'submit', ring: RING, from: id, to: id, items });
        break;
      }
      case 'crash':
        crash(id);
        break;
      case 'restart':
        if (!acceptors.has(id)) await startAcceptor(id);
        break;
    }
    if (errors.length) break;
  }
  sched.runFor(300);
  for (const p of proposers) p.stop();
  for (const a of acceptors.values()) a.stop();
  return { violation, chosenSlots: chosen.size, errors };
}

const action: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ k: fc.constant('campaign' as const), p: fc.nat(2), round: fc.integer({ min: 1, max: 6 }) }),
  },
  {
    weight: 6,
    arbitrary: fc.record({ k: fc.constant('submit' as const), p: fc.nat(2), n: fc.integer({ min: 1, max: 5 }) }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('crash' as const), a: fc.nat(2) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('restart' as const), a: fc.nat(2) }) },
);
const schedule = fc.array(fc.record({ gap: fc.integer({ min: 0, max: 40 }), act: action }), {
  minLength: 5,
  maxLength: 40,
});
const faults: fc.Arbitrary<Faults> = fc.record({
  drop: fc.constantFrom(0, 0.05, 0.2),
  dup: fc.constantFrom(0, 0.1),
  maxDelay: fc.constantFrom(0.5, 3, 10),
});

describe('proposer + acceptors: safety under random schedules (fast-check)', () => {
  it('no slot is ever chosen with two values; no contract fails', async () => {
    let progress = 0;
    await fc.assert(
      fc.asyncProperty(fc.nat(), schedule, faults, async (seed, actions, f) => {
        const out = await runSchedule(seed, actions, f);
        expect(out.errors).toEqual([]);
        expect(out.violation).toBeNull();
        progress += out.chosenSlots;
      }),
      { numRuns: 300, seed: 977 },
    );
    expect(progress).toBeGreaterThan(300); // the schedules do choose slots, many of them
  });

  it('the observer has teeth: with acceptors that forget their promises, it finds a violation', async () => {
    // Two proposers interleaving prepares and accepts against
    // forgetful acceptors: fast-check looks for a split decision.
    const res = await fc.check(
      fc.asyncProperty(fc.nat(), schedule, faults, async (seed, actions, f) => {
        const out = await runSchedule(seed, actions, f, true);
        return out.violation === null;
      }),
      { numRuns: 300, seed: 31 },
    );
    expect(res.failed).toBe(true);
  });
});
