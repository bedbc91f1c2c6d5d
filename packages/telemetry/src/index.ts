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
export { LatencyWindow } from './latency.ts';
export {
  EventLoopDelay,
  instrumentEventLoopDelay,
  type EventLoopDelayOptions,
  type EventLoopDelaySummary,
} from './event-loop.ts';
export {
  activePaths,
  chartOf,
  type Chart,
  type ChartState,
  type ChartStateType,
  type ChartTransition,
} from './statechart.ts';
