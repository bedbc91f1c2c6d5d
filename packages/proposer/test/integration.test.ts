/**
 * Proposer + acceptors only (no learner, no elector): three acceptors r1..r3 and one or two
 * proposers, wired by a tiny router on a SimScheduler (virtual time, one exact execution).
 * Messages to roles nobody runs here (learn, decide, leader-state) are counted and dropped.
 */
import { describe, expect, it } from 'vitest';
import { type Actor, createActor } from 'xstate';
import { SimScheduler } from '@decree/bus';
import { MemoryStore } from '@decree/storage/memory';
import {
  type Message,
  type ReplicaId,
  type SlotValue,
  ROLE_OF,
  compareBallots,
  slotValueEquals,
} from '@decree/protocol';
import { acceptorMachine } from '@decree/acceptor';
import { type ProposerOptions, proposerMachine } from '../src/index.ts';
import { cmdsOf, enc } from './harness.ts';

const RING = 'ring';
const IDS = ['r1', 'r2', 'r3'];

class World {
  readonly sched = new SimScheduler(42);
  private readonly handlers = new Map<string, (m: Message) => void>();
  readonly stores = new Map<ReplicaId, MemoryStore>();
  readonly acceptors = new Map<ReplicaId, Actor<typeof acceptorMachine>>();
  readonly proposers = new Map<ReplicaId, Actor<typeof proposerMachine>>();
  /** messages to the client role (aborted, recovered), by replica */
  readonly client: Message[] = [];
  unrouted = 0;
  /** drop a message when this says so */
  drop: (m: Message) => boolean = () => false;

  send = (m: Message): void => {
    if (this.drop(m)) return;
    // a small, varying delay: messages between different pairs interleave
    this.sched.after(0.2 + ((m.from.charCodeAt(1) * 7 + m.to.charCodeAt(1) * 3) % 5) / 10, () => {
      const h = this.handlers.get(`${m.to}/${ROLE_OF[m.type]}`);
      if (h) h(m);
      else this.unrouted++;
    });
  };

  async startAcceptor(id: ReplicaId): Promise<void> {
    let store = this.stores.get(id);
    if (!store) {
      store = new MemoryStore({ defer: (fn) => this.sched.after(0.5, fn) }); // a 0.5 ms sync
      this.stores.set(id, store);
    }
    const a = createActor(acceptorMachine, {
      input: { ring: RING, self: id, store, recovered: await store.recover(), send: this.send },
      clock: this.clock,
    });
    a.start();
    this.acceptors.set(id, a);
    this.handlers.set(`${id}/acceptor`, (m) => a.send(m as never));
  }

  /** a crash: the acceptor's messages are lost from now on; its store survives */
  stopAcceptor(id: ReplicaId): void {
    this.handlers.delete(`${id}/acceptor`);
    this.acceptors.get(id)?.stop();
    this.acceptors.delete(id);
  }

  startProposer(id: ReplicaId, options: Partial<ProposerOptions> = {}): Actor<typeof proposerMachine> {
    const p = createActor(proposerMachine, {
      input: {
        ring: RING,
        self: id,
        inc: 1,
        members: IDS,
        send: this.send,
        now: () => this.sched.now(),
        options: { retransmitMs: 20, ...options },
      },
      clock: this.clock,
    });
    p.start();
    this.proposers.set(id, p);
    this.handlers.set(`${id}/proposer`, (m) => p.send(m as never));
    this.handlers.set(`${id}/client`, (m) => this.client.push(m));
    const tick = () => {
      if (p.getSnapshot().status !== 'active') return;
      p.send({ type: 'tick' });
      this.sched.after(10, tick);
    };
    this.sched.after(10, tick);
    return p;
  }

  private readonly clock = {
    setTimeout: (fn: () => void, ms: number) => this.sched.after(ms, fn),
    clearTimeout: (h: unknown) => this.sched.cancel(h),
  };

  campaign(id: ReplicaId, round = 1): void {
    this.send({ type: 'campaign', ring: RING, from: id, to: id, round });
  }

  submit(id: ReplicaId, firstId: number, n: number, prefix = 'cmd'): void {
    const items = Array.from({ length: n }, (_, i) => ({ id: firstId + i, cmd: enc(`${prefix}${firstId + i}`) }));
    this.send({ type: 'submit', ring: RING, from: id, to: id, items });
  }

  run(ms: number): void {
    this.sched.runFor(ms);
  }

  /** slot -> value accepted by acceptor `id` */
  acceptedBy(id: ReplicaId): Map<number, SlotValue> {
    const a = this.acceptors.get(id)!.getSnapshot().context.accepted;
    return new Map([...a].map(([s, v]) => [s, v.value]));
  }

  /** every command in the accepted values of `id`, in slot order */
  commandsAt(id: ReplicaId): string[] {
    const m = this.acceptedBy(id);
    return [...m.keys()].sort((x, y) => x - y).flatMap((s) => cmdsOf(m.get(s)));
  }
}

async function world(): Promise<World> {
  const w = new World();
  for (const id of IDS) await w.startAcceptor(id);
  return w;
}

const sameValues = (a: Map<number, SlotValue>, b: Map<number, SlotValue>): boolean =>
  a.size === b.size && [...a].every(([s, v]) => b.has(s) && slotValueEquals(v, b.get(s)!));

describe('proposer + acceptors (no learner, no elector)', () => {
  it('campaigns, replicates: every acceptor holds the same values and chosenUpTo covers them', async () => {
    const w = await world();
    const p = w.startProposer('r1', { maxInflightSlots: 4 });
    w.campaign('r1');
    w.run(20);
    expect(p.getSnapshot().matches('leading')).toBe(true);
    for (let i = 0; i < 10; i++) {
      w.submit('r1', 1 + i * 5, 5);
      w.run(1);
    }
    w.run(100);
    const ref = w.acceptedBy('r1');
    expect(ref.size).toBeGreaterThan(0);
    for (const id of IDS) expect(sameValues(w.acceptedBy(id), ref)).toBe(true);
    const cmds = w.commandsAt('r2');
    expect(cmds).toEqual(Array.from({ length: 50 }, (_, i) => `cmd${i + 1}`));
    expect(p.getSnapshot().context.chosenUpTo).toBe(Math.max(...ref.keys()));
    expect(p.getSnapshot().context.slots.size).toBe(0);
    // batching happened: fewer slots than commands (the window of 4 filled up)
    expect(ref.size).toBeLessThan(50);
    expect(w.client.filter((m) => m.type === 'aborted')).toHaveLength(0);
  });

  it('with one acceptor stopped it still makes progress', async () => {
    const w = await world();
    const p = w.startProposer('r1');
    w.stopAcceptor('r3');
    w.campaign('r1');
    w.run(20);
    expect(p.getSnapshot().matches('leading')).toBe(true);
    w.submit('r1', 1, 20);
    w.run(100);
    expect(w.commandsAt('r1')).toEqual(Array.from({ length: 20 }, (_, i) => `cmd${i + 1}`));
    expect(sameValues(w.acceptedBy('r1'), w.acceptedBy('r2'))).toBe(true);
    expect(p.getSnapshot().context.chosenUpTo).toBe(Math.max(...w.acceptedBy('r1').keys()));
  });

  it('with two acceptors stopped it makes no progress (and resumes by retransmission when one returns)', async () => {
    const w = await world();
    const p = w.startProposer('r1');
    w.campaign('r1');
    w.run(20);
    expect(p.getSnapshot().matches('leading')).toBe(true);
    w.stopAcceptor('r2');
    w.stopAcceptor('r3');
    w.submit('r1', 1, 5);
    w.run(500);
    expect(p.getSnapshot().context.chosenUpTo).toBe(0);
    expect(p.getSnapshot().context.slots.size).toBe(1);
    expect(w.acceptedBy('r1').size).toBe(1); // the one live acceptor did vote
    await w.startAcceptor('r2'); // back, with its store as it was
    w.run(1100); // the resend backs off (50 ms doubling, at most 1 s) while no majority answers
    expect(p.getSnapshot().context.chosenUpTo).toBe(1);
    expect(w.commandsAt('r2')).toEqual(['cmd1', 'cmd2', 'cmd3', 'cmd4', 'cmd5']);
  });

  it('a campaign with two acceptors stopped never leads', async () => {
    const w = await world();
    const p = w.startProposer('r1');
    w.stopAcceptor('r2');
    w.stopAcceptor('r3');
    w.campaign('r1');
    w.run(500);
    expect(p.getSnapshot().matches('preparing')).toBe(true);
  });

  it("a second proposer with a higher ballot takes over and re-proposes the first one's values", async () => {
    const w = await world();
    const p1 = w.startProposer('r1', { maxInflightSlots: 8, maxBatchCmds: 1 });
    w.campaign('r1');
    w.run(20);
    w.submit('r1', 1, 4);
    w.run(50);
    expect(p1.getSnapshot().context.chosenUpTo).toBe(4);
    // slot 5's Accept reaches only r3; nothing more from r1 gets through to r1/r2
    w.drop = (m) => m.type === 'accept' && m.from === 'r1' && m.to !== 'r3';
    w.submit('r1', 5, 1);
    w.run(5);
    expect(w.acceptedBy('r3').has(5)).toBe(true);
    expect(w.acceptedBy('r1').has(5)).toBe(false);
    const before = w.acceptedBy('r3');

    // p2's quorum is r2 + r3 (r1's promise is lost; its own acceptor's
    // promise is required), so it sees r3's vote for slot 5
    w.drop = (m) =>
      (m.type === 'accept' && m.from === 'r1' && m.to !== 'r3') || (m.type === 'promise' && m.from === 'r1');
    const p2 = w.startProposer('r2');
    w.campaign('r2', 1);
    w.run(50);
    expect(p2.getSnapshot().matches('leading')).toBe(true);
    expect(compareBallots(p2.getSnapshot().context.ballot, p1.getSnapshot().context.ballot)).toBe(1); // (1,r2) > (1,r1)
    // p2 re-proposed p1's values at its own ballot; slot 5 too if r3 was among its promises
    const now = w.acceptedBy('r1');
    for (const s of [1, 2, 3, 4]) {
      expect(slotValueEquals(now.get(s)!, before.get(s)!)).toBe(true);
      expect(w.acceptors.get('r1')!.getSnapshot().context.accepted.get(s)!.ballot.leader).toBe('r2');
    }
    expect(p2.getSnapshot().context.chosenUpTo).toBeGreaterThanOrEqual(4);
    // slot 5 (accepted by r3 alone) was re-proposed too: r3 was in p2's quorum, so it is chosen now
    expect(cmdsOf(now.get(5))).toEqual(['cmd5']);
    expect(p2.getSnapshot().context.chosenUpTo).toBe(5);
    for (const id of IDS) expect(sameValues(w.acceptedBy(id), now)).toBe(true);

    // p1 learns of the higher ballot at its next retransmission and steps down; slot 5 may be chosen
    w.drop = () => false;
    w.run(100);
    expect(p1.getSnapshot().matches('follower')).toBe(true);
    const ab = w.client.filter((m) => m.type === 'aborted' && m.to === 'r1');
    expect(ab).toEqual([expect.objectContaining({ ids: [5], maybeChosen: true, leaderHint: 'r2' })]);

    // p2 goes on: new commands land after the recovered ones
    w.submit('r2', 1, 3, 'new');
    w.run(50);
    const cmds = w.commandsAt('r3');
    expect(cmds.slice(0, 4)).toEqual(['cmd1', 'cmd2', 'cmd3', 'cmd4']);
    expect(cmds.slice(-3)).toEqual(['new1', 'new2', 'new3']);
    for (const id of IDS) expect(sameValues(w.acceptedBy(id), w.acceptedBy('r3'))).toBe(true);
  });
});
