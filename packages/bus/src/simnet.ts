import { decodeMessage, encodeMessage, type Message, type ReplicaId } from '@decree/protocol';
import type { Transport } from './bus.ts';
import type { Rng } from './env.ts';
import type { SimScheduler } from './scheduler.ts';

export interface SimNetworkOptions {
  /** one-way delay bounds in ms (uniform); a spread reorders messages */
  minDelayMs?: number;
  maxDelayMs?: number;
  dropRate?: number;
  duplicateRate?: number;
  /** encode and decode every message (catches what the wire would break) */
  serialize?: boolean;
}

/**
 * A simulated network between buses, driven by the scheduler's virtual time and a seeded RNG:
 * delay, drop, duplicate, reorder, partitions and crashed nodes.
 */
export class SimNetwork {
  private readonly receivers = new Map<ReplicaId, (m: Message) => void>();
  private readonly down = new Set<ReplicaId>();
  /** links cut in the direction from -> to */
  private readonly cut = new Set<string>();
  opts: Required<SimNetworkOptions>;
  sent = 0;
  droppedCount = 0;

  constructor(
    private readonly sched: SimScheduler,
    private readonly rng: Rng,
    opts: SimNetworkOptions = {},
  ) {
    this.opts = { minDelayMs: 0.1, maxDelayMs: 1, dropRate: 0, duplicateRate: 0, serialize: false, ...opts };
  }

  /** The transport of the process hosting `replicas`. */
  endpoint(replicas: ReplicaId | readonly ReplicaId[]): Transport {
    const ids = typeof replicas === 'string' ? [replicas] : replicas;
    const self = ids[0]!;
    return {
      // link checks use the sender's own id when this endpoint hosts it
      send: (m) => this.send(ids.includes(m.from) ? m.from : self, m),
      setReceiver: (r) => {
        for (const id of ids) this.receivers.set(id, r);
      },
      isConnected: (to) => this.linkUp(self, to),
      close: async () => {
        for (const id of ids) this.receivers.delete(id);
      },
    };
  }

  linkUp(from: ReplicaId, to: ReplicaId): boolean {
    return !this.down.has(from) && !this.down.has(to) && !this.cut.has(`${from}>${to}`);
  }

  /** Isolates each group from the others (messages inside a group still flow). */
  partition(groups: readonly (readonly ReplicaId[])[]): void {
    this.heal();
    for (const g of groups)
      for (const h of groups)
        if (g !== h) for (const a of g) for (const b of h) this.cut.add(`${a}>${b}`);
  }

  cutLink(a: ReplicaId, b: ReplicaId, bothWays = true): void {
    this.cut.add(`${a}>${b}`);
    if (bothWays) this.cut.add(`${b}>${a}`);
  }

  heal(): void {
    this.cut.clear();
  }

  /** A crashed node sends and receives nothing (messages in flight to it are lost). */
  setDown(id: ReplicaId, down: boolean): void {
    if (down) this.down.add(id);
    else this.down.delete(id);
  }

  private send(from: ReplicaId, m: Message): void {
    this.sent++;
    if (!this.linkUp(from, m.to) || this.rng.chance(this.opts.dropRate)) {
      this.droppedCount++;
      return;
    }
    const copies = this.rng.chance(this.opts.duplicateRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = this.opts.minDelayMs + this.rng.next() * (this.opts.maxDelayMs - this.opts.minDelayMs);
      const payload = this.opts.serialize ? encodeMessage(m) : m;
      this.sched.after(delay, () => {
        if (!this.linkUp(from, m.to)) {
          this.droppedCount++;
          return;
        }
        const r = this.receivers.get(m.to);
        if (!r) return;
        r(payload instanceof Uint8Array ? decodeMessage(payload) : payload);
      });
    }
  }
}
