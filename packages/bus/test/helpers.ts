// Small message builders shared by the bus tests.
import fc from 'fast-check';
import type { Ballot, Message } from '@decree/protocol';

// Deterministic by default (CI-safe); FC_SEED=<n> replays a seed, FC_SEED=random explores.
const seedEnv = process.env.FC_SEED;
if (seedEnv !== 'random')
  fc.configureGlobal({ ...fc.readConfigureGlobal(), seed: seedEnv ? Number(seedEnv) : 20261123 });

export const B: Ballot = { round: 1, leader: 'a' };

/** A Decide (goes to the learner) carrying `n` in upTo, so tests can follow it. */
export const decide = (from: string, to: string, n: number, ring = 'r'): Message => ({
  type: 'decide',
  ring,
  from,
  to,
  ballot: B,
  upTo: n,
});
export const accepted = (from: string, to: string, n: number, ring = 'r'): Message => ({
  type: 'accepted',
  ring,
  from,
  to,
  ballot: B,
  slot: n,
});
export const prepare = (from: string, to: string, n: number, ring = 'r'): Message => ({
  type: 'prepare',
  ring,
  from,
  to,
  ballot: B,
  fromSlot: n,
});
export const heartbeat = (from: string, to: string, n: number, ring = 'r'): Message => ({
  type: 'heartbeat',
  ring,
  from,
  to,
  ballot: B,
  decidedUpTo: n,
});
export const executed = (from: string, to: string, n: number, ring = 'r'): Message => ({
  type: 'executed',
  ring,
  from,
  to,
  slot: n,
  inc: 0,
  firstId: 0,
  results: [],
});

/** The number a builder above put in a message. */
export function tag(m: Message): number {
  switch (m.type) {
    case 'decide':
      return m.upTo;
    case 'accepted':
      return m.slot;
    case 'prepare':
      return m.fromSlot;
    case 'heartbeat':
      return m.decidedUpTo;
    case 'executed':
      return m.slot;
    default:
      throw new Error(`untagged ${m.type}`);
  }
}
