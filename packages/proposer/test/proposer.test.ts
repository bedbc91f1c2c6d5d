import { describe, expect, it } from 'vitest';
import { CONTRACTS, ContractViolation, NOOP, slotValueBytes, slotValueEquals, wireCommands } from '@decree/protocol';
import { type ProposerData, recordPromise } from '../src/index.ts';
import {
  MEMBERS,
  SELF,
  accepted,
  b,
  campaign,
  cmdsOf,
  item,
  nack,
  progress,
  promise,
  proposerHarness,
  submit,
  val,
} from './harness.ts';

describe('proposer: phase 1', () => {
  it('campaign => preparing with ballot (max(round, maxRound+1), self) and a Prepare to every member', () => {
    const h = proposerHarness({ executedUpTo: 4 });
    expect(h.state()).toBe('follower');
    h.actor.send(nack('r2', b(0, SELF), b(7, 'r3'))); // a follower learns of round 7
    h.take();
    h.actor.send(campaign(2));
    expect(h.state()).toBe('preparing');
    expect(h.ctx().ballot).toEqual(b(8, SELF));
    const preps = h.sent('prepare');
    expect(preps.map((p) => p.to)).toEqual([...MEMBERS]);
    for (const p of preps) {
      expect(p.ballot).toEqual(b(8, SELF));
      expect(p.fromSlot).toBe(5); // executedUpTo + 1
    }
    const ls = h.sent('leader-state');
    expect(ls.at(-1)).toMatchObject({ state: 'preparing', ballot: b(8, SELF), to: SELF });

    h.actor.send(campaign(20, new Uint8Array([9])));
    expect(h.ctx().ballot).toEqual(b(20, SELF)); // the requested round when it is higher
    expect(h.sent('prepare').at(-1)!.cookie).toEqual(new Uint8Array([9]));
  });

  it('a quorum of promises => leading; promises of other ballots or non-members do not count', () => {
    const h = proposerHarness();
    h.actor.send(campaign(1));
    const bal = h.ctx().ballot;
    h.actor.send(promise('r2', b(0, 'r2'), 1)); // another ballot
    h.actor.send(promise('zz', bal, 1)); // not a member
    h.actor.send(promise('r2', bal, 1));
    h.actor.send(promise('r2', bal, 1)); // the same member twice
    expect(h.state()).toBe('preparing');
    h.actor.send(promise('r3', bal, 1));
    // a majority, but not yet the local acceptor's durable promise: a restarted replica must never reuse this ballot
    expect(h.state()).toBe('preparing');
    h.actor.send(promise('r1', bal, 1));
    expect(h.state()).toBe('leading');
    expect(h.sent('leader-state').at(-1)).toMatchObject({ state: 'leading', ballot: bal });
  });

  it('recovery re-proposes the highest-ballot value of every open slot and fills holes with no-ops', () => {
    const h = proposerHarness();
    h.actor.send(campaign(5));
    const bal = h.ctx().ballot;
    h.take();
    h.actor.send(
      promise('r1', bal, 1, [
        { slot: 2, ballot: b(1, 'r2'), value: val('two') },
        { slot: 5, ballot: b(1, 'r2'), value: val('five-low') },
        { slot: 7, ballot: b(1, 'r2'), value: val('seven') },
      ]),
    );
    h.actor.send(
      promise('r3', bal, 1, [
        { slot: 5, ballot: b(2, 'r3'), value: val('five-high') },
        { slot: 8, ballot: b(1, 'r2'), value: val('eight') },
      ]),
    );
    expect(h.state()).toBe('leading');
    const acc = h.sent('accept');
    for (const a of acc) expect(a.ballot).toEqual(bal);
    const p = h.proposals();
    expect([...p.keys()]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(p.get(1)).toEqual(NOOP);
    expect(slotValueEquals(p.get(2)!, val('two'))).toBe(true);
    expect(p.get(4)).toEqual(NOOP);
    expect(slotValueEquals(p.get(5)!, val('five-high'))).toBe(true);
    expect(p.get(6)).toEqual(NOOP);
    expect(slotValueEquals(p.get(7)!, val('seven'))).toBe(true);
    expect(slotValueEquals(p.get(8)!, val('eight'))).toBe(true);
    expect(acc.filter((a) => a.slot === 5).map((a) => a.to)).toEqual([...MEMBERS]);
    expect(h.ctx().chosenUpTo).toBe(0);
    expect(h.ctx().nextSlot).toBe(9);
    expect(h.ctx().recoveryEnd).toBe(8);
  });

  it(
    'a promise truncated above the prepared slot makes the candidate ' +
      'step down to catch up first (it cannot know the configuration there)',
    () => {
      const h = proposerHarness({ executedUpTo: 2 });
      h.actor.send(campaign(5));
      const bal = h.ctx().ballot;
      h.actor.send(promise('r1', bal, 3));
      // r3 holds nothing below slot 10: slots 3..9 were chosen and snapshotted
      h.actor.send(promise('r3', bal, 3, [], 10));
      expect(h.state()).toBe('follower');
      expect(h.sent('accept')).toHaveLength(0);
      expect(h.sent('leader-state').at(-1)).toMatchObject({ state: 'follower', relinquished: true });
    },
  );

  it('sends `recovered` only once progress reports executedUpTo >= the recovery end', () => {
    const h = proposerHarness();
    h.lead(1, (bal, f) => [
      promise('r1', bal, f, [{ slot: 3, ballot: b(1, 'r3'), value: val('x') }]),
      promise('r2', bal, f),
    ]);
    expect(h.state()).toBe('leading');
    expect(h.sent('recovered')).toHaveLength(0);
    h.actor.send(progress(2));
    expect(h.sent('recovered')).toHaveLength(0);
    h.actor.send(progress(3));
    h.actor.send(progress(4));
    expect(h.sent('recovered')).toEqual([expect.objectContaining({ to: SELF, upTo: 3, ballot: h.ctx().ballot })]);
  });

  it('with nothing to recover, `recovered` goes out on becoming leader', () => {
    const h = proposerHarness({ executedUpTo: 6 });
    h.lead();
    expect(h.sent('recovered')).toEqual([expect.objectContaining({ upTo: 6 })]);
  });

  it('a submit while not leading is aborted (maybeChosen false) with the leader hint', () => {
    const h = proposerHarness();
    h.actor.send(submit([item(1)]));
    expect(h.sent('aborted')).toEqual([expect.objectContaining({ ids: [1], maybeChosen: false })]);
    expect(h.sent('aborted')[0]!.leaderHint).toBeUndefined();
    h.actor.send(nack('r2', b(0, SELF), b(4, 'r3')));
    h.actor.send(submit([item(2), item(3)]));
    expect(h.sent('aborted')[1]).toMatchObject({ ids: [2, 3], maybeChosen: false, leaderHint: 'r3' });
    h.actor.send(campaign(9));
    h.actor.send(submit([item(4)]));
    expect(h.state()).toBe('preparing');
    expect(h.sent('aborted')[2]).toMatchObject({ ids: [4], maybeChosen: false });
    expect(h.sent('accept')).toHaveLength(0);
  });

  it('contract: recordPromise called with a promise for another ballot throws', () => {
    expect(CONTRACTS).toBe(true);
    const h = proposerHarness();
    h.actor.send(campaign(3));
    const d = h.ctx() as ProposerData;
    expect(() => recordPromise(d, promise('r2', b(2, SELF), d.fromSlot))).toThrow(ContractViolation);
    expect(() => recordPromise(d, promise('r2', d.ballot, d.fromSlot + 1))).toThrow(ContractViolation);
    expect(d.promises.size).toBe(0);
    recordPromise(d, promise('r2', d.ballot, d.fromSlot));
    expect(d.promises.size).toBe(1);
  });

  it('a higher-ballot nack while preparing => follower with the leader hint', () => {
    const h = proposerHarness();
    h.actor.send(campaign(1));
    const bal = h.ctx().ballot;
    h.actor.send(nack('r2', b(0, SELF), b(9, 'r3'))); // for an older ballot: ignored
    expect(h.state()).toBe('preparing');
    h.actor.send(nack('r2', bal, b(3, 'r2')));
    expect(h.state()).toBe('follower');
    expect(h.ctx().leaderHint).toBe('r2');
    expect(h.ctx().maxRound).toBe(9);
    expect(h.sent('leader-state').at(-1)).toMatchObject({ state: 'follower', leaderHint: 'r2' });
  });

  it('retransmits a Prepare on tick after retransmitMs, only to those that have not promised', () => {
    const h = proposerHarness({ options: { retransmitMs: 50 } });
    h.actor.send(campaign(1));
    h.actor.send(promise('r1', h.ctx().ballot, 1));
    h.take();
    h.sched.runFor(30);
    h.actor.send({ type: 'tick' });
    expect(h.sent('prepare')).toHaveLength(0);
    h.sched.runFor(30);
    h.actor.send({ type: 'tick' });
    expect(h.sent('prepare').map((p) => p.to)).toEqual(['r2', 'r3']);
  });
});

describe('proposer: phase 2', () => {
  it('a majority of Accepted => chosen; Decide(upTo) to all members with a contiguous chosenUpTo', () => {
    const h = proposerHarness();
    const bal = h.lead();
    h.actor.send(submit([item(1, 'a', { excl: true }), item(2, 'b', { excl: true }), item(3, 'c', { excl: true })]));
    expect([...h.proposals().keys()]).toEqual([1, 2, 3]);
    h.take();
    h.actor.send(accepted('r2', bal, 2));
    h.actor.send(accepted('r2', bal, 2)); // a duplicate does not count twice
    expect(h.ctx().slots.get(2)!.chosen).toBe(false);
    h.actor.send(accepted('r3', b(0, 'r3'), 2)); // an older ballot's answer does not count
    expect(h.ctx().slots.get(2)!.chosen).toBe(false);
    h.actor.send(accepted('r3', bal, 2));
    expect(h.ctx().slots.get(2)!.chosen).toBe(true);
    expect(h.ctx().chosenUpTo).toBe(0); // slot 1 is not chosen yet: no gap in chosenUpTo
    expect(h.sent('decide')).toHaveLength(0);
    h.choose(1);
    expect(h.ctx().chosenUpTo).toBe(2);
    // the leader's own learner hears it at once; the others at the next tick (no Accept came to carry it)
    expect(h.sent('decide').map((m) => m.to)).toEqual([SELF]);
    h.take();
    h.actor.send({ type: 'tick' });
    const d = h.sent('decide');
    expect(d.map((m) => m.to)).toEqual([...MEMBERS]);
    for (const m of d) expect(m).toMatchObject({ ballot: bal, upTo: 2 });
    h.take();
    h.actor.send({ type: 'tick' });
    expect(h.sent('decide')).toHaveLength(0); // told once, not again before retransmitMs
    expect(h.ctx().stats.slotsChosen).toBe(2);
  });

  it('pipelining: never more than maxInflightSlots in flight; the queue drains as slots are chosen', () => {
    const h = proposerHarness({ options: { maxInflightSlots: 3, maxBatchCmds: 2 } });
    h.lead();
    for (let i = 1; i <= 12; i++) h.actor.send(submit([item(i)]));
    const inflight = () => h.ctx().nextSlot - h.ctx().chosenUpTo - 1;
    expect([...h.proposals().keys()]).toEqual([1, 2, 3]);
    expect(inflight()).toBe(3);
    let maxSeen = inflight();
    for (let s = 1; h.ctx().queue.length > h.ctx().queueHead || inflight() > 0; s++) {
      h.choose(s);
      maxSeen = Math.max(maxSeen, inflight());
      expect(s).toBeLessThan(20);
    }
    expect(maxSeen).toBe(3);
    const p = h.proposals();
    // slots 1..3 went out one command each (the window had room); the rest waited and went in pairs
    expect([...p.values()].map(cmdsOf)).toEqual([
      ['c1'],
      ['c2'],
      ['c3'],
      ['c4', 'c5'],
      ['c6', 'c7'],
      ['c8', 'c9'],
      ['c10', 'c11'],
      ['c12'],
    ]);
    expect(h.ctx().chosenUpTo).toBe(8);
  });

  it('adaptive batching: commands queued while the window is full go out later as ONE slot value', () => {
    const h = proposerHarness({ options: { maxInflightSlots: 2 } });
    h.lead();
    h.actor.send(submit([item(1)]));
    h.actor.send(submit([item(2)]));
    for (let i = 3; i <= 9; i++) h.actor.send(submit([item(i)]));
    expect(h.proposals().size).toBe(2);
    h.choose(1);
    const v = h.proposals().get(3)!;
    expect(cmdsOf(v)).toEqual(['c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9']);
    expect(v).toMatchObject({ k: 'batch', origin: SELF, inc: 1, firstId: 3 });
    expect(h.proposals().size).toBe(3);
  });

  it('packs each batch once when it proposes it (packProposals), and not when told not to', () => {
    const packed = proposerHarness();
    packed.lead();
    packed.actor.send(submit([item(1), item(2)]));
    const v = packed.proposals().get(1)!;
    const w = wireCommands(v);
    expect(w).toBeDefined(); // the commands live in the packed bytes, the ones the WAL and the peers get
    expect(slotValueBytes(v)).toBe(w!.buf);
    expect(cmdsOf(v)).toEqual(['c1', 'c2']);
    const plain = proposerHarness({ options: { packProposals: false } });
    plain.lead();
    plain.actor.send(submit([item(1), item(2)]));
    const u = plain.proposals().get(1)!;
    expect(wireCommands(u)).toBeUndefined();
    expect(slotValueEquals(u, v)).toBe(true);
  });

  it('exclusive commands sit alone in their slot; a gap in ids starts a new batch', () => {
    const h = proposerHarness({ options: { maxInflightSlots: 1 } });
    h.lead();
    h.actor.send(submit([item(1)]));
    h.actor.send(submit([item(2), item(3, 'x', { excl: true }), item(4), item(5), item(7), item(8)]));
    for (let s = 1; s <= 5; s++) h.choose(s);
    const vals = [...h.proposals().values()];
    expect(vals.map(cmdsOf)).toEqual([['c1'], ['c2'], ['x'], ['c4', 'c5'], ['c7', 'c8']]);
    expect(vals[2]).toMatchObject({ excl: true, firstId: 3 });
    expect(vals[3]).not.toHaveProperty('excl');
  });

  it('maxBatchBytes bounds a slot value', () => {
    const h = proposerHarness({ options: { maxInflightSlots: 1, maxBatchBytes: 8 } });
    h.lead();
    h.actor.send(submit([item(1, 'aaaa')]));
    h.actor.send(submit([item(2, 'bbbb'), item(3, 'cccc'), item(4, 'dddd')]));
    for (let s = 1; s <= 3; s++) h.choose(s);
    expect([...h.proposals().values()].map(cmdsOf)).toEqual([['aaaa'], ['bbbb', 'cccc'], ['dddd']]);
  });

  it(
    'a higher-ballot nack => follower; queued submissions aborted ' +
      '(maybeChosen false), in-flight ones (maybeChosen true)',
    () => {
      const h = proposerHarness({ options: { maxInflightSlots: 2, maxBatchCmds: 1 } });
      const bal = h.lead();
      h.actor.send(submit([item(1), item(2), item(3), item(4)]));
      h.choose(1); // id 1 chosen: not aborted (the learner answers it)
      h.take();
      // not our ballot: no step-down (but round 9 and r2 are noted)
      h.actor.send(nack('r3', b(0, 'r3'), b(9, 'r2'), 2));
      expect(h.state()).toBe('leading');
      h.actor.send(nack('r3', bal, b(4, 'r3'), 2));
      expect(h.state()).toBe('follower');
      const ab = h.sent('aborted');
      expect(ab).toHaveLength(2);
      expect(ab[0]).toMatchObject({ ids: [4], maybeChosen: false, leaderHint: 'r3', to: SELF });
      expect(ab[1]).toMatchObject({ ids: [2, 3], maybeChosen: true, leaderHint: 'r3' });
      expect(h.ctx().maxRound).toBe(9); // every nack teaches the highest round seen, even an ignored one
      expect(h.sent('leader-state').at(-1)).toMatchObject({ state: 'follower', leaderHint: 'r3' });
      expect(h.ctx().slots.size).toBe(0);
      // a late Accepted of the old ballot changes nothing
      h.actor.send(accepted('r2', bal, 2));
      expect(h.state()).toBe('follower');
    },
  );

  it(
    'retransmits unanswered Accepts on tick after retransmitMs (not to ' +
      'those that answered), with an idle Decide at most every retransmitMs',
    () => {
      const h = proposerHarness({ options: { retransmitMs: 50 } });
      const bal = h.lead();
      h.actor.send(submit([item(1)]));
      h.actor.send(accepted('r2', bal, 1));
      h.take();
      h.sched.runFor(49);
      h.actor.send({ type: 'tick' });
      expect(h.sent('accept')).toHaveLength(0);
      expect(h.sent('decide')).toHaveLength(0); // not on every tick
      h.sched.runFor(2);
      h.actor.send({ type: 'tick' });
      expect(h.sent('accept').map((a) => [a.to, a.slot])).toEqual([
        ['r1', 1],
        ['r3', 1],
      ]);
      expect(h.sent('decide').map((d) => d.upTo)).toEqual([0, 0, 0]); // to every member, itself included
      expect(h.sent('leader-state').at(-1)).toMatchObject({ state: 'leading' });
      // the next tick right after resends neither
      h.take();
      h.actor.send({ type: 'tick' });
      expect(h.sent('accept')).toHaveLength(0);
      expect(h.sent('decide')).toHaveLength(0);
      h.sched.runFor(50);
      h.actor.send({ type: 'tick' });
      expect(h.sent('decide').map((d) => d.upTo)).toEqual([0, 0, 0]);
    },
  );

  it(
    'a last-before-step-down exclusive command: the leader ' +
      'steps down once it is chosen, and proposes nothing after it',
    () => {
      const h = proposerHarness({ options: { maxInflightSlots: 8 } });
      h.lead();
      h.actor.send(submit([item(1), item(2, 'bye', { excl: true, last: true }), item(3), item(4)]));
      expect([...h.proposals().values()].map(cmdsOf)).toEqual([['c1'], ['bye']]);
      expect(h.proposals().get(2)).toMatchObject({ excl: true, last: true });
      h.choose(1);
      expect(h.state()).toBe('leading');
      h.take();
      h.choose(2);
      expect(h.state()).toBe('follower');
      expect(h.sent('leader-state').at(-1)).toMatchObject({ state: 'follower', relinquished: true });
      // the commands behind it were never proposed: aborted, surely not chosen
      expect(h.sent('aborted')).toEqual([expect.objectContaining({ ids: [3, 4], maybeChosen: false })]);
      expect(h.sent('accept')).toHaveLength(0);
    },
  );

  it('resign while leading => follower (relinquished), pending submissions aborted', () => {
    const h = proposerHarness();
    h.lead();
    h.actor.send(submit([item(1)]));
    h.actor.send({ type: 'resign', ring: 'ring', from: SELF, to: SELF, reason: 'test' });
    expect(h.state()).toBe('follower');
    expect(h.sent('leader-state').at(-1)).toMatchObject({ state: 'follower', relinquished: true });
    expect(h.sent('aborted')).toEqual([expect.objectContaining({ ids: [1], maybeChosen: true })]);
  });

  it('set-members changes the quorum', () => {
    const h = proposerHarness();
    h.actor.send({ type: 'set-members', members: ['r1', 'r2', 'r3', 'r4', 'r5'] });
    expect(h.ctx().quorum).toBe(3);
    h.actor.send(campaign(1));
    expect(h.sent('prepare')).toHaveLength(5);
    const bal = h.ctx().ballot;
    h.actor.send(promise('r1', bal, 1));
    h.actor.send(promise('r2', bal, 1));
    expect(h.state()).toBe('preparing');
    h.actor.send(promise('r5', bal, 1));
    expect(h.state()).toBe('leading');
  });
});

const entries = (slots: number[]) => slots.map((s) => ({ slot: s, ballot: b(0, 'r3'), value: val(`s${s}`) }));

describe('proposer: promises in pages, pulled one at a time', () => {
  it('pulls each next page from the acceptor that has more; the promise counts with its last page', () => {
    const h = proposerHarness();
    h.actor.send(campaign(1));
    const bal = h.ctx().ballot;
    h.take();
    h.actor.send(promise('r1', bal, 1));
    h.actor.send({ ...promise('r2', bal, 1, entries([1, 2])), more: 3 });
    expect(h.sent('prepare')).toEqual([expect.objectContaining({ to: 'r2', ballot: bal, fromSlot: 1, pageFrom: 3 })]);
    h.take();
    // the first page again (a retransmitted prepare)
    h.actor.send({ ...promise('r2', bal, 1, entries([1, 2])), more: 3 });
    h.actor.send({ ...promise('r2', bal, 1, entries([5, 6])), pageFrom: 5 }); // not the page awaited: ignored
    expect(h.state()).toBe('preparing');
    h.actor.send({ ...promise('r2', bal, 1, entries([3, 4])), pageFrom: 3, more: 5 });
    expect(h.state()).toBe('preparing');
    expect(h.sent('prepare').at(-1)).toMatchObject({ to: 'r2', pageFrom: 5 });
    h.actor.send({ ...promise('r2', bal, 1, entries([5, 6])), pageFrom: 5 });
    expect(h.state()).toBe('leading');
    const p = h.proposals();
    expect([...p.keys()].sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6]);
    for (const s of [1, 2, 3, 4, 5, 6]) expect(slotValueEquals(p.get(s)!, val(`s${s}`))).toBe(true);
  });

  it('a page pull that gets no answer is asked again (after 4 retransmit periods), never the whole promise', () => {
    const h = proposerHarness();
    h.actor.send(campaign(1));
    const bal = h.ctx().ballot;
    h.actor.send(promise('r1', bal, 1));
    h.actor.send({ ...promise('r2', bal, 1, entries([1])), more: 2 });
    h.take();
    h.sched.runFor(4 * 50 + 1);
    h.actor.send({ type: 'tick' });
    const again = h.sent('prepare').filter((m) => m.to === 'r2');
    expect(again).toHaveLength(1);
    expect(again[0]!.pageFrom).toBe(2);
  });
});

describe('proposer: phase 1 carries only what the candidate lacks', () => {
  it(
    'a promise from a replica a few slots ahead: the learner ' +
      'fetches them, then phase 1 again from after them, same ballot',
    () => {
      const h = proposerHarness({ executedUpTo: 10 });
      h.actor.send(campaign(1));
      const bal = h.ctx().ballot;
      h.take();
      h.actor.send({ ...promise('r2', bal, 11), executedUpTo: 14 });
      expect(h.state()).toBe('preparing');
      expect(h.sent('catchup-rep')).toEqual([
        expect.objectContaining({ from: 'r2', to: SELF, chosenUpTo: 14, entries: [] }),
      ]);
      h.actor.send(promise('r1', bal, 11));
      h.actor.send(promise('r3', bal, 11));
      expect(h.state()).toBe('preparing'); // not before the learner has the slots r2 executed
      h.take();
      h.actor.send(progress(14));
      expect(h.ctx().ballot).toEqual(bal);
      expect(h.sent('prepare').map((m) => [m.to, m.fromSlot])).toEqual([
        ['r1', 15],
        ['r2', 15],
        ['r3', 15],
      ]);
      h.actor.send(promise('r1', bal, 15));
      h.actor.send(promise('r2', bal, 15));
      expect(h.state()).toBe('leading');
      expect(h.ctx().nextSlot).toBe(15);
    },
  );

  it('far behind (or truncated above fromSlot): it gives way, and its learner is told to catch up', () => {
    const h = proposerHarness({ executedUpTo: 10 });
    h.actor.send(campaign(1));
    const bal = h.ctx().ballot;
    h.take();
    h.actor.send({ ...promise('r2', bal, 11), executedUpTo: 10_000 });
    expect(h.state()).toBe('follower');
    expect(h.sent('catchup-rep')).toEqual([expect.objectContaining({ chosenUpTo: 10_000 })]);
    expect(h.sent('leader-state').at(-1)).toMatchObject({ state: 'follower', relinquished: true });
  });

  it('re-proposes the open slots through the pipeline window, not all at once', () => {
    const h = proposerHarness({ options: { maxInflightSlots: 4 } });
    h.actor.send(campaign(1));
    const bal = h.ctx().ballot;
    h.actor.send(promise('r1', bal, 1));
    h.actor.send(promise('r2', bal, 1, entries([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])));
    expect(h.state()).toBe('leading');
    expect(h.ctx().slots.size).toBe(4);
    for (const s of [1, 2, 3, 4]) for (const m of ['r1', 'r2']) h.actor.send(accepted(m, bal, s));
    expect(h.ctx().chosenUpTo).toBe(4);
    expect([...h.ctx().slots.keys()]).toEqual([5, 6, 7, 8]);
    expect(h.ctx().recoveryEnd).toBe(10);
  });
});

describe('proposer: back-pressure', () => {
  it('refuses submissions as busy beyond maxQueuedCommands (never proposed, so maybeChosen false)', () => {
    const h = proposerHarness({ options: { maxInflightSlots: 1, maxBatchCmds: 1, maxQueuedCommands: 3 } });
    h.actor.send(campaign(1));
    const bal = h.ctx().ballot;
    h.actor.send(promise('r1', bal, 1));
    h.actor.send(promise('r2', bal, 1));
    h.take();
    h.actor.send(submit([item(1, 'a'), item(2, 'b'), item(3, 'c')])); // one in flight, two queued
    h.actor.send(submit([item(4, 'd'), item(5, 'e')]));
    expect(h.sent('aborted')).toEqual([expect.objectContaining({ ids: [4, 5], maybeChosen: false, busy: true })]);
    expect(h.ctx().stats.busyRefusals).toBe(2);
  });
});

describe('proposer: a promise says it executed what this learner has executed meanwhile', () => {
  it('runs phase 1 again at once from after it (no wait for a progress that already came)', () => {
    const h = proposerHarness({ executedUpTo: 10 });
    h.actor.send(campaign(1));
    const bal = h.ctx().ballot;
    h.actor.send(progress(12)); // the learner executed 11 and 12 while the prepares were out
    h.take();
    h.actor.send({ ...promise(SELF, bal, 11), executedUpTo: 12 });
    expect(h.ctx().awaitingCatchup).toBe(0);
    expect(h.sent('prepare').map((m) => [m.to, m.fromSlot])).toEqual([
      ['r1', 13],
      ['r2', 13],
      ['r3', 13],
    ]);
    h.actor.send(promise('r1', bal, 13));
    h.actor.send(promise('r2', bal, 13));
    expect(h.state()).toBe('leading');
  });
});
