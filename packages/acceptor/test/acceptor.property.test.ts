import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  type Ballot,
  type SlotValue,
  ContractViolation,
  compareBallots,
  ballotEq,
  slotValueEquals,
} from '@decree/protocol';
import { type HarnessOptions, accept, acceptorHarness, forgetfulAcceptor, prepare, val } from './harness.ts';

type Op =
  | { k: 'prep'; round: number; leader: string; fromSlot: number }
  | { k: 'acc'; round: number; leader: string; slot: number; tag: number }
  | { k: 'disk' };

const leader = fc.constantFrom('p1', 'p2', 'p3');
const round = fc.integer({ min: 1, max: 4 });
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({ k: fc.constant('prep' as const), round, leader, fromSlot: fc.integer({ min: 1, max: 3 }) }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant('acc' as const),
      round,
      leader,
      slot: fc.integer({ min: 1, max: 4 }),
      // mostly one value per (slot, ballot) as a correct proposer sends; sometimes a conflicting one
      tag: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 }) }),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ k: 'disk' as const }) },
);

const valueOf = (o: Extract<Op, { k: 'acc' }>): SlotValue => val(`${o.slot}/${o.tag}`, o.leader);

let contractStops = 0;

/** Runs `ops` against one acceptor; returns the first broken rule, or null. */
function run(ops: readonly Op[], opts: HarnessOptions = {}): string | null {
  const h = acceptorHarness(opts);
  let highest: Ballot | undefined; // the highest ballot this acceptor has answered Promise/Accepted to
  let checked = 0;
  const seen = new Map<number, { ballot: Ballot; value: SlotValue }>();
  const checkOut = (): string | null => {
    for (; checked < h.out.length; checked++) {
      const m = h.out[checked]!;
      if (m.type !== 'promise' && m.type !== 'accepted') continue;
      if (highest && compareBallots(m.ballot, highest) < 0)
        return `${m.type} to ${m.ballot.round}.${m.ballot.leader} after answering ${highest.round}.${highest.leader}`;
      highest = m.ballot;
    }
    for (const [slot, a] of h.ctx().accepted) {
      const prev = seen.get(slot);
      if (prev && compareBallots(a.ballot, prev.ballot) < 0) return `slot ${slot} went back to a lower ballot`;
      if (prev && ballotEq(a.ballot, prev.ballot) && !slotValueEquals(a.value, prev.value))
        return `slot ${slot} changed its value at ballot ${a.ballot.round}.${a.ballot.leader}`;
      seen.set(slot, a);
    }
    return null;
  };
  for (const o of ops) {
    if (o.k === 'prep') h.actor.send(prepare(o.leader, o.round, o.fromSlot));
    else if (o.k === 'acc') h.actor.send(accept(o.leader, o.round, o.slot, valueOf(o)));
    else h.diskDone();
    if (h.errors.length > 0) {
      // the only error allowed: the contract against a second value at one (slot, ballot)
      if (!(h.errors[0] instanceof ContractViolation) || o.k !== 'acc')
        return `unexpected error ${String(h.errors[0])}`;
      const cur = h.ctx().accepted.get(o.slot);
      if (!cur || !ballotEq(cur.ballot, { round: o.round, leader: o.leader }) || slotValueEquals(cur.value, valueOf(o)))
        return 'ContractViolation without a conflicting value';
      contractStops++;
      return checkOut(); // the actor is stopped: nothing more to drive
    }
    const bad = checkOut();
    if (bad) return bad;
  }
  h.diskDone();
  h.diskDone();
  return checkOut();
}

describe('acceptor properties (fast-check)', () => {
  it('never answers Promise/Accepted below a ballot it promised, never changes a value at one (slot, ballot)', () => {
    contractStops = 0;
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 60 }), (ops) => {
        expect(run(ops)).toBeNull();
      }),
      { numRuns: 400, seed: 20261123 },
    );
    // the generator does send conflicting values, and each time the contract stopped the acceptor
    expect(contractStops).toBeGreaterThan(0);
  });

  it('a second value at one (slot, ballot) is caught by the contract', () => {
    contractStops = 0;
    const r = run([
      { k: 'prep', round: 1, leader: 'p1', fromSlot: 1 },
      { k: 'acc', round: 1, leader: 'p1', slot: 2, tag: 0 },
      { k: 'acc', round: 1, leader: 'p1', slot: 2, tag: 1 },
    ]);
    expect(r).toBeNull(); // the run stopped on the ContractViolation, value unchanged
    expect(contractStops).toBe(1);
  });

  it('the property has teeth: it fails for the forgetful acceptor (keepPromise replaced through provide)', () => {
    const res = fc.check(
      fc.property(
        fc.array(op, { minLength: 1, maxLength: 60 }),
        (ops) => run(ops, { machine: forgetfulAcceptor }) === null,
      ),
      { numRuns: 400, seed: 7 },
    );
    expect(res.failed).toBe(true);
  });
});
