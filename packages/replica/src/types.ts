import type { InspectionEvent, Observer } from 'xstate';
import type { Bus, Env, Transport } from '@decree/bus';
import type {
  AcceptorStore,
  Ballot,
  Configuration,
  LeaderRole,
  ReplicaId,
  RingId,
  Slot,
  SnapshotStore,
  StateMachine,
  StoreStats,
  StoreUsage,
} from '@decree/protocol';
import type { acceptorMachine } from '@decree/acceptor';
import type { ProposerOptions, proposerMachine } from '@decree/proposer';
import type { LearnerOptions, learnerMachine } from '@decree/learner';
import type { ElectorOptions, electorMachine } from '@decree/elector';
import type { ConfigManagerOptions, configManagerMachine } from '@decree/config-manager';
import type { SnapshotterOptions, snapshotterMachine } from '@decree/snapshotter';

export interface ReplicaOptions {
  /** value bytes in one promise message before it goes in pages (default 512 KiB) */
  acceptor?: { maxPromiseBytes?: number };
  proposer?: Partial<ProposerOptions>;
  learner?: Partial<LearnerOptions>;
  elector?: Partial<ElectorOptions>;
  snapshotter?: Partial<SnapshotterOptions>;
  configManager?: Partial<ConfigManagerOptions>;
  /**
   * Makes a replica's snapshot store when the config names none (for harnesses that build every
   * replica from one options object, like the simulator); default: a fresh MemorySnapshotStore.
   */
  makeSnapshotStore?: (id: ReplicaId) => SnapshotStore;
  /** period of the retransmission / catch-up tick */
  tickMs?: number;
  /**
   * The acceptor's, learner's and proposer's events that stay in their state skip XState's
   * machinery (decision 0014); default true. Always off while `inspect` is set: the inspector then
   * sees every event.
   */
  fastLane?: boolean;
}

export interface CreateReplicaConfig {
  id: ReplicaId;
  ring?: RingId;
  /**
   * The initial configuration (epoch 1 from slot 1 when given as a member list). An empty member list
   * (or epoch 0) starts a replica with none: it joins a running cluster when a change names it. The
   * first start stores it durably; later starts use the stored one (and a snapshot's, which is newer).
   */
  configuration: { members: readonly ReplicaId[] } | Configuration;
  /** every replica of the ring (default: the members): a replica outside its configuration catches up from them */
  peers?: readonly ReplicaId[];
  storage: AcceptorStore;
  stateMachine: StateMachine;
  /**
   * where snapshots are kept (default: options.makeSnapshotStore,
   * else memory); createReplica starts from the newest valid one
   */
  snapshots?: SnapshotStore;
  /** a bus shared with other replicas/rings of this process; otherwise one is made (with `transport`) */
  bus?: Bus;
  transport?: Transport;
  env?: Env;
  options?: ReplicaOptions;
  /** XState inspection observer, passed to every role actor */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
  /** told about each snapshot skipped at start because it does not verify */
  onSnapshotCorrupt?: (name: string, err: Error) => void;
  /**
   * One line for each event an operator must see (the store failed or is full, a contract broke):
   * the replica app logs it. Status and statistics show the same.
   */
  log?: (level: 'info' | 'warn' | 'error', msg: string, obj?: Record<string, unknown>) => void;
  /** told once when a role fails (a safety check): the replica has stopped itself; the process may exit */
  onFatal?: (err: Error) => void;
  /**
   * Role machines to run instead of the standard ones: the injection point for tests and tools, which
   * build variants with XState's `provide` (the testkit's `forgetfulAcceptorMachine`, a deliberately
   * broken acceptor for the simulator's self-test). Each must be the role's machine with other
   * implementations; a service leaves this unset.
   */
  machines?: RoleMachines;
}

/** Replacements for the role machines of one replica (`CreateReplicaConfig.machines`); unset: the standard one. */
export interface RoleMachines {
  acceptor?: typeof acceptorMachine;
  proposer?: typeof proposerMachine;
  learner?: typeof learnerMachine;
  elector?: typeof electorMachine;
  snapshotter?: typeof snapshotterMachine;
  configManager?: typeof configManagerMachine;
}

export interface SubmitOptions {
  /** the command gets a slot of its own (RSL ReplicateRequestExclusiveVote) */
  exclusive?: boolean;
  /** with exclusive: the leader steps down once this command is chosen */
  lastBeforeStepDown?: boolean;
}

export interface PeerHealth {
  id: ReplicaId;
  connected: boolean;
  /** slots this leader has sent the peer that it has not acknowledged */
  inFlight: number;
  lastAcceptedSlot: Slot;
  /** the payload the peer attached to its last vote (RSL SetVotePayload) */
  votePayload: Uint8Array | undefined;
  lastVoteAt: number | undefined;
}

export interface ReplicaStatistics {
  commandsExecuted: number;
  slotsExecuted: number;
  slotsProposed: number;
  commandsProposed: number;
  slotsChosen: number;
  /** mean time from first Accept to a majority, in ms */
  meanVotingMs: number;
  elections: number;
  leaderships: number;
  log: StoreStats;
  /** used/capacity bytes of a store of fixed capacity (pmem) */
  logUsage: StoreUsage | undefined;
  /**
   * the acceptor: 'serving', 'full' (writes wait for room) or
   * 'failed'; writes refused as full, replies dropped while full
   */
  acceptor: { state: string; fullWrites: number; droppedReplies: number; promisePages: number };
  /** submissions refused as busy (the leader's queue was full), accepts resent, promise pages pulled */
  busyRefusals: number;
  acceptResends: number;
  promisePagesPulled: number;
  /** messages the bus could not deliver (no handler, no transport) */
  busDrops: number;
  catchupRequests: number;
  applyErrors: number;
  snapshots: {
    taken: number;
    saved: number;
    refused: number;
    installed: number;
    latestSlot: Slot;
    truncatedBelow: Slot;
    chunksSent: number;
    chunksReceived: number;
    badChunks: number;
    transfersStartedOver: number;
  };
}

/** RSL GetConfiguration: the members and the configuration number. */
export interface ConfigurationInfo {
  epoch: number;
  members: ReplicaId[];
  /** the first slot this configuration governs */
  startSlot: Slot;
}

/** The outcome of a configuration change. */
export interface ConfigChangeResult extends ConfigurationInfo {
  /** the slot the change was chosen at */
  slot: Slot;
}

export interface ReplicaStatus {
  id: ReplicaId;
  ring: RingId;
  role: LeaderRole;
  leader: ReplicaId | undefined;
  ballot: Ballot;
  promised: Ballot;
  executedUpTo: Slot;
  chosenUpTo: Slot;
  members: readonly ReplicaId[];
  configEpoch: number;
  states: { elector: string; proposer: string; acceptor: string; learner: string; configManager: string };
  pendingSubmissions: number;
  /** set when the replica stopped itself because a role failed (a safety check) */
  fatal?: string;
}
