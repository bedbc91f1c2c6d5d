import { wireCommands } from './lazy-batch.ts';
/** A replica's stable name, unique within a ring. */
export type ReplicaId = string;
/** The id of a ring (an independent replica group); one process may host several. */
export type RingId = string;
/** A log position. Slots start at 1; 0 means "none". */
export type Slot = number;

/** Ballot = (round, leader). Ordered by round, then by leader id. */
export interface Ballot {
  readonly round: number;
  readonly leader: ReplicaId;
}

export const ZERO_BALLOT: Ballot = Object.freeze({ round: 0, leader: '' });

export function compareBallots(a: Ballot, b: Ballot): number {
  if (a.round !== b.round) return a.round < b.round ? -1 : 1;
  if (a.leader === b.leader) return 0;
  return a.leader < b.leader ? -1 : 1;
}
export const ballotEq = (a: Ballot, b: Ballot): boolean => a.round === b.round && a.leader === b.leader;
export const ballotLt = (a: Ballot, b: Ballot): boolean => compareBallots(a, b) < 0;
export const ballotGte = (a: Ballot, b: Ballot): boolean => compareBallots(a, b) >= 0;
export const maxBallot = (a: Ballot, b: Ballot): Ballot => (compareBallots(a, b) >= 0 ? a : b);
export const ballotToString = (b: Ballot): string => `${b.round}.${b.leader}`;

/** A configuration: the members that vote for slots >= startSlot. */
export interface Configuration {
  readonly epoch: number;
  readonly members: readonly ReplicaId[];
  readonly startSlot: Slot;
}

export function quorumSize(config: Configuration): number {
  return Math.floor(config.members.length / 2) + 1;
}

/** The configuration of a replica that has none yet (it joins later, or waits for a bootstrap). */
export const NO_CONFIGURATION: Configuration = Object.freeze({
  epoch: 0,
  members: Object.freeze([]) as readonly ReplicaId[],
  startSlot: 1,
});

/** Whether two member lists name the same replicas (order aside). */
export const sameMembers = (a: readonly ReplicaId[], b: readonly ReplicaId[]): boolean =>
  a.length === b.length && a.every((x) => b.includes(x));

/** Checks a proposed member set: a one-line reason when it is not usable, undefined when it is. */
export function memberSetProblem(members: readonly unknown[]): string | undefined {
  if (members.length === 0) return 'the member set is empty';
  const seen = new Set<string>();
  for (const m of members) {
    if (typeof m !== 'string' || m.length === 0 || m.length > 128 || /[\s\u0000]/.test(m))
      return `bad replica id ${JSON.stringify(m)}`;
    if (seen.has(m)) return `duplicate replica id ${JSON.stringify(m)}`;
    seen.add(m);
  }
  return undefined;
}

/**
 * The value of one slot. Commands stay opaque bytes; one slot carries a batch of them.
 * `origin`/`inc`/`firstId` name the submissions on the replica that proposed the batch so it can
 * answer them when the slot executes (inc changes every time that replica starts).
 */
export type SlotValue =
  | { readonly k: 'noop' }
  | {
      readonly k: 'batch';
      readonly origin: ReplicaId;
      readonly inc: number;
      readonly firstId: number;
      readonly cmds: readonly Uint8Array[];
      /** exclusive: the only command of its slot (RSL ReplicateRequestExclusiveVote) */
      readonly excl?: boolean;
      /** the leader steps down once this slot is chosen */
      readonly last?: boolean;
      /**
       * the proposing leader's wall clock (ms since the epoch) when it cut the batch: the log's time,
       * the same on every replica (a state machine's time windows use it, never its own clock)
       */
      readonly at?: number;
    }
  /**
   * A configuration change (see specs/config-change): chosen at slot e, configuration `epoch` with
   * `members` governs every slot from e+1. `firstId` names the change on the proposing replica's
   * config-manager.
   */
  | {
      readonly k: 'config';
      readonly epoch: number;
      readonly members: readonly ReplicaId[];
      readonly origin: ReplicaId;
      readonly inc: number;
      readonly firstId: number;
      readonly cookie?: Uint8Array;
    };

export const NOOP: SlotValue = Object.freeze({ k: 'noop' });

export function slotValueEquals(a: SlotValue, b: SlotValue): boolean {
  if (a === b) return true;
  if (a.k !== b.k) return false;
  if (a.k === 'noop') return true;
  if (a.k === 'batch' && b.k === 'batch') {
    if (a.origin !== b.origin || a.inc !== b.inc || a.firstId !== b.firstId || a.cmds.length !== b.cmds.length)
      return false;
    if (!a.excl !== !b.excl || !a.last !== !b.last || a.at !== b.at) return false;
    for (let i = 0; i < a.cmds.length; i++) if (!bytesEqual(a.cmds[i]!, b.cmds[i]!)) return false;
    return true;
  }
  if (a.k === 'config' && b.k === 'config') {
    if (
      a.epoch !== b.epoch ||
      a.origin !== b.origin ||
      a.inc !== b.inc ||
      a.firstId !== b.firstId ||
      a.members.length !== b.members.length
    )
      return false;
    for (let i = 0; i < a.members.length; i++) if (a.members[i] !== b.members[i]) return false;
    if (a.cookie === undefined || b.cookie === undefined) return a.cookie === b.cookie;
    return bytesEqual(a.cookie, b.cookie);
  }
  return false;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function slotValueSize(v: SlotValue): number {
  if (v.k !== 'batch') return 16;
  const w = wireCommands(v);
  if (w !== undefined) return 32 + w.payloadBytes + 2 * w.count;
  let n = 32;
  for (const c of v.cmds) n += c.length + 2;
  return n;
}
