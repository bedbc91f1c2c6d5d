import { describe, expect, it } from 'vitest';
import { type MessageOf, type SlotValue, slotValueEquals } from '@decree/protocol';
import {
  MEMBERS,
  SELF,
  accepted,
  b,
  campaign,
  cmdsOf,
  item,
  promise,
  proposerHarness,
  submit,
  val,
} from './harness.ts';

const proposal = (id: number, members: string[], cookie?: Uint8Array): MessageOf<'config-proposal'> => ({
  type: 'config-proposal',
  ring: 'ring',
  from: SELF,
  to: SELF,
  id,
  members,
  ...(cookie ? { cookie } : {}),
});
const cfgVal = (epoch: number, members: string[], origin = 'r9'): SlotValue => ({
  k: 'config',
  epoch,
  members,
  origin,
  inc: 1,
  firstId: 1,
});

describe('proposer: configuration changes (specs/config-change)', () => {
  it('a config value is alone in its slot; nothing above it is proposed until it is chosen (stall at e)', () => {
    const h = proposerHarness({ options: { maxInflightSlots: 8 } });
    const bal = h.lead();
    h.take();
    h.actor.send(submit([item(1), item(2)]));
    h.actor.send(proposal(7, ['r1', 'r2', 'r3', 'r4'], new Uint8Array([5])));
    h.actor.send(submit([item(3), item(4)]));
    const p = h.proposals();
    expect([...p.keys()]).toEqual([1, 2]);
    expect(cmdsOf(p.get(1))).toEqual(['c1', 'c2']);
    expect(p.get(2)).toMatchObject({
      k: 'config',
      epoch: 2,
      members: ['r1', 'r2', 'r3', 'r4'],
      origin: SELF,
      firstId: 7,
      cookie: new Uint8Array([5]),
    });
    expect(h.ctx().pendingConfig).toMatchObject({ slot: 2, epoch: 2 });
    // slot 1 chosen: still nothing above the config slot
    h.choose(1, bal);
    expect([...h.proposals().keys()]).toEqual([1, 2]);
    // a second change while one is pending is refused at once
    h.actor.send(proposal(8, ['r1', 'r2']));
    expect(h.sent('config-refused').at(-1)).toMatchObject({ id: 8, maybeChosen: false });
  });

  it(
    'once the config slot is chosen the leader prepares again with ' +
      'a new ballot among the new members, from e+1, keeping its queue',
    () => {
      const h = proposerHarness();
      const bal = h.lead();
      h.actor.send(proposal(7, ['r1', 'r2', 'r3', 'r4']));
      h.actor.send(submit([item(1)]));
      h.take();
      h.choose(1, bal);
      expect(h.state()).toBe('leading');
      const c = h.ctx();
      expect(h.path()).toBe('leading.reconfiguring.re-preparing');
      expect(c.config).toEqual({ epoch: 2, members: ['r1', 'r2', 'r3', 'r4'], startSlot: 2 });
      expect(c.quorum).toBe(3);
      expect(c.ballot.round).toBeGreaterThan(bal.round);
      const preps = h.sent('prepare');
      expect(preps.map((x) => x.to)).toEqual(['r1', 'r2', 'r3', 'r4']);
      for (const x of preps) expect(x.fromSlot).toBe(2);
      expect(h.sent('accept')).toHaveLength(0); // the queued command waits
      expect(h.sent('leader-state').at(-1)).toMatchObject({ state: 'leading', config: { epoch: 2 } });
      // two promises are no longer a majority of four
      const nb = c.ballot;
      h.actor.send(promise('r1', nb, 2));
      h.actor.send(promise('r4', nb, 2, [{ slot: 3, ballot: b(1, 'r4'), value: val('new-config-slot') }]));
      expect(h.sent('accept')).toHaveLength(0);
      h.actor.send(promise('r2', nb, 2));
      const p = h.proposals();
      // what the new members accepted above e is recovered; the queued command follows
      expect([...p.keys()]).toEqual([2, 3, 4]);
      expect(slotValueEquals(p.get(3)!, val('new-config-slot'))).toBe(true);
      expect(cmdsOf(p.get(4))).toEqual(['c1']);
      expect(
        h
          .sent('accept')
          .filter((a) => a.slot === 4)
          .map((a) => a.to),
      ).toEqual(['r1', 'r2', 'r3', 'r4']);
      // slot 3 (what r4 accepted above e) is recovered: not chosen yet
      expect(h.path()).toBe('leading.recovering');
    },
  );

  it('a leader that is not in the new configuration steps down once it is chosen, aborting what it queued', () => {
    const h = proposerHarness();
    const bal = h.lead();
    h.actor.send(proposal(7, ['r2', 'r3', 'r4']));
    h.actor.send(submit([item(1)]));
    h.take();
    h.choose(1, bal);
    expect(h.state()).toBe('follower');
    expect(h.ctx().config.members).toEqual(['r2', 'r3', 'r4']);
    expect(h.sent('aborted')).toEqual([expect.objectContaining({ ids: [1], maybeChosen: false })]);
    expect(h.sent('decide').map((d) => d.to)).toEqual(expect.arrayContaining(['r1', 'r2', 'r3']));
    expect(h.sent('leader-state').at(-1)).toMatchObject({
      state: 'follower',
      relinquished: true,
      config: { members: ['r2', 'r3', 'r4'] },
    });
  });

  it('recovery stops at the first config value: nothing above it is re-proposed in the old configuration', () => {
    const h = proposerHarness();
    h.actor.send(campaign(5));
    const bal = h.ctx().ballot;
    h.actor.send(
      promise('r1', bal, 1, [
        { slot: 1, ballot: b(1, 'r2'), value: val('one') },
        { slot: 2, ballot: b(1, 'r2'), value: cfgVal(2, ['r2', 'r3', 'r4', 'r1']) },
        { slot: 3, ballot: b(2, 'r4'), value: val('new-config-three') },
      ]),
    );
    h.actor.send(promise('r2', bal, 1));
    expect(h.state()).toBe('leading');
    expect([...h.proposals().keys()]).toEqual([1, 2]);
    expect(h.ctx().nextSlot).toBe(3);
    h.actor.send(submit([item(1)]));
    expect([...h.proposals().keys()]).toEqual([1, 2]);
    h.take();
    h.choose(1, bal);
    h.choose(2, bal);
    expect(h.path()).toBe('leading.reconfiguring.re-preparing');
    expect(h.sent('prepare').map((p) => p.to)).toEqual(['r2', 'r3', 'r4', 'r1']);
  });

  it(
    'leadership lost with a change in flight: the config-manager ' +
      'hears maybeChosen; queued but unproposed: not chosen',
    () => {
      const h = proposerHarness();
      const bal = h.lead();
      h.actor.send(proposal(7, ['r1', 'r2', 'r3', 'r4']));
      h.take();
      h.actor.send({ type: 'nack', ring: 'ring', from: 'r2', to: SELF, ballot: bal, promised: b(bal.round + 1, 'r3') });
      expect(h.state()).toBe('follower');
      expect(h.sent('config-refused')).toEqual([
        expect.objectContaining({ id: 7, maybeChosen: true, leaderHint: 'r3' }),
      ]);
      h.actor.send(proposal(9, ['r1']));
      expect(h.sent('config-refused').at(-1)).toMatchObject({ id: 9, maybeChosen: false });
    },
  );

  it('a follower adopts the configuration its learner executed and prepares from its start slot', () => {
    const h = proposerHarness({ executedUpTo: 3 });
    h.actor.send({
      type: 'progress',
      ring: 'ring',
      from: SELF,
      to: SELF,
      executedUpTo: 9,
      chosenUpTo: 9,
      config: { epoch: 3, members: ['r1', 'r4', 'r5'], startSlot: 8 },
    });
    expect(h.sent('leader-state').at(-1)).toMatchObject({
      state: 'follower',
      config: { epoch: 3, members: ['r1', 'r4', 'r5'] },
    });
    h.actor.send(campaign(1));
    expect(h.sent('prepare').map((p) => p.to)).toEqual(['r1', 'r4', 'r5']);
    expect(h.sent('prepare')[0]!.fromSlot).toBe(10);
    // an older configuration never replaces a newer one
    h.actor.send({
      type: 'progress',
      ring: 'ring',
      from: SELF,
      to: SELF,
      executedUpTo: 9,
      chosenUpTo: 9,
      config: { epoch: 2, members: MEMBERS, startSlot: 5 },
    });
    expect(h.ctx().config.epoch).toBe(3);
  });

  it('a candidate whose learner executes a change prepares again among the new members', () => {
    const h = proposerHarness();
    h.actor.send(campaign(1));
    const first = h.ctx().ballot;
    h.take();
    h.actor.send({
      type: 'progress',
      ring: 'ring',
      from: SELF,
      to: SELF,
      executedUpTo: 4,
      chosenUpTo: 4,
      config: { epoch: 2, members: ['r1', 'r2', 'r4'], startSlot: 5 },
    });
    expect(h.state()).toBe('preparing');
    expect(h.ctx().ballot.round).toBeGreaterThan(first.round);
    expect(h.sent('prepare').map((p) => [p.to, p.fromSlot])).toEqual([
      ['r1', 5],
      ['r2', 5],
      ['r4', 5],
    ]);
    // a late promise for the old ballot does not count
    h.actor.send(promise('r3', first, 1));
    h.actor.send(promise('r2', first, 1));
    expect(h.state()).toBe('preparing');
  });

  it('observers get Decides while they catch up', () => {
    const h = proposerHarness();
    const bal = h.lead();
    h.actor.send({ type: 'set-observers', ring: 'ring', from: SELF, to: SELF, observers: ['r4'] });
    h.actor.send(submit([item(1)]));
    h.take();
    h.actor.send(accepted('r1', bal, 1));
    h.actor.send(accepted('r4', bal, 1)); // an observer's vote does not count
    expect(h.sent('decide')).toHaveLength(0);
    h.actor.send(accepted('r2', bal, 1));
    expect(
      h
        .sent('decide')
        .map((d) => d.to)
        .sort(),
    ).toEqual(['r1', 'r2', 'r3', 'r4']);
  });

  it('a replica its configuration no longer names does not campaign, even when its elector (not yet told) asks', () => {
    const h = proposerHarness({
      configuration: { epoch: 3, members: ['r2', 'r3', 'r4'], startSlot: 40 },
      executedUpTo: 45,
    });
    h.take();
    h.actor.send(campaign(9));
    expect(h.state()).toBe('follower');
    expect(h.sent('prepare')).toHaveLength(0);
    // its elector hears the configuration it missed
    expect(h.sent('leader-state').at(-1)).toMatchObject({
      state: 'follower',
      config: { epoch: 3, members: ['r2', 'r3', 'r4'] },
    });
  });
});
