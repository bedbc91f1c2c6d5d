import { Bus, type Env, type Rng, SimNetwork, type SimNetworkOptions, SimScheduler } from '@decree/bus';
import { type AcceptorStore, type ReplicaId, type StateMachine, loadLatestValid } from '@decree/protocol';
import { MemoryStore } from '@decree/storage/memory';
import {
  type CreateReplicaConfig,
  NotLeaderError,
  Replica,
  type ReplicaOptions,
  type RoleMachines,
  replayLocalLog,
} from '@decree/replica';
import { LogMachine } from './log-machine.ts';

export interface SimClusterOptions {
  /** replicas of the ring (r1..rn) */
  n?: number;
  /** the initial configuration (default: all n); the others start with none and join through a change */
  members?: readonly ReplicaId[];
  seed?: number;
  net?: SimNetworkOptions;
  options?: ReplicaOptions;
  /** makes each replica's state machine (called again at every restart) */
  makeStateMachine?: (id: ReplicaId) => StateMachine;
  inspect?: CreateReplicaConfig['inspect'];
  /** role machines to run instead of the standard ones at a replica (`CreateReplicaConfig.machines`) */
  machines?: (id: ReplicaId) => RoleMachines | undefined;
  /** makes each replica's store (once; it survives crashes). Default: MemoryStore */
  makeStore?: (id: ReplicaId, env: Env) => AcceptorStore & { crash?(): void };
}

export interface SimNode<SM extends StateMachine = StateMachine> {
  id: ReplicaId;
  replica: Replica | undefined;
  sm: SM;
  store: AcceptorStore & { crash?(): void };
  env: Env;
}

/**
 * A cluster of replicas in one process on a simulated network and virtual time: every replica
 * has its own bus (as if in its own process); one seed fixes the whole execution.
 */
export class SimCluster<SM extends StateMachine = LogMachine> {
  readonly sched: SimScheduler;
  readonly net: SimNetwork;
  readonly ids: ReplicaId[];
  /** the initial configuration */
  readonly initialMembers: ReplicaId[];
  readonly nodes = new Map<ReplicaId, SimNode<SM>>();
  private readonly rng: Rng;

  constructor(readonly opts: SimClusterOptions = {}) {
    const n = opts.n ?? 3;
    this.sched = new SimScheduler(opts.seed ?? 1);
    this.rng = this.sched.rng.fork();
    this.net = new SimNetwork(this.sched, this.rng.fork(), opts.net ?? {});
    this.ids = Array.from({ length: n }, (_, i) => `r${i + 1}`);
    this.initialMembers = [...(opts.members ?? this.ids)];
  }

  async start(): Promise<this> {
    for (const id of this.ids) {
      const env = this.sched.env(this.rng.fork());
      const store = this.opts.makeStore?.(id, env) ?? new MemoryStore({ defer: (fn) => env.defer(fn) });
      const sm = (this.opts.makeStateMachine?.(id) ?? new LogMachine()) as SM;
      this.nodes.set(id, { id, replica: undefined, sm, store, env });
      await this.boot(id);
    }
    return this;
  }

  private async boot(id: ReplicaId): Promise<void> {
    const node = this.nodes.get(id)!;
    const bus = new Bus(node.env, this.net.endpoint(id));
    const recovered = await node.store.recover();
    // like createReplica: start from the newest snapshot that verifies
    const snaps = this.opts.options?.makeSnapshotStore?.(id);
    const snap = snaps ? await loadLatestValid(snaps) : undefined;
    if (snap)
      await node.sm.restore(
        (async function* () {
          yield snap.data;
        })(),
      );
    // like createReplica: local recovery first (the slots the replica's own log proves chosen)
    const replay = replayLocalLog(recovered, snap?.meta.slot ?? 0, node.sm);
    const machines = this.opts.machines?.(id);
    const replica = new Replica(
      {
        id,
        configuration: {
          members: this.ids.includes(id) && this.initialMembers.includes(id) ? this.initialMembers : [],
        },
        peers: this.ids,
        storage: node.store,
        stateMachine: node.sm,
        bus,
        env: node.env,
        options: { tickMs: 10, ...this.opts.options },
        ...(this.opts.inspect ? { inspect: this.opts.inspect } : {}),
        ...(snaps ? { snapshots: snaps } : {}),
        ...(machines ? { machines } : {}),
        onFatal: (e) => this.fatals.push(`${id}: ${e.message}`),
      },
      recovered,
      snap?.meta,
      replay,
    );
    replica.start();
    node.replica = replica;
    (node as { bus?: Bus }).bus = bus;
  }

  replica(id: ReplicaId): Replica {
    const r = this.nodes.get(id)?.replica;
    if (!r) throw new Error(`${id} is down`);
    return r;
  }

  sm(id: ReplicaId): SM {
    return this.nodes.get(id)!.sm;
  }

  up(): ReplicaId[] {
    return this.ids.filter((id) => this.nodes.get(id)?.replica);
  }

  /** The replicas that believe they lead. */
  leaders(): ReplicaId[] {
    return this.up().filter((id) => this.replica(id).isLeader());
  }

  leader(): ReplicaId | undefined {
    return this.leaders()[0];
  }

  /** Runs virtual time until some replica leads (or the timeout). */
  waitForLeader(timeoutMs = 5_000, among?: readonly ReplicaId[]): ReplicaId {
    const ok = this.sched.runUntilCond(() => this.leaders().some((l) => !among || among.includes(l)), timeoutMs);
    if (!ok) throw new Error(`no leader within ${timeoutMs} ms (virtual)`);
    return this.leaders().find((l) => !among || among.includes(l))!;
  }

  /** replicas that stopped themselves because a role failed a safety check or a contract */
  readonly fatals: string[] = [];

  run(ms: number): void {
    this.sched.runFor(ms);
    if (this.fatals.length) throw new Error(`a replica stopped itself: ${this.fatals.join('; ')}`);
  }

  /** Crash: the process dies; its durable store survives, messages to it are lost. */
  async crash(id: ReplicaId): Promise<void> {
    const node = this.nodes.get(id)!;
    const r = node.replica;
    if (!r) return;
    node.replica = undefined;
    this.net.setDown(id, true);
    node.store.crash?.(); // writes not yet synced are lost
    await r.stop({ keepStore: true });
  }

  /** Restart with the store as it was and a fresh state machine (it catches up from its peers). */
  async restart(id: ReplicaId): Promise<void> {
    const node = this.nodes.get(id)!;
    if (node.replica) return;
    node.sm = (this.opts.makeStateMachine?.(id) ?? new LogMachine()) as SM;
    this.net.setDown(id, false);
    await this.boot(id);
  }

  /**
   * Submits a command at the current leader and runs virtual time until it is answered.
   * Returns the result, or throws the error (NotLeader, timeout).
   */
  async submitAndWait(cmd: Uint8Array, timeoutMs = 5_000, at?: ReplicaId): Promise<Uint8Array | undefined> {
    const target = at ?? this.leader();
    if (!target) throw new NotLeaderError(undefined);
    let done = false;
    let result: Uint8Array | undefined;
    let error: unknown;
    this.replica(target)
      .submit(cmd)
      .then(
        (r) => {
          done = true;
          result = r;
        },
        (e) => {
          done = true;
          error = e;
        },
      );
    // promise callbacks run as microtasks: let them settle between scheduler steps
    const end = this.sched.now() + timeoutMs;
    while (!done && this.sched.now() < end) {
      if (!this.sched.step()) this.sched.runFor(1);
      await Promise.resolve();
    }
    if (!done) throw new Error(`submit timed out after ${timeoutMs} ms (virtual)`);
    if (error) throw error;
    return result;
  }

  /** Lets promise callbacks run (they are microtasks, outside virtual time). */
  async settle(): Promise<void> {
    for (let i = 0; i < 3; i++) await Promise.resolve();
  }

  async stop(): Promise<void> {
    for (const id of this.up()) await this.replica(id).stop({ keepStore: true });
  }
}

export async function simCluster<SM extends StateMachine = LogMachine>(
  opts: SimClusterOptions = {},
): Promise<SimCluster<SM>> {
  return new SimCluster<SM>(opts).start();
}
