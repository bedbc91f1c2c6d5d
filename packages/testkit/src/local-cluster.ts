import { Bus, realEnv } from '@decree/bus';
import type { AcceptorStore, ReplicaId, StateMachine } from '@decree/protocol';
import { MemoryStore } from '@decree/storage/memory';
import { createReplica, type Replica, type ReplicaOptions } from '@decree/replica';

export interface LocalClusterOptions<SM extends StateMachine> {
  n?: number;
  makeStateMachine: (id: ReplicaId) => SM;
  makeStore?: (id: ReplicaId) => AcceptorStore;
  options?: ReplicaOptions;
  ring?: string;
  /**
   * a steady leader: r1 is elected at start, and the election timeout is long (STEADY_ELECTOR, unless
   * `options.elector` says otherwise), so a loaded machine does not move leadership under a test or a
   * benchmark that addresses "the leader"
   */
  steady?: boolean;
}

/** Election timings under which a loaded machine keeps its leader (a pause of seconds, not of 0.5 s). */
export const STEADY_ELECTOR = { electionTimeoutMinMs: 5_000, electionTimeoutMaxMs: 10_000, heartbeatMs: 200 };

/** Replicas in this process on one shared bus, real time (benchmarks, examples). */
export class LocalCluster<SM extends StateMachine> {
  readonly bus: Bus;
  readonly replicas: Replica[] = [];
  readonly machines = new Map<ReplicaId, SM>();
  constructor(private readonly opts: LocalClusterOptions<SM>) {
    this.bus = new Bus(realEnv());
  }

  async start(): Promise<this> {
    const n = this.opts.n ?? 3;
    const ids = Array.from({ length: n }, (_, i) => `r${i + 1}`);
    for (const id of ids) {
      const sm = this.opts.makeStateMachine(id);
      this.machines.set(id, sm);
      this.replicas.push(
        await createReplica({
          id,
          ...(this.opts.ring ? { ring: this.opts.ring } : {}),
          configuration: { members: ids },
          storage: this.opts.makeStore?.(id) ?? new MemoryStore(),
          stateMachine: sm,
          bus: this.bus,
          options: this.localOptions(),
          // a replica that stops itself fails the test loudly (as an uncaught contract violation did)
          onFatal: (e) =>
            queueMicrotask(() => {
              throw e;
            }),
        }),
      );
    }
    if (this.opts.steady) this.replicas[0]!.attemptPromotion(); // elect now, not after the long timeout
    return this;
  }

  /**
   * The replicas' options. With memory stores nothing leaves this process's memory, so the proposer does
   * not pack its batches (`packProposals`) unless the options say so.
   */
  private localOptions(): ReplicaOptions {
    let o = this.opts.options ?? {};
    if (this.opts.steady && o.elector === undefined) o = { ...o, elector: STEADY_ELECTOR };
    if (this.opts.makeStore || o.proposer?.packProposals !== undefined) return o;
    return { ...o, proposer: { ...o.proposer, packProposals: false } };
  }

  leader(): Replica | undefined {
    return this.replicas.find((r) => r.isLeader());
  }

  async waitForLeader(timeoutMs = 10_000): Promise<Replica> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const l = this.leader();
      if (l) return l;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`no leader within ${timeoutMs} ms`);
  }

  async stop(): Promise<void> {
    for (const r of this.replicas) await r.stop();
  }
}
