import { describe, expect, it } from 'vitest';
import type { Message, ReplicaId } from '@decree/protocol';
import { SimCluster, enc } from '@decree/testkit';
import type { Replica } from '@decree/replica';
import { MemoryStore } from '@decree/storage/memory';

// Small intervals so a few hundred commands make several snapshots, truncations and transfers.
const SNAP = {
  everySlots: 20,
  everyBytes: 0,
  truncateMargin: 5,
  chunkBytes: 64,
  window: 4,
  retryMs: 30,
  retriesPerPeer: 3,
  keep: 2,
};

async function cluster(seed: number): Promise<SimCluster> {
  const c = new SimCluster({ seed, options: { snapshotter: SNAP, learner: { catchupIntervalMs: 20 } } });
  await c.start();
  c.waitForLeader();
  return c;
}

/** Submits `n` commands one slot each (a few in flight) and runs virtual time until they execute. */
async function load(c: SimCluster, prefix: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await c.submitAndWait(enc(`${prefix}${i}`), 5_000);
}

function follower(c: SimCluster): ReplicaId {
  const l = c.leader()!;
  return c.up().find((id) => id !== l)!;
}

const snap = (r: Replica) => r.snapshotter.getSnapshot().context;

/**
 * Runs virtual time until `cond` (or the timeout), letting promise callbacks run between steps
 * (snapshot capture, store and restore are async: microtasks outside virtual time).
 */
async function runUntil(c: SimCluster, cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = c.sched.now() + timeoutMs;
  for (;;) {
    await new Promise((r) => setImmediate(r));
    if (cond()) return true;
    if (c.sched.now() >= end) return false;
    c.run(1);
  }
}

/** Runs until `id` has executed what the leader has (or the timeout). */
function converge(c: SimCluster, id: ReplicaId, timeoutMs = 10_000): Promise<boolean> {
  return runUntil(
    c,
    () => {
      const l = c.leader();
      return (
        !!l &&
        !!c.nodes.get(id)!.replica &&
        c.replica(id).executedSlot() >= c.replica(l).executedSlot() &&
        c.replica(id).executedSlot() > 0
      );
    },
    timeoutMs,
  );
}

/** Intercepts what the simulated network delivers to `id` (re-install after every restart). */
function intercept(c: SimCluster, id: ReplicaId, f: (m: Message) => Message | undefined): void {
  const receivers = (c.net as unknown as { receivers: Map<ReplicaId, (m: Message) => void> }).receivers;
  const orig = receivers.get(id)!;
  receivers.set(id, (m) => {
    const out = f(m);
    if (out) orig(out);
  });
}

describe('catch-up by snapshot', () => {
  it(
    'a replica down while the others snapshot and truncate ' +
      'comes back by snapshot plus log suffix, with equal state',
    async () => {
      const c = await cluster(7);
      await load(c, 'a', 10);
      const lagger = follower(c);
      await c.crash(lagger);
      await load(c, 'b', 120);
      // the others snapshotted and truncated their logs and retained slots
      for (const id of c.up()) {
        const st = c.replica(id).statistics().snapshots;
        expect(st.saved).toBeGreaterThan(0);
        expect(st.truncatedBelow).toBeGreaterThan(10);
        expect(c.replica(id).acceptor.getSnapshot().context.truncatedBelow).toBeGreaterThan(10);
        const l = c.replica(id).learner.getSnapshot().context;
        expect(l.retainFrom).toBeGreaterThan(10);
      }
      await c.restart(lagger); // fresh state machine, fresh (memory) snapshot store: an empty disk for snapshots
      expect(await converge(c, lagger)).toBe(true);
      await load(c, 'c', 5); // the log suffix after the snapshot keeps flowing
      expect(await converge(c, lagger)).toBe(true);
      const r = c.replica(lagger);
      expect(r.statistics().snapshots.installed).toBeGreaterThanOrEqual(1);
      const leader = c.leader()!;
      expect(c.sm(lagger).commands()).toEqual(c.sm(leader).commands());
      expect(c.sm(lagger).commands()).toHaveLength(135);
      // the learner's snapshot slot plus the suffix: it never applied slot 1 itself
      expect(r.statistics().slotsExecuted).toBeLessThan(r.executedSlot());
      await c.stop();
    },
  );

  it('a replica that restarts with an empty disk (no log, no snapshot) rejoins by snapshot plus log', async () => {
    const c = await cluster(11);
    await load(c, 'a', 10);
    const wiped = follower(c);
    await c.crash(wiped);
    await load(c, 'b', 80);
    // the disk is replaced by an empty one: no promises, no accepted entries, no snapshots
    c.nodes.get(wiped)!.store = new MemoryStore({ defer: (fn) => c.nodes.get(wiped)!.env.defer(fn) });
    await c.restart(wiped);
    expect(c.replica(wiped).acceptor.getSnapshot().context.accepted.size).toBe(0);
    expect(await converge(c, wiped)).toBe(true);
    await load(c, 'c', 5);
    expect(await converge(c, wiped)).toBe(true);
    expect(c.replica(wiped).statistics().snapshots.installed).toBeGreaterThanOrEqual(1);
    expect(c.sm(wiped).commands()).toEqual(c.sm(c.leader()!).commands());
    expect(c.sm(wiped).commands()).toHaveLength(95);
    await c.stop();
  });

  it('the same seed gives the same execution', async () => {
    const run = async () => {
      const c = await cluster(11);
      await load(c, 'a', 5);
      const lagger = follower(c);
      await c.crash(lagger);
      await load(c, 'b', 60);
      await c.restart(lagger);
      await converge(c, lagger);
      const out = {
        lagger,
        slot: c.replica(lagger).executedSlot(),
        stats: c.replica(lagger).statistics().snapshots,
        now: c.sched.now(),
      };
      await c.stop();
      return out;
    };
    expect(await run()).toEqual(await run());
  });

  it('a corrupted chunk is detected and fetched again; the installed state is intact', async () => {
    const c = await cluster(21);
    await load(c, 'a', 5);
    const lagger = follower(c);
    await c.crash(lagger);
    await load(c, 'b', 80);
    await c.restart(lagger);
    let corrupted = 0;
    intercept(c, lagger, (m) => {
      if (m.type === 'snap-chunk' && m.count > 2 && m.index === 1 && corrupted < 2) {
        corrupted++;
        const data = new Uint8Array(m.data);
        data[0] = data[0]! ^ 0x55;
        return { ...m, data };
      }
      return m;
    });
    expect(await converge(c, lagger)).toBe(true);
    expect(corrupted).toBe(2);
    const st = c.replica(lagger).statistics().snapshots;
    expect(st.badChunks).toBeGreaterThanOrEqual(2);
    expect(st.installed).toBeGreaterThanOrEqual(1);
    expect(c.sm(lagger).commands()).toEqual(c.sm(c.leader()!).commands());
    await c.stop();
  });

  it('a transfer interrupted by the sender crashing never installs a partial state and completes later', async () => {
    const c = await cluster(33);
    await load(c, 'a', 5);
    const lagger = follower(c);
    await c.crash(lagger);
    await load(c, 'b', 100);
    await c.restart(lagger);
    // run until the transfer is under way, then crash the peer sending it
    const r = c.replica(lagger);
    const midway = await runUntil(
      c,
      () => {
        const f = snap(r).fetch;
        return !!f && f.next > 0 && f.next < f.count - 2;
      },
      5_000,
    );
    expect(midway).toBe(true);
    const sender = snap(r).fetch!.peer;
    const partialAt = snap(r).fetch!.next;
    await c.crash(sender);
    // nothing installed yet: only what its own log replayed at the restart
    const replayed = r.replayed?.upTo ?? 0;
    expect(r.executedSlot()).toBe(replayed);
    expect(c.sm(lagger).applied.every((a) => a.slot <= replayed)).toBe(true);
    // the other replica serves it (resuming if it has the same snapshot, else from the start)
    await runUntil(c, () => r.statistics().snapshots.installed > 0, 10_000);
    expect(r.statistics().snapshots.installed).toBe(1);
    expect(r.executedSlot()).toBeGreaterThan(replayed);
    expect(partialAt).toBeGreaterThan(0);
    const other = c.up().find((id) => id !== lagger)!;
    await c.restart(sender);
    expect(await converge(c, lagger)).toBe(true);
    await load(c, 'c', 3);
    expect(await converge(c, lagger)).toBe(true);
    // the other follower too (converge() compares with the leader only)
    expect(await converge(c, other)).toBe(true);
    expect(c.sm(lagger).commands()).toEqual(c.sm(other).commands());
    await c.stop();
  });

  it('a transfer over a lossy network (drops, duplicates) completes with the right state', async () => {
    const c = await cluster(45);
    await load(c, 'a', 5);
    const lagger = follower(c);
    await c.crash(lagger);
    await load(c, 'b', 80);
    await c.restart(lagger);
    let dropped = 0;
    let n = 0;
    intercept(c, lagger, (m) => {
      if (m.type === 'snap-chunk' && n++ % 3 === 1) {
        dropped++;
        return undefined;
      }
      return m;
    });
    expect(await converge(c, lagger, 20_000)).toBe(true);
    expect(dropped).toBeGreaterThan(0);
    expect(c.sm(lagger).commands()).toEqual(c.sm(c.leader()!).commands());
    await c.stop();
  });

  it('under a long write load the log stays bounded on every replica', async () => {
    const c = await cluster(5);
    let maxAccepted = 0;
    let maxRetained = 0;
    for (let round = 0; round < 30; round++) {
      await load(c, `w${round}-`, 20);
      for (const id of c.up()) {
        maxAccepted = Math.max(maxAccepted, c.replica(id).acceptor.getSnapshot().context.accepted.size);
        maxRetained = Math.max(maxRetained, c.replica(id).learner.getSnapshot().context.retained.size);
      }
    }
    const leader = c.replica(c.leader()!);
    expect(leader.executedSlot()).toBeGreaterThanOrEqual(600);
    // a snapshot every 20 slots, 2 kept, truncation 5 below the older: at most ~ keep * everySlots + margin + in flight
    const bound = SNAP.keep * SNAP.everySlots + SNAP.truncateMargin + 30;
    expect(maxAccepted).toBeLessThanOrEqual(bound);
    expect(maxRetained).toBeLessThanOrEqual(bound);
    // and the store was told to drop it too
    const rec = await c.nodes.get(c.leader()!)!.store.recover();
    expect(rec.accepted.size).toBeLessThanOrEqual(bound);
    expect(rec.truncatedBelow).toBeGreaterThan(500);
    await c.stop();
  });
});
