import { decodeMessage, encodeMessage, laneOf, type Message, type ReplicaId } from '@decree/protocol';
import type { Transport } from './bus.ts';
import type { Rng } from './env.ts';
import { estimateMessageSize } from './msg-size.ts';
import type { SimScheduler } from './scheduler.ts';

export interface SimNetworkOptions {
  /** one-way delay bounds in ms (uniform); a spread reorders messages (unless `links` makes links FIFO) */
  minDelayMs?: number;
  maxDelayMs?: number;
  dropRate?: number;
  duplicateRate?: number;
  /** encode and decode every message (catches what the wire would break) */
  serialize?: boolean;
  /**
   * Links bounded in bytes, paced by a bandwidth, FIFO, with lanes (see `SimLinkOptions`). Absent:
   * every message travels on its own after a random delay (unbounded links), as before.
   */
  links?: SimLinkOptions;
}

/** One lane of a link: a FIFO queue with the TCP transport's bounds. */
export interface SimLaneOptions {
  name: string;
  /** bytes waiting to be sent (default 8 MiB, the TCP transport's `maxQueuedBytes`) */
  maxBytes?: number;
  /** messages waiting to be sent (default 16384, the TCP transport's `maxQueuedMessages`) */
  maxMessages?: number;
}

export interface SimLinkOptions {
  /** bytes one directed link carries per virtual ms (default 125000: 1 Gbit/s); Infinity: no transmission time */
  bandwidthBytesPerMs?: number;
  /** the lanes, drained in this order (default: one lane, `default`, with the TCP bounds) */
  lanes?: readonly SimLaneOptions[];
  /** the lane of a message, by name (default: the first lane); an unknown name goes to the last lane */
  classify?: (m: Message) => string;
  /** bytes a message occupies (default: its encoded length when serializing, else `estimateMessageSize`) */
  sizeOf?: (m: Message) => number;
}

/** The TCP transport's per-peer outbound bounds (packages/transport-tcp, `DEFAULTS`). */
export const TCP_QUEUE_BYTES = 8 * 1024 * 1024;
export const TCP_QUEUE_MESSAGES = 16384;
/** TCP framing: a 4-byte length before each message. */
const FRAME_HEADER_BYTES = 4;

/**
 * The two-lane classifier the transports use (`laneOf` in @decree/protocol): bulk data (promise
 * pages with entries, catch-up replies, snapshot chunks, forwarded client batches) in `bulk`;
 * heartbeats, votes, prepares, accepts, accepted, decides, nacks and the rest in `control`.
 */
export function controlOrBulk(m: Message): 'control' | 'bulk' {
  return laneOf(m);
}

/** Two lanes, `control` drained before `bulk`, each with the TCP bounds unless given. */
export function twoLanes(
  bounds: { control?: Omit<SimLaneOptions, 'name'>; bulk?: Omit<SimLaneOptions, 'name'> } = {},
): Pick<SimLinkOptions, 'lanes' | 'classify'> {
  return {
    lanes: [
      { name: 'control', ...bounds.control },
      { name: 'bulk', ...bounds.bulk },
    ],
    classify: controlOrBulk,
  };
}

export interface SimLaneStats {
  name: string;
  /** messages and bytes put on the wire */
  sent: number;
  sentBytes: number;
  /** messages dropped because the lane was full */
  dropsFull: number;
  /** messages waiting now (all links), and the most bytes one link's lane ever held */
  queued: number;
  maxQueuedBytes: number;
}

export interface SimLinkStats {
  lanes: SimLaneStats[];
  /** drops by cause: a lane full, a link down or cut (at send or on arrival, queues of a crashed node), random loss */
  drops: { full: number; down: number; loss: number };
  /** queue-full drops per message type */
  fullByType: Record<string, number>;
}

interface Queued {
  payload: Message | Uint8Array;
  to: ReplicaId;
  size: number;
}

interface Lane {
  readonly name: string;
  readonly maxBytes: number;
  readonly maxMessages: number;
  q: Queued[];
  head: number;
  bytes: number;
}

interface Link {
  readonly from: ReplicaId;
  readonly to: ReplicaId;
  readonly lanes: Lane[];
  /** a message is on the wire */
  busy: boolean;
  /** arrival time of the last message sent: later ones arrive no earlier (FIFO, like TCP) */
  lastArrival: number;
  /** bumped when an end crashes: what was queued or on the wire before is lost */
  epoch: number;
}

/**
 * A simulated network between buses, driven by the scheduler's virtual time and a seeded RNG:
 * delay, drop, duplicate, reorder, partitions and crashed nodes; optionally links bounded in bytes
 * that pace and drop like the TCP transport (`links`).
 */
export class SimNetwork {
  private readonly receivers = new Map<ReplicaId, (m: Message) => void>();
  private readonly down = new Set<ReplicaId>();
  /** links cut in the direction from -> to */
  private readonly cut = new Set<string>();
  opts: Required<Omit<SimNetworkOptions, 'links'>>;
  sent = 0;
  droppedCount = 0;
  private readonly links: Map<string, Link> | undefined;
  private readonly linkOpts:
    | (Required<Omit<SimLinkOptions, 'lanes'>> & { lanes: readonly SimLaneOptions[] })
    | undefined;
  private readonly laneIndex = new Map<string, number>();
  private readonly laneStats: SimLaneStats[] = [];
  private readonly drops = { full: 0, down: 0, loss: 0 };
  private readonly fullByType: Record<string, number> = {};

  constructor(
    private readonly sched: SimScheduler,
    private readonly rng: Rng,
    opts: SimNetworkOptions = {},
  ) {
    const { links, ...base } = opts;
    this.opts = { minDelayMs: 0.1, maxDelayMs: 1, dropRate: 0, duplicateRate: 0, serialize: false, ...base };
    if (links) {
      const lanes = links.lanes && links.lanes.length > 0 ? links.lanes : [{ name: 'default' }];
      const bw = links.bandwidthBytesPerMs ?? 125_000;
      if (!(bw > 0)) throw new RangeError(`SimNetwork: bandwidthBytesPerMs must be > 0, got ${bw}`);
      lanes.forEach((l, i) => {
        if ((l.maxBytes ?? 1) <= 0 || (l.maxMessages ?? 1) <= 0)
          throw new RangeError(`SimNetwork: lane ${l.name} needs positive bounds`);
        this.laneIndex.set(l.name, i);
        this.laneStats.push({ name: l.name, sent: 0, sentBytes: 0, dropsFull: 0, queued: 0, maxQueuedBytes: 0 });
      });
      this.linkOpts = {
        bandwidthBytesPerMs: bw,
        lanes,
        classify: links.classify ?? (() => lanes[0]!.name),
        sizeOf: links.sizeOf ?? estimateMessageSize,
      };
      this.links = new Map();
    }
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
      for (const h of groups) if (g !== h) for (const a of g) for (const b of h) this.cut.add(`${a}>${b}`);
  }

  cutLink(a: ReplicaId, b: ReplicaId, bothWays = true): void {
    this.cut.add(`${a}>${b}`);
    if (bothWays) this.cut.add(`${b}>${a}`);
  }

  heal(): void {
    this.cut.clear();
  }

  /**
   * A crashed node sends and receives nothing (messages in flight to it are lost). With bounded
   * links, the queues of its links are lost too (its connections die with it).
   */
  setDown(id: ReplicaId, down: boolean): void {
    if (down) this.down.add(id);
    else this.down.delete(id);
    if (down && this.links)
      for (const l of this.links.values()) {
        if (l.from !== id && l.to !== id) continue;
        l.epoch++;
        l.busy = false;
        for (const lane of l.lanes) {
          const lost = lane.q.length - lane.head;
          this.drops.down += lost;
          this.droppedCount += lost;
          this.laneStats[this.laneIndex.get(lane.name)!]!.queued -= lost;
          lane.q = [];
          lane.head = 0;
          lane.bytes = 0;
        }
      }
  }

  /** Counters of the bounded links (undefined without `links`). */
  linkStats(): SimLinkStats | undefined {
    if (!this.links) return undefined;
    return {
      lanes: this.laneStats.map((s) => ({ ...s })),
      drops: { ...this.drops },
      fullByType: { ...this.fullByType },
    };
  }

  /** Bytes waiting in the lanes of the link from -> to (0 without `links`). */
  queuedBytes(from: ReplicaId, to: ReplicaId): number {
    const l = this.links?.get(`${from}>${to}`);
    return l ? l.lanes.reduce((n, lane) => n + lane.bytes, 0) : 0;
  }

  private send(from: ReplicaId, m: Message): void {
    if (this.links) return this.sendOnLink(from, m);
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

  // ------------------------------------------------------------ bounded links

  private link(from: ReplicaId, to: ReplicaId): Link {
    const key = `${from}>${to}`;
    let l = this.links!.get(key);
    if (!l) {
      const lanes = this.linkOpts!.lanes.map((o) => ({
        name: o.name,
        maxBytes: o.maxBytes ?? TCP_QUEUE_BYTES,
        maxMessages: o.maxMessages ?? TCP_QUEUE_MESSAGES,
        q: [],
        head: 0,
        bytes: 0,
      }));
      l = { from, to, lanes, busy: false, lastArrival: 0, epoch: 0 };
      this.links!.set(key, l);
    }
    return l;
  }

  private sendOnLink(from: ReplicaId, m: Message): void {
    this.sent++;
    if (!this.linkUp(from, m.to)) {
      this.drops.down++;
      this.droppedCount++;
      return;
    }
    if (this.rng.chance(this.opts.dropRate)) {
      this.drops.loss++;
      this.droppedCount++;
      return;
    }
    const copies = this.rng.chance(this.opts.duplicateRate) ? 2 : 1;
    const lo = this.linkOpts!;
    const payload = this.opts.serialize ? encodeMessage(m) : m;
    const exact = payload instanceof Uint8Array && lo.sizeOf === estimateMessageSize;
    const size = FRAME_HEADER_BYTES + (exact ? payload.length : lo.sizeOf(m));
    const link = this.link(from, m.to);
    const li = this.laneIndex.get(lo.classify(m)) ?? link.lanes.length - 1;
    const lane = link.lanes[li]!;
    const st = this.laneStats[li]!;
    for (let i = 0; i < copies; i++) {
      const n = lane.q.length - lane.head;
      // the TCP transport's enqueue: full in messages, or over the byte bound unless empty
      if (n >= lane.maxMessages || (lane.bytes + size > lane.maxBytes && n > 0)) {
        st.dropsFull++;
        this.drops.full++;
        this.droppedCount++;
        this.fullByType[m.type] = (this.fullByType[m.type] ?? 0) + 1;
        continue;
      }
      lane.q.push({ payload, to: m.to, size });
      lane.bytes += size;
      st.queued++;
      if (lane.bytes > st.maxQueuedBytes) st.maxQueuedBytes = lane.bytes;
    }
    if (!link.busy) this.pump(link);
  }

  /** Puts the next message on the wire: the first lane that holds one goes first. */
  private pump(link: Link): void {
    let li = 0;
    while (li < link.lanes.length && link.lanes[li]!.head === link.lanes[li]!.q.length) li++;
    if (li === link.lanes.length) return;
    const lane = link.lanes[li]!;
    const item = lane.q[lane.head]!;
    lane.q[lane.head++] = undefined as unknown as Queued;
    if (lane.head === lane.q.length) {
      lane.q = [];
      lane.head = 0;
    } else if (lane.head > 1024 && lane.head * 2 > lane.q.length) {
      lane.q = lane.q.slice(lane.head);
      lane.head = 0;
    }
    lane.bytes -= item.size;
    const st = this.laneStats[li]!;
    st.queued--;
    st.sent++;
    st.sentBytes += item.size;
    link.busy = true;
    const epoch = link.epoch;
    const bw = this.linkOpts!.bandwidthBytesPerMs;
    this.sched.after(bw === Infinity ? 0 : item.size / bw, () => {
      if (epoch !== link.epoch) {
        // an end crashed: the connection and the bytes on it are gone
        this.drops.down++;
        this.droppedCount++;
        return;
      }
      link.busy = false;
      const delay = this.opts.minDelayMs + this.rng.next() * (this.opts.maxDelayMs - this.opts.minDelayMs);
      const at = Math.max(this.sched.now() + delay, link.lastArrival);
      link.lastArrival = at;
      this.sched.at(at, () => this.arrive(link, epoch, item));
      this.pump(link);
    });
  }

  private arrive(link: Link, epoch: number, item: Queued): void {
    if (epoch !== link.epoch || !this.linkUp(link.from, item.to)) {
      this.drops.down++;
      this.droppedCount++;
      return;
    }
    const r = this.receivers.get(item.to);
    if (!r) return;
    r(item.payload instanceof Uint8Array ? decodeMessage(item.payload) : item.payload);
  }
}
