import { createActor, type AnyActorRef } from 'xstate';
import type { Bus, Env } from '@decree/bus';
import type { AcceptorStore, Configuration, Message, MessageOf, ReplicaId, RingId, Slot, StateMachine, SubmitItem } from '@decree/protocol';
import { acceptorMachine } from '@decree/acceptor';
import { proposerMachine, type ProposerOptions } from '@decree/proposer';
import { holdLearner, learnerMachine } from '@decree/learner';
import { electorMachine, type ElectorOptions } from '@decree/elector';
import { collect, snapshotterMachine, type SnapshotStore, type SnapshotterOptions } from '@decree/snapshotter';
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
  const hdr = { ring: o.ring, from: o.id, to: o.id };
  const initialConfig: Configuration = { epoch: 1, members: [...o.members], startSlot: 1 };
  /** messages this process handles itself before the actor (the learner/snapshotter split, truncation) */
  let intercept: ((m: Message, a: AnyActorRef) => boolean) | undefined;
  switch (o.role) {
    case 'acceptor': {
      const recovered = await o.store!.recover();
      actor = createActor(acceptorMachine, { clock, input: { ring: o.ring, self: o.id, store: o.store!, recovered, send } });
      intercept = (m, a) => {
        if (m.type !== 'log-truncate') return false;
        a.send({ type: 'truncate', below: m.below });
        return true;
      };
      break;
    }
    case 'snapshotter': {
      // the learner and the state machine are in the learner's process: copies and installs are messages
      const cache = { executed: 0, bytes: 0, config: initialConfig };
      const waiting = new Map<number, { resolve(v: any): void; reject(e: Error): void; timer: unknown }>();
      let seq = 1;
      const ask = <T>(m: (s: number) => Message): Promise<T> =>
        new Promise<T>((resolve, reject) => {
          const s = seq++;
          const timer = o.env.clock.setTimeout(() => {
            if (waiting.delete(s)) reject(new Error('the learner process did not answer'));
          }, 60_000);
          waiting.set(s, { resolve, reject, timer });
          send(m(s));
        });
      const answer = (s: number, err: string | undefined, v: unknown) => {
        const w = waiting.get(s);
        if (!w) return;
        waiting.delete(s);
        o.env.clock.clearTimeout(w.timer);
        if (err !== undefined) w.reject(new Error(err));
        else w.resolve(v);
      };
      const none = () => Promise.reject(new Error('the state machine is in the learner process'));
      actor = createActor(snapshotterMachine, {
        clock,
        input: {
          ring: o.ring,
          self: o.id,
          members: () => cache.config.members,
          configuration: () => cache.config,
          peers: () => o.members,
          stateMachine: { snapshotIsCopy: true, apply: () => undefined, snapshot: none, restore: none },
          store: o.snapshots!,
          send,
          now,
          options: o.snapshotter ?? {},
          executedUpTo: () => cache.executed,
          appliedBytes: () => cache.bytes,
          holdLearner: () => {},
          releaseLearner: () => {},
          installed: () => {},
          truncate: (below) => {
            send({ type: 'log-truncate', ...hdr, below });
            send({ type: 'retain-truncate', ...hdr, below });
          },
          remote: {
            capture: () => ask<{ slot: Slot; data: Uint8Array; config?: Configuration }>((s) => ({ type: 'snap-take', ...hdr, seq: s })),
            install: (slot, data, config) => ask<void>((s) => ({ type: 'snap-install', ...hdr, seq: s, slot, data, config })),
          },
        },
      });
      intercept = (m, a) => {
        switch (m.type) {
          case 'snap-executed':
            if (m.slot > cache.executed) cache.executed = m.slot;
            cache.bytes = m.bytes;
            a.send({ type: 'executed', slot: m.slot, bytes: m.bytes, requested: m.requested });
            return true;
          case 'snap-need':
            a.send({ type: 'need-snapshot', from: m.peer, below: m.below });
            return true;
          case 'snap-data':
            if (m.config && m.config.epoch >= cache.config.epoch) cache.config = m.config;
            answer(m.seq, m.error, { slot: m.slot, data: m.data, ...(m.config ? { config: m.config } : {}) });
            return true;
          case 'snap-installed':
            answer(m.seq, m.ok ? undefined : (m.error ?? 'install failed'), undefined);
            return true;
          default:
            return false;
        }
      };
      break;
    }
    case 'config-manager':
      actor = createActor(configManagerMachine, { clock, input: { ring: o.ring, self: o.id, inc, send, now, configuration: initialConfig } });
      break;
    case 'proposer':
      actor = createActor(proposerMachine, { clock, input: { ...base, inc, members: o.members, maxRound: o.maxRound ?? Date.now(), options: o.proposer ?? {} } });
      break;
    case 'learner': {
      const sm = o.stateMachine!;
      const la = createActor(learnerMachine, {
        clock,
        input: {
          ...base,
          inc,
          members: o.members,
          peers: o.members,
          stateMachine: sm,
          // the snapshotter runs in another process: it hears of executed slots and missing ones by message
          onExecuted: (slot, bytes, requested) => send({ type: 'snap-executed', ...hdr, slot, bytes, requested }),
          onNeedsSnapshot: (from, below) => send({ type: 'snap-need', ...hdr, peer: from, below }),
        },
      });
      actor = la;
      const ctx = () => la.getSnapshot().context;
      intercept = (m, a) => {
        switch (m.type) {
          case 'snap-take': {
            // a copy as of the executed slot, taken now (between two slots: nothing runs meanwhile)
            const slot = ctx().executedUpTo;
            const config = ctx().config;
            const copy = !sm.snapshotIsCopy;
            if (copy) holdLearner(ctx());
            let p: Promise<Uint8Array | AsyncIterable<Uint8Array>>;
            try {
              p = sm.snapshot();
            } catch (e) {
              p = Promise.reject(e);
            }
            p.then(collect).then(
              (data) => send({ type: 'snap-data', ...hdr, seq: m.seq, slot, data, config }),
              (e: unknown) => send({ type: 'snap-data', ...hdr, seq: m.seq, slot, data: new Uint8Array(0), error: String((e as Error)?.message ?? e) }),
            ).finally(() => {
              if (copy) a.send({ type: 'release' });
            });
            return true;
          }
          case 'snap-install': {
            if (m.slot <= ctx().executedUpTo) {
              send({ type: 'snap-installed', ...hdr, seq: m.seq, ok: true });
              return true;
            }
            holdLearner(ctx()); // nothing applies while the state is replaced
            const data = m.data;
            sm.restore((async function* () { yield data; })()).then(
              () => {
                a.send({ type: 'installed', slot: m.slot, ...(m.config ? { config: m.config } : {}) });
                send({ type: 'snap-installed', ...hdr, seq: m.seq, ok: true });
              },
              (e: unknown) => {
                a.send({ type: 'release' });
                send({ type: 'snap-installed', ...hdr, seq: m.seq, ok: false, error: String((e as Error)?.message ?? e) });
              },
            );
            return true;
          }
          case 'retain-truncate':
            a.send({ type: 'truncate', below: m.below });
            return true;
          default:
            return false;
        }
      };
      break;
    }
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
  unregister = o.bus.register(o.ring, o.id, o.role, (m) => {
    if (!intercept?.(m, a)) a.send(m as any);
  });
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
        for (const id of m.ids) this.fail(id, m.leaderHint, m.maybeChosen);
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

  private fail(id: number, hint: ReplicaId | undefined, maybeExecuted: boolean): void {
    const base = this.byId.get(id);
    if (base === undefined) return;
    const w = this.waiting.get(base)!;
    for (let i = 0; i < w.n; i++) this.byId.delete(base + i);
    this.waiting.delete(base);
    this.send({ type: 'client-rep', ring: this.ring, from: this.id, to: w.from, id: w.reqId, error: 'NOT_LEADER', maybeExecuted, ...(hint ? { leaderHint: hint } : {}) });
  }
}

export type { MessageOf };
