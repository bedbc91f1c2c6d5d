import { describe, expect, it } from 'vitest';
import { KvCommands } from '@decree/kv-machine';
import { SimCluster } from '@decree/testkit';
import { checkLiveness } from '../src/liveness.ts';
import { simulateScale } from '../src/scale.ts';

describe('the scale scenario and its liveness check', () => {
  it('a log that fits in the links comes back from a whole-cluster restart in time; the checks pass', async () => {
    const r = await simulateScale({ seed: 1, slots: 50, valueBytes: 2000 });
    expect(r.violation).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.slots).toBeGreaterThanOrEqual(50);
    expect(r.acked.small).toBeGreaterThan(500);
    expect(r.restarts).toBe(1);
    expect(r.recoveries[0]!.leaderAfterMs).toBeLessThanOrEqual(r.recoveries[0]!.commitAfterMs!);
    expect(r.recoveries[0]!.commitAfterMs).toBeLessThan(10_000);
    expect(r.links!.drops.full).toBe(0);
  }, 60_000);

  it("names each replica's states and rounds when no leader is elected, and passes once one is", async () => {
    const c = new SimCluster({ n: 3, seed: 5 });
    await c.start();
    c.waitForLeader(5_000);
    for (const id of c.ids) await c.crash(id);
    c.net.partition([['r1'], ['r2'], ['r3']]);
    for (const id of c.ids) await c.restart(id);
    const write = (i: number) => KvCommands.set('x', String(i));
    const cut = await checkLiveness(c, 3_000, write);
    expect(cut.ok).toBe(false);
    expect(cut.leaderAfterMs).toBeUndefined();
    expect(cut.message).toMatch(/^no leader after faults stopped: none within 3000 ms \(virtual\)/);
    for (const id of c.ids)
      expect(cut.message).toMatch(new RegExp(`\\n  ${id}: proposer=\\S+ elector=\\S+ .*promised=\\d+`));
    expect(cut.message).toMatch(/promised rounds r1 \d+->\d+, r2 \d+->\d+, r3 \d+->\d+/);
    c.net.heal();
    const healed = await checkLiveness(c, 3_000, write);
    expect(healed.message).toBeUndefined();
    expect(healed.ok).toBe(true);
    expect(healed.commitAfterMs).toBeLessThanOrEqual(3_000);
    await c.stop();
  });
});
