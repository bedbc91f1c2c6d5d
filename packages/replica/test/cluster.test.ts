import { describe, expect, it } from 'vitest';
import {
  simCluster,
  enc,
  dec,
  checkAgreement,
  type AppliedEntry,
  type SimCluster,
  type LogMachine,
} from '@decree/testkit';
import { NotLeaderError } from '@decree/replica';

const logsOf = (c: SimCluster<LogMachine>, ids = c.up()) =>
  new Map<string, readonly AppliedEntry[]>(ids.map((id) => [id, c.sm(id).applied]));

async function submitMany(c: SimCluster<LogMachine>, prefix: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const cmd = `${prefix}${i}`;
    expect(dec(await c.submitAndWait(enc(cmd)))).toBe(`ok:${cmd}`);
    out.push(cmd);
  }
  return out;
}

describe('in-process clusters (simulated network, virtual time)', () => {
  for (const n of [3, 5]) {
    it(`${n} replicas apply the same commands in the same order`, async () => {
      const c = await simCluster({ n, seed: 11 * n });
      c.waitForLeader();
      const cmds = await submitMany(c, 'a', 50);
      c.run(500);
      for (const id of c.ids) expect(c.sm(id).commands()).toEqual(cmds);
      checkAgreement(logsOf(c));
      await c.stop();
    });
  }

  it('pipelines concurrent submissions into batched slots', async () => {
    const c = await simCluster({ n: 3, seed: 3, options: { proposer: { maxInflightSlots: 2 } } });
    const leader = c.waitForLeader();
    const ps = Array.from({ length: 500 }, (_, i) => c.replica(leader).submit(enc(`p${i}`)));
    c.run(1_000);
    await c.settle();
    const results = await Promise.all(ps);
    expect(results.map(dec)).toEqual(Array.from({ length: 500 }, (_, i) => `ok:p${i}`));
    const slots = new Set(c.sm(leader).applied.map((a) => a.slot));
    expect(slots.size).toBeLessThan(100); // batched: far fewer slots than commands
    for (const id of c.ids) expect(c.sm(id).commands()).toEqual(c.sm(leader).commands());
    await c.stop();
  });

  it('a follower rejects submit with NotLeader carrying the leader hint', async () => {
    const c = await simCluster({ n: 3, seed: 5 });
    const leader = c.waitForLeader();
    c.run(200); // heartbeats tell followers who leads
    const follower = c.ids.find((id) => id !== leader)!;
    const err = await c
      .replica(follower)
      .submit(enc('x'))
      .catch((e) => e);
    expect(err).toBeInstanceOf(NotLeaderError);
    expect((err as NotLeaderError).leaderHint).toBe(leader);
    await c.stop();
  });

  it('when the leader crashes another leads within the election timeout, and no chosen slot changes', async () => {
    const maxMs = 300;
    const c = await simCluster({
      n: 3,
      seed: 21,
      options: { elector: { electionTimeoutMinMs: 150, electionTimeoutMaxMs: maxMs, heartbeatMs: 40 } },
    });
    const leader = c.waitForLeader();
    await submitMany(c, 'before', 30);
    c.run(200);
    const survivors = c.ids.filter((id) => id !== leader);
    const before = survivors.map((id) => [...c.sm(id).applied]);
    const crashAt = c.sched.now();
    await c.crash(leader);
    const next = c.waitForLeader(5_000, survivors);
    const took = c.sched.now() - crashAt;
    // one heartbeat interval may pass unnoticed, then the longest randomized timeout, then one round of phase 1
    expect(took).toBeLessThanOrEqual(maxMs + 40 + 20);
    expect(next).not.toBe(leader);
    await submitMany(c, 'after', 20);
    c.run(300);
    survivors.forEach((id, i) => expect(c.sm(id).applied.slice(0, before[i]!.length)).toEqual(before[i]));
    checkAgreement(logsOf(c));
    // the old leader restarts, catches up, and agrees
    await c.restart(leader);
    c.run(1_000);
    expect(c.sm(leader).commands()).toEqual(c.sm(next).commands());
    await c.stop();
  });

  it('the minority side of a partition makes no progress; the majority goes on; the cluster heals', async () => {
    const c = await simCluster({ n: 5, seed: 8 });
    const leader = c.waitForLeader();
    await submitMany(c, 'pre', 10);
    c.run(200);
    const others = c.ids.filter((id) => id !== leader);
    const minority = [leader, others[0]!];
    const majority = others.slice(1);
    c.net.partition([minority, majority]);
    // the old leader may still take submissions, but they can never be chosen
    const stale = c
      .replica(leader)
      .submit(enc('lost?'))
      .catch((e) => e);
    const newLeader = c.waitForLeader(5_000, majority);
    expect(majority).toContain(newLeader);
    const minorityApplied = minority.map((id) => c.sm(id).applied.length);
    const done: string[] = [];
    for (let i = 0; i < 10; i++) {
      const cmd = `maj${i}`;
      await c.submitAndWait(enc(cmd), 5_000, newLeader);
      done.push(cmd);
    }
    c.run(500);
    minority.forEach((id, i) => expect(c.sm(id).applied.length).toBe(minorityApplied[i]));
    for (const id of majority) expect(c.sm(id).commands()).toEqual(expect.arrayContaining(done));
    // the old leader notices it lost its majority and stops leading; its pending command fails
    c.run(1_000);
    await c.settle();
    expect(c.replica(leader).isLeader()).toBe(false);
    expect(await stale).toBeInstanceOf(NotLeaderError);
    c.net.heal();
    // the healed minority may force one more election (its rounds grew while cut off): retry
    for (let attempt = 0; ; attempt++) {
      c.waitForLeader();
      try {
        await c.submitAndWait(enc(`healed${attempt}`), 5_000);
        break;
      } catch (e) {
        expect(e).toBeInstanceOf(NotLeaderError);
        expect(attempt).toBeLessThan(5);
      }
    }
    c.run(1_000);
    const ref = c.sm(c.leader()!).commands();
    for (const id of c.ids) expect(c.sm(id).commands()).toEqual(ref);
    expect(ref).not.toContain('lost?');
    checkAgreement(logsOf(c));
    await c.stop();
  });

  it('duplicated, reordered and dropped messages never break agreement', async () => {
    for (const seed of [1, 2, 3, 4]) {
      const c = await simCluster({
        n: 3,
        seed,
        net: { dropRate: 0.2, duplicateRate: 0.2, minDelayMs: 0.1, maxDelayMs: 20, serialize: true },
      });
      c.waitForLeader(10_000);
      const sent: string[] = [];
      for (let i = 0; i < 30; i++) {
        const cmd = `d${seed}-${i}`;
        try {
          await c.submitAndWait(enc(cmd), 3_000);
          sent.push(cmd);
        } catch {
          c.waitForLeader(10_000);
        }
      }
      c.net.opts.dropRate = 0;
      c.run(3_000);
      await c.settle();
      checkAgreement(logsOf(c));
      for (const id of c.ids) expect(c.sm(id).commands()).toEqual(expect.arrayContaining(sent));
      await c.stop();
    }
  });
});

describe('forwarding', () => {
  it('execute() on a follower forwards to the leader and returns the results', async () => {
    const c = await simCluster({ n: 3, seed: 31, net: { serialize: true } });
    const leader = c.waitForLeader();
    c.run(300);
    const follower = c.ids.find((id) => id !== leader)!;
    let out: (Uint8Array | undefined)[] | undefined;
    c.replica(follower)
      .execute([enc('f1'), enc('f2')])
      .then((r) => (out = r));
    for (let i = 0; i < 10 && !out; i++) {
      c.run(10);
      await c.settle();
    }
    expect(out?.map(dec)).toEqual(['ok:f1', 'ok:f2']);
    c.run(50);
    for (const id of c.ids) expect(c.sm(id).commands()).toEqual(['f1', 'f2']);
    await c.stop();
  });

  it(
    'a forwarded request the target refuses before proposing ' + 'says so (maybeExecuted false): it is safe to retry',
    async () => {
      const c = await simCluster({ n: 3, seed: 32, net: { serialize: true } });
      const leader = c.waitForLeader();
      c.run(300);
      const follower = c.ids.find((id) => id !== leader)!;
      c.replica(leader).relinquishLeadership(); // the followers still name it for a while
      c.run(1);
      expect(c.replica(follower).currentLeader()).toBe(leader);
      let err: unknown;
      c.replica(follower)
        .execute([enc('x')])
        .catch((e) => (err = e));
      for (let i = 0; i < 10 && !err; i++) {
        c.run(5);
        await c.settle();
      }
      expect(err).toBeInstanceOf(NotLeaderError);
      expect((err as NotLeaderError).maybeExecuted).toBe(false);
      await c.stop();
    },
  );

  it(
    'pre-vote: a replica cut off for several election timeouts ' +
      'does not depose the healthy leader when it comes back',
    async () => {
      const opts = { elector: { electionTimeoutMinMs: 150, electionTimeoutMaxMs: 300, heartbeatMs: 40 } };
      for (const preVote of [true, false]) {
        const c = await simCluster({ n: 3, seed: 33, options: { elector: { ...opts.elector, preVote } } });
        const leader = c.waitForLeader();
        c.run(300);
        const cut = c.ids.find((id) => id !== leader)!;
        c.net.partition([[cut], c.ids.filter((id) => id !== cut)]);
        c.run(2_000); // the cut-off replica's timeouts fire again and again
        c.net.heal();
        c.run(2_000);
        if (preVote) {
          expect(c.leader()).toBe(leader); // it asked first, nobody agreed, its round never rose
          expect(c.replica(cut).proposer.getSnapshot().context.ballot.round).toBe(0);
          // without pre-vote its higher ballot deposes the leader
        } else expect(c.replica(leader).isLeader()).toBe(false);
        await c.stop();
      }
    },
  );
});
