/**
 * Issue #17 point 2: a leader whose configuration change was just chosen stays `leading` with a new
 * ballot while phase 1 of that ballot runs in the new configuration (re-prepare:
 * leading.reconfiguring.re-preparing). A read-index read
 * then must wait for that phase 1 (the slots after the change may hold writes it has not recovered),
 * and its quorum is the new configuration's, not the replica's member list (which changes only when
 * its learner executes the change).
 */
import { describe, expect, it } from 'vitest';
import type { Message, ReplicaId } from '@decree/protocol';
import { type LogMachine, type SimCluster, enc, simCluster } from '@decree/testkit';

/** the proposer's state while phase 1 runs again in the configuration its change set up */
const REPREPARING = { leading: { reconfiguring: 're-preparing' } } as const;
const FAST = {
  elector: { electionTimeoutMinMs: 2_000, electionTimeoutMaxMs: 4_000, heartbeatMs: 40 },
  configManager: { maxLagSlots: 8 },
};

async function until<T>(c: SimCluster<LogMachine>, p: Promise<T>, timeoutMs = 30_000): Promise<T> {
  let done = false;
  let value: T | undefined;
  let error: unknown;
  p.then(
    (v) => {
      done = true;
      value = v;
    },
    (e) => {
      done = true;
      error = e;
    },
  );
  const end = c.sched.now() + timeoutMs;
  while (!done && c.sched.now() < end) {
    if (!c.sched.step()) c.sched.runFor(1);
    await Promise.resolve();
  }
  if (!done) throw new Error(`not settled within ${timeoutMs} ms (virtual)`);
  if (error) throw error;
  return value as T;
}

/** Filters what the network delivers to `id` (true: deliver). */
function filter(c: SimCluster<LogMachine>, id: ReplicaId, keep: (m: Message) => boolean): void {
  const receivers = (c.net as unknown as { receivers: Map<ReplicaId, (m: Message) => void> }).receivers;
  const orig = receivers.get(id)!;
  receivers.set(id, (m) => {
    if (keep(m)) orig(m);
  });
}

describe('read-index around a configuration change', () => {
  it('waits for the phase 1 of the new configuration, then confirms with its members', async () => {
    const c = await simCluster({ n: 4, members: ['r1', 'r2', 'r3'], seed: 5, options: FAST });
    const leader = c.waitForLeader();
    for (let i = 0; i < 12; i++) await until(c, c.replica(leader).submit(enc(`w${i}`)));
    const keep = [leader, ...['r1', 'r2', 'r3'].filter((x) => x !== leader).slice(0, 1), 'r4'];
    // the new members' promises for the re-prepare do not reach the leader (yet)
    let block = false;
    filter(c, leader, (m) => !(block && m.type === 'promise' && m.from !== leader));
    const p = c.replica(leader).proposer;
    let reading: Promise<number> | undefined;
    let readDone = false;
    const sub = p.subscribe((s) => {
      // the moment the change is chosen and phase 1 restarts in the new configuration: read
      if (!reading && s.matches(REPREPARING)) {
        block = true;
        reading = c.replica(leader).readIndex(10_000);
        reading.then(
          () => (readDone = true),
          () => (readDone = true),
        );
      }
    });
    const change = c.replica(leader).changeConfiguration(keep);
    for (let i = 0; i < 3_000 && !reading; i++) {
      c.run(1);
      await c.settle();
    }
    expect(reading).toBeDefined();
    // phase 1 at the new ballot cannot complete: the read must not be answered meanwhile
    for (let i = 0; i < 500; i++) {
      c.run(1);
      await c.settle();
    }
    expect(p.getSnapshot().matches(REPREPARING)).toBe(true);
    expect(readDone).toBe(false);
    // the promises flow again: phase 1 completes, and the read is answered at or after the change's slot
    block = false;
    const index = await until(c, reading!);
    sub.unsubscribe();
    await until(c, change);
    expect(p.getSnapshot().matches(REPREPARING)).toBe(false);
    expect(index).toBeGreaterThanOrEqual(c.replica(leader).getConfiguration().startSlot - 1);
    await c.stop();
  });
});
