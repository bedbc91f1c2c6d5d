import type { Actor } from 'xstate';
import type {
  AcceptorStore, Configuration, LeaderRole, Message, ReplicaId, RingId, Slot, SnapshotMeta, SnapshotStore, StateMachine,
} from '@decree/protocol';
import { Bus, type Env, type Transport, realEnv } from '@decree/bus';
import { acceptorMachine } from '@decree/acceptor';
import { proposerMachine } from '@decree/proposer';
import { learnerMachine } from '@decree/learner';
import { electorMachine } from '@decree/elector';
import { configManagerMachine } from '@decree/config-manager';
import { MemorySnapshotStore } from '@decree/storage/memory';
import { snapshotWritesDone, snapshotterMachine } from '@decree/snapshotter';
import { BusyError, NotLeaderError, ReplicaStoppedError, StaleReplicaError } from './errors.ts';
import type { LocalReplay } from './local-replay.ts';
import { untilDone } from './until-done.ts';
import { type BatchOutcome, Submitter, batchError } from './submissions.ts';
import { Forwarder, allFailed } from './forwarding.ts';
import { composeRoles } from './roles.ts';
import { initialConfiguration, storedConfig0 } from './config0.ts';
import { Poller } from './poller.ts';
import { ReadIndex } from './read-index.ts';
import { ConfigRequests } from './config-requests.ts';
import { type BootstrapResult, Bootstrapper } from './bootstrap.ts';
import { type StatsView, peerHealthOf, statisticsOf, statusOf, topState } from './stats.ts';
import type {
  ConfigChangeResult, ConfigurationInfo, CreateReplicaConfig, PeerHealth, ReplicaStatistics, ReplicaStatus, SubmitOptions,
} from './types.ts';

export { statePath } from './stats.ts';

/**
 * One replica: the four roles (elector, proposer, acceptor, learner) composed over a bus, storage
 * and a transport, around the user's state machine.
 */
export class Replica {
  readonly id: ReplicaId;
  readonly ring: RingId;
  readonly bus: Bus;
  readonly env: Env;
  readonly inc: number;
  private readonly sm: StateMachine;
  private readonly store: AcceptorStore;
  private readonly ownsBus: boolean;
  private members: ReplicaId[];
  private config: Configuration;
  private readonly peers: readonly ReplicaId[];
  private readonly configRequests: ConfigRequests;
  private readonly poller: Poller;
  private readonly reads: ReadIndex;
  private readonly bootstrapper: Bootstrapper;
  readonly configManager: Actor<typeof configManagerMachine>;
  readonly elector: Actor<typeof electorMachine>;
  readonly proposer: Actor<typeof proposerMachine>;
  readonly acceptor: Actor<typeof acceptorMachine>;
  readonly learner: Actor<typeof learnerMachine>;
  readonly snapshotter: Actor<typeof snapshotterMachine>;
  readonly snapshots: SnapshotStore;
  private unregister: (() => void)[] = [];
  private readonly submitter: Submitter;
  private tickTimer: unknown;
  private stopped = false;
  private role: LeaderRole = 'follower';
  private lastProposerState = 'follower';
  private readonly tickMs: number;
  private readonly transport: Transport | undefined;
  private readonly forwarder: Forwarder;
  /** errors the state machine threw while applying (counted; the replica keeps going) */
  readonly applyErrors: { slot: Slot; err: unknown }[] = [];
  /** what the start replayed from the local log */
  readonly replayed: LocalReplay | undefined;
  private readonly logLine: CreateReplicaConfig['log'];
  private readonly reported = new Map<string, number>();

  /** use createReplica() */
  constructor(
    cfg: CreateReplicaConfig,
    recovered: Awaited<ReturnType<AcceptorStore['recover']>>,
    /** the snapshot the state machine was restored from (createReplica does it) */
    restoredFrom?: SnapshotMeta,
    /** the slots after it replayed from the local log (createReplica does it) */
    replay?: LocalReplay,
  ) {
    this.id = cfg.id;
    this.ring = cfg.ring ?? 'default';
    this.env = cfg.env ?? realEnv();
    this.sm = cfg.stateMachine;
    this.store = cfg.storage;
    this.snapshots = cfg.snapshots ?? cfg.options?.makeSnapshotStore?.(cfg.id) ?? new MemorySnapshotStore();
    this.replayed = replay;
    const startSlot = replay?.upTo ?? restoredFrom?.slot ?? 0;
    // the initial configuration stored at the first start (or by a bootstrap) wins over the given one;
    // a configuration change in the replayed log is newer still
    this.config = replay?.config ?? initialConfiguration(storedConfig0(recovered) ?? cfg.configuration, restoredFrom);
    this.members = [...this.config.members];
    this.peers = [...new Set([...(cfg.peers ?? []), ...cfg.configuration.members, ...this.config.members])];
    this.logLine = cfg.log;
    this.transport = cfg.transport;
    this.ownsBus = !cfg.bus;
    this.bus = cfg.bus ?? new Bus(this.env, cfg.transport);
    this.inc = Math.floor(this.env.random() * 0x7fffffff);
    this.tickMs = cfg.options?.tickMs ?? 10;
    const scope = { ring: this.ring, self: this.id, inc: this.inc, bus: this.bus, env: this.env };
    this.forwarder = new Forwarder(scope);
    this.configRequests = new ConfigRequests(scope);
    this.submitter = new Submitter(scope, () => this.currentLeader());
    const roles = composeRoles({
      ring: this.ring, self: this.id, inc: this.inc, bus: this.bus, env: this.env, sm: this.sm, store: this.store,
      snapshots: this.snapshots, config: this.config, members: this.members, peers: this.peers, recovered, startSlot,
      ...(restoredFrom ? { restoredFrom } : {}), ...(replay ? { replay } : {}), cfg,
      report: (level, kind, msg) => this.report(level, kind, msg),
      onApplyError: (err, slot) => {
        if (this.applyErrors.length < 100) this.applyErrors.push({ slot, err });
      },
    });
    this.acceptor = roles.acceptor;
    this.proposer = roles.proposer;
    this.learner = roles.learner;
    this.snapshotter = roles.snapshotter;
    this.elector = roles.elector;
    this.configManager = roles.configManager;
    this.poller = new Poller(this.env, () => [this.elector, this.learner, this.proposer],
      () => new NotLeaderError(this.currentLeader(), false));
    this.reads = new ReadIndex({
      ...scope, poller: this.poller, proposer: this.proposer,
      executedSlot: () => this.executedSlot(), currentLeader: () => this.currentLeader(),
    });
    this.bootstrapper = new Bootstrapper({
      ...scope, store: this.store, poller: this.poller, config: () => this.config,
      currentLeader: () => this.currentLeader(), take: (c) => this.learner.send({ type: 'bootstrap', config: c }),
    });

    const reg = (role: 'acceptor' | 'proposer' | 'learner' | 'elector' | 'snapshotter' | 'config-manager' | 'client', h: (m: Message) => void) =>
      this.unregister.push(this.bus.register(this.ring, this.id, role, h));
    reg('acceptor', (m) => this.acceptor.send(m as any));
    reg('proposer', (m) => this.proposer.send(m as any));
    reg('learner', (m) => this.learner.send(m as any));
    reg('elector', (m) => this.elector.send(m as any));
    reg('snapshotter', (m) => this.snapshotter.send(m as any));
    reg('config-manager', (m) => this.configManager.send(m as any));
    // role changes are seen on the proposer's own state, at once (RSL NotifyStatus)
    this.proposer.subscribe((snap) => {
      const top = topState(snap.value);
      if (top !== this.lastProposerState) {
        this.lastProposerState = top;
        this.onProposerState(top, snap.context.leaderHint);
      }
    });
    reg('client', (m) => this.onClientMessage(m));
    // a role that throws (a safety check that is always on, or a contract in tests) stops the replica
    const named = { ...roles, 'config-manager': roles.configManager, configManager: undefined } as Record<string, Actor<any> | undefined>;
    for (const [role, a] of Object.entries(named)) a?.subscribe({ error: (e: unknown) => this.fatal(role, e) });
    this.onFatal = cfg.onFatal;
  }

  /** Why the replica stopped on its own (a role failed a safety check), if it did. */
  fatalError: Error | undefined;
  private readonly onFatal: CreateReplicaConfig['onFatal'];

  /**
   * A role failed: one error line, the replica stops (as a crash: no further writes), and the status
   * says why. Going on could break agreement or lose a write; a restart replays from the durable log.
   */
  private fatal(role: string, e: unknown): void {
    if (this.fatalError) return;
    const err = e instanceof Error ? e : new Error(String(e));
    this.fatalError = new Error(`${role}: ${err.message}`, { cause: err });
    this.logLine?.('error', `replica ${this.id} stops: its ${role} failed: ${err.message}`, { replica: this.id, ring: this.ring, role });
    this.onFatal?.(this.fatalError);
    void this.stop({ keepStore: true }).then(() => this.store.close());
  }

  /** One log line per kind of event, at most every 10 s (a full store is retried every second). */
  private report(level: 'info' | 'warn' | 'error', kind: string, msg: string): void {
    const now = this.env.clock.now();
    const last = this.reported.get(kind);
    if (last !== undefined && now - last < 10_000) return;
    this.reported.set(kind, now);
    this.logLine?.(level, msg, { replica: this.id, ring: this.ring });
  }

  start(): void {
    this.acceptor.start();
    this.learner.start();
    this.snapshotter.start();
    this.configManager.start();
    this.proposer.start();
    this.elector.start();
    const tick = () => {
      if (this.stopped) return;
      this.proposer.send({ type: 'tick' });
      this.learner.send({ type: 'tick' });
      this.snapshotter.send({ type: 'tick' });
      this.configManager.send({ type: 'tick' });
      this.tickTimer = this.env.clock.setTimeout(tick, this.tickMs);
    };
    this.tickTimer = this.env.clock.setTimeout(tick, this.tickMs);
  }

  // ------------------------------------------------------------------ submissions
  /** Replicates one command; resolves with the state machine's result once it executed here. */
  async submit(command: Uint8Array, opts: SubmitOptions = {}): Promise<Uint8Array | undefined> {
    const o = await this.submitEach([command], opts);
    const err = batchError(o);
    if (err) throw err;
    return o.results[0];
  }

  /**
   * Replicates many commands with one promise (the fast path for pipelined clients). All or nothing
   * for the caller: when any command failed it rejects, with `maybeExecuted` set when any command of
   * the batch executed or may have (a batch can span slots). Use submitEach for each one's outcome.
   */
  async submitBatch(commands: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    const o = await this.submitEach(commands);
    const err = batchError(o);
    if (err) throw err;
    return o.results;
  }

  /**
   * Replicates commands and resolves with each one's own outcome: its result and slot, or its
   * failure and whether it may still execute (a batch split across slots can be partly chosen when
   * leadership is lost: issue #17). Never rejects.
   */
  submitEach(commands: readonly Uint8Array[], opts: SubmitOptions = {}): Promise<BatchOutcome> {
    const n = commands.length;
    const refuse = (e: Error): Promise<BatchOutcome> =>
      Promise.resolve({ results: new Array(n), slot: 0, failed: commands.map((_, index) => ({ index, error: e, maybeExecuted: false })) });
    if (n === 0) return Promise.resolve({ results: [], slot: 0 });
    if (this.stopped) return refuse(new ReplicaStoppedError());
    if (!this.isLeader()) return refuse(new NotLeaderError(this.currentLeader()));
    return this.submitter.submitEach(commands, opts);
  }

  private onClientMessage(m: Message): void {
    if (this.submitter.onMessage(m)) return;
    switch (m.type) {
      case 'recovered':
        this.sm.onLeaderRecovered?.();
        return;
      case 'config-result':
        this.configRequests.onResult(m, this.getConfiguration());
        return;
      case 'bootstrap':
        this.bootstrapper.onInvite(m);
        return;
      case 'bootstrap-ack':
        this.bootstrapper.onAck(m);
        return;
      case 'config-notice':
        if (m.kind === 'changed') {
          if (m.epoch > this.config.epoch) {
            const l = this.learner.getSnapshot().context.config;
            this.config = l.epoch === m.epoch ? { ...l, members: [...l.members] } : { epoch: m.epoch, members: [...m.members], startSlot: this.config.startSlot };
            this.members = [...m.members];
          }
          this.sm.onConfigurationChange?.(m.members, m.cookie, m.epoch);
        } else this.sm.onConfigurationAborted?.(m.members, m.cookie, m.reason ?? 'the configuration change failed');
        return;
      case 'client-req':
        this.forwarder.serve(m, this.isLeader(), this.currentLeader(), (cmds) => this.submitEach(cmds));
        return;
      case 'read-ack':
        this.reads.onAck(m);
        return;
      case 'client-rep':
        this.forwarder.onReply(m);
        return;
      default:
        return;
    }
  }

  private onProposerState(state: string, hint: ReplicaId | undefined): void {
    const role: LeaderRole = state === 'leading' ? 'leader' : state === 'preparing' ? 'candidate' : 'follower';
    if (role === this.role || state === 'stopped') return;
    const was = this.role;
    this.role = role;
    if (role === 'leader' || was === 'leader') this.sm.onRoleChange?.(role, role === 'leader' ? this.id : hint !== this.id ? hint : undefined);
  }

  // ------------------------------------------------------------------ configuration (RSL ChangeConfiguration)
  /** RSL GetConfiguration: the members as of the executed slot and the configuration number. */
  getConfiguration(): ConfigurationInfo {
    return { epoch: this.config.epoch, members: [...this.members], startSlot: this.config.startSlot };
  }

  /**
   * RSL ChangeConfiguration: replaces the member set (add, remove, replace: any new set) through the
   * log. On a follower it goes to the config-manager of the leader it knows. New members are caught up first (snapshot plus log) and must answer;
   * the change is chosen at some slot e and the new set governs from e+1. Resolves once it executed
   * here; rejects with ConfigChangeError (code NOT_LEADER, PENDING, INVALID, NO_CHANGE, UNREACHABLE,
   * CATCHUP_TIMEOUT or ABORTED; `maybeChosen` when it may still take effect). `cookie` reaches
   * onConfigurationChange on old and new members, or onConfigurationAborted here.
   */
  changeConfiguration(members: readonly ReplicaId[], cookie?: Uint8Array, timeoutMs = 120_000): Promise<ConfigChangeResult> {
    if (this.stopped) return Promise.reject(new ReplicaStoppedError());
    // the leader's config-manager runs the change (it answers this replica); with no leader known the
    // local one answers NOT_LEADER
    const to = this.currentLeader() ?? this.id;
    return this.configRequests.request(to, members, cookie, timeoutMs);
  }

  // ------------------------------------------------------------------ bootstrap (RSL Bootstrap)
  /**
   * RSL Bootstrap: gives a cluster whose replicas started with no configuration its first one. This
   * replica (a member of `members`) stores it durably, invites the others (each stores it and takes
   * it), and resolves once a leader is elected: `result` 'ok', or 'already-bootstrapped' when this
   * replica already has this configuration. Rejects with BootstrapError: INVALID (bad set, or this
   * replica not in it), ALREADY (bootstrapped with another set), FAILED (no leader within timeoutMs).
   */
  async bootstrap(members: readonly ReplicaId[], timeoutMs = 30_000): Promise<BootstrapResult> {
    if (this.stopped) throw new ReplicaStoppedError();
    return this.bootstrapper.run(members, timeoutMs);
  }

  // ------------------------------------------------------------------ forwarding
  /**
   * Replicates commands from any replica: on the leader it submits them; on a follower it forwards
   * them to the leader it knows and waits for the answer. All or nothing for the caller (rejects with
   * NotLeaderError when no leader is known or after `timeoutMs`, `maybeExecuted` when any command may
   * have run); executeEach gives each command's own outcome.
   */
  async execute(commands: readonly Uint8Array[], timeoutMs = 5_000): Promise<(Uint8Array | undefined)[]> {
    const o = await this.executeEach(commands, timeoutMs);
    const err = batchError(o);
    if (err) throw err;
    return o.results;
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
    if (!leader || leader === this.id) return Promise.resolve(allFailed(commands.length, new NotLeaderError(undefined), false));
    return this.forwarder.request(leader, commands, timeoutMs);
  }

  // ------------------------------------------------------------------ reads
  /**
   * Read-index: linearizable reads without a log slot (see ReadIndex). Resolves with the index once a
   * majority of the leader's configuration confirmed its ballot after the request and this replica
   * executed up to the index; read the local state machine then.
   */
  readIndex(timeoutMs = 2_000): Promise<Slot> {
    if (this.stopped) return Promise.reject(new ReplicaStoppedError());
    if (!this.isLeader()) return Promise.reject(new NotLeaderError(this.currentLeader()));
    return this.reads.read(timeoutMs);
  }

  /**
   * RSL FastReadRequest: resolves once this replica (any role) has executed `minSlot` (the highest
   * slot the client has seen), or rejects with StaleReplicaError after `timeoutMs`.
   */
  waitForSlot(minSlot: Slot, timeoutMs: number): Promise<Slot> {
    if (this.stopped) return Promise.reject(new ReplicaStoppedError());
    const executed = () => (this.executedSlot() >= minSlot ? this.executedSlot() : undefined);
    return this.poller.waitFor(executed, timeoutMs, undefined, () => new StaleReplicaError(this.executedSlot(), minSlot));
  }

  // ------------------------------------------------------------------ RSL parity
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
    if (this.isLeader()) this.bus.send({ type: 'resign', ring: this.ring, from: this.id, to: this.id, reason: 'relinquished' });
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

  // ------------------------------------------------------------------ snapshots (RSL checkpoints)
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

  /** Takes a snapshot now (as of the executed slot); resolves with it once stored (the latest one if nothing new was applied). */
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
      id: this.id, ring: this.ring, role: this.role, store: this.store, bus: this.bus, transport: this.transport,
      members: this.members, config: this.config, pendingSubmissions: this.submitter.pending, fatal: this.fatalError,
      elector: this.elector, proposer: this.proposer, acceptor: this.acceptor, learner: this.learner,
      snapshotter: this.snapshotter, configManager: this.configManager,
      isLeader: () => this.isLeader(), currentLeader: () => this.currentLeader(),
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
    this.env.clock.clearTimeout(this.tickTimer);
    for (const u of this.unregister) u();
    this.unregister = [];
    this.snapshotter.send({ type: 'stop' });
    // graceful: the acceptor writes what it took in but had not written, then stops (a crash: at once)
    const acceptorDone = untilDone(this.acceptor);
    this.acceptor.send({ type: 'stop', graceful: !opts.keepStore });
    for (const a of [this.elector, this.proposer, this.learner, this.configManager] as Actor<any>[]) a.stop();
    const err = new ReplicaStoppedError();
    this.configRequests.stop(err);
    // in flight when the replica stopped: they may still be chosen (by the other replicas)
    this.submitter.stop(err);
    this.forwarder.stop(err);
    this.sm.onShutdown?.();
    if (!opts.keepStore) {
      // a snapshot being written finishes first: nothing is written into the directory after stop() returns
      await snapshotWritesDone(this.snapshotter.getSnapshot().context);
      await acceptorDone;
      await this.store.close();
    }
    this.snapshotter.stop();
    this.acceptor.stop();
    if (this.ownsBus) await this.bus.close();
  }

  get isStopped(): boolean {
    return this.stopped;
  }
}
