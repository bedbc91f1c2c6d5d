import type { Ballot, ReplicaId, RingId, Slot, SlotValue } from './types.ts';

/** The roles of a replica; every message type goes to exactly one of them. */
export type Role = 'elector' | 'proposer' | 'acceptor' | 'learner' | 'snapshotter' | 'client';
export const ROLES: readonly Role[] = ['elector', 'proposer', 'acceptor', 'learner', 'snapshotter', 'client'];

export interface Header {
  readonly ring: RingId;
  readonly from: ReplicaId;
  readonly to: ReplicaId;
  /** trace context and other metadata; carried by transports as headers */
  headers?: Record<string, string>;
}

export interface AcceptedEntry {
  readonly slot: Slot;
  readonly ballot: Ballot;
  readonly value: SlotValue;
}
export interface ChosenEntry {
  readonly slot: Slot;
  readonly value: SlotValue;
}

// ---- proposer -> acceptor
export interface Prepare extends Header { readonly type: 'prepare'; readonly ballot: Ballot; readonly fromSlot: Slot; readonly cookie?: Uint8Array }
export interface Accept extends Header {
  readonly type: 'accept';
  readonly ballot: Ballot;
  readonly slot: Slot;
  readonly value: SlotValue;
  /** every slot <= decidedUpTo is chosen (piggybacked Decide) */
  readonly decidedUpTo: Slot;
}
// ---- acceptor -> proposer
export interface Promise_ extends Header {
  readonly type: 'promise';
  readonly ballot: Ballot;
  readonly fromSlot: Slot;
  readonly accepted: readonly AcceptedEntry[];
  /** the acceptor holds nothing below this slot (truncated by a snapshot) */
  readonly truncatedBelow: Slot;
}
export interface Accepted extends Header { readonly type: 'accepted'; readonly ballot: Ballot; readonly slot: Slot }
export interface Nack extends Header { readonly type: 'nack'; readonly ballot: Ballot; readonly promised: Ballot; readonly slot?: Slot; readonly reason?: string }
// ---- acceptor -> local learner
export interface Learn extends Header { readonly type: 'learn'; readonly ballot: Ballot; readonly slot: Slot; readonly value: SlotValue; readonly decidedUpTo: Slot }
// ---- proposer -> learners
export interface Decide extends Header { readonly type: 'decide'; readonly ballot: Ballot; readonly upTo: Slot }
// ---- learner <-> learner
export interface CatchupRequest extends Header { readonly type: 'catchup-req'; readonly fromSlot: Slot; readonly toSlot: Slot }
export interface CatchupReply extends Header { readonly type: 'catchup-rep'; readonly entries: readonly ChosenEntry[]; readonly truncatedBelow: Slot; readonly chosenUpTo: Slot }
// ---- elector <-> elector
export interface Heartbeat extends Header { readonly type: 'heartbeat'; readonly ballot: Ballot; readonly decidedUpTo: Slot; readonly cookie?: Uint8Array }
export interface HeartbeatAck extends Header { readonly type: 'heartbeat-ack'; readonly ballot: Ballot; readonly appliedUpTo: Slot; readonly payload?: Uint8Array }
// ---- elector -> local proposer
export interface Campaign extends Header { readonly type: 'campaign'; readonly round: number; readonly cookie?: Uint8Array }
export interface Resign extends Header { readonly type: 'resign'; readonly reason: string }
// ---- proposer -> local elector
export interface LeaderState extends Header {
  readonly type: 'leader-state';
  readonly state: 'follower' | 'preparing' | 'leading';
  readonly ballot: Ballot;
  /** the highest round this proposer has seen anywhere */
  readonly maxRound: number;
  readonly decidedUpTo: Slot;
  readonly executedUpTo: Slot;
  /** the leader of a higher ballot this proposer learned of, if any */
  readonly leaderHint?: ReplicaId;
  /** the leader gave up on purpose (relinquish, last exclusive command): do not campaign at once */
  readonly relinquished?: boolean;
}
// ---- learner -> local proposer
export interface Progress extends Header { readonly type: 'progress'; readonly executedUpTo: Slot; readonly chosenUpTo: Slot }
// ---- replica (client side) -> local proposer
export interface SubmitItem { readonly id: number; readonly cmd: Uint8Array; readonly excl?: boolean; readonly last?: boolean }
export interface Submit extends Header { readonly type: 'submit'; readonly items: readonly SubmitItem[] }
// ---- learner / proposer -> local client side
export interface Executed extends Header { readonly type: 'executed'; readonly slot: Slot; readonly inc: number; readonly firstId: number; readonly results: readonly (Uint8Array | undefined)[] }
export interface Aborted extends Header { readonly type: 'aborted'; readonly ids: readonly number[]; readonly maybeChosen: boolean; readonly leaderHint?: ReplicaId }
export interface Recovered extends Header { readonly type: 'recovered'; readonly ballot: Ballot; readonly upTo: Slot }
export interface LearnerEvent extends Header { readonly type: 'learner-event'; readonly executedUpTo: Slot; readonly chosenUpTo: Slot }
// ---- read-index: a leader asks the acceptors whether they still promise its ballot
export interface ReadConfirm extends Header { readonly type: 'read-confirm'; readonly ballot: Ballot; readonly seq: number }
export interface ReadAck extends Header { readonly type: 'read-ack'; readonly ballot: Ballot; readonly seq: number; readonly ok: boolean }
// ---- snapshotter <-> snapshotter (snapshot transfer, see docs/snapshots.md)
/**
 * Asks a peer for its latest snapshot, or acknowledges chunks of one being received (cumulative:
 * every chunk < `next` arrived intact). `slot`/`crc` name the snapshot being received (0/0 for a
 * new transfer); a sender that no longer has it starts over with its newest one. `window` chunks
 * may be in flight past `next`.
 */
export interface SnapRequest extends Header { readonly type: 'snap-req'; readonly xfer: number; readonly slot: Slot; readonly crc: number; readonly next: number; readonly window: number }
/**
 * One chunk of a snapshot: `index` of `count`, `data` checked by `chunkCrc` (CRC32C); the whole
 * payload (`length` bytes, CRC32C `crc`) is the state as of `slot` with configuration `members`.
 * `count` 0 means the sender has no snapshot.
 */
export interface SnapChunk extends Header {
  readonly type: 'snap-chunk';
  readonly xfer: number;
  readonly slot: Slot;
  readonly members: readonly ReplicaId[];
  readonly length: number;
  readonly crc: number;
  readonly index: number;
  readonly count: number;
  readonly chunkCrc: number;
  readonly data: Uint8Array;
}
// ---- client <-> replica (forwarding, client library)
export interface ClientRequest extends Header { readonly type: 'client-req'; readonly id: number; readonly cmds: readonly Uint8Array[] }
export interface ClientReply extends Header { readonly type: 'client-rep'; readonly id: number; readonly results?: readonly (Uint8Array | null)[]; readonly error?: string; readonly leaderHint?: ReplicaId }

export type Message =
  | Prepare | Accept | Promise_ | Accepted | Nack | Learn | Decide | CatchupRequest | CatchupReply
  | Heartbeat | HeartbeatAck | Campaign | Resign | LeaderState | Progress | Submit | Executed | Aborted
  | Recovered | LearnerEvent | ClientRequest | ClientReply | ReadConfirm | ReadAck | SnapRequest | SnapChunk;

export type MessageType = Message['type'];
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;

/** The role each message type is delivered to. */
export const ROLE_OF: { readonly [T in MessageType]: Role } = {
  prepare: 'acceptor',
  accept: 'acceptor',
  promise: 'proposer',
  accepted: 'proposer',
  nack: 'proposer',
  learn: 'learner',
  decide: 'learner',
  'catchup-req': 'learner',
  'catchup-rep': 'learner',
  heartbeat: 'elector',
  'heartbeat-ack': 'elector',
  campaign: 'proposer',
  resign: 'proposer',
  'leader-state': 'elector',
  progress: 'proposer',
  submit: 'proposer',
  executed: 'client',
  aborted: 'client',
  recovered: 'client',
  'learner-event': 'client',
  'client-req': 'client',
  'client-rep': 'client',
  'read-confirm': 'acceptor',
  'read-ack': 'client',
  'snap-req': 'snapshotter',
  'snap-chunk': 'snapshotter',
};

export const MESSAGE_TYPES = Object.keys(ROLE_OF) as MessageType[];
