import type { Bus, Env } from '@decree/bus';
import {
  type AcceptorStore,
  type Configuration,
  type MessageOf,
  type ReplicaId,
  type RingId,
  memberSetProblem,
  sameMembers,
} from '@decree/protocol';
import { BootstrapError } from './errors.ts';
import { storeConfig0 } from './config0.ts';
import type { Poller } from './poller.ts';

export interface BootstrapResult {
  result: 'ok' | 'already-bootstrapped';
  epoch: number;
  members: ReplicaId[];
  leader: ReplicaId;
}

export interface BootstrapHost {
  ring: RingId;
  self: ReplicaId;
  bus: Bus;
  env: Env;
  store: AcceptorStore;
  poller: Poller;
  /** the configuration this replica runs now (epoch 0: none yet) */
  config(): Configuration;
  currentLeader(): ReplicaId | undefined;
  /** hands the first configuration to the learner (it passes it on to the proposer and elector) */
  take(c: Configuration): void;
}

/**
 * RSL Bootstrap: a cluster whose replicas started with no configuration gets its first one. The
 * replica asked stores it durably and invites the others; each stores it and takes it.
 */
export class Bootstrapper {
  private acks: Set<ReplicaId> | undefined;

  constructor(private readonly h: BootstrapHost) {}

  /**
   * Resolves once a leader is elected: `result` 'ok', or 'already-bootstrapped' when this replica
   * already has this configuration. Rejects with BootstrapError: INVALID (bad set, or this replica
   * not in it), ALREADY (bootstrapped with another set), FAILED (no leader within timeoutMs).
   */
  async run(members: readonly ReplicaId[], timeoutMs: number): Promise<BootstrapResult> {
    const h = this.h;
    const problem = memberSetProblem(members);
    if (problem) throw new BootstrapError('INVALID', problem);
    if (!members.includes(h.self))
      throw new BootstrapError('INVALID', `bootstrap on a member: ${h.self} is not in ${members.join(',')}`);
    let result: 'ok' | 'already-bootstrapped' = 'ok';
    const c = h.config();
    if (c.epoch > 0) {
      if (c.epoch !== 1 || !sameMembers(c.members, members))
        throw new BootstrapError('ALREADY', `already bootstrapped: configuration ${c.epoch} is ${c.members.join(',')}`);
      result = 'already-bootstrapped';
    } else await this.take(members);
    const acks = (this.acks = new Set([h.self]));
    const invite = () => {
      for (const m of members)
        if (!acks.has(m)) h.bus.send({ type: 'bootstrap', ring: h.ring, from: h.self, to: m, members: [...members] });
    };
    let timer: unknown;
    const again = () => {
      invite();
      timer = h.env.clock.setTimeout(again, 200);
    };
    const majority = Math.floor(members.length / 2) + 1;
    try {
      const leader = await h.poller.waitFor(
        () => {
          const l = h.currentLeader();
          return l !== undefined && members.includes(l) && acks.size >= majority ? l : undefined;
        },
        timeoutMs,
        again,
        () =>
          new BootstrapError(
            'FAILED',
            `no leader within ${timeoutMs} ms (invited: ${members.join(',')}; answered: ${[...acks].join(',')})`,
          ),
      );
      const now = h.config();
      return { result, epoch: now.epoch, members: [...now.members], leader };
    } finally {
      h.env.clock.clearTimeout(timer);
    }
  }

  /** Another replica's invitation: store the configuration and take it, or say why not. */
  onInvite(m: MessageOf<'bootstrap'>): void {
    const h = this.h;
    const ack = (ok: boolean, error?: string) =>
      h.bus.send({ type: 'bootstrap-ack', ring: h.ring, from: h.self, to: m.from, ok, ...(error ? { error } : {}) });
    const c = h.config();
    if (c.epoch > 0) {
      if (c.epoch === 1 && sameMembers(c.members, m.members)) ack(true);
      else ack(false, `${h.self} is already bootstrapped: configuration ${c.epoch} is ${c.members.join(',')}`);
      return;
    }
    if (memberSetProblem(m.members) || !m.members.includes(h.self))
      return ack(false, `bad member set ${m.members.join(',')}`);
    this.take(m.members).then(
      () => ack(true),
      (e: Error) => ack(false, `cannot store the configuration: ${e.message}`),
    );
  }

  onAck(m: MessageOf<'bootstrap-ack'>): void {
    if (m.ok) this.acks?.add(m.from);
    this.h.poller.poke();
  }

  /** Stores the first configuration and takes it. */
  private async take(members: readonly ReplicaId[]): Promise<void> {
    const c: Configuration = { epoch: 1, members: [...members], startSlot: 1 };
    await storeConfig0(this.h.store, c);
    this.h.take(c);
  }
}
