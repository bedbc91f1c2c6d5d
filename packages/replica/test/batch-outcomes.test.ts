/**
 * Issue #17 point 1: a batch split across slots can be partly in flight when leadership is lost.
 * Its queued commands certainly did not execute; its in-flight ones may have. Each command gets its
 * own outcome, and the all-or-nothing forms (submitBatch, execute) say "may have executed" when any
 * part may have. Before the fix the queued part's "not executed" was reported for the whole batch,
 * and the KV service retried it whole: an INCR in the chosen part applied twice.
 */
import { describe, expect, it } from 'vitest';
import type { Message, ReplicaId } from '@decree/protocol';
import { LogMachine, SimCluster, enc } from '@decree/testkit';
import { NotLeaderError, batchError, type BatchOutcome } from '@decree/replica';

async function cluster(seed: number) {
  const c = await new SimCluster<LogMachine>({
    n: 3,
    seed,
    options: {
      // one slot of two commands in flight at a time: a 6-command batch is in flight and queued at once
      proposer: { maxInflightSlots: 1, maxBatchCmds: 2 },
      elector: { electionTimeoutMinMs: 300, electionTimeoutMaxMs: 600, heartbeatMs: 50 },
    },
  }).start();
  return c;
}

/** Drops the accepts the network would deliver to `id` (everything else goes through). */
function dropAccepts(c: SimCluster<LogMachine>, id: ReplicaId): void {
  const receivers = (c.net as unknown as { receivers: Map<ReplicaId, (m: Message) => void> }).receivers;
  const orig = receivers.get(id)!;
  receivers.set(id, (m) => {
    if (m.type !== 'accept') orig(m);
  });
}

async function waitFor<T>(c: SimCluster<LogMachine>, p: Promise<T>, ms = 5_000): Promise<T> {
  let out: { v: T } | undefined;
  void p.then((v) => (out = { v }));
  for (let t = 0; t < ms && !out; t++) {
    c.run(1);
    await c.settle();
  }
  if (!out) throw new Error('timed out');
  return out.v;
}

describe('a batch partly in flight when leadership is lost', () => {
  const lostMidway = async (submitAt: 'leader' | 'follower') => {
    const c = await cluster(7);
    const leader = c.waitForLeader();
    const follower = c.up().find((id) => id !== leader)!;
    await c.submitAndWait(enc('warm'));
    // the leader's accepts reach nobody: slot N (commands 0-1) stays in flight, 2-5 queued
    for (const id of c.up()) if (id !== leader) dropAccepts(c, id);
    const cmds = ['a', 'b', 'c', 'd', 'e', 'f'].map(enc);
    const target = submitAt === 'leader' ? leader : follower;
    const each = c.replica(target).executeEach(cmds, 60_000);
    for (let i = 0; i < 30; i++) {
      c.run(1);
      await c.settle();
    }
    c.replica(leader).relinquishLeadership();
    const o: BatchOutcome = await waitFor(c, each);
    await c.stop();
    return o;
  };

  for (const at of ['leader', 'follower'] as const) {
    it(`submitted at the ${at}: the in-flight part may have executed, the queued part did not`, async () => {
      const o = await lostMidway(at);
      expect(o.failed?.map((f) => [f.index, f.maybeExecuted])).toEqual([
        [0, true],
        [1, true],
        [2, false],
        [3, false],
        [4, false],
        [5, false],
      ]);
      for (const f of o.failed!) expect(f.error).toBeInstanceOf(NotLeaderError);
      // all or nothing: the batch may have executed, so it must not be retried whole
      const err = batchError(o) as NotLeaderError;
      expect(err).toBeInstanceOf(NotLeaderError);
      expect(err.maybeExecuted).toBe(true);
    });
  }

  it('submitBatch rejects with maybeExecuted when only a part may have executed', async () => {
    const c = await cluster(9);
    const leader = c.waitForLeader();
    await c.submitAndWait(enc('warm'));
    for (const id of c.up()) if (id !== leader) dropAccepts(c, id);
    let err: unknown;
    const p = c
      .replica(leader)
      .submitBatch(['a', 'b', 'c', 'd'].map(enc))
      .catch((e: unknown) => (err = e));
    for (let i = 0; i < 30; i++) {
      c.run(1);
      await c.settle();
    }
    c.replica(leader).relinquishLeadership();
    await waitFor(c, p);
    expect(err).toBeInstanceOf(NotLeaderError);
    expect((err as NotLeaderError).maybeExecuted).toBe(true);
    await c.stop();
  });
});
