export {
  instrumentBus,
  formatTraceparent,
  parseTraceparent,
  type InstrumentBusOptions,
  type BusInstrumentation,
} from './tracing.ts';
export {
  instrumentReplicaMetrics,
  METRIC_NAMES,
  type MetricsReplica,
  type ReplicaMetrics,
  type ReplicaMetricsOptions,
} from './metrics.ts';
