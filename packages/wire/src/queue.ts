import { CONTRACTS, invariant, requires, type Lane } from '@decree/protocol';
import { FRAME_HEADER_BYTES, frames } from './framing.ts';

/** The bounds of one lane: both must hold for a payload to be queued (an empty lane takes any one). */
export interface LaneBounds {
  /** bytes waiting, each payload counted with the per-frame overhead */
  readonly maxBytes: number;
  readonly maxMessages: number;
}

const EMPTY = new Uint8Array(0);

/**
 * One bounded FIFO of encoded payloads. A payload that would take the lane past either bound is
 * dropped and counted (`drops`); an empty lane always takes one payload, however large, so a big
 * message is delayed by nothing but never refused for its size alone.
 */
export class LaneQueue {
  private queue: Uint8Array[] = [];
  private head = 0;
  private queued = 0;
  /** payloads refused because the lane was full */
  drops = 0;

  /**
   * @param bounds the lane's bounds
   * @param overheadBytes bytes counted per payload beyond its length (default the 4-byte frame header)
   */
  constructor(
    readonly bounds: LaneBounds,
    readonly overheadBytes: number = FRAME_HEADER_BYTES,
  ) {
    CONTRACTS && requires(bounds.maxBytes >= 0 && bounds.maxMessages >= 1, 'lane bounds: bytes ≥ 0, messages ≥ 1');
  }

  /** payloads waiting */
  get length(): number {
    return this.queue.length - this.head;
  }

  /** bytes waiting (payloads plus the per-payload overhead) */
  get bytes(): number {
    return this.queued;
  }

  /** Whether a payload of `size` bytes (length, without overhead) would be queued now. */
  fits(size: number): boolean {
    const n = this.length;
    if (n === 0) return true;
    return n < this.bounds.maxMessages && this.queued + size + this.overheadBytes <= this.bounds.maxBytes;
  }

  /** Queues `payload`; false (and one more drop counted) when the lane is full. */
  offer(payload: Uint8Array): boolean {
    if (!this.fits(payload.length)) {
      this.drops++;
      return false;
    }
    this.queue.push(payload);
    this.queued += payload.length + this.overheadBytes;
    CONTRACTS && invariant(this.length <= this.bounds.maxMessages || this.length === 1, 'lane within its bound');
    CONTRACTS && invariant(this.queued <= this.bounds.maxBytes || this.length === 1, 'lane within its byte bound');
    return true;
  }

  /** The waiting payloads, oldest first (valid until the next offer, take or shift). */
  items(): readonly Uint8Array[] {
    if (this.head > 0) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return this.queue;
  }

  /** Removes the `n` oldest payloads (those a ring accepted); returns the bytes they counted. */
  shift(n: number): number {
    CONTRACTS && requires(n >= 0 && n <= this.length, 'shift at most what waits');
    let bytes = 0;
    const to = this.head + n;
    for (let i = this.head; i < to; i++) {
      bytes += this.queue[i]!.length + this.overheadBytes;
      this.queue[i] = EMPTY;
    }
    this.head = to;
    this.queued -= bytes;
    this.compact();
    return bytes;
  }

  /**
   * Takes payloads from the head up to `maxBytes` (counted with overhead; at least one), framed
   * (u32 length + payload each) into one buffer: one socket write.
   */
  takeFramed(maxBytes: number): { buf: Buffer; count: number; bytes: number } {
    const from = this.head;
    let to = from;
    let bytes = 0;
    while (to < this.queue.length) {
      const n = this.queue[to]!.length + this.overheadBytes;
      if (to > from && bytes + n > maxBytes) break;
      bytes += n;
      to++;
    }
    const buf = frames(this.queue, from, to);
    for (let i = from; i < to; i++) this.queue[i] = EMPTY;
    this.head = to;
    this.queued -= bytes;
    this.compact();
    return { buf, count: to - from, bytes };
  }

  /** Empties the lane; returns how many payloads it held (not counted as drops). */
  clear(): number {
    const n = this.length;
    this.queue = [];
    this.head = 0;
    this.queued = 0;
    return n;
  }

  private compact(): void {
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}

export interface PeerQueueBounds {
  /** heartbeats, votes, prepares, accepts, decides (`laneOf` in @decree/protocol) */
  readonly control: LaneBounds;
  /** promise pages, catch-up replies, snapshot chunks, forwarded client batches */
  readonly bulk: LaneBounds;
}

/** The defaults of every transport: 8 MiB and 16384 messages per lane. */
export const DEFAULT_LANE_BOUNDS: LaneBounds = { maxBytes: 8 * 1024 * 1024, maxMessages: 16384 };

/**
 * What waits to be written to one peer: two bounded lanes, control ahead of bulk. Each lane drops
 * on its own when full and counts its drops, so a flood of bulk data never costs a heartbeat.
 */
export class PeerQueue {
  readonly control: LaneQueue;
  readonly bulk: LaneQueue;

  constructor(bounds: PeerQueueBounds, overheadBytes: number = FRAME_HEADER_BYTES) {
    this.control = new LaneQueue(bounds.control, overheadBytes);
    this.bulk = new LaneQueue(bounds.bulk, overheadBytes);
  }

  lane(lane: Lane): LaneQueue {
    return lane === 'bulk' ? this.bulk : this.control;
  }

  /** Queues `payload` in `lane`; false when that lane is full (the drop is counted there). */
  offer(payload: Uint8Array, lane: Lane): boolean {
    return this.lane(lane).offer(payload);
  }

  /** The lane to write from next: control while it holds anything, then bulk; undefined when both are empty. */
  next(): LaneQueue | undefined {
    if (this.control.length > 0) return this.control;
    if (this.bulk.length > 0) return this.bulk;
    return undefined;
  }

  get length(): number {
    return this.control.length + this.bulk.length;
  }

  get bytes(): number {
    return this.control.bytes + this.bulk.bytes;
  }

  get drops(): number {
    return this.control.drops + this.bulk.drops;
  }

  /** Empties both lanes; returns how many payloads they held. */
  clear(): number {
    return this.control.clear() + this.bulk.clear();
  }
}
