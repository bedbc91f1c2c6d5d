import type { Attributes, Meter } from '@opentelemetry/api';
import type { Bus } from '@decree/bus';
import { commandCount, type ReplicaId, type Slot } from '@decree/protocol';

/** What the metrics read from a replica (structurally @decree/replica's Replica; no import of it). */
export interface MetricsReplica {
  readonly id: ReplicaId;
  readonly ring: string;
  readonly bus: Bus;
  isLeader(): boolean;
  currentLeader(): ReplicaId | undefined;
  executedSlot(): Slot;
  highestChosenSlot(): Slot;
  statistics(): {
    commandsExecuted: number;
    slotsExecuted: number;
    elections: number;
    leaderships: number;
    log: { bytes: number; records: number };
    snapshots: { latestSlot: Slot; truncatedBelow: Slot; taken: number; installed: number };
    logUsage?: { usedBytes: number; capacityBytes: number } | undefined;
    acceptor?: { state: string; fullWrites: number; droppedReplies: number };
    busyRefusals?: number;
    busDrops?: number;
  };
  readonly proposer: { getSnapshot(): { context: { nextSlot: Slot; chosenUpTo: Slot } } };
}

export interface ReplicaMetricsOptions {
  /** transport byte counters (TcpTransport.stats()), when the transport has them */
  transportStats?: () => {
    bytesIn: number;
    bytesOut: number;
    framesIn?: number;
    framesOut?: number;
    controlDrops?: number;
    bulkDrops?: number;
    drops?: number;
  };
  /** clock for latencies, ms (default performance.now) */
  now?: () => number;
  /** bound on the submissions whose start time is remembered (default 65536) */
  maxPending?: number;
  /** also given each commit latency (ms): the status page's p50/p99 (LatencyWindow) */
  latencyWindow?: { record(ms: number): void };
}

export interface ReplicaMetrics {
  stop(): void;
  /** leader changes observed so far */
  readonly leaderChanges: number;
}

/** Metric names (Prometheus form; the OTel names are the same with dots). */
export const METRIC_NAMES = [
  'decree_commands_executed_total',
  'decree_slots_executed_total',
  'decree_commit_latency_ms',
  'decree_slots_in_flight',
  'decree_batch_size',
  'decree_log_bytes',
  'decree_log_slots',
  'decree_snapshot_age_slots',
  'decree_snapshot_age_seconds',
  'decree_leader_changes_total',
  'decree_elections_total',
  'decree_leaderships_total',
  'decree_is_leader',
  'decree_executed_slot',
  'decree_chosen_slot',
  'decree_transport_bytes_total',
  'decree_messages_dropped_total',
  'decree_acceptor_state',
  'decree_store_full_total',
  'decree_store_used_bytes',
  'decree_store_capacity_bytes',
  'decree_busy_refusals_total',
] as const;

const ACCEPTOR_STATES = ['serving', 'full', 'failed'] as const;

/**
 * Registers a replica's metrics on `meter` (OTel metrics API): counters and gauges read from
 * replica.statistics() at collection time, and from the bus tap the commit latency (submit to
 * executed, on the submitting replica), the batch size of each slot the leader proposes and the
 * leader changes. With a no-op meter (no SDK) the callbacks never run.
 */
export function instrumentReplicaMetrics(
  replica: MetricsReplica,
  meter: Meter,
  opts: ReplicaMetricsOptions = {},
): ReplicaMetrics {
  const now = opts.now ?? (() => performance.now());
  const maxPending = opts.maxPending ?? 65_536;
  const attrs: Attributes = { replica: replica.id, ring: replica.ring };
  const latency = meter.createHistogram('decree_commit_latency_ms', {
    description: 'submit to executed on the submitting replica, per batch (ms)',
    unit: 'ms',
    advice: { explicitBucketBoundaries: [0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000] },
  });
  const batchSize = meter.createHistogram('decree_batch_size', {
    description: 'commands per slot proposed by this replica as leader',
    advice: { explicitBucketBoundaries: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024] },
  });
  const started = new Map<number, number>(); // first submission id of a batch -> start time
  let lastBatchSlot = 0;
  let leader: ReplicaId | undefined = replica.currentLeader();
  let leaderChanges = 0;
  const checkLeader = () => {
    const l = replica.currentLeader();
    if (l !== leader) {
      if (l !== undefined) leaderChanges++;
      leader = l;
    }
  };
  const off = replica.bus.tap((msg, dir) => {
    switch (msg.type) {
      case 'submit':
        if (dir === 'local' && msg.from === replica.id && msg.items.length && started.size < maxPending)
          started.set(msg.items[0]!.id, now());
        return;
      case 'executed': {
        if (msg.to !== replica.id) return;
        const t = started.get(msg.firstId);
        if (t !== undefined) {
          started.delete(msg.firstId);
          latency.record(now() - t, attrs);
          opts.latencyWindow?.record(now() - t);
        }
        return;
      }
      case 'aborted':
        for (const id of msg.ids) started.delete(id);
        return;
      case 'accept':
        if (msg.from === replica.id && dir !== 'in' && msg.slot > lastBatchSlot) {
          lastBatchSlot = msg.slot;
          batchSize.record(msg.value.k === 'batch' ? commandCount(msg.value) : 0, attrs);
        }
        return;
      case 'leader-state':
      case 'heartbeat':
        checkLeader();
        return;
      default:
        return;
    }
  });

  let snapSlot = 0;
  let snapSeenAt = 0;
  const observables = [
    meter.createObservableCounter('decree_commands_executed_total', { description: 'commands executed (throughput)' }),
    meter.createObservableCounter('decree_slots_executed_total', { description: 'slots executed' }),
    meter.createObservableGauge('decree_slots_in_flight', {
      description: 'slots proposed and not yet chosen (leader)',
    }),
    meter.createObservableGauge('decree_log_bytes', { description: 'bytes written to the acceptor log', unit: 'By' }),
    meter.createObservableGauge('decree_log_slots', { description: 'slots in the log: chosen minus truncated below' }),
    meter.createObservableGauge('decree_snapshot_age_slots', {
      description: 'executed slot minus the latest snapshot slot (absent until a snapshot exists)',
    }),
    meter.createObservableGauge('decree_snapshot_age_seconds', {
      description: 'seconds since this replica first saw its latest snapshot (absent until one exists)',
      unit: 's',
    }),
    meter.createObservableCounter('decree_leader_changes_total', {
      description: 'leader changes seen by this replica',
    }),
    meter.createObservableCounter('decree_elections_total', { description: 'elections this replica started' }),
    meter.createObservableCounter('decree_leaderships_total', { description: 'times this replica became leader' }),
    meter.createObservableGauge('decree_is_leader', { description: '1 when this replica leads' }),
    meter.createObservableGauge('decree_executed_slot', { description: 'last executed slot' }),
    meter.createObservableGauge('decree_chosen_slot', { description: 'highest chosen slot known' }),
    meter.createObservableCounter('decree_transport_bytes_total', {
      description: 'bytes through the transport, by direction',
      unit: 'By',
    }),
  ] as const;
  const [
    cmds,
    slots,
    inflight,
    logBytes,
    logSlots,
    snapAgeSlots,
    snapAgeSec,
    changes,
    elections,
    leaderships,
    isLeader,
    executed,
    chosen,
    bytes,
  ] = observables;
  const extra = [
    meter.createObservableCounter('decree_messages_dropped_total', {
      description:
        'messages dropped: a full transport lane (lane=control|bulk), undeliverable on ' +
        'the bus (lane=bus), replies held while the store was full (lane=held-reply)',
    }),
    meter.createObservableGauge('decree_acceptor_state', {
      description: '1 for the acceptor state this replica is in (serving, full: writes wait for room, failed)',
    }),
    meter.createObservableCounter('decree_store_full_total', {
      description: 'acceptor writes refused because the store was full',
    }),
    meter.createObservableGauge('decree_store_used_bytes', {
      description: 'bytes used in a store of fixed capacity (pmem)',
      unit: 'By',
    }),
    meter.createObservableGauge('decree_store_capacity_bytes', {
      description: 'capacity of a store of fixed capacity (pmem)',
      unit: 'By',
    }),
    meter.createObservableCounter('decree_busy_refusals_total', {
      description: 'commands the leader refused as busy (its queue was full)',
    }),
  ];
  const [dropped, acceptorState, storeFull, storeUsed, storeCapacity, busy] = extra;
  const callback = (r: import('@opentelemetry/api').BatchObservableResult) => {
    const s = replica.statistics();
    checkLeader();
    r.observe(cmds, s.commandsExecuted, attrs);
    r.observe(slots, s.slotsExecuted, attrs);
    const p = replica.proposer.getSnapshot().context;
    r.observe(inflight, replica.isLeader() ? Math.max(0, p.nextSlot - 1 - p.chosenUpTo) : 0, attrs);
    r.observe(logBytes, s.log.bytes, attrs);
    const ch = replica.highestChosenSlot();
    r.observe(logSlots, Math.max(0, ch - s.snapshots.truncatedBelow), attrs);
    if (s.snapshots.latestSlot > 0) {
      if (s.snapshots.latestSlot !== snapSlot) {
        snapSlot = s.snapshots.latestSlot;
        snapSeenAt = now();
      }
      r.observe(snapAgeSlots, Math.max(0, replica.executedSlot() - snapSlot), attrs);
      r.observe(snapAgeSec, (now() - snapSeenAt) / 1000, attrs);
    }
    r.observe(changes, leaderChanges, attrs);
    r.observe(elections, s.elections, attrs);
    r.observe(leaderships, s.leaderships, attrs);
    r.observe(isLeader, replica.isLeader() ? 1 : 0, attrs);
    r.observe(executed, replica.executedSlot(), attrs);
    r.observe(chosen, ch, attrs);
    const t = opts.transportStats?.();
    if (t) {
      r.observe(bytes, t.bytesIn, { ...attrs, direction: 'in' });
      r.observe(bytes, t.bytesOut, { ...attrs, direction: 'out' });
      if (t.controlDrops !== undefined) r.observe(dropped!, t.controlDrops, { ...attrs, lane: 'control' });
      if (t.bulkDrops !== undefined) r.observe(dropped!, t.bulkDrops, { ...attrs, lane: 'bulk' });
    }
    if (s.busDrops !== undefined) r.observe(dropped!, s.busDrops, { ...attrs, lane: 'bus' });
    if (s.acceptor) {
      r.observe(dropped!, s.acceptor.droppedReplies, { ...attrs, lane: 'held-reply' });
      const top = s.acceptor.state.split('.')[0];
      for (const st of ACCEPTOR_STATES) r.observe(acceptorState!, top === st ? 1 : 0, { ...attrs, state: st });
      r.observe(storeFull!, s.acceptor.fullWrites, attrs);
    }
    if (s.logUsage) {
      r.observe(storeUsed!, s.logUsage.usedBytes, attrs);
      r.observe(storeCapacity!, s.logUsage.capacityBytes, attrs);
    }
    if (s.busyRefusals !== undefined) r.observe(busy!, s.busyRefusals, attrs);
  };
  meter.addBatchObservableCallback(callback, [...observables, ...extra]);
  return {
    stop() {
      off();
      meter.removeBatchObservableCallback(callback, [...observables, ...extra]);
      started.clear();
    },
    get leaderChanges() {
      return leaderChanges;
    },
  };
}
