import type { ReplicaId, Slot } from './types.ts';

export type LeaderRole = 'leader' | 'follower' | 'candidate';

/**
 * The deterministic state machine a service gives Decree (RSL's RSLStateMachine).
 * `apply` must be deterministic: same commands in the same order give the same results everywhere.
 */
export interface StateMachine {
  /** Executes one command chosen at `slot`; its result answers the submitter (leader only). */
  apply(command: Uint8Array, slot: Slot): Uint8Array | undefined;
  /**
   * Optional: the same as `apply(buf.subarray(start, end), slot)` without the view. The learner calls it
   * for commands still in the bytes they arrived in (a follower's batches), so a state machine that
   * reads a command in place applies it without allocating.
   */
  applyAt?(buf: Uint8Array, start: number, end: number, slot: Slot): Uint8Array | undefined;
  /**
   * Optional, a hint: the command at [start, end) of buf is about to be applied. The learner calls it
   * for each command of a slot before applying the first, so a state machine can start loading what
   * the commands touch (its cache misses overlap instead of following one another). It must not
   * change the state nor throw, whatever the bytes.
   */
  prefetchAt?(buf: Uint8Array, start: number, end: number): void;
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
  /**
   * Called around the commands of one slot; `atMs` is the proposing leader's clock when it cut the
   * batch (the log's time: use it, never the local clock, for anything time-based in the state).
   */
  beforeBatch?(slot: Slot, atMs?: number): void;
  afterBatch?(slot: Slot): void;
  /**
   * RSL NotifyConfigurationChanged: a configuration took effect at this replica (on old and new members);
   * `cookie` is the one given to changeConfiguration (undefined for a bootstrap or a snapshot install).
   */
  onConfigurationChange?(members: readonly ReplicaId[], cookie: Uint8Array | undefined, epoch: number): void;
  /** RSL AbortChangeConfiguration: a change this replica proposed failed; `reason` says why. */
  onConfigurationAborted?(members: readonly ReplicaId[], cookie: Uint8Array | undefined, reason: string): void;
  onShutdown?(): void;

  // ---- optional checkpoint hooks (RSL's checkpoint API; see docs/snapshots.md)
  /**
   * True when `snapshot()` takes its copy synchronously, at the call (copy-on-call, as KvMachine
   * does): commands may be applied while the returned stream is consumed. Otherwise (the default)
   * the replica applies nothing until the stream has been read to its end.
   */
  readonly snapshotIsCopy?: boolean;
  /**
   * Handed once, before any command is applied: calling `request()` from `apply` asks for a
   * snapshot right after the slot holding the current command (RSL: checkpoint after this command).
   */
  setSnapshotRequester?(request: () => void): void;
  /** Asked before each automatic snapshot; false refuses it and pauses automatic snapshots until resumed. */
  trySnapshot?(): boolean;
  /** A snapshot of the state as of `slot` is durable in the snapshot store under `name` (RSL NotifySaveState). */
  stateSaved?(slot: Slot, name: string): void;
  /** The state was replaced by a peer's snapshot as of `slot`, stored under `name` (RSL StateCopied). */
  stateCopied?(slot: Slot, name: string): void;
}

/** Reads a state machine's snapshot (one buffer or a stream of pieces) into one buffer. */
export async function collectSnapshot(s: Uint8Array | AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  if (s instanceof Uint8Array) return s;
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const p of s) {
    parts.push(p);
    n += p.length;
  }
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
