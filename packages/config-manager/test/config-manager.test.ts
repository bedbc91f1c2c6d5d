import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import type { Message, MessageOf } from '@decree/protocol';
import { type ConfigManagerInput, configManagerMachine } from '../src/index.ts';

const RING = 'ring';
const SELF = 'r1';

function harness(input: Partial<ConfigManagerInput> = {}) {
  let now = 0;
  const out: Message[] = [];
  const actor = createActor(configManagerMachine, {
    input: {
      ring: RING,
      self: SELF,
      inc: 7,
      send: (m) => out.push(m),
      now: () => now,
      configuration: { epoch: 1, members: ['r1', 'r2', 'r3'], startSlot: 1 },
      options: { maxLagSlots: 10, catchupTimeoutMs: 1000, proposeTimeoutMs: 1000 },
      ...input,
    },
  });
  actor.start();
  return {
    actor,
    out,
    setNow: (t: number) => {
      now = t;
    },
    sent<T extends Message['type']>(type: T): MessageOf<T>[] {
      return out.filter((m): m is MessageOf<T> => m.type === type);
    },
    state: () => actor.getSnapshot().value,
    change(members: string[], id = 1, cookie?: Uint8Array) {
      actor.send({
        type: 'config-change',
        ring: RING,
        from: SELF,
        to: SELF,
        id,
        members,
        ...(cookie ? { cookie } : {}),
      });
    },
    report(
      peers: { id: string; appliedUpTo: number; ageMs?: number }[],
      decidedUpTo = 100,
      leading = true,
      leader?: string,
    ) {
      actor.send({
        type: 'peer-progress',
        ring: RING,
        from: SELF,
        to: SELF,
        leading,
        ...(leader ? { leader } : {}),
        decidedUpTo,
        windowMs: 500,
        peers: peers.map((p) => ({ id: p.id, appliedUpTo: p.appliedUpTo, ageMs: p.ageMs ?? 10 })),
      });
    },
    reconfigured(
      slot: number,
      epoch: number,
      members: string[],
      origin?: string,
      firstId?: number,
      cookie?: Uint8Array,
    ) {
      actor.send({
        type: 'reconfigured',
        ring: RING,
        from: SELF,
        to: SELF,
        slot,
        config: { epoch, members, startSlot: slot + 1 },
        ...(origin ? { origin, inc: 7, firstId: firstId ?? 1 } : {}),
        ...(cookie ? { cookie } : {}),
      });
    },
  };
}

describe('config-manager', () => {
  it(
    'guard rails: empty, duplicate, unchanged sets are ' + 'refused at once with their code; the replica stays stable',
    () => {
      const h = harness();
      h.change([], 1);
      h.change(['r1', 'r2', 'r2'], 2);
      h.change(['r3', 'r1', 'r2'], 3);
      h.change(['r1', ''], 4);
      expect(h.sent('config-result').map((r) => [r.id, r.ok, r.code])).toEqual([
        [1, false, 'INVALID'],
        [2, false, 'INVALID'],
        [3, false, 'NO_CHANGE'],
        [4, false, 'INVALID'],
      ]);
      expect(h.sent('config-result')[1]!.error).toMatch(/duplicate replica id "r2"/);
      expect(h.state()).toBe('stable');
    },
  );

  it(
    'grow: the joining member is an observer until it caught ' +
      'up, then the change is proposed and its execution answers',
    () => {
      const h = harness();
      h.change(['r1', 'r2', 'r3', 'r4'], 9, new Uint8Array([1]));
      expect(h.sent('set-observers').at(-1)!.observers).toEqual(['r4']);
      expect(h.sent('watch-peers').at(-1)).toMatchObject({ observers: ['r4'], watch: true });
      h.report([
        { id: 'r2', appliedUpTo: 100 },
        { id: 'r4', appliedUpTo: 20 },
      ]);
      expect(h.sent('config-proposal')).toHaveLength(0);
      expect(h.state()).toBe('catchingUp');
      // another change meanwhile: pending
      h.change(['r1', 'r2'], 10);
      expect(h.sent('config-result').at(-1)).toMatchObject({ id: 10, ok: false, code: 'PENDING' });
      h.report([
        { id: 'r2', appliedUpTo: 100 },
        { id: 'r4', appliedUpTo: 95 },
      ]);
      expect(h.sent('config-proposal')).toEqual([
        expect.objectContaining({ members: ['r1', 'r2', 'r3', 'r4'], cookie: new Uint8Array([1]) }),
      ]);
      expect(h.state()).toBe('proposed');
      const id = h.sent('config-proposal')[0]!.id;
      h.reconfigured(120, 2, ['r1', 'r2', 'r3', 'r4'], SELF, id, new Uint8Array([1]));
      expect(h.sent('config-result').at(-1)).toMatchObject({
        id: 9,
        ok: true,
        epoch: 2,
        members: ['r1', 'r2', 'r3', 'r4'],
        slot: 120,
      });
      expect(h.sent('config-notice').at(-1)).toMatchObject({ kind: 'changed', epoch: 2, cookie: new Uint8Array([1]) });
      expect(h.sent('watch-peers').at(-1)).toMatchObject({ watch: false });
      expect(h.state()).toBe('stable');
    },
  );

  it('a change that would leave no majority reachable fails at once, and the state machine hears of the abort', () => {
    const h = harness({ configuration: { epoch: 3, members: ['r1', 'r2', 'r3', 'r4', 'r5'], startSlot: 1 } });
    h.change(['r1', 'r4', 'r5'], 5, new Uint8Array([2]));
    h.report([
      { id: 'r2', appliedUpTo: 100 },
      { id: 'r4', appliedUpTo: 100, ageMs: 5000 },
    ]); // r4 silent, r5 never answered
    expect(h.sent('config-result').at(-1)).toMatchObject({ id: 5, ok: false, code: 'UNREACHABLE' });
    expect(h.sent('config-notice').at(-1)).toMatchObject({
      kind: 'aborted',
      members: ['r1', 'r4', 'r5'],
      cookie: new Uint8Array([2]),
    });
    expect(h.sent('config-proposal')).toHaveLength(0);
    expect(h.state()).toBe('stable');
  });

  it("on a follower the change fails with NOT_LEADER and the leader's name", () => {
    const h = harness();
    h.change(['r1', 'r2'], 3);
    h.report([], 0, false, 'r2');
    expect(h.sent('config-result').at(-1)).toMatchObject({ id: 3, ok: false, code: 'NOT_LEADER', leaderHint: 'r2' });
  });

  it('a member that never catches up fails the change after the timeout, naming it', () => {
    const h = harness();
    h.change(['r1', 'r2', 'r3', 'r4'], 3);
    h.report([
      { id: 'r2', appliedUpTo: 100 },
      { id: 'r4', appliedUpTo: 3 },
    ]);
    h.setNow(2000);
    h.actor.send({ type: 'tick' });
    const r = h.sent('config-result').at(-1)!;
    expect(r).toMatchObject({ id: 3, ok: false, code: 'CATCHUP_TIMEOUT' });
    expect(r.error).toMatch(/r4 at 3/);
  });

  it('a refusal after the proposal says whether the change may still take effect', () => {
    const h = harness();
    h.change(['r1', 'r2'], 3);
    h.report([{ id: 'r2', appliedUpTo: 100 }]);
    const id = h.sent('config-proposal')[0]!.id;
    h.actor.send({
      type: 'config-refused',
      ring: RING,
      from: SELF,
      to: SELF,
      id,
      maybeChosen: true,
      reason: 'leadership lost',
      leaderHint: 'r3',
    });
    expect(h.sent('config-result').at(-1)).toMatchObject({ id: 3, ok: false, maybeChosen: true, leaderHint: 'r3' });
    expect(h.sent('config-notice').filter((n) => n.kind === 'aborted')).toHaveLength(0); // it may still happen
    // every configuration taking effect is noted, whoever proposed it
    h.reconfigured(50, 2, ['r1', 'r2'], 'r3', 4);
    expect(h.actor.getSnapshot().context.config).toEqual({ epoch: 2, members: ['r1', 'r2'], startSlot: 51 });
    h.reconfigured(40, 2, ['r9'], 'r3', 4); // an old one changes nothing
    expect(h.actor.getSnapshot().context.config.members).toEqual(['r1', 'r2']);
  });

  it('a replica with no configuration refuses changes (bootstrap first)', () => {
    const h = harness({ configuration: { epoch: 0, members: [], startSlot: 1 } });
    h.change(['r1', 'r2', 'r3'], 1);
    expect(h.sent('config-result').at(-1)).toMatchObject({ ok: false, code: 'INVALID' });
  });
});
