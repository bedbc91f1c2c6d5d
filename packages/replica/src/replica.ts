import { createActor, type Actor, type InspectionEvent, type Observer } from 'xstate';
import {
  type AcceptorStore,
  type Ballot,
  type Configuration,
  type Message,
  type MessageOf,
  type ReplicaId,
  type RingId,
  type Slot,
  type StateMachine,
  type SubmitItem,
  ballotEq,
  memberSetProblem,
  sameMembers,
  type LeaderRole,
  type StoreStats,
  type StoreUsage,
} from '@decree/protocol';
import { Bus, type Env, type Transport, realEnv } from '@decree/bus';
import { acceptorMachine } from '@decree/acceptor';
import { proposerMachine, type ProposerOptions } from '@decree/proposer';
import { DEFAULT_LEARNER_OPTIONS, learnerMachine, type LearnerOptions } from '@decree/learner';
import { electorMachine, type ElectorOptions } from '@decree/elector';
import { type ConfigManagerOptions, configManagerMachine } from '@decree/config-manager';
import {
  MemorySnapshotStore,
  type SnapshotMeta,
  type SnapshotStore,
  type SnapshotterOptions,
  DEFAULT_SNAPSHOTTER_OPTIONS,
  loadLatestValid,
  snapshotWritesDone,
  snapshotterMachine,
} from '@decree/snapshotter';
import { BootstrapError, BusyError, ConfigChangeError, NotLeaderError, ReplicaStoppedError, StaleReplicaError } from './errors.ts';
import { type LocalReplay, replayLocalLog } from './local-replay.ts';
import { type BatchOutcome, BatchWaiter, WaiterTable, batchError } from './submissions.ts';
import { Forwarder, allFailed } from './forwarding.ts';

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
  /** where snapshots are kept (default: options.makeSnapshotStore, else memory); createReplica starts from the newest valid one */
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
  /** TEST ONLY: a broken acceptor that forgets its promises (for the simulator's self-test) */
  brokenForgetPromise?: boolean;
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
  /** the acceptor: 'serving', 'full' (writes wait for room) or 'failed'; writes refused as full, replies dropped while full */
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

/** One read-index confirmation: the ballot, the members asked (the quorum's configuration), the index. */
interface ReadRound {
  ballot: Ballot;
  members: readonly ReplicaId[];
  index: Slot;
  oks: Set<ReplicaId>;
  nos: number;
}

const quorumOf = (n: number): number => Math.floor(n / 2) + 1;

/** A state value as a dotted path: 'serving.writing', 'leading.steady' (parallel regions joined by commas). */
export function statePath(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object')
    return Object.entries(v as Record<string, unknown>).map(([k, sub]) => (sub === undefined ? k : `${k}.${statePath(sub)}`)).join(',');
  return String(v);
}

const stateName = (a: Actor<any>): string => statePath(a.getSnapshot().value);

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
  private configRequests = new Map<number, { resolve(r: ConfigChangeResult): void; reject(e: Error): void; timer: unknown }>();
  private nextConfigRequest = 1;
  readonly configManager: Actor<typeof configManagerMachine>;
  readonly elector: Actor<typeof electorMachine>;
  readonly proposer: Actor<typeof proposerMachine>;
  readonly acceptor: Actor<typeof acceptorMachine>;
  readonly learner: Actor<typeof learnerMachine>;
  readonly snapshotter: Actor<typeof snapshotterMachine>;
  readonly snapshots: SnapshotStore;
  private unregister: (() => void)[] = [];
  /** waiters by submission id: ids are dense and increasing, so a deque indexed by id beats a Map */
  private waiters = new WaiterTable();
  private nextId = 1;
  private outbox: SubmitItem[] = [];
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
    this.forwarder = new Forwarder({ ring: this.ring, self: this.id, inc: this.inc, bus: this.bus, env: this.env });
    const send = (m: Message) => this.bus.send(m);
    const now = () => this.env.clock.now();
    const clock = { setTimeout: (fn: (...a: any[]) => void, ms: number) => this.env.clock.setTimeout(fn, ms), clearTimeout: (h: any) => this.env.clock.clearTimeout(h) };
    const common = { clock, ...(cfg.inspect ? { inspect: cfg.inspect } : {}) } as const;
    const base = { ring: this.ring, self: this.id, send, now } as const;

    this.acceptor = createActor(acceptorMachine, {
      ...common,
      input: {
        ring: this.ring,
        self: this.id,
        store: this.store,
        recovered,
        send,
        now,
        executedUpTo: startSlot,
        onStoreError: (err) => this.report('error', 'acceptor', `store failed: ${err.message}; this acceptor no longer votes`),
        onStoreFull: (err) => this.report('warn', 'acceptor-full', `store full: ${err.message}; writes wait for a snapshot and truncation`),
        ...(this.sm.acceptMessageFrom ? { acceptMessageFrom: (r: ReplicaId, c: Uint8Array | undefined) => this.sm.acceptMessageFrom!(r, c) } : {}),
        ...(cfg.brokenForgetPromise ? { brokenForgetPromise: true } : {}),
        ...(cfg.options?.acceptor?.maxPromiseBytes ? { maxPromiseBytes: cfg.options.acceptor.maxPromiseBytes } : {}),
      },
    });
    this.proposer = createActor(proposerMachine, {
      ...common,
      input: {
        ...base,
        inc: this.inc,
        members: this.members,
        configuration: this.config,
        maxRound: recovered.promised.round,
        wallNow: () => this.env.clock.wallMs?.() ?? Date.now(),
        options: cfg.options?.proposer ?? {},
        ...(startSlot > 0 ? { executedUpTo: startSlot } : {}),
      },
    });
    this.learner = createActor(learnerMachine, {
      ...common,
      input: {
        ...base,
        inc: this.inc,
        members: this.members,
        configuration: this.config,
        peers: this.peers,
        stateMachine: this.sm,
        options: retainWindow(cfg.options),
        executedUpTo: startSlot,
        ...(replay?.slots.length ? { replayed: replay.slots } : {}),
        onApplyError: (err, slot) => {
          if (this.applyErrors.length < 100) this.applyErrors.push({ slot, err });
        },
      },
    });
    // the snapshotter talks to the learner (which owns the state machine) and the acceptor by messages
    this.snapshotter = createActor(snapshotterMachine, {
      ...common,
      input: {
        ring: this.ring,
        self: this.id,
        configuration: this.config,
        peers: this.peers,
        executedUpTo: startSlot,
        store: this.snapshots,
        send,
        now,
        options: cfg.options?.snapshotter ?? {},
        ...(restoredFrom ? { initial: restoredFrom } : {}),
      },
    });
    this.elector = createActor(electorMachine, {
      ...common,
      input: {
        ...base,
        members: this.members,
        configEpoch: this.config.epoch,
        peers: this.peers,
        random: () => this.env.random(),
        maxRound: recovered.promised.round,
        options: cfg.options?.elector ?? {},
        ...(this.sm.canBecomeLeader ? { canBecomeLeader: () => this.sm.canBecomeLeader!() } : {}),
      },
    });

    this.configManager = createActor(configManagerMachine, {
      ...common,
      input: { ring: this.ring, self: this.id, inc: this.inc, send, now, configuration: this.config, options: cfg.options?.configManager ?? {} },
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
      if (snap.value !== this.lastProposerState) {
        this.lastProposerState = snap.value as string;
        this.onProposerState(snap.value as string, snap.context.leaderHint);
      }
    });
    reg('client', (m) => this.onClientMessage(m));
    // a role that throws (a safety check that is always on, or a contract in tests) stops the replica
    const roles = { acceptor: this.acceptor, proposer: this.proposer, learner: this.learner, elector: this.elector, snapshotter: this.snapshotter, 'config-manager': this.configManager } as const;
    for (const [role, a] of Object.entries(roles)) (a as Actor<any>).subscribe({ error: (e: unknown) => this.fatal(role, e) });
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
    return new Promise((resolve) => {
      const base = this.nextId;
      this.nextId += n;
      const w = new BatchWaiter(n, base, resolve);
      for (let i = 0; i < n; i++) {
        this.waiters.set(base + i, w);
        const item = opts.exclusive
          ? { id: base + i, cmd: commands[i]!, excl: true, ...(opts.lastBeforeStepDown ? { last: true } : {}) }
          : { id: base + i, cmd: commands[i]! };
        this.push(item);
      }
    });
  }

  private push(item: SubmitItem): void {
    if (this.outbox.length === 0) this.env.defer(this.flushOutbox);
    this.outbox.push(item);
  }

  private readonly flushOutbox = (): void => {
    if (this.outbox.length === 0) return;
    const items = this.outbox;
    this.outbox = [];
    this.bus.send({ type: 'submit', ring: this.ring, from: this.id, to: this.id, items });
  };

  private onClientMessage(m: Message): void {
    switch (m.type) {
      case 'executed':
        if (m.inc === this.inc) this.waiters.onExecuted(m);
        return;
      case 'aborted': {
        const err = m.busy ? new BusyError() : new NotLeaderError(m.leaderHint ?? this.currentLeader(), m.maybeChosen);
        this.waiters.failAll(m.ids, err, m.maybeChosen);
        return;
      }
      case 'recovered':
        this.sm.onLeaderRecovered?.();
        return;
      case 'config-result': {
        if (m.inc !== undefined && m.inc !== this.inc) return; // the answer to a request of an earlier run
        const r = this.configRequests.get(m.id);
        if (!r) return;
        this.configRequests.delete(m.id);
        this.env.clock.clearTimeout(r.timer);
        if (m.ok) r.resolve({ epoch: m.epoch ?? this.config.epoch, members: [...(m.members ?? this.members)], startSlot: (m.slot ?? 0) + 1, slot: m.slot ?? 0 });
        else r.reject(new ConfigChangeError(m.code ?? 'ABORTED', m.error ?? 'the configuration change failed', m.maybeChosen ?? false, m.leaderHint));
        return;
      }
      case 'bootstrap':
        this.onBootstrapInvite(m);
        return;
      case 'bootstrap-ack':
        if (m.ok) this.bootstrapAcks?.add(m.from);
        for (const p of [...this.polls]) p();
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
        this.onReadAck(m);
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
    const id = this.nextConfigRequest++;
    return new Promise((resolve, reject) => {
      const timer = this.env.clock.setTimeout(() => {
        if (this.configRequests.delete(id)) reject(new ConfigChangeError('ABORTED', `no answer within ${timeoutMs} ms`, true, undefined));
      }, timeoutMs);
      this.configRequests.set(id, { resolve, reject, timer });
      // the leader's config-manager runs the change (it answers this replica); with no leader known the
      // local one answers NOT_LEADER
      const leader = this.isLeader() ? this.id : this.currentLeader();
      const to = leader !== undefined ? leader : this.id;
      this.bus.send({ type: 'config-change', ring: this.ring, from: this.id, to, id, inc: this.inc, members: [...members], ...(cookie ? { cookie } : {}) });
    });
  }

  // ------------------------------------------------------------------ bootstrap (RSL Bootstrap)
  private bootstrapAcks: Set<ReplicaId> | undefined;

  /**
   * RSL Bootstrap: gives a cluster whose replicas started with no configuration its first one. This
   * replica (a member of `members`) stores it durably, invites the others (each stores it and takes
   * it), and resolves once a leader is elected: `result` 'ok', or 'already-bootstrapped' when this
   * replica already has this configuration. Rejects with BootstrapError: INVALID (bad set, or this
   * replica not in it), ALREADY (bootstrapped with another set), FAILED (no leader within timeoutMs).
   */
  async bootstrap(members: readonly ReplicaId[], timeoutMs = 30_000): Promise<{ result: 'ok' | 'already-bootstrapped'; epoch: number; members: ReplicaId[]; leader: ReplicaId }> {
    if (this.stopped) throw new ReplicaStoppedError();
    const problem = memberSetProblem(members);
    if (problem) throw new BootstrapError('INVALID', problem);
    if (!members.includes(this.id)) throw new BootstrapError('INVALID', `bootstrap on a member: ${this.id} is not in ${members.join(',')}`);
    let result: 'ok' | 'already-bootstrapped' = 'ok';
    if (this.config.epoch > 0) {
      if (this.config.epoch !== 1 || !sameMembers(this.config.members, members))
        throw new BootstrapError('ALREADY', `already bootstrapped: configuration ${this.config.epoch} is ${this.config.members.join(',')}`);
      result = 'already-bootstrapped';
    } else await this.takeBootstrap(members);
    const acks = (this.bootstrapAcks = new Set([this.id]));
    const invite = () => {
      for (const m of members) if (!acks.has(m)) this.bus.send({ type: 'bootstrap', ring: this.ring, from: this.id, to: m, members: [...members] });
    };
    let timer: unknown;
    const again = () => {
      invite();
      timer = this.env.clock.setTimeout(again, 200);
    };
    try {
      const leader = await this.waitFor(
        () => {
          const l = this.currentLeader();
          return l !== undefined && members.includes(l) && acks.size >= Math.floor(members.length / 2) + 1 ? l : undefined;
        },
        timeoutMs,
        again,
        () => new BootstrapError('FAILED', `no leader within ${timeoutMs} ms (invited: ${members.join(',')}; answered: ${[...acks].join(',')})`),
      );
      return { result, epoch: this.config.epoch, members: [...this.config.members], leader };
    } finally {
      this.env.clock.clearTimeout(timer);
    }
  }

  /** Stores the first configuration and takes it (learner, then proposer and elector through it). */
  private async takeBootstrap(members: readonly ReplicaId[]): Promise<void> {
    const c: Configuration = { epoch: 1, members: [...members], startSlot: 1 };
    await storeConfig0(this.store, c);
    this.learner.send({ type: 'bootstrap', config: c });
  }

  private onBootstrapInvite(m: MessageOf<'bootstrap'>): void {
    const ack = (ok: boolean, error?: string) =>
      this.bus.send({ type: 'bootstrap-ack', ring: this.ring, from: this.id, to: m.from, ok, ...(error ? { error } : {}) });
    if (this.config.epoch > 0) {
      if (this.config.epoch === 1 && sameMembers(this.config.members, m.members)) ack(true);
      else ack(false, `${this.id} is already bootstrapped: configuration ${this.config.epoch} is ${this.config.members.join(',')}`);
      return;
    }
    if (memberSetProblem(m.members) || !m.members.includes(this.id)) return ack(false, `bad member set ${m.members.join(',')}`);
    this.takeBootstrap(m.members).then(
      () => ack(true),
      (e: Error) => ack(false, `cannot store the configuration: ${e.message}`),
    );
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
  private readSeq = 0;
  private readRounds = new Map<number, ReadRound>();

  /**
   * Read-index: linearizable reads without a log slot. The leader notes its commit index, asks every
   * acceptor whether it still promises the leader's ballot (a round started after the request), and
   * resolves with the index once a majority said yes and this replica executed up to the index (and
   * every slot of earlier leaders). A read of the local state machine then is linearizable: any
   * leader that could have chosen a later write had to win a majority of promises first, and one of
   * them would have said no. No clock assumption.
   */
  readIndex(timeoutMs = 2_000): Promise<Slot> {
    if (this.stopped) return Promise.reject(new ReplicaStoppedError());
    if (!this.isLeader()) return Promise.reject(new NotLeaderError(this.currentLeader()));
    const seq = ++this.readSeq;
    let round: ReadRound | undefined;
    let retry: unknown;
    const ask = () => {
      if (!round) return;
      for (const m of round.members) if (!round.oks.has(m)) this.bus.send({ type: 'read-confirm', ring: this.ring, from: this.id, to: m, ballot: round.ballot, seq });
    };
    const again = () => {
      ask();
      retry = this.env.clock.setTimeout(again, 50);
    };
    const out = this.waitFor(
      () => {
        const pc = this.proposer.getSnapshot();
        const p = pc.context;
        if (pc.value !== 'leading') throw new NotLeaderError(this.currentLeader());
        // phase 1 of a configuration that just took effect (or the change in flight) is not done: the
        // slots after the change may hold writes this leader has not recovered yet (issue #17)
        if (p.reprepare || p.pendingConfig !== undefined) return undefined;
        if (!round || !ballotEq(round.ballot, p.ballot)) {
          // the index and the quorum of the configuration that governs now (the proposer's: the
          // replica's own members change only when its learner executes the change)
          round = { ballot: p.ballot, members: [...p.members], index: Math.max(p.chosenUpTo, p.recoveryEnd), oks: new Set(), nos: 0 };
          this.readRounds.set(seq, round);
          ask();
          return undefined;
        }
        if (round.nos > 0) throw new NotLeaderError(this.currentLeader());
        if (round.oks.size < quorumOf(round.members.length)) return undefined;
        return this.executedSlot() >= round.index ? round.index : undefined;
      },
      timeoutMs,
      again,
    );
    const cleanup = () => {
      this.env.clock.clearTimeout(retry);
      this.readRounds.delete(seq);
    };
    out.then(cleanup, cleanup);
    return out;
  }

  private onReadAck(m: MessageOf<'read-ack'>): void {
    const r = this.readRounds.get(m.seq);
    if (!r || !ballotEq(m.ballot, r.ballot) || !r.members.includes(m.from)) return;
    if (m.ok) r.oks.add(m.from);
    else r.nos++;
    for (const p of [...this.polls]) p();
  }

  /**
   * RSL FastReadRequest: resolves once this replica (any role) has executed `minSlot` (the highest
   * slot the client has seen), or rejects with StaleReplicaError after `timeoutMs`.
   */
  waitForSlot(minSlot: Slot, timeoutMs: number): Promise<Slot> {
    if (this.stopped) return Promise.reject(new ReplicaStoppedError());
    return this.waitFor(() => (this.executedSlot() >= minSlot ? this.executedSlot() : undefined), timeoutMs, undefined, () => new StaleReplicaError(this.executedSlot(), minSlot));
  }

  private readonly polls = new Set<() => void>();
  private pollSubs: { unsubscribe(): void }[] = [];

  /** Resolves with check()'s value once defined, re-checking on every elector and learner event. */
  private waitFor<T>(check: () => T | undefined, timeoutMs: number, kick?: () => void, onTimeout?: () => Error): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timer: unknown;
      const poll = () => {
        let v: T | undefined;
        try {
          v = check();
        } catch (e) {
          done();
          reject(e);
          return;
        }
        if (v !== undefined) {
          done();
          resolve(v);
        }
      };
      const done = () => {
        this.polls.delete(poll);
        this.env.clock.clearTimeout(timer);
        if (this.polls.size === 0) {
          for (const s of this.pollSubs) s.unsubscribe();
          this.pollSubs = [];
        }
      };
      timer = this.env.clock.setTimeout(() => {
        done();
        reject(onTimeout ? onTimeout() : new NotLeaderError(this.currentLeader(), false));
      }, timeoutMs);
      if (this.polls.size === 0) {
        const run = () => {
          for (const p of [...this.polls]) p();
        };
        this.pollSubs = [this.elector.subscribe(run), this.learner.subscribe(run), this.proposer.subscribe(run)];
      }
      this.polls.add(poll);
      kick?.();
      poll();
    });
  }

  // ------------------------------------------------------------------ RSL parity
  isLeader(): boolean {
    return this.proposer.getSnapshot().value === 'leading';
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
    const p = this.proposer.getSnapshot().context;
    const e = this.elector.getSnapshot().context;
    return this.members
      .filter((m) => m !== this.id)
      .map((id) => {
        const leading = this.isLeader();
        const last = p.peers.get(id)?.lastAcceptedSlot ?? 0;
        const inFlight = leading ? Math.max(0, p.nextSlot - 1 - last) : 0;
        const v = e.votes.get(id);
        return {
          id,
          connected: this.transport ? this.transport.isConnected(id) : true,
          inFlight,
          lastAcceptedSlot: p.peers.get(id)?.lastAcceptedSlot ?? 0,
          votePayload: v?.payload,
          lastVoteAt: v?.ackAt,
        };
      });
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
    const sn = this.snapshotter.getSnapshot().context;
    const l = this.learner.getSnapshot().context.stats;
    const p = this.proposer.getSnapshot().context.stats;
    const a = this.acceptor.getSnapshot().context;
    return {
      commandsExecuted: l.commandsExecuted,
      slotsExecuted: l.slotsExecuted,
      slotsProposed: p.slotsProposed,
      commandsProposed: p.commandsProposed,
      slotsChosen: p.slotsChosen,
      meanVotingMs: p.slotsChosen ? p.votingMs / p.slotsChosen : 0,
      elections: p.elections,
      leaderships: p.leaderships,
      log: this.store.stats(),
      logUsage: this.store.usage?.(),
      acceptor: { state: stateName(this.acceptor), fullWrites: a.stats.fullWrites, droppedReplies: a.stats.droppedReplies, promisePages: a.stats.promisePages },
      busyRefusals: p.busyRefusals,
      acceptResends: p.acceptResends,
      promisePagesPulled: p.promisePagesPulled,
      busDrops: this.bus.dropped,
      catchupRequests: l.catchupRequests,
      applyErrors: l.applyErrors,
      snapshots: {
        taken: sn.stats.taken,
        saved: sn.stats.saved,
        refused: sn.stats.refused,
        installed: sn.stats.installed,
        latestSlot: sn.latest?.slot ?? 0,
        truncatedBelow: sn.stats.truncatedBelow,
        chunksSent: sn.stats.chunksSent,
        chunksReceived: sn.stats.chunksReceived,
        badChunks: sn.stats.badChunks,
        transfersStartedOver: sn.stats.transfersStartedOver,
      },
    };
  }

  status(): ReplicaStatus {
    const p = this.proposer.getSnapshot().context;
    const a = this.acceptor.getSnapshot().context;
    const l = this.learner.getSnapshot().context;
    return {
      id: this.id,
      ring: this.ring,
      role: this.role,
      leader: this.currentLeader(),
      ballot: this.isLeader() ? p.ballot : this.elector.getSnapshot().context.leaderBallot,
      promised: a.promised,
      executedUpTo: l.executedUpTo,
      chosenUpTo: this.highestChosenSlot(),
      members: [...this.members],
      configEpoch: this.config.epoch,
      states: {
        elector: stateName(this.elector),
        proposer: stateName(this.proposer),
        acceptor: stateName(this.acceptor),
        learner: stateName(this.learner),
        configManager: stateName(this.configManager),
      },
      pendingSubmissions: this.waiters.size,
      ...(this.fatalError ? { fatal: this.fatalError.message } : {}),
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
    for (const r of this.configRequests.values()) {
      this.env.clock.clearTimeout(r.timer);
      r.reject(err);
    }
    this.configRequests.clear();
    // in flight when the replica stopped: they may still be chosen (by the other replicas)
    this.waiters.failAll(this.waiters.keys(), err, true);
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

const CONFIG0 = 'config0';

/** Resolves when the actor reaches a final state (or stops, or fails). */
function untilDone(a: Actor<any>): Promise<void> {
  return new Promise((resolve) => {
    if (a.getSnapshot().status !== 'active') return resolve();
    const sub = a.subscribe({
      next: (snap: { status: string }) => {
        if (snap.status !== 'active') {
          sub.unsubscribe();
          resolve();
        }
      },
      error: () => resolve(),
      complete: () => resolve(),
    });
  });
}

/**
 * The learner keeps executed slots to serve peers' catch-up. It must hold at least everything above
 * the newest snapshot (two intervals and the margin, to be safe): a peer missing a slot either gets
 * it from there or finds it under a snapshot it can install, never neither.
 */
function retainWindow(o: ReplicaOptions | undefined): Partial<LearnerOptions> {
  const l = { ...DEFAULT_LEARNER_OPTIONS, ...o?.learner };
  const sn = { ...DEFAULT_SNAPSHOTTER_OPTIONS, ...o?.snapshotter };
  const retainSlots = sn.everySlots > 0 ? Math.max(l.retainSlots, 2 * sn.everySlots + sn.truncateMargin) : l.retainSlots;
  const retainBytes = sn.everyBytes > 0 ? Math.max(l.retainBytes, 2 * sn.everyBytes + sn.truncateMarginBytes) : l.retainBytes;
  // an explicit setting wins (tests shrink the window to force catch-up by snapshot)
  return { retainSlots, retainBytes, ...o?.learner };
}


/** The initial configuration stored in the log (first start, or a bootstrap), if readable. */
function storedConfig0(recovered: Awaited<ReturnType<AcceptorStore['recover']>>): Configuration | undefined {
  const stored = recovered.meta.get(CONFIG0);
  if (!stored) return undefined;
  try {
    const c = JSON.parse(Buffer.from(stored).toString('utf8')) as Configuration;
    if (Number.isSafeInteger(c.epoch) && Array.isArray(c.members) && Number.isSafeInteger(c.startSlot)) return c;
  } catch {
    // unreadable: the given one
  }
  return undefined;
}

/**
 * The configuration a replica starts in: the newest snapshot's when it has one, else the initial
 * configuration (stored durably at the first start, see createReplica).
 */
function initialConfiguration(given: CreateReplicaConfig['configuration'], snap: SnapshotMeta | undefined): Configuration {
  const base = asConfiguration(given);
  if (!snap || (snap.members.length === 0 && snap.epoch === undefined)) return base;
  return { epoch: snap.epoch ?? Math.max(1, base.epoch), members: [...snap.members], startSlot: snap.startSlot ?? snap.slot + 1 };
}

/**
 * The initial configuration is written to the store at the first start and read back at the next
 * ones: a config file edited later (to list the members of today) must not rewrite history.
 */
async function persistedInitialConfiguration(cfg: CreateReplicaConfig, recovered: Awaited<ReturnType<AcceptorStore['recover']>>): Promise<CreateReplicaConfig['configuration']> {
  const stored = storedConfig0(recovered);
  if (stored) return stored;
  const c = asConfiguration(cfg.configuration);
  await storeConfig0(cfg.storage, c);
  return c;
}

/** A member list is epoch 1 of it from slot 1 (an empty one: no configuration yet). */
function asConfiguration(given: CreateReplicaConfig['configuration']): Configuration {
  return 'epoch' in given
    ? { epoch: given.epoch, members: [...given.members], startSlot: given.startSlot }
    : { epoch: given.members.length ? 1 : 0, members: [...given.members], startSlot: 1 };
}

/** Stores the initial configuration durably (meta `config0`; the latest record wins at recovery). */
function storeConfig0(store: AcceptorStore, c: Configuration): Promise<void> {
  const value = new Uint8Array(Buffer.from(JSON.stringify({ epoch: c.epoch, members: c.members, startSlot: c.startSlot }), 'utf8'));
  return new Promise<void>((resolve, reject) => store.append([{ t: 'meta', key: CONFIG0, value }], (err) => (err ? reject(err) : resolve())));
}

/** Builds a replica: recovers its store, composes the roles, starts them. */
export async function createReplica(cfg: CreateReplicaConfig): Promise<Replica> {
  const recovered = await cfg.storage.recover();
  cfg = { ...cfg, configuration: await persistedInitialConfiguration(cfg, recovered) };
  const snapshots = cfg.snapshots ?? cfg.options?.makeSnapshotStore?.(cfg.id) ?? new MemorySnapshotStore();
  // the newest snapshot that verifies (a corrupt newest one falls back to the one before)
  const snap = await loadLatestValid(snapshots, (name, err) => cfg.onSnapshotCorrupt?.(name, err));
  if (snap) await cfg.stateMachine.restore((async function* () { yield snap.data; })());
  // local recovery first: the slots the replica's own log proves chosen, before any role starts
  const replay = replayLocalLog(recovered, snap?.meta.slot ?? 0, cfg.stateMachine);
  if (replay.slots.length > 0)
    cfg.log?.('info', `replayed slots ${(snap?.meta.slot ?? 0) + 1}..${replay.upTo} from the local log`, {
      replica: cfg.id, ring: cfg.ring ?? 'default', commands: replay.commands, ms: Math.round(replay.ms),
    });
  const r = new Replica({ ...cfg, snapshots }, recovered, snap?.meta, replay);
  r.start();
  return r;
}
