import type { Actor } from 'xstate';
import type { Bus, Env } from '@decree/bus';
import type { AcceptorStore, ReplicaId, RingId, Slot, SnapshotMeta, SnapshotStore } from '@decree/protocol';
import type { acceptorMachine } from '@decree/acceptor';
import type { proposerMachine } from '@decree/proposer';
import type { learnerMachine } from '@decree/learner';
import type { electorMachine } from '@decree/elector';
import type { configManagerMachine } from '@decree/config-manager';
import type { snapshotterMachine } from '@decree/snapshotter';
import { NotLeaderError, ReplicaStoppedError, StaleReplicaError } from './errors.ts';
import type { LocalReplay } from './local-replay.ts';
import { untilDone } from './until-done.ts';
import { type BatchOutcome, resultsOrThrow } from './submissions.ts';
import { allFailed } from './forwarding.ts';
import type { BootstrapResult } from './bootstrap.ts';
import { type StatsView, peerHealthOf, statisticsOf, statusOf } from './stats.ts';
import { startTicking } from './wiring.ts';
import { type ReplicaParts, assemble } from './assemble.ts';
import type {
  ConfigChangeResult,
  ConfigurationInfo,
  CreateReplicaConfig,
  PeerHealth,
  ReplicaStatistics,
  ReplicaStatus,
  SubmitOptions,
} from './types.ts';

export { statePath } from './stats.ts';

/**
 * One replica: the six roles (elector, proposer, acceptor, learner, snapshotter, config-manager)
 * composed over a bus, storage and a transport, around the user's state machine (assemble.ts wires
 * them); this class holds the parts and offers the public API (RSL's).
 */
export class Replica {
  readonly id: ReplicaId;
  readonly ring: RingId;
  readonly bus: Bus;
  readonly env: Env;
  readonly inc: number;
  readonly configManager: Actor<typeof configManagerMachine>;
  readonly elector: Actor<typeof electorMachine>;
  readonly proposer: Actor<typeof proposerMachine>;
  readonly acceptor: Actor<typeof acceptorMachine>;
  readonly learner: Actor<typeof learnerMachine>;
  readonly snapshotter: Actor<typeof snapshotterMachine>;
  readonly snapshots: SnapshotStore;
  /** errors the state machine threw while applying (counted; the replica keeps going) */
  readonly applyErrors: { slot: Slot; err: unknown }[] = [];
  /** what the start replayed from the local log */
  readonly replayed: LocalReplay | undefined;
  /** Why the replica stopped on its own (a role failed a safety check), if it did. */
  fatalError: Error | undefined;
  private readonly p: ReplicaParts;
  private readonly cfg: CreateReplicaConfig;
  private stopTicking: () => void = () => {};
  private stopped = false;

  /** use createReplica() */
  constructor(
    cfg: CreateReplicaConfig,
    recovered: Awaited<ReturnType<AcceptorStore['recover']>>,
    /** the snapshot the state machine was restored from (createReplica does it) */
    restoredFrom?: SnapshotMeta,
    /** the slots after it replayed from the local log (createReplica does it) */
    replay?: LocalReplay,
  ) {
    this.cfg = cfg;
    this.replayed = replay;
    const p = assemble(cfg, recovered, restoredFrom, replay, {
      currentLeader: () => this.currentLeader(),
      isLeader: () => this.isLeader(),
      executedSlot: () => this.executedSlot(),
      submitEach: (cmds) => this.submitEach(cmds),
      fatal: (role, e) => this.fatal(role, e),
      applyError: (err, slot) => {
        if (this.applyErrors.length < 100) this.applyErrors.push({ slot, err });
      },
    });
    this.p = p;
    ({ self: this.id, ring: this.ring, bus: this.bus, env: this.env, inc: this.inc, snapshots: this.snapshots } = p);
    ({ acceptor: this.acceptor, proposer: this.proposer, learner: this.learner } = p.roles);
    ({ snapshotter: this.snapshotter, elector: this.elector, configManager: this.configManager } = p.roles);
  }

  /**
   * A role failed: one error line, the replica stops (as a crash: no further writes), and the status
   * says why. Going on could break agreement or lose a write; a restart replays from the durable log.
   */
  private fatal(role: string, e: unknown): void {
    if (this.fatalError) return;
    const err = e instanceof Error ? e : new Error(String(e));
    this.fatalError = new Error(`${role}: ${err.message}`, { cause: err });
    const line = `replica ${this.id} stops: its ${role} failed: ${err.message}`;
    this.cfg.log?.('error', line, { replica: this.id, ring: this.ring, role });
    this.cfg.onFatal?.(this.fatalError);
    void this.stop({ keepStore: true }).then(() => this.p.store.close());
  }

  start(): void {
    for (const a of [this.acceptor, this.learner, this.snapshotter, this.configManager, this.proposer, this.elector])
      a.start();
    const ticked = [this.proposer, this.learner, this.snapshotter, this.configManager];
    this.stopTicking = startTicking(this.env.clock, this.p.tickMs, ticked, this.p.deliver);
  }

  /** Replicates one command; resolves with the state machine's result once it executed here. */
  async submit(command: Uint8Array, opts: SubmitOptions = {}): Promise<Uint8Array | undefined> {
    return resultsOrThrow(await this.submitEach([command], opts))[0];
  }

  /**
   * Replicates many commands with one promise (the fast path for pipelined clients). All or nothing
   * for the caller: when any command failed it rejects, with `maybeExecuted` set when any command of
   * the batch executed or may have (a batch can span slots). Use submitEach for each one's outcome.
   */
  async submitBatch(commands: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    return resultsOrThrow(await this.submitEach(commands));
  }

  /**
   * Replicates commands and resolves with each one's own outcome: its result and slot, or its
   * failure and whether it may still execute (a batch split across slots can be partly chosen when
   * leadership is lost: issue #17). Never rejects.
   */
  submitEach(commands: readonly Uint8Array[], opts: SubmitOptions = {}): Promise<BatchOutcome> {
    const n = commands.length;
    if (n === 0) return Promise.resolve({ results: [], slot: 0 });
    if (this.stopped) return Promise.resolve(allFailed(n, new ReplicaStoppedError(), false));
    if (!this.isLeader()) return Promise.resolve(allFailed(n, new NotLeaderError(this.currentLeader()), false));
    return this.p.submitter.submitEach(commands, opts);
  }

  /** RSL GetConfiguration: the members as of the executed slot and the configuration number. */
  getConfiguration(): ConfigurationInfo {
    return this.p.notices.info();
  }

  /**
   * RSL ChangeConfiguration: replaces the member set (add, remove, replace: any new set) through the
   * log, run by the leader's config-manager. New members are caught up first (snapshot plus log) and
   * must answer; the change is chosen at some slot e and the new set governs from e+1. Resolves once it executed
   * here; rejects with ConfigChangeError (code NOT_LEADER, PENDING, INVALID, NO_CHANGE, UNREACHABLE,
   * CATCHUP_TIMEOUT or ABORTED; `maybeChosen` when it may still take effect). `cookie` reaches
   * onConfigurationChange on old and new members, or onConfigurationAborted here.
   */
  changeConfiguration(
    members: readonly ReplicaId[],
    cookie?: Uint8Array,
    timeoutMs = 120_000,
  ): Promise<ConfigChangeResult> {
    if (this.stopped) return Promise.reject(new ReplicaStoppedError());
    // the leader's config-manager runs the change (it answers this replica); with no leader known the
    // local one answers NOT_LEADER
    const to = this.currentLeader() ?? this.id;
    return this.p.configRequests.request(to, members, cookie, timeoutMs);
  }

  /**
   * RSL Bootstrap: gives a cluster whose replicas started with no configuration its first one. This
   * replica (a member of `members`) stores it durably, invites the others (each stores it and takes
   * it), and resolves once a leader is elected: `result` 'ok', or 'already-bootstrapped' when this
   * replica already has this configuration. Rejects with BootstrapError: INVALID (bad set, or this
   * replica not in it), ALREADY (bootstrapped with another set), FAILED (no leader within timeoutMs).
   */
  async bootstrap(members: readonly ReplicaId[], timeoutMs = 30_000): Promise<BootstrapResult> {
    if (this.stopped) throw new ReplicaStoppedError();
    return this.p.bootstrapper.run(members, timeoutMs);
  }

  /**
   * Replicates commands from any replica: on the leader it submits them; on a follower it forwards
   * them to the leader it knows and waits for the answer. All or nothing for the caller (rejects with
   * NotLeaderError when no leader is known or after `timeoutMs`, `maybeExecuted` when any command may
   * have run); executeEach gives each command's own outcome.
   */
  async execute(commands: readonly Uint8Array[], timeoutMs = 5_000): Promise<(Uint8Array | undefined)[]> {
    return resultsOrThrow(await this.executeEach(commands, timeoutMs));
  }

  /**
   * Like submitEach from any replica: on a follower the commands go to the leader it knows, and each
   * comes back with its own outcome and slot. A command whose answer was lost may have executed
   * (`maybeExecuted`): retry it only inside a client session.
   */
  executeEach(commands: readonly Uint8Array[], timeoutMs = 5_000): Promise<BatchOutcome> {
    if (this.stopped) return Promise.resolve(allFailed(commands.length, new ReplicaStoppedError(), false));
    if (this.isLeader()) return this.submitEach(commands);
    const leader = this.currentLeader();
    if (!leader || leader === this.id)
      return Promise.resolve(allFailed(commands.length, new NotLeaderError(undefined), false));
    return this.p.forwarder.request(leader, commands, timeoutMs);
  }

  /**
   * Read-index: linearizable reads without a log slot (see ReadIndex). Resolves with the index once a
   * majority of the leader's configuration confirmed its ballot after the request and this replica
   * executed up to the index; read the local state machine then.
   */
  readIndex(timeoutMs = 2_000): Promise<Slot> {
    if (this.stopped) return Promise.reject(new ReplicaStoppedError());
    if (!this.isLeader()) return Promise.reject(new NotLeaderError(this.currentLeader()));
    return this.p.reads.read(timeoutMs);
  }

  /**
   * RSL FastReadRequest: resolves once this replica (any role) has executed `minSlot` (the highest
   * slot the client has seen), or rejects with StaleReplicaError after `timeoutMs`.
   */
  waitForSlot(minSlot: Slot, timeoutMs: number): Promise<Slot> {
    if (this.stopped) return Promise.reject(new ReplicaStoppedError());
    const executed = () => (this.executedSlot() >= minSlot ? this.executedSlot() : undefined);
    return this.p.poller.waitFor(
      executed,
      timeoutMs,
      undefined,
      () => new StaleReplicaError(this.executedSlot(), minSlot),
    );
  }

  isLeader(): boolean {
    return this.proposer.getSnapshot().matches('leading');
  }

  /** RSL: the primary as this replica knows it. */
  currentLeader(): ReplicaId | undefined {
    if (this.isLeader()) return this.id;
    const e = this.elector.getSnapshot().context;
    return e.leader ?? this.proposer.getSnapshot().context.leaderHint;
  }

  /** RSL GetCurrentSequenceNumber: the last slot executed here. */
  executedSlot(): Slot {
    return this.learner.getSnapshot().context.executedUpTo;
  }

  /** RSL GetHighestPassedSequenceNumber: the highest slot known chosen. */
  highestChosenSlot(): Slot {
    const l = this.learner.getSnapshot().context;
    const p = this.proposer.getSnapshot().context;
    return Math.max(l.decidedUpTo, l.executedUpTo, this.isLeader() ? p.chosenUpTo : 0);
  }

  /** RSL RelinquishPrimary: stop leading (pending commands are aborted); do not campaign for one election timeout. */
  relinquishLeadership(): void {
    this.elector.send({ type: 'relinquish' });
    if (this.isLeader())
      this.bus.send({ type: 'resign', ring: this.ring, from: this.id, to: this.id, reason: 'relinquished' });
  }

  /** RSL AttemptPromotion: campaign now instead of waiting for the election timeout. */
  attemptPromotion(): void {
    this.elector.send({ type: 'promote' });
  }

  /** The election timeout, changeable at run time (RSL ChangeElectionDelay). */
  setElectionTimeout(minMs: number, maxMs = minMs * 2): void {
    this.elector.send({ type: 'set-timeout', minMs, maxMs });
  }

  /** RSL SetVotePayload: bytes this follower attaches to its votes; the leader sees them in peerHealth(). */
  setVotePayload(payload: Uint8Array | undefined): void {
    this.elector.send({ type: 'set-payload', payload });
  }

  /** Health of each peer as this replica sees it (leader-side figures are zero on followers). */
  peerHealth(): PeerHealth[] {
    return peerHealthOf(this.view());
  }

  /** Stops automatic snapshots (a state machine's trySnapshot() returning false does the same). */
  pauseSnapshots(): void {
    this.snapshotter.send({ type: 'pause' });
  }

  resumeSnapshots(): void {
    this.snapshotter.send({ type: 'resume' });
  }

  get snapshotsPaused(): boolean {
    return this.snapshotter.getSnapshot().context.paused;
  }

  /**
   * Takes a snapshot now (as of the executed slot); resolves with
   * it once stored (the latest one if nothing new was applied).
   */
  snapshotNow(): Promise<SnapshotMeta | undefined> {
    if (this.stopped) return Promise.reject(new ReplicaStoppedError());
    return new Promise((resolve, reject) => this.snapshotter.send({ type: 'snapshot-now', resolve, reject }));
  }

  /**
   * RSL CopyStateFromReplica: fetches `peer`'s latest snapshot (any peer when omitted) and installs
   * it if it is ahead of this replica; resolves with the executed slot afterwards.
   */
  copyStateFromReplica(peer?: ReplicaId): Promise<Slot> {
    if (this.stopped) return Promise.reject(new ReplicaStoppedError());
    return new Promise((resolve, reject) => this.snapshotter.send({ type: 'copy-from', peer, resolve, reject }));
  }

  statistics(): ReplicaStatistics {
    return statisticsOf(this.view());
  }

  status(): ReplicaStatus {
    return statusOf(this.view());
  }

  private view(): StatsView {
    return {
      id: this.id,
      ring: this.ring,
      role: this.p.notices.role,
      store: this.p.store,
      bus: this.bus,
      transport: this.p.transport,
      members: this.p.notices.members,
      config: this.p.notices.config,
      pendingSubmissions: this.p.submitter.pending,
      fatal: this.fatalError,
      elector: this.elector,
      proposer: this.proposer,
      acceptor: this.acceptor,
      learner: this.learner,
      snapshotter: this.snapshotter,
      configManager: this.configManager,
      isLeader: () => this.isLeader(),
      currentLeader: () => this.currentLeader(),
      highestChosenSlot: () => this.highestChosenSlot(),
    };
  }

  /**
   * Stops the roles; pending submissions are rejected. The store is closed unless `keepStore`; before
   * it is, the records the acceptor took in but had not written yet (queued behind a write in flight)
   * are written: a graceful stop finishes its durable writes. They were never acknowledged, so losing
   * them would be safe, but the replica may have executed those slots (chosen by other acceptors) and
   * would restart without its own acceptance of them. With `keepStore` (a simulated crash) they are
   * lost, as in a crash.
   */
  async stop(opts: { keepStore?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (!opts.keepStore) {
      // graceful: the learner's coalesced exec-mark reaches the acceptor before its last write
      // (a restart then replays every slot executed here, decision 0011); a tick forces it out
      this.learner.send({ type: 'tick' });
      await new Promise<void>((resolve) => this.env.defer(resolve));
    }
    this.stopTicking();
    for (const u of this.p.unregister) u();
    this.p.unregister = [];
    // the snapshotter ends the store writes in flight before it is done: nothing is written into the
    // directory after stop() returns
    const snapshotterDone = untilDone(this.snapshotter);
    this.snapshotter.send({ type: 'stop' });
    // graceful: the acceptor writes what it took in but had not written, then stops (a crash: at once)
    const acceptorDone = untilDone(this.acceptor);
    this.acceptor.send({ type: 'stop', graceful: !opts.keepStore });
    for (const a of [this.elector, this.proposer, this.learner, this.configManager] as Actor<any>[]) a.stop();
    const err = new ReplicaStoppedError();
    this.p.configRequests.stop(err);
    // in flight when the replica stopped: they may still be chosen (by the other replicas)
    this.p.submitter.stop(err);
    this.p.forwarder.stop(err);
    this.p.sm.onShutdown?.();
    if (!opts.keepStore) {
      await snapshotterDone;
      await acceptorDone;
      await this.p.store.close();
    }
    this.snapshotter.stop();
    this.acceptor.stop();
    if (this.p.ownsBus) await this.bus.close();
  }

  get isStopped(): boolean {
    return this.stopped;
  }
}
