import { describe, expect, it } from 'vitest';
import { simCluster, enc, dec } from '@decree/testkit';

describe('sim cluster basics', () => {
  it('elects a leader and replicates commands in the same order everywhere', async () => {
    const c = await simCluster({ n: 3, seed: 7 });
    const leader = c.waitForLeader();
    expect(c.leaders()).toEqual([leader]);
    for (let i = 0; i < 20; i++) {
      const r = await c.submitAndWait(enc(`cmd${i}`));
      expect(dec(r)).toBe(`ok:cmd${i}`);
    }
    c.run(500);
    const logs = c.ids.map((id) => c.sm(id).commands());
    expect(logs[0]).toHaveLength(20);
    expect(logs[1]).toEqual(logs[0]);
    expect(logs[2]).toEqual(logs[0]);
    await c.stop();
  });
});
