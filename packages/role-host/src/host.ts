import { createActor, type AnyActorRef } from 'xstate';
import type { Bus, Env } from '@decree/bus';
import type { AcceptorStore, Message, MessageOf, ReplicaId, RingId, StateMachine, SubmitItem } from '@decree/protocol';
import { acceptorMachine } from '@decree/acceptor';
import { proposerMachine, type ProposerOptions } from '@decree/proposer';
import { learnerMachine } from '@decree/learner';
import { electorMachine, type ElectorOptions } from '@decree/elector';

export type HostedRole = 'elector' | 'proposer' | 'acceptor' | 'learner' | 'client';
export const HOSTED_ROLES: readonly HostedRole[] = ['elector', 'proposer', 'acceptor', 'learner', 'client'];

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
  switch (o.role) {
    case 'acceptor': {
      const recovered = await o.store!.recover();
      actor = createActor(acceptorMachine, { clock, input: { ring: o.ring, self: o.id, store: o.store!, recovered, send } });
      break;
    }
    case 'proposer':
      actor = createActor(proposerMachine, { clock, input: { ...base, inc, members: o.members, maxRound: o.maxRound ?? Date.now(), options: o.proposer ?? {} } });
      break;
    case 'learner':
      actor = createActor(learnerMachine, { clock, input: { ...base, inc, members: o.members, stateMachine: o.stateMachine! } });
      break;
    case 'elector':
      actor = createActor(electorMachine, {
        clock,
        input: { ...base, members: o.members, random: () => o.env.random(), maxRound: o.maxRound ?? Date.now(), options: o.elector ?? {} },
      });
      break;
    case 'client': {
      const c = new ClientRole(o.ring, o.id, inc, send);
      unregister = o.bus.register(o.ring, o.id, 'client', (m) => c.onMessage(m));
      return { role: 'client', actor: undefined, stop: () => unregister() };
    }
  }
  const a = actor!;
  unregister = o.bus.register(o.ring, o.id, o.role, (m) => a.send(m as any));
  a.start();
  if (o.role === 'proposer' || o.role === 'learner') ticking(a);
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
 * the proposer (wherever it runs) and answers once the learner (wherever it runs) executed them.
 * The learner tags its answers with the proposer's incarnation, so the client accepts any
 * incarnation for ids it is waiting for.
 */
class ClientRole {
  private nextId = 1;
  private waiting = new Map<number, { from: ReplicaId; reqId: number; n: number; base: number; results: (Uint8Array | null)[]; left: number }>();
  private byId = new Map<number, number>();

  constructor(
    private readonly ring: RingId,
    private readonly id: ReplicaId,
    readonly inc: number,
    private readonly send: (m: Message) => void,
  ) {}

  onMessage(m: Message): void {
    switch (m.type) {
      case 'client-req': {
        const base = this.nextId;
        this.nextId += m.cmds.length;
        const items: SubmitItem[] = m.cmds.map((cmd, i) => ({ id: base + i, cmd }));
        this.waiting.set(base, { from: m.from, reqId: m.id, n: m.cmds.length, base, results: new Array(m.cmds.length).fill(null), left: m.cmds.length });
        for (let i = 0; i < m.cmds.length; i++) this.byId.set(base + i, base);
        this.send({ type: 'submit', ring: this.ring, from: this.id, to: this.id, items });
        return;
      }
      case 'executed':
        for (let i = 0; i < m.results.length; i++) this.settle(m.firstId + i, m.results[i] ?? null);
        return;
      case 'aborted':
        for (const id of m.ids) this.fail(id, m.leaderHint);
        return;
      default:
        return;
    }
  }

  private settle(id: number, r: Uint8Array | null): void {
    const base = this.byId.get(id);
    if (base === undefined) return;
    this.byId.delete(id);
    const w = this.waiting.get(base)!;
    w.results[id - base] = r;
    if (--w.left === 0) {
      this.waiting.delete(base);
      this.send({ type: 'client-rep', ring: this.ring, from: this.id, to: w.from, id: w.reqId, results: w.results });
    }
  }

  private fail(id: number, hint: ReplicaId | undefined): void {
    const base = this.byId.get(id);
    if (base === undefined) return;
    const w = this.waiting.get(base)!;
    for (let i = 0; i < w.n; i++) this.byId.delete(base + i);
    this.waiting.delete(base);
    this.send({ type: 'client-rep', ring: this.ring, from: this.id, to: w.from, id: w.reqId, error: 'NOT_LEADER', ...(hint ? { leaderHint: hint } : {}) });
  }
}

export type { MessageOf };
