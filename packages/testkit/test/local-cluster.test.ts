/**
 * LocalCluster's steady mode: r1 leads at once (not after an election timeout) and stays the leader,
 * whose timeout is long; without it, nothing leads before the default timeout.
 */
import { describe, expect, it } from 'vitest';
import { LocalCluster, LogMachine } from '../src/index.ts';

describe('LocalCluster', () => {
  it('steady: r1 is elected at start, well before any election timeout, and keeps leading', async () => {
    const t0 = Date.now();
    const c = await new LocalCluster({ makeStateMachine: () => new LogMachine(), steady: true }).start();
    try {
      const leader = await c.waitForLeader(4_000); // STEADY_ELECTOR's timeout is 5-10 s: only the promotion elects
      expect(leader.id).toBe('r1');
      expect(Date.now() - t0).toBeLessThan(4_000);
      await leader.submit(new Uint8Array([1]));
      await new Promise((r) => setTimeout(r, 300));
      expect(c.leader()?.id).toBe('r1');
    } finally {
      await c.stop();
    }
  });

  it('without steady, no replica leads before the default election timeout (0.5 s)', async () => {
    const c = await new LocalCluster({ makeStateMachine: () => new LogMachine() }).start();
    try {
      expect(c.leader()).toBeUndefined();
      await new Promise((r) => setTimeout(r, 200));
      expect(c.leader()).toBeUndefined();
    } finally {
      await c.stop();
    }
  });
});
