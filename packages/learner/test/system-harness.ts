/**
 * Learners in a working system (no elector): three replicas, each an acceptor, a learner and a
 * proposer, proposers campaigning at random, a network that delays, reorders, drops and duplicates,
 * acceptors that crash and come back, learners that restart empty and catch up. Every learner must
 * execute a prefix of one and the same command sequence.
 */
import { type Actor, createActor } from 'xstate';
import { Rng, SimScheduler } from '@decree/bus';
import { MemoryStore } from '@decree/storage/memory';
import { type Message, type ReplicaId, ROLE_OF } from '@decree/protocol';
import { acceptorMachine } from '@decree/acceptor';
import { proposerMachine } from '@decree/proposer';
import { learnerMachine } from '../src/index.ts';
import { RecordingMachine, enc } from './harness.ts';

const RING = 'ring';
const IDS = ['r1', 'r2', 'r3'];

export type Action =
  | { k: 'campaign'; p: number; round: number }
  | { k: 'submit'; p: number; n: number }
  | { k: 'crash'; a: number }
  | { k: 'restart'; a: number }
  | { k: 'wipe-learner'; a: number };

export async function run(seed: number, actions: { gap: number; act: Action }[], drop: number, maxDelay: number) {
  const sched = new SimScheduler(seed);
  const rng = new Rng(seed ^ 0xbeef);
  const handlers = new Map<string, (m: Message) => void>();
  const stores = new Map<ReplicaId, MemoryStore>();
  const acceptors = new Map<ReplicaId, Actor<typeof acceptorMachine>>();
  const learners = new Map<ReplicaId, { actor: Actor<typeof learnerMachine>; sm: RecordingMachine }>();
  const errors: unknown[] = [];
  const clock = {
    setTimeout: (fn: () => void, ms: number) => sched.after(ms, fn),
    clearTimeout: (h: unknown) => sched.cancel(h),
  };
  const counts: Record<string, number> = {};
  const send = (m: Message): void => {
    counts[m.type] = (counts[m.type] ?? 0) + 1;
    if (m.from !== m.to && rng.chance(drop)) return;
    const copies = m.from !== m.to && rng.chance(0.05) ? 2 : 1;
    for (let i = 0; i < copies; i++)
      sched.after(0.05 + rng.next() * maxDelay, () => handlers.get(`${m.to}/${ROLE_OF[m.type]}`)?.(m));
  };
  const every = (ms: number, fn: () => boolean) => {
    const t = () => {
      if (fn()) sched.after(ms, t);
    };
    sched.after(ms, t);
  };

  const startAcceptor = async (id: ReplicaId) => {
    let store = stores.get(id);
    if (!store) stores.set(id, (store = new MemoryStore({ defer: (fn) => sched.after(rng.next() * 2, fn) })));
    const a = createActor(acceptorMachine, {
      input: { ring: RING, self: id, store, recovered: await store.recover(), send },
      clock,
    });
    a.subscribe({ error: (e) => errors.push(e) });
    a.start();
    acceptors.set(id, a);
    handlers.set(`${id}/acceptor`, (m) => a.send(m as never));
  };
  const startLearner = (id: ReplicaId) => {
    learners.get(id)?.actor.stop();
    const sm = new RecordingMachine();
    const actor = createActor(learnerMachine, {
      input: {
        ring: RING,
        self: id,
        inc: 1,
        members: IDS,
        stateMachine: sm,
        send,
        now: () => sched.now(),
        options: { catchupBatchSlots: 4 },
      },
      clock,
    });
    actor.subscribe({ error: (e) => errors.push(e) });
    actor.start();
    learners.set(id, { actor, sm });
    handlers.set(`${id}/learner`, (m) => actor.send(m as never));
    every(10, () => {
      if (learners.get(id)?.actor !== actor) return false;
      actor.send({ type: 'tick' });
      return true;
    });
  };

  for (const id of IDS) {
    await startAcceptor(id);
    startLearner(id);
  }
  const proposers = IDS.map((id) => {
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
    p.subscribe({ error: (e) => errors.push(e) });
    p.start();
    handlers.set(`${id}/proposer`, (m) => p.send(m as never));
    every(10, () => (p.send({ type: 'tick' }), true));
    return p;
  });

  let nextId = 1;
  for (const { gap, act } of actions) {
    sched.runFor(gap);
    const i = ('p' in act ? act.p : act.a) % 3;
    const id = IDS[i]!;
    if (act.k === 'campaign') proposers[i]!.send({ type: 'campaign', ring: RING, from: id, to: id, round: act.round });
    else if (act.k === 'submit') {
      const items = Array.from({ length: act.n }, () => ({ id: nextId, cmd: enc(`${id}:${nextId++}`) }));
      proposers[i]!.send({ type: 'submit', ring: RING, from: id, to: id, items });
    } else if (act.k === 'crash') {
      handlers.delete(`${id}/acceptor`);
      acceptors.get(id)?.stop();
      acceptors.delete(id);
    } else if (act.k === 'restart') {
      if (!acceptors.has(id)) await startAcceptor(id);
    } else startLearner(id); // a learner that lost everything: it must catch up from its peers
    if (errors.length) break;
  }
  // heal: every acceptor up, one last campaign so someone leads, then let it settle
  drop = 0;
  for (const id of IDS) if (!acceptors.has(id)) await startAcceptor(id);
  proposers[0]!.send({ type: 'campaign', ring: RING, from: 'r1', to: 'r1', round: 50 });
  sched.runFor(1000);
  const logs = IDS.map((id) => learners.get(id)!.sm.applied);
  const detail = {
    counts,
    steps: sched.steps,
    proposers: proposers.map((p) => {
      const c = p.getSnapshot().context;
      return {
        state: p.getSnapshot().value,
        ballot: c.ballot,
        chosenUpTo: c.chosenUpTo,
        executedUpTo: c.executedUpTo,
        slots: c.slots.size,
        queue: c.queue.length - c.queueHead,
      };
    }),
    learners: IDS.map((id) => {
      const c = learners.get(id)!.actor.getSnapshot().context;
      return {
        executedUpTo: c.executedUpTo,
        decidedUpTo: c.decidedUpTo,
        chosen: [...c.chosen.keys()],
        pending: [...c.pending.keys()],
        needsSnapshot: c.needsSnapshot,
      };
    }),
  };
  for (const p of proposers) p.stop();
  return { logs, errors, chosenUpTo: proposers[0]!.getSnapshot().context.chosenUpTo, detail };
}
