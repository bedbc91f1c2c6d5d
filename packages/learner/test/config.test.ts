import { describe, expect, it } from 'vitest';
import type { SlotValue } from '@decree/protocol';
import { b, batch, catchupRep, decide, learn, learnerHarness } from './harness.ts';

const cfg = (epoch: number, members: string[], origin = 'r2', firstId = 4, cookie?: Uint8Array): SlotValue => ({
  k: 'config',
  epoch,
  members,
  origin,
  inc: 1,
  firstId,
  ...(cookie ? { cookie } : {}),
});

describe('learner: configuration changes', () => {
  it(
    'executing a config value at slot e makes its members the ' +
      'configuration from e+1; the config-manager and the proposer hear of it',
    () => {
      const h = learnerHarness();
      const bal = b(1, 'r2');
      h.actor.send(learn(bal, 1, batch(['a'])));
      h.actor.send(learn(bal, 2, cfg(2, ['r1', 'r2', 'r4'], 'r2', 4, new Uint8Array([9]))));
      h.actor.send(learn(bal, 3, batch(['b'])));
      h.actor.send(decide(bal, 3));
      expect(h.sm.applied).toEqual(['a', 'b']);
      expect(h.ctx().config).toEqual({ epoch: 2, members: ['r1', 'r2', 'r4'], startSlot: 3 });
      expect(h.ctx().members).toEqual(['r1', 'r2', 'r4']);
      const r = h.sent('reconfigured');
      expect(r).toHaveLength(1);
      expect(r[0]).toMatchObject({
        to: 'r1',
        slot: 2,
        config: { epoch: 2, members: ['r1', 'r2', 'r4'], startSlot: 3 },
        origin: 'r2',
        firstId: 4,
        cookie: new Uint8Array([9]),
      });
      expect(h.sent('progress').at(-1)).toMatchObject({ executedUpTo: 3, config: { epoch: 2 } });
    },
  );

  it('a snapshot install brings the configuration of the slots after it', async () => {
    const h = learnerHarness();
    const config = { epoch: 4, members: ['r3', 'r4', 'r5'], startSlot: 40 };
    h.actor.send({
      type: 'snap-install',
      ring: 'ring',
      from: 'r1',
      to: 'r1',
      seq: 7,
      slot: 50,
      data: new Uint8Array(0),
      config,
    });
    expect(h.actor.getSnapshot().value).toBe('installing');
    await new Promise((r) => setTimeout(r, 0)); // the state machine's restore resolves
    expect(h.actor.getSnapshot().value).toEqual({ learning: 'current' });
    expect(h.sent('snap-installed')).toEqual([expect.objectContaining({ seq: 7, ok: true })]);
    expect(h.ctx().executedUpTo).toBe(50);
    expect(h.ctx().config).toEqual({ epoch: 4, members: ['r3', 'r4', 'r5'], startSlot: 40 });
    expect(h.sent('reconfigured')).toEqual([
      expect.objectContaining({ slot: 50, config: { epoch: 4, members: ['r3', 'r4', 'r5'], startSlot: 40 } }),
    ]);
    expect(h.sent('reconfigured')[0]!.origin).toBeUndefined();
  });

  it('a joining replica (no configuration) catches up from the leader it heard of, then from the ring peers', () => {
    const h = learnerHarness({
      configuration: { epoch: 0, members: [], startSlot: 1 },
      peers: ['r1', 'r2', 'r3', 'r4'],
    });
    h.actor.send(decide(b(3, 'r3'), 10));
    const reqs = h.sent('catchup-req');
    expect(reqs.at(-1)).toMatchObject({ to: 'r3', fromSlot: 1 });
    h.actor.send(catchupRep('r3', [], 10, 1)); // r3 did not help
    h.sched.runFor(100);
    h.actor.send({ type: 'tick' });
    expect(h.sent('catchup-req').at(-1)!.to).not.toBe('r1');
    // it executes a config value naming it (whatever epoch it carries) and becomes a member
    h.actor.send(
      catchupRep(
        'r2',
        [
          { slot: 1, value: batch(['x']) },
          { slot: 2, value: cfg(5, ['r2', 'r3', 'r1']) },
        ],
        10,
      ),
    );
    expect(h.ctx().config).toEqual({ epoch: 5, members: ['r2', 'r3', 'r1'], startSlot: 3 });
  });

  it(
    'a lagging member asks the leader it heard of even when ' +
      'its configuration does not name it, then every ring peer',
    () => {
      const h = learnerHarness({ peers: ['r1', 'r2', 'r3', 'r4', 'r5'] });
      h.actor.send(decide(b(4, 'r4'), 40)); // r4 leads a configuration this replica has not executed yet
      expect(h.sent('catchup-req').at(-1)!.to).toBe('r4');
      const asked = new Set<string>();
      for (let i = 0; i < 8; i++) {
        h.actor.send(catchupRep(h.sent('catchup-req').at(-1)!.to, [], 40, 1)); // nobody helps
        h.sched.runFor(100);
        h.actor.send({ type: 'tick' });
        asked.add(h.sent('catchup-req').at(-1)!.to);
      }
      expect([...asked].sort()).toEqual(['r2', 'r3', 'r4', 'r5']);
    },
  );
});
