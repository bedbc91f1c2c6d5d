import { describe, expect, it } from 'vitest';
import type { InspectionEvent } from 'xstate';
import type { LeaderRole, ReplicaId, Slot } from '@decree/protocol';
import { LogMachine, simCluster, enc, dec, SimCluster } from '@decree/testkit';
import { NotLeaderError, StaleReplicaError } from '@decree/replica';

/** A LogMachine with RSL's notification hooks recorded. */
class HookedMachine extends LogMachine {
  events: string[] = [];
  recoveredAtApplied: number[] = [];
  veto = false;
  cookie: Uint8Array | undefined;
  refuse: (leader: ReplicaId, cookie: Uint8Array | undefined) => boolean = () => true;
  seenCookies: (string | undefined)[] = [];
  onRoleChange(role: LeaderRole, leader: ReplicaId | undefined): void {
    this.events.push(`role:${role}:${leader ?? '?'}`);
  }
  onLeaderRecovered(): void {
    this.events.push('recovered');
    this.recoveredAtApplied.push(this.applied.length);
  }
  canBecomeLeader(): { ok: boolean; cookie?: Uint8Array } {
    return this.veto ? { ok: false } : { ok: true, ...(this.cookie ? { cookie: this.cookie } : {}) };
  }
  acceptMessageFrom(leader: ReplicaId, cookie: Uint8Array | undefined): boolean {
    this.seenCookies.push(cookie ? Buffer.from(cookie).toString() : undefined);
    return this.refuse(leader, cookie);
  }
  beforeBatch(slot: Slot): void {
    this.events.push(`before:${slot}`);
  }
  afterBatch(slot: Slot): void {
    this.events.push(`after:${slot}`);
  }
}

const hooked = (opts: Parameters<typeof simCluster>[0] = {}) =>
  simCluster<HookedMachine>({ ...opts, makeStateMachine: () => new HookedMachine() });

async function run<T>(c: SimCluster<any>, p: Promise<T>, ms = 2_000): Promise<T> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  const end = c.sched.now() + ms;
  while (!done && c.sched.now() < end) {
    if (!c.sched.step()) c.sched.runFor(1);
    await Promise.resolve();
  }
  return p;
}

describe('RSL parity of the replica API', () => {
  it('exclusive submissions are alone in their slot (ReplicateRequestExclusiveVote)', async () => {
    const c = await hooked({ seed: 2 });
    const l = c.waitForLeader();
    const r = c.replica(l);
    const ps = [
      r.submit(enc('a1')),
      r.submit(enc('a2')),
      r.submit(enc('X'), { exclusive: true }),
      r.submit(enc('b1')),
      r.submit(enc('b2')),
    ];
    await run(c, Promise.all(ps));
    const applied = c.sm(l).applied;
    const xSlot = applied.find((a) => a.cmd === 'X')!.slot;
    expect(applied.filter((a) => a.slot === xSlot).map((a) => a.cmd)).toEqual(['X']);
    await c.stop();
  });

  it('an exclusive last-before-step-down command makes the leader step down once it is chosen', async () => {
    const c = await hooked({ seed: 3 });
    const l = c.waitForLeader();
    const res = await run(c, c.replica(l).submit(enc('bye'), { exclusive: true, lastBeforeStepDown: true }));
    expect(dec(res)).toBe('ok:bye');
    c.run(5);
    expect(c.replica(l).isLeader()).toBe(false);
    expect(c.sm(l).events.some((e) => e.startsWith('role:follower'))).toBe(true);
    const next = c.waitForLeader(5_000);
    expect(next).not.toBe(l); // the old leader does not campaign at once
    await c.stop();
  });

  it('a leader that loses leadership rejects its pending submissions with NotLeader (AbortRequest)', async () => {
    const c = await hooked({ seed: 4 });
    const l = c.waitForLeader();
    const others = c.ids.filter((id) => id !== l);
    c.net.partition([[l], others]);
    const pending = c
      .replica(l)
      .submit(enc('never'))
      .catch((e) => e);
    c.waitForLeader(5_000, others);
    c.run(1_000);
    await c.settle();
    const err = await pending;
    expect(err).toBeInstanceOf(NotLeaderError);
    expect((err as NotLeaderError).maybeExecuted).toBe(true); // it was proposed: it could still be chosen
    expect(c.replica(l).isLeader()).toBe(false);
    await c.stop();
  });

  it('onRoleChange tells the new leader and the old one (NotifyStatus)', async () => {
    const c = await hooked({ seed: 5 });
    const l = c.waitForLeader();
    expect(c.sm(l).events).toContain(`role:leader:${l}`);
    c.replica(l).relinquishLeadership();
    const next = c.waitForLeader(
      5_000,
      c.ids.filter((id) => id !== l),
    );
    expect(c.sm(l).events.some((e) => e.startsWith('role:follower'))).toBe(true);
    expect(c.sm(next).events).toContain(`role:leader:${next}`);
    await c.stop();
  });

  it(
    'onLeaderRecovered comes only after every command of ' + 'earlier leaders has executed (NotifyPrimaryRecovered)',
    async () => {
      for (const seed of [6, 7, 8]) {
        const c = await hooked({ seed, net: { minDelayMs: 1, maxDelayMs: 3 } });
        const l = c.waitForLeader();
        const r = c.replica(l);
        const acked: string[] = [];
        const ps = Array.from({ length: 40 }, (_, i) => r.submit(enc(`w${i}`)).then(() => acked.push(`w${i}`)));
        // crash the leader right after its first acknowledgements: followers may not have executed them yet
        await run(c, ps[20]!);
        await c.crash(l);
        const next = c.waitForLeader(5_000);
        c.run(500);
        const sm = c.sm(next);
        expect(sm.recoveredAtApplied.length).toBeGreaterThan(0);
        // at the moment it was told, it had executed every command the old leader acknowledged
        expect(sm.recoveredAtApplied[0]).toBeGreaterThanOrEqual(acked.length);
        expect(sm.commands().slice(0, acked.length)).toEqual(expect.arrayContaining(acked));
        await c.stop();
      }
    },
  );

  it('canBecomeLeader vetoes leadership (CanBecomePrimary)', async () => {
    const c = new SimCluster<HookedMachine>({
      seed: 9,
      makeStateMachine: (id) => Object.assign(new HookedMachine(), { veto: id !== 'r3' }),
    });
    await c.start();
    for (let i = 0; i < 5; i++) {
      const l = c.waitForLeader(5_000);
      expect(l).toBe('r3');
      c.run(300);
    }
    await c.stop();
  });

  it(
    'followers see the leader cookie in acceptMessageFrom; a ' +
      'refusing follower does not vote (AcceptMessageFromReplica)',
    async () => {
      // r1 and r2 refuse any leader whose cookie is not "good"; r3 offers "bad", r1 offers "good"
      const c = new SimCluster<HookedMachine>({
        seed: 10,
        makeStateMachine: (id) =>
          Object.assign(new HookedMachine(), {
            cookie: Buffer.from(id === 'r3' ? 'bad' : 'good'),
            veto: id === 'r2',
            refuse: (_leader: ReplicaId, cookie: Uint8Array | undefined) =>
              id === 'r3' || cookie === undefined || Buffer.from(cookie).toString() === 'good',
          }),
      });
      await c.start();
      // r3 campaigns first: only its own acceptor promises (r1 and r2 refuse its cookie) => no majority
      c.replica('r3').attemptPromotion();
      c.run(100);
      expect(c.replica('r3').isLeader()).toBe(false);
      expect(c.sm('r1').seenCookies).toContain('bad');
      const l = c.waitForLeader(5_000);
      expect(l).toBe('r1');
      expect(c.sm('r2').seenCookies).toContain('good');
      await c.stop();
    },
  );

  it('relinquishLeadership and attemptPromotion move leadership', async () => {
    const c = await hooked({ seed: 11 });
    const l = c.waitForLeader();
    const target = c.ids.find((id) => id !== l)!;
    c.replica(target).attemptPromotion();
    c.run(50);
    expect(c.replica(target).isLeader()).toBe(true);
    expect(c.replica(l).isLeader()).toBe(false);
    c.replica(target).relinquishLeadership();
    c.run(5);
    expect(c.replica(target).isLeader()).toBe(false);
    const next = c.waitForLeader(5_000);
    expect(next).not.toBe(target);
    await c.stop();
  });

  it(
    'executedSlot, highestChosenSlot and currentLeader ' + '(GetCurrentSequenceNumber, GetHighestPassedSequenceNumber)',
    async () => {
      const c = await hooked({ seed: 12 });
      const l = c.waitForLeader();
      for (let i = 0; i < 5; i++) await c.submitAndWait(enc(`s${i}`));
      const r = c.replica(l);
      expect(r.executedSlot()).toBe(c.sm(l).applied.at(-1)!.slot);
      expect(r.highestChosenSlot()).toBeGreaterThanOrEqual(r.executedSlot());
      c.run(200);
      for (const id of c.ids) {
        expect(c.replica(id).currentLeader()).toBe(l);
        expect(c.replica(id).executedSlot()).toBe(r.executedSlot());
      }
      await c.stop();
    },
  );

  it('beforeBatch and afterBatch wrap the commands of one slot', async () => {
    const c = await hooked({ seed: 13 });
    const l = c.waitForLeader();
    await c.submitAndWait(enc('hb'));
    const ev = c.sm(l).events.filter((e) => e.startsWith('before') || e.startsWith('after'));
    const slot = c.sm(l).applied.find((a) => a.cmd === 'hb')!.slot;
    expect(ev).toContain(`before:${slot}`);
    expect(ev.indexOf(`before:${slot}`)).toBeLessThan(ev.indexOf(`after:${slot}`));
    await c.stop();
  });

  it('peer health: connection, in-flight slots, last accepted slot, vote payload (SetVotePayload)', async () => {
    const c = await hooked({ seed: 14 });
    const l = c.waitForLeader();
    const f = c.ids.find((id) => id !== l)!;
    c.replica(f).setVotePayload(Buffer.from('load=3'));
    for (let i = 0; i < 5; i++) await c.submitAndWait(enc(`h${i}`));
    c.run(200);
    const h = c
      .replica(l)
      .peerHealth()
      .find((p) => p.id === f)!;
    expect(h.connected).toBe(true);
    expect(h.inFlight).toBe(0);
    expect(h.lastAcceptedSlot).toBe(c.replica(l).executedSlot());
    expect(Buffer.from(h.votePayload!).toString()).toBe('load=3');
    c.net.setDown(f, true);
    const p = c.replica(l).submit(enc('h-next'));
    c.run(5);
    const h2 = c
      .replica(l)
      .peerHealth()
      .find((x) => x.id === f)!;
    expect(h2.inFlight).toBeGreaterThan(0);
    c.net.setDown(f, false);
    await run(c, p);
    await c.stop();
  });

  it('statistics count executed commands, log writes and voting time', async () => {
    const c = await hooked({ seed: 15, net: { minDelayMs: 1, maxDelayMs: 1 } });
    const l = c.waitForLeader();
    for (let i = 0; i < 10; i++) await c.submitAndWait(enc(`st${i}`));
    const s = c.replica(l).statistics();
    expect(s.commandsExecuted).toBe(10);
    expect(s.slotsChosen).toBeGreaterThanOrEqual(10);
    expect(s.log.appends).toBeGreaterThan(0);
    expect(s.meanVotingMs).toBeGreaterThanOrEqual(2); // one round trip of 1 ms each way
    await c.stop();
  });

  it('the election timeout can be changed at run time', async () => {
    const c = await hooked({ seed: 16 });
    const l = c.waitForLeader();
    for (const id of c.ids) c.replica(id).setElectionTimeout(2_000, 2_500);
    c.run(100);
    const t0 = c.sched.now();
    await c.crash(l);
    const next = c.waitForLeader(10_000);
    expect(next).not.toBe(l);
    expect(c.sched.now() - t0).toBeGreaterThanOrEqual(2_000 - 40);
    await c.stop();
  });

  it('the inspect option reaches every role actor', async () => {
    const seen = new Set<string>();
    const c = new SimCluster({
      seed: 17,
      inspect: (ev: InspectionEvent) => {
        const id = (ev.actorRef as unknown as { logic?: { id?: string } }).logic?.id;
        if (id) seen.add(id);
      },
    });
    await c.start();
    c.waitForLeader();
    await c.submitAndWait(enc('inspected'));
    expect([...seen].sort()).toEqual(['acceptor', 'config-manager', 'elector', 'learner', 'proposer', 'snapshotter']);
    await c.stop();
  });
});

describe('fast reads (RSL FastReadRequest)', () => {
  it('waitForSlot resolves once the replica executed the slot, or rejects as stale after the timeout', async () => {
    const c = await hooked({ seed: 18 });
    const l = c.waitForLeader();
    await c.submitAndWait(enc('fr1'));
    const seen = c.replica(l).executedSlot();
    const f = c.ids.find((id) => id !== l)!;
    c.run(100);
    expect(await run(c, c.replica(f).waitForSlot(seen, 100))).toBeGreaterThanOrEqual(seen);
    // cut the follower off: it cannot reach a slot it never hears of
    c.net.partition([[f], c.ids.filter((id) => id !== f)]);
    await c.submitAndWait(enc('fr2'));
    const later = c.replica(l).executedSlot();
    const err = await run(c, c.replica(f).waitForSlot(later, 200)).catch((e) => e);
    expect(err).toBeInstanceOf(StaleReplicaError);
    c.net.heal();
    expect(await run(c, c.replica(f).waitForSlot(later, 2_000))).toBeGreaterThanOrEqual(later);
    await c.stop();
  });
});

describe('read-index (linearizable reads without a log slot)', () => {
  it('resolves on the leader with an index covering every acknowledged write', async () => {
    const c = await hooked({ seed: 19 });
    const l = c.waitForLeader();
    await c.submitAndWait(enc('ri1'));
    const slot = c.replica(l).executedSlot();
    expect(await run(c, c.replica(l).readIndex())).toBeGreaterThanOrEqual(slot);
    await c.stop();
  });

  it('a deposed leader cannot confirm a read, even before it notices', async () => {
    const c = await hooked({
      seed: 20,
      options: { elector: { electionTimeoutMinMs: 150, electionTimeoutMaxMs: 300, heartbeatMs: 40 } },
    });
    const old = c.waitForLeader();
    c.replica(old).setElectionTimeout(5_000, 10_000); // it will not notice (CheckQuorum) for a long time
    c.run(100);
    const [f, g] = c.ids.filter((id) => id !== old) as [string, string];
    c.net.partition([[old], [f, g]]);
    const next = c.waitForLeader(5_000, [f, g]);
    await c.submitAndWait(enc('after'), 5_000, next);
    const other = next === f ? g : f;
    // the old leader now reaches `other` (which promised the new ballot) but not the new leader
    c.net.partition([[old, other], [next]]);
    expect(c.replica(old).isLeader()).toBe(true); // it still believes it leads
    const err = await run(c, c.replica(old).readIndex(500)).catch((e) => e);
    expect(err).toBeInstanceOf(NotLeaderError);
    await c.stop();
  });
});
