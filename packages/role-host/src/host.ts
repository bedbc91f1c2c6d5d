import { createActor, type AnyActorRef } from 'xstate';
import type { Bus, Env } from '@decree/bus';
import type {
  AcceptorStore, Configuration, Message, MessageOf, ReplicaId, RingId, SnapshotStore, StateMachine, SubmitItem,
} from '@decree/protocol';
import { acceptorMachine } from '@decree/acceptor';
import { proposerMachine, type ProposerOptions } from '@decree/proposer';
import { learnerMachine } from '@decree/learner';
import { electorMachine, type ElectorOptions } from '@decree/elector';
import { snapshotterMachine, type SnapshotterOptions } from '@decree/snapshotter';
import { Forwarder, Submitter } from '@decree/replica';
import { configManagerMachine } from '@decree/config-manager';

export type HostedRole = 'elector' | 'proposer' | 'acceptor' | 'learner' | 'snapshotter' | 'config-manager' | 'client';
export const HOSTED_ROLES: readonly HostedRole[] = ['elector', 'proposer', 'acceptor', 'learner', 'snapshotter', 'config-manager', 'client'];

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
  /** the replica's incarnation, the SAME in every role process of one replica (batches carry it) */
  inc: number;
}

export interface RoleHost {
  role: HostedRole;
  actor: AnyActorRef | undefined;
  stop(): void;
}

/**
 * Hosts ONE role of a replica in this process: the same machines a Replica composes, wired to a bus
 * whose transport carries every message to and from the other roles (roles never import each other,
 * so nothing else changes). The 'client' role answers requests forwarded by other replicas.
 */
export async function startRoleHost(o: RoleHostOptions): Promise<RoleHost> {
  const send = (m: Message) => o.bus.send(m);
  const now = () => o.env.clock.now();
  const clock = { setTimeout: (fn: (...a: any[]) => void, ms: number) => o.env.clock.setTimeout(fn, ms), clearTimeout: (h: any) => o.env.clock.clearTimeout(h) };
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
      actor = createActor(acceptorMachine, { clock, input: { ring: o.ring, self: o.id, store: o.store!, recovered, send, now } });
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
      actor = createActor(configManagerMachine, { clock, input: { ring: o.ring, self: o.id, inc, send, now, configuration: initialConfig } });
      break;
    case 'proposer':
      actor = createActor(proposerMachine, {
        clock,
        input: { ...base, inc, members: o.members, maxRound: o.maxRound ?? Date.now(), options: o.proposer ?? {}, wallNow: () => Date.now() },
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
        input: { ...base, members: o.members, random: () => o.env.random(), maxRound: o.maxRound ?? Date.now(), options: o.elector ?? {} },
      });
      break;
    case 'client': {
      const c = new ClientRole(o.ring, o.id, inc, o.bus, o.env);
      unregister = o.bus.register(o.ring, o.id, 'client', (m) => c.onMessage(m));
      return { role: 'client', actor: undefined, stop: () => unregister() };
    }
  }
  const a = actor!;
  unregister = o.bus.register(o.ring, o.id, o.role, (m) => a.send(m as any));
  a.start();
  if (o.role === 'proposer' || o.role === 'learner' || o.role === 'snapshotter' || o.role === 'config-manager') ticking(a);
  return {
    role: o.role,
    actor: a,
    stop() {
      o.env.clock.clearTimeout(tick);
      unregister();
      a.stop();
    },
  };
}

/**
 * The client side of a replica, alone: it takes requests forwarded by other replicas, hands them to
 * the proposer (wherever it runs) and answers each command's outcome once the learner (wherever it
 * runs) executed it — the same submission table and forwarding answers as an in-process Replica.
 */
class ClientRole {
  private readonly submitter: Submitter;
  private readonly forwarder: Forwarder;

  constructor(ring: RingId, id: ReplicaId, inc: number, bus: Bus, env: Env) {
    const scope = { ring, self: id, inc, bus, env };
    this.submitter = new Submitter(scope);
    this.forwarder = new Forwarder(scope);
  }

  onMessage(m: Message): void {
    if (this.submitter.onMessage(m)) return;
    // whether the proposer leads is its own business: it aborts the commands if it does not
    if (m.type === 'client-req') this.forwarder.serve(m, true, undefined, (cmds) => this.submitter.submitEach(cmds));
  }
}

export type { MessageOf };
