/**
 * Latency by stage in the in-process engine, measured from the bus without touching the roles: a
 * bus tap timestamps the messages that carry a command through the leader —
 *
 *   received      the client calls submitBatch
 *   to proposer   the replica hands the turn's commands to its proposer (`submit`)
 *   accept sent   the proposer puts them in a slot and sends `accept` (the wait for a batch and a free pipeline slot)
 *   durable       the second `accepted` (a majority of acceptors have the slot on their store)
 *   chosen        the proposer sends `decide` covering the slot
 *   applied       the leader's learner has executed the slot (`executed`)
 *   replied       the client's promise resolves
 *
 * Each stage is reported as its own duration (from the previous stage) and as the time since
 * received, per command (a slot's figures count once for each command in it).
 */
import { commandCount, type Message } from '@decree/protocol';
import type { Bus } from '@decree/bus';
import { Latency } from './stats.ts';

export const STAGES = ['to proposer', 'accept sent', 'durable', 'chosen', 'applied', 'replied'] as const;
export type Stage = (typeof STAGES)[number];
const DESCRIPTION: Record<Stage, string> = {
  'to proposer': 'received → handed to the proposer (end of the turn)',
  'accept sent': 'waited for a batch and a pipeline slot → accept sent',
  durable: 'accept sent → a majority durable (2nd accepted)',
  chosen: 'durable → chosen (decide sent)',
  applied: 'chosen → applied at the leader (executed)',
  replied: 'applied → the client has its reply',
};

interface ClientBatch {
  tRecv: number;
  n: number;
  firstId: number;
  tSubmit: number;
  lastApplied: number;
  applied: number;
}
interface SlotRec {
  firstId: number;
  n: number;
  tAccept: number;
  acks: number;
  tDurable: number;
  tChosen: number;
}

export interface StageRow {
  stage: string;
  description: string;
  p50ms: number;
  p99ms: number;
  /** time since received */
  cumP50ms: number;
  cumP99ms: number;
}

export class StageTracker {
  private readonly own = new Map<Stage, Latency>(STAGES.map((s) => [s, new Latency()]));
  private readonly cum = new Map<Stage, Latency>(STAGES.map((s) => [s, new Latency()]));
  private readonly unassigned: ClientBatch[] = [];
  private unassignedHead = 0;
  /** assigned client batches by increasing firstId */
  private batches: ClientBatch[] = [];
  private slots = new Map<number, SlotRec>();
  private chosenScan = 0;
  private maxAcceptSlot = 0;
  private off: (() => void) | undefined;
  /** slots seen from the leader / executed and attributed */
  slotsSeen = 0;
  slotsDone = 0;

  constructor(private readonly leader: string) {}

  attach(bus: Bus): this {
    this.off = bus.tap((m) => this.onMessage(m));
    return this;
  }
  detach(): void {
    this.off?.();
  }

  /** The client submits `n` commands in one call (before the call, same turn). */
  received(n: number): ClientBatch {
    const b: ClientBatch = { tRecv: performance.now(), n, firstId: -1, tSubmit: 0, lastApplied: 0, applied: 0 };
    this.unassigned.push(b);
    return b;
  }

  /** The client has the replies of batch `b`. */
  replied(b: ClientBatch): void {
    const t = performance.now();
    if (b.applied < b.n) return; // not all of it was attributed (e.g. a slot taken before the tap)
    this.own.get('replied')!.record(t - b.lastApplied, b.n);
    this.cum.get('replied')!.record(t - b.tRecv, b.n);
  }

  private onMessage(m: Message): void {
    const now = performance.now();
    switch (m.type) {
      case 'submit': {
        if (m.to !== this.leader) return;
        let k = 0;
        while (k < m.items.length && this.unassignedHead < this.unassigned.length) {
          const b = this.unassigned[this.unassignedHead++]!;
          b.firstId = m.items[k]!.id;
          b.tSubmit = now;
          this.own.get('to proposer')!.record(now - b.tRecv, b.n);
          this.cum.get('to proposer')!.record(now - b.tRecv, b.n);
          this.batches.push(b);
          k += b.n;
        }
        if (this.unassignedHead > 1024 && this.unassignedHead * 2 > this.unassigned.length) {
          this.unassigned.splice(0, this.unassignedHead);
          this.unassignedHead = 0;
        }
        return;
      }
      case 'accept': {
        if (
          m.from !== this.leader ||
          m.slot <= this.maxAcceptSlot ||
          m.value.k !== 'batch' ||
          m.value.origin !== this.leader
        )
          return;
        this.maxAcceptSlot = m.slot;
        this.slots.set(m.slot, {
          firstId: m.value.firstId,
          n: commandCount(m.value),
          tAccept: now,
          acks: 0,
          tDurable: 0,
          tChosen: 0,
        });
        this.slotsSeen++;
        return;
      }
      case 'accepted': {
        if (m.to !== this.leader) return;
        const s = this.slots.get(m.slot);
        if (s && ++s.acks === 2) s.tDurable = now;
        return;
      }
      case 'decide': {
        if (m.from !== this.leader || m.to !== this.leader) return;
        for (let slot = Math.max(this.chosenScan + 1, 1); slot <= m.upTo; slot++) {
          const s = this.slots.get(slot);
          if (s && s.tChosen === 0) s.tChosen = now;
        }
        if (m.upTo > this.chosenScan) this.chosenScan = m.upTo;
        return;
      }
      case 'executed': {
        if (m.to !== this.leader || m.from !== this.leader) return;
        const s = this.slots.get(m.slot);
        if (!s) return;
        this.slots.delete(m.slot);
        if (s.tDurable === 0 || s.tChosen === 0) return;
        this.slotDone(s, now);
        return;
      }
    }
  }

  private slotDone(s: SlotRec, tApplied: number): void {
    this.slotsDone++;
    const end = s.firstId + s.n;
    // the client batches overlapping [firstId, end): batches are in id order; drop finished ones from the front
    let i = this.lowerBound(s.firstId);
    for (; i < this.batches.length; i++) {
      const b = this.batches[i]!;
      if (b.firstId >= end) break;
      const lo = Math.max(b.firstId, s.firstId);
      const hi = Math.min(b.firstId + b.n, end);
      const n = hi - lo;
      if (n <= 0) continue;
      this.own.get('accept sent')!.record(s.tAccept - b.tSubmit, n);
      this.cum.get('accept sent')!.record(s.tAccept - b.tRecv, n);
      this.own.get('durable')!.record(s.tDurable - s.tAccept, n);
      this.cum.get('durable')!.record(s.tDurable - b.tRecv, n);
      this.own.get('chosen')!.record(s.tChosen - s.tDurable, n);
      this.cum.get('chosen')!.record(s.tChosen - b.tRecv, n);
      this.own.get('applied')!.record(tApplied - s.tChosen, n);
      this.cum.get('applied')!.record(tApplied - b.tRecv, n);
      b.applied += n;
      if (tApplied > b.lastApplied) b.lastApplied = tApplied;
    }
    let done = 0;
    while (done < this.batches.length && this.batches[done]!.applied >= this.batches[done]!.n) done++;
    if (done > 256) this.batches = this.batches.slice(done);
  }

  private lowerBound(id: number): number {
    let lo = 0;
    let hi = this.batches.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const b = this.batches[mid]!;
      if (b.firstId + b.n <= id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  rows(): StageRow[] {
    return STAGES.map((s) => ({
      stage: s,
      description: DESCRIPTION[s],
      p50ms: this.own.get(s)!.pct(50),
      p99ms: this.own.get(s)!.pct(99),
      cumP50ms: this.cum.get(s)!.pct(50),
      cumP99ms: this.cum.get(s)!.pct(99),
    }));
  }
}

export function stageTable(rows: readonly StageRow[]): string {
  const f = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : '-');
  return [
    '| stage | this stage p50 ms | p99 ms | since received p50 ms | p99 ms |',
    '|---|---:|---:|---:|---:|',
    `| received | | | 0 | 0 |`,
    ...rows.map(
      (r) => `| ${r.stage}: ${r.description} | ${f(r.p50ms)} | ${f(r.p99ms)} | ${f(r.cumP50ms)} | ${f(r.cumP99ms)} |`,
    ),
  ].join('\n');
}
