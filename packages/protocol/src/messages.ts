import type { Ballot, Configuration, ReplicaId, RingId, Slot, SlotValue } from './types.ts';

/** The roles of a replica; every message type goes to exactly one of them. */
export type Role = 'elector' | 'proposer' | 'acceptor' | 'learner' | 'snapshotter' | 'config-manager' | 'client';
export const ROLES: readonly Role[] = [
  'elector',
  'proposer',
  'acceptor',
  'learner',
  'snapshotter',
  'config-manager',
  'client',
];

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
export interface Prepare extends Header {
  readonly type: 'prepare';
  readonly ballot: Ballot;
  readonly fromSlot: Slot;
  readonly cookie?: Uint8Array;
  /** a pull of the next page of this ballot's promise: the entries from this slot on (see Promise.more) */
  readonly pageFrom?: Slot;
}
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
  /**
   * The slot this acceptor's replica executed up to (every slot up to it is chosen). When it is
   * >= fromSlot the promise carries no entries: the candidate lacks chosen slots (which may hold
   * configuration changes) and catches up before it campaigns again.
   */
  readonly executedUpTo?: Slot;
  /** the first slot of `accepted` when this is a pulled page (Prepare.pageFrom); absent: fromSlot */
  readonly pageFrom?: Slot;
  /**
   * A long log's promise comes in pages of at most maxPromiseBytes: more entries start at this slot,
   * and the candidate pulls them with a Prepare of the same ballot and `pageFrom: more` (one page
   * in flight per acceptor: flow control by the receiver). Absent: this page completes the promise.
   */
  readonly more?: Slot;
}
export interface Accepted extends Header {
  readonly type: 'accepted';
  readonly ballot: Ballot;
  readonly slot: Slot;
}
export interface Nack extends Header {
  readonly type: 'nack';
  readonly ballot: Ballot;
  readonly promised: Ballot;
  readonly slot?: Slot;
  readonly reason?: string;
}
// ---- acceptor -> local learner
export interface Learn extends Header {
  readonly type: 'learn';
  readonly ballot: Ballot;
  readonly slot: Slot;
  readonly value: SlotValue;
  readonly decidedUpTo: Slot;
}
// ---- proposer -> learners
export interface Decide extends Header {
  readonly type: 'decide';
  readonly ballot: Ballot;
  readonly upTo: Slot;
}
// ---- learner <-> learner
export interface CatchupRequest extends Header {
  readonly type: 'catchup-req';
  readonly fromSlot: Slot;
  readonly toSlot: Slot;
}
export interface CatchupReply extends Header {
  readonly type: 'catchup-rep';
  readonly entries: readonly ChosenEntry[];
  readonly truncatedBelow: Slot;
  readonly chosenUpTo: Slot;
}
// ---- elector <-> elector
export interface Heartbeat extends Header {
  readonly type: 'heartbeat';
  readonly ballot: Ballot;
  readonly decidedUpTo: Slot;
  readonly cookie?: Uint8Array;
}
export interface HeartbeatAck extends Header {
  readonly type: 'heartbeat-ack';
  readonly ballot: Ballot;
  readonly appliedUpTo: Slot;
  readonly payload?: Uint8Array;
}
// ---- elector <-> elector: pre-vote (would you follow me if I campaigned?)
/**
 * asked before a campaign: a replica that heard a live leader lately
 * says no, so a restarted or cut-off replica does not depose it
 */
export interface PreVote extends Header {
  readonly type: 'pre-vote';
  readonly round: number;
}
export interface PreVoteAck extends Header {
  readonly type: 'pre-vote-ack';
  readonly round: number;
  readonly granted: boolean;
}
// ---- elector -> local proposer
export interface Campaign extends Header {
  readonly type: 'campaign';
  readonly round: number;
  readonly cookie?: Uint8Array;
}
export interface Resign extends Header {
  readonly type: 'resign';
  readonly reason: string;
}
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
  /** the configuration this proposer works in (sent when it changes, and by a leader on every tick) */
  readonly config?: Configuration;
  /** non-voting replicas catching up before a configuration change: they get heartbeats too */
  readonly observers?: readonly ReplicaId[];
}
// ---- learner -> local proposer
export interface Progress extends Header {
  readonly type: 'progress';
  readonly executedUpTo: Slot;
  readonly chosenUpTo: Slot;
  /** the configuration as of executedUpTo (it governs the slots after it) */
  readonly config?: Configuration;
}
// ---- replica (client side) -> local proposer
export interface SubmitItem {
  readonly id: number;
  readonly cmd: Uint8Array;
  readonly excl?: boolean;
  readonly last?: boolean;
  /** internal to the proposer: a configuration change queued behind the commands before it */
  readonly config?: { readonly members: readonly ReplicaId[]; readonly cookie?: Uint8Array };
}
export interface Submit extends Header {
  readonly type: 'submit';
  readonly items: readonly SubmitItem[];
}
// ---- learner -> local acceptor: what it executed, made durable beside the log (offline replay)
export interface ExecMark extends Header {
  readonly type: 'exec-mark';
  /** every slot up to here executed */
  readonly upTo: Slot;
  /** executed values the local acceptor does not hold (they came from peers) */
  readonly fills: readonly ChosenEntry[];
  /** write it now (the learner is idle); otherwise it rides with the acceptor's next write */
  readonly flush?: boolean;
  /**
   * The learner's latest Decide: a value accepted at a ballot >= `ballot` at a slot <= `upTo` is
   * chosen. Stored beside the mark, so a restart replays those slots too.
   */
  readonly decided?: { readonly ballot: Ballot; readonly upTo: Slot };
}
// ---- learner / proposer -> local client side
export interface Executed extends Header {
  readonly type: 'executed';
  readonly slot: Slot;
  readonly inc: number;
  readonly firstId: number;
  readonly results: readonly (Uint8Array | undefined)[];
}
export interface Aborted extends Header {
  readonly type: 'aborted';
  readonly ids: readonly number[];
  readonly maybeChosen: boolean;
  readonly leaderHint?: ReplicaId;
  /** refused by a leader whose queue is full (back-pressure: a stalled pipeline); never proposed */
  readonly busy?: boolean;
}
export interface Recovered extends Header {
  readonly type: 'recovered';
  readonly ballot: Ballot;
  readonly upTo: Slot;
}
export interface LearnerEvent extends Header {
  readonly type: 'learner-event';
  readonly executedUpTo: Slot;
  readonly chosenUpTo: Slot;
}
// ---- read-index: a leader asks the acceptors whether they still promise its ballot
export interface ReadConfirm extends Header {
  readonly type: 'read-confirm';
  readonly ballot: Ballot;
  readonly seq: number;
}
export interface ReadAck extends Header {
  readonly type: 'read-ack';
  readonly ballot: Ballot;
  readonly seq: number;
  readonly ok: boolean;
}
// ---- snapshotter <-> snapshotter (snapshot transfer, see docs/snapshots.md)
/**
 * Asks a peer for its latest snapshot, or acknowledges chunks of one being received (cumulative:
 * every chunk < `next` arrived intact). `slot`/`crc` name the snapshot being received (0/0 for a
 * new transfer); a sender that no longer has it starts over with its newest one. `window` chunks
 * may be in flight past `next`.
 */
export interface SnapRequest extends Header {
  readonly type: 'snap-req';
  readonly xfer: number;
  readonly slot: Slot;
  readonly crc: number;
  readonly next: number;
  readonly window: number;
}
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
  /** the configuration number of `members` (absent from senders older than configuration changes) */
  readonly epoch?: number;
}
// ---- learner <-> snapshotter (in one process or two: the learner owns the state machine; the
// snapshotter asks it for copies and installs, and keeps the snapshot store)
/**
 * learner -> snapshotter: slots executed up to `slot` (`bytes` of
 * values applied since start); `requested` by the state machine
 */
export interface SnapExecuted extends Header {
  readonly type: 'snap-executed';
  readonly slot: Slot;
  readonly bytes: number;
  readonly requested: boolean;
}
/** learner -> snapshotter: a peer no longer holds the slots the learner misses */
export interface SnapNeed extends Header {
  readonly type: 'snap-need';
  readonly peer: ReplicaId;
  readonly below: Slot;
}
/** snapshotter -> learner: copy the state machine now (`forced`: asked for, the state machine may not refuse) */
export interface SnapTake extends Header {
  readonly type: 'snap-take';
  readonly seq: number;
  readonly forced?: boolean;
}
/** learner -> snapshotter: the copy, as of `slot`, with the configuration after it */
export interface SnapData extends Header {
  readonly type: 'snap-data';
  readonly seq: number;
  readonly slot: Slot;
  readonly data: Uint8Array;
  readonly config?: Configuration;
  readonly error?: string;
  /** the state machine asked for this copy (seq 0: not in answer to a snap-take) */
  readonly requested?: boolean;
  /** with `error`: the state machine refused it (trySnapshot false): automatic snapshots pause */
  readonly refused?: boolean;
}
/** snapshotter -> learner: a snapshot is durable (`copied`: installed from a peer): the state machine's hooks */
export interface SnapSaved extends Header {
  readonly type: 'snap-saved';
  readonly slot: Slot;
  readonly name: string;
  readonly copied: boolean;
}
/** snapshotter -> learner: replace the state with this snapshot (as of `slot`) and go on at slot+1 */
export interface SnapInstall extends Header {
  readonly type: 'snap-install';
  readonly seq: number;
  readonly slot: Slot;
  readonly data: Uint8Array;
  readonly config?: Configuration;
}
/** learner -> snapshotter: the install is done (or failed) */
export interface SnapInstalled extends Header {
  readonly type: 'snap-installed';
  readonly seq: number;
  readonly ok: boolean;
  readonly error?: string;
}
/** snapshotter -> acceptor: the log below `below` may go */
export interface LogTruncate extends Header {
  readonly type: 'log-truncate';
  readonly below: Slot;
}
/**
 * acceptor -> snapshotter: the store is full (or near it): take a snapshot and truncate below it,
 * as far as it can (the acceptor holds its writes until the store has room again)
 */
export interface LogFull extends Header {
  readonly type: 'log-full';
  readonly usedBytes: number;
  readonly capacityBytes: number;
}
/** snapshotter -> learner: retained slots below `below` may go */
export interface RetainTruncate extends Header {
  readonly type: 'retain-truncate';
  readonly below: Slot;
}
// ---- bootstrap (RSL Bootstrap): client side <-> client side
/** a replica with no configuration is asked to take this first one (epoch 1 from slot 1) */
export interface Bootstrap extends Header {
  readonly type: 'bootstrap';
  readonly members: readonly ReplicaId[];
}
export interface BootstrapAck extends Header {
  readonly type: 'bootstrap-ack';
  readonly ok: boolean;
  readonly error?: string;
}
// ---- configuration changes (see specs/config-change)
/** client side -> config-manager: change the member set (on the leader) */
export interface ConfigChange extends Header {
  readonly type: 'config-change';
  /** the request id, unique within the sender's incarnation `inc` */
  readonly id: number;
  readonly members: readonly ReplicaId[];
  readonly cookie?: Uint8Array;
  /** the sender's incarnation: the result names it, and a result for another incarnation is dropped */
  readonly inc?: number;
}
/** config-manager -> client side: the outcome of a ConfigChange */
export interface ConfigResult extends Header {
  readonly type: 'config-result';
  readonly id: number;
  /** the incarnation of the request it answers (ConfigChange.inc) */
  readonly inc?: number;
  readonly ok: boolean;
  readonly epoch?: number;
  readonly members?: readonly ReplicaId[];
  readonly slot?: Slot;
  readonly error?: string;
  /** NOT_LEADER, PENDING, INVALID, NO_CHANGE, UNREACHABLE, CATCHUP_TIMEOUT, ABORTED */
  readonly code?: string;
  readonly leaderHint?: ReplicaId;
  /** the change was proposed before it failed: it may still take effect */
  readonly maybeChosen?: boolean;
}
/**
 * config-manager -> client side: a configuration took effect
 * here, or this replica's change failed (state machine hooks)
 */
export interface ConfigNotice extends Header {
  readonly type: 'config-notice';
  readonly kind: 'changed' | 'aborted';
  readonly epoch: number;
  readonly members: readonly ReplicaId[];
  readonly cookie?: Uint8Array;
  readonly reason?: string;
}
/** config-manager -> local proposer: propose this change (leader only) */
export interface ConfigProposal extends Header {
  readonly type: 'config-proposal';
  readonly id: number;
  readonly members: readonly ReplicaId[];
  readonly cookie?: Uint8Array;
}
/** proposer -> local config-manager: the proposal was refused or lost with the leadership */
export interface ConfigRefused extends Header {
  readonly type: 'config-refused';
  readonly id: number;
  readonly maybeChosen: boolean;
  readonly reason: string;
  readonly leaderHint?: ReplicaId;
}
/** config-manager -> local proposer: replicas that get Decides while they catch up (non-voting) */
export interface SetObservers extends Header {
  readonly type: 'set-observers';
  readonly observers: readonly ReplicaId[];
}
/**
 * learner -> local config-manager: a configuration now governs
 * the slots after `slot` (executed, installed, or set at start)
 */
export interface Reconfigured extends Header {
  readonly type: 'reconfigured';
  readonly slot: Slot;
  readonly config: Configuration;
  /** the config value's proposer (absent for a snapshot install) */
  readonly origin?: ReplicaId;
  readonly inc?: number;
  readonly firstId?: number;
  readonly cookie?: Uint8Array;
}
/**
 * config-manager -> local elector: send heartbeats to these observers and report every peer's progress (empty stops it)
 */
export interface WatchPeers extends Header {
  readonly type: 'watch-peers';
  readonly observers: readonly ReplicaId[];
  readonly watch: boolean;
}
export interface PeerProgressEntry {
  readonly id: ReplicaId;
  readonly appliedUpTo: Slot;
  readonly ageMs: number;
}
/** elector -> local config-manager: on each heartbeat tick while watched */
export interface PeerProgressReport extends Header {
  readonly type: 'peer-progress';
  readonly leading: boolean;
  readonly leader?: ReplicaId;
  readonly decidedUpTo: Slot;
  /** the election timeout: an ack older than this does not count as reachable */
  readonly windowMs: number;
  readonly peers: readonly PeerProgressEntry[];
}
// ---- client <-> replica (forwarding, client library)
export interface ClientRequest extends Header {
  readonly type: 'client-req';
  /** the request id, unique within the sender's incarnation `inc` */
  readonly id: number;
  readonly cmds: readonly Uint8Array[];
  /** the sender's incarnation (it changes at every start): a reply for another incarnation is dropped */
  readonly inc?: number;
}
/** One forwarded command that did not execute, or may have. */
export interface ForwardFailure {
  /** its index in the request */
  readonly i: number;
  /** NOT_LEADER, BUSY, or a message */
  readonly error: string;
  /** proposed before the failure: it may still execute */
  readonly maybeExecuted: boolean;
}
export interface ClientReply extends Header {
  readonly type: 'client-rep';
  readonly id: number;
  /** the incarnation of the request it answers (ClientRequest.inc) */
  readonly inc?: number;
  /** per command: the result, or nil (no result, or failed: see `failed`) */
  readonly results?: readonly (Uint8Array | null)[];
  /** the whole request failed (nothing of it ran here) */
  readonly error?: string;
  readonly leaderHint?: ReplicaId;
  /**
   * with error NOT_LEADER: true when the commands were proposed before the leadership was lost (they
   * may still execute), false when they certainly were not; absent (an older sender) counts as true
   */
  readonly maybeExecuted?: boolean;
  /** the commands that failed, each with its own outcome (issue #17: a batch may be partly chosen) */
  readonly failed?: readonly ForwardFailure[];
  /** the highest slot the executed commands were in: the requester's freshness token (DECREE.SLOT) */
  readonly slot?: Slot;
}

export type Message =
  | Prepare
  | Accept
  | Promise_
  | Accepted
  | Nack
  | Learn
  | Decide
  | CatchupRequest
  | CatchupReply
  | Heartbeat
  | HeartbeatAck
  | Campaign
  | Resign
  | LeaderState
  | Progress
  | Submit
  | Executed
  | Aborted
  | Recovered
  | LearnerEvent
  | ClientRequest
  | ClientReply
  | ReadConfirm
  | ReadAck
  | SnapRequest
  | SnapChunk
  | SnapExecuted
  | SnapNeed
  | SnapTake
  | SnapData
  | SnapInstall
  | SnapInstalled
  | SnapSaved
  | LogTruncate
  | RetainTruncate
  | PreVote
  | PreVoteAck
  | ExecMark
  | LogFull
  | Bootstrap
  | BootstrapAck
  | ConfigChange
  | ConfigResult
  | ConfigNotice
  | ConfigProposal
  | ConfigRefused
  | SetObservers
  | Reconfigured
  | WatchPeers
  | PeerProgressReport;

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
  'exec-mark': 'acceptor',
  'pre-vote': 'elector',
  'pre-vote-ack': 'elector',
  bootstrap: 'client',
  'bootstrap-ack': 'client',
  'snap-executed': 'snapshotter',
  'snap-need': 'snapshotter',
  'snap-take': 'learner',
  'snap-data': 'snapshotter',
  'snap-install': 'learner',
  'snap-installed': 'snapshotter',
  'snap-saved': 'learner',
  'log-truncate': 'acceptor',
  'log-full': 'snapshotter',
  'retain-truncate': 'learner',
  'config-change': 'config-manager',
  'config-result': 'client',
  'config-notice': 'client',
  'config-proposal': 'proposer',
  'config-refused': 'config-manager',
  'set-observers': 'proposer',
  reconfigured: 'config-manager',
  'watch-peers': 'elector',
  'peer-progress': 'config-manager',
};

export const MESSAGE_TYPES = Object.keys(ROLE_OF) as MessageType[];

/**
 * The lane a transport carries a message in. `control` (heartbeats, votes, prepares, accepts and
 * their answers, decides, reads, everything small) is written ahead of `bulk`: promises with
 * entries, catch-up replies, snapshot chunks and forwarded client batches, whose size would
 * otherwise delay an election or a commit. Bulk transfers are pulled or acknowledged by their
 * receiver, so a bulk message dropped on a full lane is asked for again.
 */
export type Lane = 'control' | 'bulk';
export function laneOf(m: Message): Lane {
  switch (m.type) {
    case 'promise':
      return m.accepted.length > 0 ? 'bulk' : 'control';
    case 'catchup-rep':
      return m.entries.length > 0 ? 'bulk' : 'control';
    case 'snap-chunk':
    case 'snap-data':
    case 'snap-install':
    case 'client-req':
    case 'client-rep':
      return 'bulk';
    default:
      return 'control';
  }
}
