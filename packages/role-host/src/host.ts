import { createActor, type AnyActorRef } from 'xstate';
import type { Bus, Env } from '@decree/bus';
import {
  compareBallots,
  type AcceptorStore,
  type Ballot,
  type Configuration,
  type Message,
  type MessageOf,
  type ReplicaId,
  type RingId,
  type SnapshotStore,
  type StateMachine,
} from '@decree/protocol';
import { acceptorMachine } from '@decree/acceptor';
import { proposerMachine, type ProposerOptions } from '@decree/proposer';
import { learnerMachine } from '@decree/learner';
import { electorMachine, type ElectorOptions } from '@decree/elector';
import { snapshotterMachine, type SnapshotterOptions } from '@decree/snapshotter';
import { type BatchOutcome, Forwarder, NotLeaderError, Submitter, untilDone } from '@decree/replica';
import { configManagerMachine } from '@decree/config-manager';

export type HostedRole = 'elector' | 'proposer' | 'acceptor' | 'learner' | 'snapshotter' | 'config-manager' | 'client';
export const HOSTED_ROLES: readonly HostedRole[] = [
  'elector',
  'proposer',
  'acceptor',
  'learner',
  'snapshotter',
  'config-manager',
  'client',
];

export interface RoleHostOptions {
  role: HostedRole;
  ring: RingId;
  id: ReplicaId;
  members: readonly ReplicaId[];
  /** a bus made with { splitRoles: true } over a transport that receives only this role's messages */
  bus: Bus;
  env: Env;
  /** acceptor only */
  store?: AcceptorStore;
  /** learner only */
  stateMachine?: StateMachine;
  /** snapshotter only: where its snapshots live */
  snapshots?: SnapshotStore;
  snapshotter?: Partial<SnapshotterOptions>;
  /**
   * proposer and elector: a floor for ballot rounds. The acceptor's durable promise lives in another
   * process, so a restarted proposer must not start low and reuse a ballot: default Date.now(), which
   * exceeds any round an earlier incarnation used (fewer than 1,000 elections a second).
   */
  maxRound?: number;
  proposer?: Partial<ProposerOptions>;
  elector?: Partial<ElectorOptions>;
  tickMs?: number;
  /** client only */
  client?: ClientSideOptions;
  /** the replica's incarnation, the SAME in every role process of one replica (batches carry it) */
  inc: number;
}

export interface RoleHost {
  role: HostedRole;
  actor: AnyActorRef | undefined;
  /** role 'client': the replica's client side, for a front end in this process */
  client?: ClientSide;
  /**
   * Stops the role. Gracefully for the acceptor (it writes what it took in but had not written) and
   * the snapshotter (a snapshot being written finishes); then the caller may close the store.
   */
  stop(): Promise<void>;
}

/**
 * Hosts ONE role of a replica in this process: the same machines a Replica composes, wired to a bus
 * whose transport carries every message to and from the other roles (roles never import each other,
 * so nothing else changes). The 'client' role answers requests forwarded by other replicas.
 */
export async function startRoleHost(o: RoleHostOptions): Promise<RoleHost> {
  const send = (m: Message) => o.bus.send(m);
  const now = () => o.env.clock.now();
  const clock = {
    setTimeout: (fn: (...a: any[]) => void, ms: number) => o.env.clock.setTimeout(fn, ms),
    clearTimeout: (h: any) => o.env.clock.clearTimeout(h),
  };
  const base = { ring: o.ring, self: o.id, send, now };
  const inc = o.inc;
  let actor: AnyActorRef | undefined;
  let unregister: () => void;
  let tick: unknown;
  const ticking = (a: AnyActorRef) => {
    const t = () => {
      a.send({ type: 'tick' });
      tick = o.env.clock.setTimeout(t, o.tickMs ?? 10);
    };
    tick = o.env.clock.setTimeout(t, o.tickMs ?? 10);
  };
  const initialConfig: Configuration = { epoch: 1, members: [...o.members], startSlot: 1 };
  switch (o.role) {
    case 'acceptor': {
      const recovered = await o.store!.recover();
      actor = createActor(acceptorMachine, {
        clock,
        input: { ring: o.ring, self: o.id, store: o.store!, recovered, send, now },
      });
      break;
    }
    case 'snapshotter':
      // the learner and the acceptor answer its messages wherever they run
      actor = createActor(snapshotterMachine, {
        clock,
        input: {
          ring: o.ring,
          self: o.id,
          configuration: initialConfig,
          peers: o.members,
          store: o.snapshots!,
          send,
          now,
          options: o.snapshotter ?? {},
        },
      });
      break;
    case 'config-manager':
      actor = createActor(configManagerMachine, {
        clock,
        input: { ring: o.ring, self: o.id, inc, send, now, configuration: initialConfig },
      });
      break;
    case 'proposer':
      actor = createActor(proposerMachine, {
        clock,
        input: {
          ...base,
          inc,
          members: o.members,
          maxRound: o.maxRound ?? Date.now(),
          options: o.proposer ?? {},
          wallNow: () => Date.now(),
        },
      });
      break;
    case 'learner':
      actor = createActor(learnerMachine, {
        clock,
        input: { ...base, inc, members: o.members, peers: o.members, stateMachine: o.stateMachine! },
      });
      break;
    case 'elector':
      actor = createActor(electorMachine, {
        clock,
        input: {
          ...base,
          members: o.members,
          random: () => o.env.random(),
          maxRound: o.maxRound ?? Date.now(),
          options: o.elector ?? {},
        },
      });
      break;
    case 'client': {
      const c = new ClientRole(o.ring, o.id, inc, o.bus, o.env, o.client ?? {});
      unregister = o.bus.register(o.ring, o.id, 'client', (m) => c.onMessage(m));
      return {
        role: 'client',
        actor: undefined,
        client: c,
        stop: async () => {
          unregister();
          c.stop();
        },
      };
    }
  }
  const a = actor!;
  unregister = o.bus.register(o.ring, o.id, o.role, (m) => a.send(m as any));
  a.start();
  if (o.role === 'proposer' || o.role === 'learner' || o.role === 'snapshotter' || o.role === 'config-manager')
    ticking(a);
  return {
    role: o.role,
    actor: a,
    async stop() {
      o.env.clock.clearTimeout(tick);
      // the learner's coalesced exec-mark goes out before it stops (best effort: the acceptor's process
      // may be stopping too; a mark that lags only replays fewer slots locally, decision 0011)
      if (o.role === 'learner') {
        a.send({ type: 'tick' });
        await new Promise<void>((resolve) => o.env.defer(resolve));
      }
      unregister();
      // the acceptor writes what it took in, the snapshotter ends its store writes, then each is done
      if (o.role === 'acceptor' || o.role === 'snapshotter') {
        const done = untilDone(a);
        a.send(o.role === 'acceptor' ? { type: 'stop', graceful: true } : { type: 'stop' });
        await done;
      }
      a.stop();
    },
  };
}

/** What a client-role process offers a front end (the RESP server of `decree start --role client`). */
export interface ClientSide {
  /**
   * One attempt at each command: submitted to this replica's proposer when it leads or no leader is
   * known, else forwarded to the leader's client side. Each command gets its own outcome; a failed
   * one says whether it may have executed (`maybeExecuted`): retry only the ones that certainly did not.
   */
  executeEach(commands: readonly Uint8Array[]): Promise<BatchOutcome>;
  /** the leader as this process knows it (from heartbeats and the hints of refusals) */
  leader(): ReplicaId | undefined;
  /** facts for DECREE STATUS / INFO */
  status(): Record<string, unknown>;
}

export interface ClientSideOptions {
  /**
   * How long a command may wait for its outcome (from this replica's proposer, or from the leader it
   * was forwarded to) before it fails in doubt. Default 5000 ms.
   */
  timeoutMs?: number;
  /** a leader heard of longer ago than this is forgotten. Default 3000 ms. */
  leaderStaleMs?: number;
}

/**
 * The client side of a replica, alone: it takes requests forwarded by other replicas, hands them to
 * the proposer (wherever it runs) and answers each command's outcome once the learner (wherever it
 * runs) executed it — the same submission table and forwarding answers as an in-process Replica.
 *
 * It also serves a local front end (`executeEach`), which needs to know the leader. The proposer's
 * refusals name it only when the proposer learned it (from a nack), so the client side also listens
 * to the leader's heartbeats: a transport that delivers this replica's elector messages here too (NATS
 * gives every subscriber of the elector's subject a copy) shows them on the bus, where this class taps
 * them; it sends nothing to the elector.
 */
class ClientRole implements ClientSide {
  private readonly submitter: Submitter;
  private readonly forwarder: Forwarder;
  private readonly timeoutMs: number;
  private readonly staleMs: number;
  /** the leader last heard of, from a heartbeat (with its ballot) or a hint; undefined: refuted */
  private known: { leader: ReplicaId | undefined; at: number } = { leader: undefined, at: 0 };
  private beat: { ballot: Ballot; at: number } | undefined;
  /** the highest slot in which a command of this replica executed, as far as this process saw */
  private lastSlot = 0;
  private readonly untap: () => void;

  constructor(
    private readonly ring: RingId,
    private readonly id: ReplicaId,
    private readonly inc: number,
    bus: Bus,
    private readonly env: Env,
    o: ClientSideOptions,
  ) {
    this.timeoutMs = o.timeoutMs ?? 5_000;
    this.staleMs = o.leaderStaleMs ?? 3_000;
    // ids from the clock: a client side restarted under the same incarnation never reuses an id whose
    // outcome (an `executed` of the earlier process's command) may still be on its way
    const firstId = Date.now() * 1024;
    const scope = { ring, self: id, inc, bus, env, firstId };
    this.submitter = new Submitter({ ...scope, timeoutMs: this.timeoutMs }, () => this.leader());
    this.forwarder = new Forwarder(scope);
    this.untap = bus.tap((m, dir) => {
      if (dir === 'in' && m.type === 'heartbeat' && m.ring === ring && m.to === id) this.onHeartbeat(m);
    });
  }

  onMessage(m: Message): void {
    if (m.type === 'executed' && m.inc === this.inc && m.slot > this.lastSlot) this.lastSlot = m.slot;
    if (this.submitter.onMessage(m)) return;
    if (m.type === 'client-rep') this.forwarder.onReply(m);
    // whether the proposer leads is its own business: it aborts the commands if it does not
    else if (m.type === 'client-req')
      this.forwarder.serve(m, true, undefined, (cmds) => this.submitter.submitEach(cmds));
  }

  private onHeartbeat(m: MessageOf<'heartbeat'>): void {
    const now = this.env.clock.now();
    // a lower ballot's heartbeat (a deposed leader's, still on its way) does not replace a live higher one
    if (this.beat && compareBallots(m.ballot, this.beat.ballot) < 0 && now - this.beat.at <= this.staleMs) return;
    this.beat = { ballot: m.ballot, at: now };
    this.known = { leader: m.from, at: now };
  }

  leader(): ReplicaId | undefined {
    return this.env.clock.now() - this.known.at <= this.staleMs ? this.known.leader : undefined;
  }

  /**
   * What an outcome says about the leader: `asked` executed commands (it leads), or refused them
   * before proposing (its hint leads; no hint: at least not `asked`).
   */
  private learn(o: BatchOutcome, asked: ReplicaId): BatchOutcome {
    const now = this.env.clock.now();
    const refusal = o.failed?.find((f) => f.error instanceof NotLeaderError && !f.maybeExecuted);
    const hint = refusal ? (refusal.error as NotLeaderError).leaderHint : undefined;
    if (hint !== undefined && hint !== asked) this.known = { leader: hint, at: now };
    else if (o.results.length > (o.failed?.length ?? 0)) this.known = { leader: asked, at: now };
    else if (refusal && this.known.leader === asked) this.known = { leader: undefined, at: now };
    if (o.slot > this.lastSlot) this.lastSlot = o.slot;
    return o;
  }

  async executeEach(commands: readonly Uint8Array[]): Promise<BatchOutcome> {
    const leader = this.leader();
    if (leader === undefined || leader === this.id)
      return this.learn(await this.submitter.submitEach(commands), this.id);
    return this.learn(await this.forwarder.request(leader, commands, this.timeoutMs), leader);
  }

  status(): Record<string, unknown> {
    const leader = this.leader();
    return {
      id: this.id,
      ring: this.ring,
      process: 'client',
      role: leader === this.id ? 'leader' : leader === undefined ? 'unknown' : 'follower',
      leader: leader ?? null,
      ...(this.beat ? { ballot: this.beat.ballot } : {}),
      inc: this.inc,
      executedUpTo: this.lastSlot,
      pendingSubmissions: this.submitter.pending,
      pendingForwards: this.forwarder.pending,
    };
  }

  stop(): void {
    this.untap();
    const err = new NotLeaderError(undefined, true);
    this.submitter.stop(err);
    this.forwarder.stop(err);
  }
}

export type { MessageOf };
