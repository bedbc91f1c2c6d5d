import type { ReplicaId } from '@decree/protocol';

/** This replica is not the leader (RSL: the request was not accepted, or was aborted). */
export class NotLeaderError extends Error {
  readonly code = 'NOT_LEADER';
  constructor(
    /** the replica believed to lead, if known */
    readonly leaderHint: ReplicaId | undefined,
    /** the command was proposed before leadership was lost: it may still be executed */
    readonly maybeExecuted = false,
  ) {
    super(leaderHint ? `not the leader; try ${leaderHint}` : 'not the leader; leader unknown');
    this.name = 'NotLeaderError';
  }
}

/**
 * The leader refused the commands before proposing them: its queue is full because the pipeline is
 * stalled (a full store waiting for a snapshot, a slow majority). They did not execute: retry later.
 */
export class BusyError extends Error {
  readonly code = 'BUSY';
  constructor() {
    super('the leader is busy: its queue is full while the log waits for room or a majority; try again');
    this.name = 'BusyError';
  }
}

export class ReplicaStoppedError extends Error {
  readonly code = 'STOPPED';
  constructor() {
    super('the replica is stopped');
    this.name = 'ReplicaStoppedError';
  }
}

/** RSL fast read: this replica has not executed the slot the client has seen, within the timeout. */
export class StaleReplicaError extends Error {
  readonly code = 'STALE';
  constructor(
    readonly executed: number,
    readonly wanted: number,
  ) {
    super(`replica is stale: executed up to slot ${executed}, the client has seen ${wanted}`);
    this.name = 'StaleReplicaError';
  }
}

/**
 * RSL Bootstrap failed: INVALID (the set, or this replica not
 * in it), ALREADY (another set), FAILED (no leader in time).
 */
export class BootstrapError extends Error {
  constructor(
    readonly code: 'INVALID' | 'ALREADY' | 'FAILED',
    message: string,
  ) {
    super(message);
    this.name = 'BootstrapError';
  }
}

/** RSL ChangeConfiguration failed; `code` says why (see specs/config-change). */
export class ConfigChangeError extends Error {
  constructor(
    /** NOT_LEADER, PENDING, INVALID, NO_CHANGE, UNREACHABLE, CATCHUP_TIMEOUT, ABORTED */
    readonly code: string,
    message: string,
    /** the change was proposed before it failed: it may still take effect */
    readonly maybeChosen: boolean,
    readonly leaderHint: ReplicaId | undefined,
  ) {
    super(message);
    this.name = 'ConfigChangeError';
  }
}
