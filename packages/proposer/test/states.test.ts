// The proposer's substates (issue #18): each test fails if the machine were in another state.
import { describe, expect, it } from 'vitest';
import type { MessageOf, SlotValue } from '@decree/protocol';
import { SELF, accepted, b, campaign, cmdsOf, item, nack, promise, proposerHarness, submit, val } from './harness.ts';

const proposal = (id: number, members: string[]): MessageOf<'config-proposal'> => ({
  type: 'config-proposal',
  ring: 'ring',
  from: SELF,
  to: SELF,
  id,
  members,
});
const resign = (): MessageOf<'resign'> => ({ type: 'resign', ring: 'ring', from: SELF, to: SELF, reason: 'test' });
const tick = { type: 'tick' } as const;
const cfgVal = (epoch: number, members: string[]): SlotValue => ({
  k: 'config',
  epoch,
  members,
  origin: 'r9',
  inc: 1,
  firstId: 1,
});

describe('proposer substates: phase 1, recovery, phase 2', () => {
  it('phase 1 with holes: leading.recovering until the recovered slots are chosen, then leading.steady', () => {
    const h = proposerHarness();
    h.actor.send(campaign(5));
    expect(h.path()).toBe('preparing');
    const bal = h.ctx().ballot;
    h.actor.send(promise('r1', bal, 1, [{ slot: 2, ballot: b(2, 'r2'), value: val('x') }]));
    h.actor.send(promise('r2', bal, 1, [{ slot: 4, ballot: b(2, 'r2'), value: val('d') }]));
    expect(h.path()).toBe('leading.recovering');
    expect(h.ctx().recoveryEnd).toBe(4);
    // commands go behind the recovered slots, and recovery goes on
    h.actor.send(submit([item(1)]));
    expect(cmdsOf(h.proposals().get(5))).toEqual(['c1']);
    h.choose(1, bal);
    h.choose(2, bal);
    h.choose(3, bal);
    expect(h.path()).toBe('leading.recovering');
    h.choose(5, bal); // a command chosen before the last recovered slot: still recovering
    expect(h.path()).toBe('leading.recovering');
    h.choose(4, bal);
    expect(h.path()).toBe('leading.steady');
    expect(h.ctx().chosenUpTo).toBe(5);
  });

  it('phase 1 without holes: leading.steady at once', () => {
    const h = proposerHarness();
    h.lead();
    expect(h.path()).toBe('leading.steady');
  });

  it('a window smaller than the recovery: the recovered values take it, commands wait in the queue', () => {
    const h = proposerHarness({ options: { maxInflightSlots: 2 } });
    h.actor.send(campaign(1));
    const bal = h.ctx().ballot;
    const entries = [1, 2, 3, 4].map((slot) => ({ slot, ballot: b(0, 'r2'), value: val(`v${slot}`) }));
    h.actor.send(promise('r1', bal, 1, entries));
    h.actor.send(promise('r2', bal, 1));
    h.actor.send(submit([item(1)]));
    expect([...h.proposals().keys()]).toEqual([1, 2]);
    h.choose(1, bal);
    h.choose(2, bal);
    expect([...h.proposals().keys()]).toEqual([1, 2, 3, 4]);
    expect(h.path()).toBe('leading.recovering');
    h.choose(3, bal);
    h.choose(4, bal);
    expect(h.path()).toBe('leading.steady');
    expect(cmdsOf(h.proposals().get(5))).toEqual(['c1']);
  });
});

describe('proposer substates: reconfiguration', () => {
  it('a config value: reconfiguring.config-in-flight, then re-preparing once chosen, then phase 2 again', () => {
    const h = proposerHarness();
    const bal = h.lead();
    h.actor.send(proposal(7, ['r1', 'r2', 'r3', 'r4']));
    expect(h.path()).toBe('leading.reconfiguring.config-in-flight');
    expect(h.ctx().pendingConfig).toMatchObject({ slot: 1, epoch: 2 });
    // meanwhile: commands queue, another change is refused
    h.actor.send(submit([item(1)]));
    h.actor.send(proposal(8, ['r1', 'r2']));
    expect(h.sent('config-refused').at(-1)).toMatchObject({ id: 8, reason: 'another configuration change is pending' });
    expect([...h.proposals().keys()]).toEqual([1]);
    h.take();
    h.choose(1, bal);
    expect(h.path()).toBe('leading.reconfiguring.re-preparing');
    expect(h.ctx().pendingConfig).toBeUndefined();
    const nb = h.ctx().ballot;
    expect(nb.round).toBe(bal.round + 1);
    expect(h.sent('prepare').map((p) => [p.to, p.fromSlot])).toEqual([
      ['r1', 2],
      ['r2', 2],
      ['r3', 2],
      ['r4', 2],
    ]);
    // phase 1 again: a tick resends Prepares (not Accepts) to members that have not promised
    h.actor.send(promise('r1', nb, 2));
    h.take();
    h.sched.runFor(100);
    h.actor.send(tick);
    expect(h.sent('prepare').map((p) => p.to)).toEqual(['r2', 'r3', 'r4']);
    expect(h.sent('accept')).toEqual([]);
    expect(h.sent('leader-state').at(-1)).toMatchObject({ state: 'leading' });
    h.actor.send(proposal(9, ['r1', 'r2', 'r3']));
    expect(h.sent('config-refused').at(-1)).toMatchObject({ id: 9, reason: 'another configuration change is pending' });
    // a majority of the new members: phase 2 again, the queued command goes out
    h.actor.send(promise('r2', nb, 2));
    h.actor.send(promise('r4', nb, 2));
    expect(h.path()).toBe('leading.steady');
    expect(cmdsOf(h.proposals().get(2))).toEqual(['c1']);
    // and a new change is taken again
    h.actor.send(proposal(10, ['r1', 'r2', 'r4']));
    expect(h.path()).toBe('leading.reconfiguring.config-in-flight');
  });

  it('a config value recovered by phase 1: recovery ends in reconfiguring.config-in-flight', () => {
    const h = proposerHarness();
    h.actor.send(campaign(3));
    const bal = h.ctx().ballot;
    h.actor.send(promise('r1', bal, 1, [{ slot: 2, ballot: b(1, 'r2'), value: cfgVal(2, ['r1', 'r2', 'r4']) }]));
    h.actor.send(promise('r2', bal, 1));
    expect(h.path()).toBe('leading.reconfiguring.config-in-flight');
    h.choose(1, bal);
    expect(h.path()).toBe('leading.reconfiguring.config-in-flight');
    h.choose(2, bal);
    expect(h.path()).toBe('leading.reconfiguring.re-preparing');
    expect(h.ctx().config).toMatchObject({ epoch: 2, startSlot: 3 });
  });

  it('re-preparing: a new member executed past the slots this leader chose => follower.relinquished', () => {
    const h = proposerHarness();
    const bal = h.lead();
    h.actor.send(proposal(7, ['r1', 'r2', 'r4']));
    h.choose(1, bal);
    expect(h.path()).toBe('leading.reconfiguring.re-preparing');
    const nb = h.ctx().ballot;
    h.actor.send({ ...promise('r4', nb, 2), executedUpTo: 9 });
    expect(h.path()).toBe('follower.relinquished');
    expect(h.sent('leader-state').at(-1)).toMatchObject({ state: 'follower', relinquished: true });
  });
});

describe('proposer substates: stepping down', () => {
  it('resign goes through leading.stepping-down to follower.relinquished', () => {
    const h = proposerHarness();
    h.lead();
    h.steps.length = 0;
    h.actor.send(resign());
    expect(h.steps).toEqual(['leading.stepping-down', 'follower.relinquished']);
    expect(h.sent('leader-state').at(-1)).toMatchObject({ state: 'follower', relinquished: true });
  });

  it('resign while re-preparing goes through stepping-down too', () => {
    const h = proposerHarness();
    const bal = h.lead();
    h.actor.send(proposal(7, ['r1', 'r2', 'r3', 'r4']));
    h.choose(1, bal);
    h.steps.length = 0;
    h.actor.send(resign());
    expect(h.steps).toEqual(['leading.stepping-down', 'follower.relinquished']);
  });

  it('the own `last` value chosen: stepping-down, then follower.relinquished; nothing behind it was proposed', () => {
    const h = proposerHarness();
    const bal = h.lead();
    h.actor.send(submit([item(1, 'bye', { excl: true, last: true }), item(2)]));
    expect([...h.proposals().keys()]).toEqual([1]);
    expect(h.path()).toBe('leading.steady');
    h.actor.send(accepted('r1', bal, 1));
    expect(h.path()).toBe('leading.steady');
    h.steps.length = 0;
    h.actor.send(accepted('r2', bal, 1));
    expect(h.steps).toEqual(['leading.stepping-down', 'follower.relinquished']);
    expect(h.sent('aborted')).toEqual([expect.objectContaining({ ids: [2], maybeChosen: false })]);
  });

  it('a configuration without this leader chosen: stepping-down, then follower.relinquished', () => {
    const h = proposerHarness();
    const bal = h.lead();
    h.actor.send(proposal(7, ['r2', 'r3', 'r4']));
    h.actor.send(accepted('r1', bal, 1));
    h.steps.length = 0;
    h.actor.send(accepted('r2', bal, 1));
    // the Accepted itself (a microstep in config-in-flight), then the config value's choice
    expect(h.steps).toEqual([
      'leading.reconfiguring.config-in-flight',
      'leading.stepping-down',
      'follower.relinquished',
    ]);
    expect(h.ctx().config.members).toEqual(['r2', 'r3', 'r4']);
  });

  it('a configuration the leader did not choose, executed by its learner: stepping-down', () => {
    const h = proposerHarness();
    h.lead();
    h.steps.length = 0;
    h.actor.send({
      type: 'progress',
      ring: 'ring',
      from: SELF,
      to: SELF,
      executedUpTo: 0,
      chosenUpTo: 0,
      config: { epoch: 2, members: ['r1', 'r2', 'r4'], startSlot: 1 },
    });
    expect(h.steps).toEqual(['leading.stepping-down', 'follower.relinquished']);
  });

  it('a higher nack is not a relinquish: straight to follower.following', () => {
    const h = proposerHarness();
    const bal = h.lead();
    h.steps.length = 0;
    h.actor.send(nack('r2', bal, b(bal.round + 1, 'r3')));
    expect(h.steps).toEqual(['follower.following']);
    const ls = h.sent('leader-state').at(-1)!;
    expect(ls).toMatchObject({ state: 'follower', leaderHint: 'r3' });
    expect(ls.relinquished).toBeUndefined();
  });

  it('follower.relinquished reports relinquished until it campaigns again', () => {
    const h = proposerHarness();
    h.lead();
    h.actor.send(resign());
    h.take();
    h.actor.send({ type: 'progress', ring: 'ring', from: SELF, to: SELF, executedUpTo: 3, chosenUpTo: 3 });
    h.actor.send(tick);
    expect(h.sent('leader-state')).toEqual([expect.objectContaining({ state: 'follower', relinquished: true })]);
    h.actor.send(campaign(9));
    expect(h.path()).toBe('preparing');
    expect(h.sent('leader-state').at(-1)!.relinquished).toBeUndefined();
    h.actor.send(nack('r2', h.ctx().ballot, b(20, 'r3')));
    expect(h.path()).toBe('follower.following');
  });

  it('a candidate that gives way (resign, far behind) is relinquished; a higher nack is not', () => {
    const h = proposerHarness();
    h.actor.send(campaign(1));
    h.actor.send(resign());
    expect(h.path()).toBe('follower.relinquished');
    h.actor.send(campaign(2));
    h.actor.send({ ...promise('r2', h.ctx().ballot, 1), truncatedBelow: 500 });
    expect(h.path()).toBe('follower.relinquished');
    h.actor.send(campaign(3));
    h.actor.send(nack('r2', h.ctx().ballot, b(40, 'r3')));
    expect(h.path()).toBe('follower.following');
  });
});
