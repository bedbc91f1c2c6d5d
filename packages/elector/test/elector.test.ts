import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { SimScheduler } from '@decree/bus';
import type { Ballot, Message, MessageOf, ReplicaId } from '@decree/protocol';
import { type ElectorInput, electorMachine } from '../src/index.ts';

const RING = 'ring';
const SELF = 'r1';
const MEMBERS = ['r1', 'r2', 'r3'];
const b = (round: number, leader: ReplicaId): Ballot => ({ round, leader });

// election timeout in [100, 200] ms; heartbeats every 20 ms; the campaign itself (pre-vote has its own tests)
const OPTIONS = { electionTimeoutMinMs: 100, electionTimeoutMaxMs: 200, heartbeatMs: 20, preVote: false };

function electorHarness(input: Partial<ElectorInput> = {}, random: () => number = () => 0.5) {
  const sched = new SimScheduler(1);
  const out: Message[] = [];
  const errors: unknown[] = [];
  const actor = createActor(electorMachine, {
    input: {
      ring: RING,
      self: SELF,
      members: MEMBERS,
      send: (m) => out.push(m),
      now: () => sched.now(),
      random,
      options: OPTIONS,
      ...input,
    },
    clock: { setTimeout: (fn, ms) => sched.after(ms, fn), clearTimeout: (h) => sched.cancel(h) },
  });
  actor.subscribe({ error: (e) => errors.push(e) });
  actor.start();
  return {
    actor,
    out,
    errors,
    sched,
    sent<T extends Message['type']>(type: T): MessageOf<T>[] {
      return out.filter((m): m is MessageOf<T> => m.type === type);
    },
    take: () => out.splice(0),
    ctx: () => actor.getSnapshot().context,
    is: (s: 'follower' | 'preCampaigning' | 'campaigning' | 'leader' | 'stopped') => actor.getSnapshot().matches(s),
    /** runs virtual time to `t` ms */
    at(t: number): void {
      sched.runUntil(t);
    },
    heartbeat(from: ReplicaId, ballot: Ballot = b(1, from), decidedUpTo = 0): void {
      actor.send({ type: 'heartbeat', ring: RING, from, to: SELF, ballot, decidedUpTo });
    },
    ack(from: ReplicaId, ballot: Ballot, payload?: Uint8Array): void {
      actor.send({
        type: 'heartbeat-ack',
        ring: RING,
        from,
        to: SELF,
        ballot,
        appliedUpTo: 0,
        ...(payload ? { payload } : {}),
      });
    },
    leaderState(
      state: 'follower' | 'preparing' | 'leading',
      ballot: Ballot = b(1, SELF),
      extra: Partial<MessageOf<'leader-state'>> = {},
    ): void {
      actor.send({
        type: 'leader-state',
        ring: RING,
        from: SELF,
        to: SELF,
        state,
        ballot,
        maxRound: ballot.round,
        decidedUpTo: 0,
        executedUpTo: 0,
        ...extra,
      });
    },
  };
}

describe('elector: follower', () => {
  it('campaigns after the randomised election timeout drawn from the injected RNG', () => {
    const h = electorHarness({}, () => 0.5); // 100 + 0.5 * 100 = 150 ms
    h.at(149);
    expect(h.sent('campaign')).toHaveLength(0);
    expect(h.is('follower')).toBe(true);
    h.at(151);
    expect(h.is('campaigning')).toBe(true);
    expect(h.sent('campaign')).toEqual([expect.objectContaining({ to: SELF, from: SELF, round: 1 })]);

    const early = electorHarness({}, () => 0); // 100 ms
    early.at(101);
    expect(early.sent('campaign')).toHaveLength(1);
    const late = electorHarness({}, () => 0.99); // 199 ms
    late.at(190);
    expect(late.sent('campaign')).toHaveLength(0);
  });

  it('heartbeats from the leader postpone the campaign, and are acknowledged', () => {
    const h = electorHarness();
    for (let t = 100; t <= 1000; t += 100) {
      h.at(t);
      h.heartbeat('r2', b(1, 'r2'), t);
    }
    h.at(1149);
    expect(h.sent('campaign')).toHaveLength(0);
    expect(h.ctx().leader).toBe('r2');
    expect(h.ctx().decidedUpTo).toBe(1000);
    const acks = h.sent('heartbeat-ack');
    expect(acks).toHaveLength(10);
    expect(acks[0]).toMatchObject({ to: 'r2', ballot: b(1, 'r2') });
    h.at(1151); // the leader went quiet
    expect(h.sent('campaign')).toEqual([expect.objectContaining({ round: 2 })]); // above the leader's round
  });

  it('a heartbeat from a non-member or of a lower ballot does not postpone it', () => {
    const h = electorHarness();
    h.heartbeat('r3', b(5, 'r3'));
    h.at(100);
    h.heartbeat('zz', b(9, 'zz'));
    h.heartbeat('r2', b(4, 'r2')); // lower than the (5, r3) it already follows
    h.at(151);
    expect(h.sent('campaign')).toHaveLength(1);
  });

  it('canBecomeLeader veto (false or {ok:false}) prevents campaigning; the cookie of a yes goes into Campaign', () => {
    let answer: boolean | { ok: boolean; cookie?: Uint8Array } = false;
    const h = electorHarness({ canBecomeLeader: () => answer });
    h.at(1000);
    expect(h.sent('campaign')).toHaveLength(0);
    expect(h.is('follower')).toBe(true);
    answer = { ok: false, cookie: new Uint8Array([1]) };
    h.at(2000);
    expect(h.sent('campaign')).toHaveLength(0);
    answer = { ok: true, cookie: new Uint8Array([7, 7]) };
    h.at(2200);
    const [c] = h.sent('campaign');
    expect(c).toBeDefined();
    expect(c!.cookie).toEqual(new Uint8Array([7, 7]));
    expect(h.ctx().stats.campaigns).toBe(1);
  });

  it('promote campaigns at once (unless vetoed)', () => {
    const h = electorHarness();
    h.actor.send({ type: 'promote' });
    expect(h.is('campaigning')).toBe(true);
    expect(h.sent('campaign')).toHaveLength(1);
    const vetoed = electorHarness({ canBecomeLeader: () => false });
    vetoed.actor.send({ type: 'promote' });
    expect(vetoed.is('follower')).toBe(true);
    expect(vetoed.sent('campaign')).toHaveLength(0);
  });

  it('set-timeout changes the election timeout at run time (from the next wait on)', () => {
    const h = electorHarness({}, () => 0);
    h.actor.send({ type: 'set-timeout', minMs: 1000, maxMs: 1000 });
    h.heartbeat('r2'); // re-arms the wait with the new timeout
    h.at(999);
    expect(h.sent('campaign')).toHaveLength(0);
    h.at(1001);
    expect(h.sent('campaign')).toHaveLength(1);
    expect(h.ctx().opts.electionTimeoutMinMs).toBe(1000);
  });

  it('set-payload rides on its heartbeat acks', () => {
    const h = electorHarness();
    h.heartbeat('r2');
    expect(h.sent('heartbeat-ack')[0]!.payload).toBeUndefined();
    h.actor.send({ type: 'set-payload', payload: new Uint8Array([4, 2]) });
    h.heartbeat('r2');
    expect(h.sent('heartbeat-ack')[1]!.payload).toEqual(new Uint8Array([4, 2]));
  });
});

describe('elector: campaigning', () => {
  it('campaigns again after another timeout while the proposer has not won', () => {
    const h = electorHarness({}, () => 0);
    h.at(101);
    h.leaderState('preparing', b(1, SELF));
    h.at(202);
    expect(h.sent('campaign').map((c) => c.round)).toEqual([1, 2]);
  });

  it('a heartbeat of a higher ballot than its campaign => follower, and its proposer is told to resign', () => {
    const h = electorHarness({}, () => 0);
    h.at(101);
    h.leaderState('preparing', b(1, SELF));
    h.heartbeat('r2', b(1, 'r2')); // (1, r2) > (1, r1)
    expect(h.is('follower')).toBe(true);
    expect(h.sent('resign')).toEqual([
      expect.objectContaining({ to: SELF, reason: expect.stringMatching(/higher ballot/) }),
    ]);
  });

  it('a heartbeat of a lower ballot than its campaign does not stop it', () => {
    const h = electorHarness({}, () => 0);
    h.heartbeat('r2', b(1, 'r2'));
    h.at(101); // r2 went quiet: campaign at round 2
    expect(h.sent('campaign').map((c) => c.round)).toEqual([2]);
    h.heartbeat('r2', b(1, 'r2')); // r2's old ballot (1, r2) < our (2, r1)
    expect(h.is('campaigning')).toBe(true);
    expect(h.sent('resign')).toHaveLength(0);
  });

  it('the proposer leading => leader', () => {
    const h = electorHarness({}, () => 0);
    h.at(101);
    h.leaderState('leading', b(1, SELF));
    expect(h.is('leader')).toBe(true);
    expect(h.ctx().leader).toBe(SELF);
  });
});

describe('elector: leader', () => {
  it('sends heartbeats to every other member every heartbeatMs', () => {
    const h = electorHarness();
    h.leaderState('leading', b(3, SELF), { decidedUpTo: 9 });
    expect(h.is('leader')).toBe(true);
    const first = h.sent('heartbeat');
    expect(first.map((m) => m.to)).toEqual(['r2', 'r3']); // at once on becoming leader
    expect(first[0]).toMatchObject({ ballot: b(3, SELF), decidedUpTo: 9 });
    for (let t = 10; t <= 100; t += 10) {
      h.at(t);
      h.ack('r2', b(3, SELF));
    }
    // t = 0, 20, 40, 60, 80, 100: six rounds of two
    expect(h.sent('heartbeat')).toHaveLength(12);
    expect(h.sent('campaign')).toHaveLength(0);
  });

  it('keeps leading while a majority acks; resigns when none did within the election timeout', () => {
    const h = electorHarness();
    h.leaderState('leading', b(1, SELF));
    for (let t = 10; t <= 1000; t += 10) {
      h.at(t);
      h.ack('r3', b(1, SELF));
    }
    expect(h.sent('resign')).toHaveLength(0);
    expect(h.is('leader')).toBe(true);
    // acks of another ballot do not count
    for (let t = 1010; t <= 1300; t += 10) {
      h.at(t);
      h.ack('r3', b(0, SELF));
    }
    const r = h.sent('resign');
    expect(r.length).toBeGreaterThanOrEqual(1);
    expect(r[0]).toMatchObject({ to: SELF, reason: expect.stringMatching(/majority/) });
    expect(h.ctx().stats.quorumLosses).toBeGreaterThanOrEqual(1);
    // resigned within about one election timeout (200 ms) of the last counted ack at t=1000, not before it lapsed
    expect(h.sched.now()).toBeGreaterThan(1200);
  });

  it('a leader that never hears anyone resigns after the election timeout', () => {
    const h = electorHarness();
    h.leaderState('leading', b(1, SELF));
    h.at(190);
    expect(h.sent('resign')).toHaveLength(0);
    h.at(260);
    expect(h.sent('resign')).toHaveLength(1);
  });

  it('relinquish resigns and suppresses campaigning for one election timeout', () => {
    const h = electorHarness({}, () => 0); // election waits are 100 ms, the max timeout 200 ms
    h.leaderState('leading', b(1, SELF));
    h.at(50);
    h.actor.send({ type: 'relinquish' });
    expect(h.sent('resign')).toEqual([expect.objectContaining({ reason: 'relinquished' })]);
    h.leaderState('follower', b(1, SELF), { relinquished: true });
    expect(h.is('follower')).toBe(true);
    h.at(249); // the first wait ends at 150, inside the suppression (until 250)
    expect(h.sent('campaign')).toHaveLength(0);
    h.at(251); // the next wait ends at 250: suppression over
    expect(h.sent('campaign')).toHaveLength(1);
  });

  it('a heartbeat of a higher ballot makes the leader tell its proposer to resign', () => {
    const h = electorHarness();
    h.leaderState('leading', b(1, SELF));
    h.heartbeat('r2', b(1, 'r2'));
    expect(h.sent('resign')).toEqual([expect.objectContaining({ reason: expect.stringMatching(/higher ballot/) })]);
    h.heartbeat('r2', b(0, 'r2'));
    expect(h.sent('resign')).toHaveLength(1);
  });

  it('the proposer stepping down => follower; it records who leads now', () => {
    const h = electorHarness();
    h.leaderState('leading', b(1, SELF));
    h.leaderState('follower', b(1, SELF), { leaderHint: 'r3', maxRound: 4 });
    expect(h.is('follower')).toBe(true);
    expect(h.ctx().leader).toBe('r3');
    expect(h.ctx().maxRound).toBe(4);
  });

  it('stop ends the machine', () => {
    const h = electorHarness();
    h.actor.send({ type: 'stop' });
    expect(h.actor.getSnapshot().status).toBe('done');
    h.at(1000);
    expect(h.sent('campaign')).toHaveLength(0);
  });
});

describe('elector: configuration changes', () => {
  it(
    "the proposer's leader-state brings a newer configuration: heartbeats go to the new members, and a replica " +
      'removed stops campaigning',
    () => {
      const h = electorHarness();
      h.leaderState('follower', b(0, SELF), { config: { epoch: 2, members: ['r2', 'r3', 'r4'], startSlot: 7 } });
      expect(h.ctx().members).toEqual(['r2', 'r3', 'r4']);
      h.at(1000);
      expect(h.sent('campaign')).toHaveLength(0); // not a member
      // an older configuration does not replace it
      h.leaderState('follower', b(0, SELF), { config: { epoch: 1, members: MEMBERS, startSlot: 1 } });
      expect(h.ctx().members).toEqual(['r2', 'r3', 'r4']);
    },
  );

  it(
    "a leader sends heartbeats to observers and reports peers' progress to the config-manager while watched; " +
      'leaving the leadership says so',
    () => {
      const h = electorHarness();
      h.leaderState('leading', b(2, SELF), { decidedUpTo: 40 });
      expect(h.is('leader')).toBe(true);
      h.actor.send({ type: 'watch-peers', ring: RING, from: SELF, to: SELF, observers: ['r4'], watch: true });
      h.take();
      h.at(25);
      expect(
        h
          .sent('heartbeat')
          .map((m) => m.to)
          .sort(),
      ).toEqual(['r2', 'r3', 'r4']);
      h.actor.send({ type: 'heartbeat-ack', ring: RING, from: 'r4', to: SELF, ballot: b(2, SELF), appliedUpTo: 33 });
      h.at(45);
      const rep = h.sent('peer-progress').at(-1)!;
      expect(rep).toMatchObject({ leading: true, decidedUpTo: 40, windowMs: 200 });
      expect(rep.peers.find((p) => p.id === 'r4')).toMatchObject({ appliedUpTo: 33 });
      h.leaderState('follower', b(2, SELF), { leaderHint: 'r2' });
      expect(h.sent('peer-progress').at(-1)).toMatchObject({ leading: false, leader: 'r2' });
    },
  );

  it('a follower asked to watch peers answers at once that it does not lead', () => {
    const h = electorHarness();
    h.heartbeat('r3', b(5, 'r3'));
    h.actor.send({ type: 'watch-peers', ring: RING, from: SELF, to: SELF, observers: [], watch: true });
    expect(h.sent('peer-progress')).toEqual([expect.objectContaining({ leading: false, leader: 'r3', peers: [] })]);
  });

  it(
    'a heartbeat from a ring peer outside its configuration (the leader of a newer one) is honoured; a ' +
      "stranger's is not",
    () => {
      const h = electorHarness({ peers: ['r1', 'r2', 'r3', 'r4'] });
      h.heartbeat('r4', b(5, 'r4'));
      h.at(100);
      h.heartbeat('r4', b(5, 'r4'));
      h.heartbeat('zz', b(9, 'zz'));
      h.at(200);
      expect(h.sent('campaign')).toHaveLength(0);
      expect(h.ctx().leader).toBe('r4');
    },
  );
});

describe('elector: pre-vote', () => {
  const PV = { ...OPTIONS, preVote: true };
  it('after the timeout it asks the members first, and campaigns only once a majority granted', () => {
    const h = electorHarness({ options: PV });
    h.at(151);
    expect(h.is('preCampaigning')).toBe(true);
    expect(h.sent('campaign')).toHaveLength(0);
    const asks = h.sent('pre-vote');
    expect(asks.map((m) => m.to).sort()).toEqual(['r2', 'r3']);
    h.actor.send({ type: 'pre-vote-ack', ring: RING, from: 'r2', to: SELF, round: asks[0]!.round, granted: false });
    expect(h.sent('campaign')).toHaveLength(0);
    h.actor.send({ type: 'pre-vote-ack', ring: RING, from: 'r3', to: SELF, round: asks[0]!.round, granted: true });
    expect(h.is('campaigning')).toBe(true);
    expect(h.sent('campaign')).toHaveLength(1);
  });

  it('denied, it does not raise the round: a heartbeat brings it back to follower', () => {
    const h = electorHarness({ options: PV });
    h.at(151);
    expect(h.is('preCampaigning')).toBe(true);
    h.heartbeat('r2', b(3, 'r2'));
    expect(h.is('follower')).toBe(true);
    expect(h.sent('campaign')).toHaveLength(0);
  });

  it('grants only when it heard no leader within the election timeout, and never while it leads', () => {
    const h = electorHarness({ options: PV });
    const ask = (from: string) => h.actor.send({ type: 'pre-vote', ring: RING, from, to: SELF, round: 9 });
    ask('r2');
    expect(h.sent('pre-vote-ack').at(-1)).toMatchObject({ to: 'r2', granted: true }); // no leader known yet
    h.heartbeat('r3', b(2, 'r3'));
    h.at(20);
    ask('r2');
    expect(h.sent('pre-vote-ack').at(-1)).toMatchObject({ granted: false }); // r3 is alive
    h.at(110);
    ask('r2');
    expect(h.sent('pre-vote-ack').at(-1)).toMatchObject({ granted: true }); // quiet for the timeout
    ask('zz');
    expect(h.sent('pre-vote-ack').at(-1)).toMatchObject({ to: 'zz', granted: false }); // a stranger
    const l = electorHarness({ options: PV });
    l.leaderState('leading', b(4, SELF));
    l.at(500);
    l.actor.send({ type: 'pre-vote', ring: RING, from: 'r2', to: SELF, round: 9 });
    expect(l.sent('pre-vote-ack').at(-1)).toMatchObject({ granted: false });
  });

  it('promote skips the pre-vote (RSL AttemptPromotion)', () => {
    const h = electorHarness({ options: PV });
    h.actor.send({ type: 'promote' });
    expect(h.sent('campaign')).toHaveLength(1);
    expect(h.sent('pre-vote')).toHaveLength(0);
  });
});
