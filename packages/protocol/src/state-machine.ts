import type { ReplicaId, Slot } from './types.ts';

export type LeaderRole = 'leader' | 'follower' | 'candidate';

/**
 * The deterministic state machine a service gives Decree (RSL's RSLStateMachine).
 * `apply` must be deterministic: same commands in the same order give the same results everywhere.
 */
export interface StateMachine {
  /** Executes one command chosen at `slot`; its result answers the submitter (leader only). */
  apply(command: Uint8Array, slot: Slot): Uint8Array | undefined;
  /** A consistent copy of the state as of the last applied command. */
  snapshot(): Promise<Uint8Array | AsyncIterable<Uint8Array>>;
  /** Replaces the state with a snapshot's. */
  restore(snapshot: AsyncIterable<Uint8Array>): Promise<void>;

  // ---- optional hooks (RSL's notifications)
  /** RSL NotifyStatus: this replica became leader or stopped being it. */
  onRoleChange?(role: LeaderRole, leader: ReplicaId | undefined): void;
  /** RSL NotifyPrimaryRecovered: every command of earlier leaders has executed here. */
  onLeaderRecovered?(): void;
  /** RSL CanBecomePrimary: veto leadership; the cookie travels to followers in Prepare and Heartbeat. */
  canBecomeLeader?(): boolean | { ok: boolean; cookie?: Uint8Array };
  /** RSL AcceptMessageFromReplica: refuse a leader (and its cookie); a refused leader gets no vote. */
  acceptMessageFrom?(replica: ReplicaId, cookie: Uint8Array | undefined): boolean;
  /** Called around the commands of one slot. */
  beforeBatch?(slot: Slot): void;
  afterBatch?(slot: Slot): void;
  onConfigurationChange?(members: readonly ReplicaId[], cookie: Uint8Array | undefined): void;
  onShutdown?(): void;
}
