import { ROLE_OF, type Message, type ReplicaId, type RingId, type Role } from '@decree/protocol';
import type { Env } from './env.ts';

export type Handler = (msg: Message) => void;

/**
 * What carries messages between processes (TCP, NATS, shared memory, the simulated network).
 * A transport delivers whatever it receives to the receiver the bus sets; it may drop messages
 * (the protocol retransmits) but must never block the caller or queue without bound.
 */
export interface Transport {
  send(msg: Message): void;
  setReceiver(receiver: (msg: Message) => void): void;
  /** whether a link to `to` is up right now (for peer health) */
  isConnected(to: ReplicaId): boolean;
  close(): Promise<void>;
}

export interface BusTap {
  /** called for every message the bus routes, before delivery (tracing, inspection, tests) */
  (msg: Message, direction: 'local' | 'out' | 'in'): void;
}

const key = (ring: RingId, replica: ReplicaId, role: Role) => `${ring}\u0000${replica}\u0000${role}`;

/**
 * The typed in-process message bus. Routes by (ring, replica, role): the role comes from the
 * message type (ROLE_OF), so a sender only names ring and replica. Messages to handlers in this
 * process are queued and delivered asynchronously in FIFO order (never re-entrantly); the rest go
 * to the transport.
 */
export class Bus {
  private readonly handlers = new Map<string, Handler>();
  private readonly hosted = new Map<string, number>();
  private queue: Message[] = [];
  private scheduled = false;
  private transport: Transport | undefined;
  private taps: BusTap[] = [];
  /** messages whose destination is neither local nor reachable */
  dropped = 0;
  delivered = 0;

  /**
   * `splitRoles`: this process hosts only some roles of its replicas (roles as separate processes);
   * messages for roles without a local handler go to the transport even when other roles of the same
   * replica live here.
   */
  constructor(
    private readonly env: Env,
    transport?: Transport,
    private readonly opts: { splitRoles?: boolean } = {},
  ) {
    if (transport) this.attach(transport);
  }

  attach(transport: Transport): void {
    this.transport = transport;
    transport.setReceiver((m) => this.receive(m));
  }

  register(ring: RingId, replica: ReplicaId, role: Role, handler: Handler): () => void {
    const k = key(ring, replica, role);
    if (this.handlers.has(k)) throw new Error(`bus: ${role} of ${replica} in ring ${ring} is already registered`);
    this.handlers.set(k, handler);
    const hk = `${ring}\u0000${replica}`;
    this.hosted.set(hk, (this.hosted.get(hk) ?? 0) + 1);
    return () => {
      if (this.handlers.get(k) === handler) {
        this.handlers.delete(k);
        const n = (this.hosted.get(hk) ?? 1) - 1;
        if (n <= 0) this.hosted.delete(hk);
        else this.hosted.set(hk, n);
      }
    };
  }

  /** Whether this bus hosts any role of `replica` in `ring`. */
  hosts(ring: RingId, replica: ReplicaId): boolean {
    return this.hosted.has(`${ring}\u0000${replica}`);
  }

  tap(fn: BusTap): () => void {
    this.taps.push(fn);
    return () => {
      this.taps = this.taps.filter((t) => t !== fn);
    };
  }

  send(msg: Message): void {
    if (this.handlers.has(key(msg.ring, msg.to, ROLE_OF[msg.type]))) {
      for (const t of this.taps) t(msg, 'local');
      this.enqueue(msg);
    } else if (this.transport && (this.opts.splitRoles || !this.hosts(msg.ring, msg.to))) {
      for (const t of this.taps) t(msg, 'out');
      this.transport.send(msg);
    } else {
      this.dropped++;
    }
  }

  /** Messages arriving from the transport. */
  receive(msg: Message): void {
    for (const t of this.taps) t(msg, 'in');
    this.enqueue(msg);
  }

  private enqueue(msg: Message): void {
    this.queue.push(msg);
    if (!this.scheduled) {
      this.scheduled = true;
      this.env.defer(this.drain);
    }
  }

  private readonly drain = (): void => {
    this.scheduled = false;
    const q = this.queue;
    this.queue = [];
    let i = 0;
    try {
      for (; i < q.length; i++) {
        const m = q[i]!;
        const h = this.handlers.get(key(m.ring, m.to, ROLE_OF[m.type]));
        if (h) {
          this.delivered++;
          h(m);
        } else this.dropped++;
      }
    } finally {
      // a handler threw: the exception propagates, the messages after it stay queued, in order
      if (i + 1 < q.length) {
        this.queue = q.slice(i + 1).concat(this.queue);
        if (!this.scheduled) {
          this.scheduled = true;
          this.env.defer(this.drain);
        }
      }
    }
  };

  async close(): Promise<void> {
    this.handlers.clear();
    this.hosted.clear();
    await this.transport?.close();
  }
}
