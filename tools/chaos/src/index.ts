export { runChaos, formatReport, type ChaosOptions, type ChaosReport } from './harness.ts';
export {
  ChaosCluster,
  ReplicaProcess,
  freePorts,
  killAllChildren,
  sleep,
  type ReplicaStatus,
  type ChaosClusterOptions,
} from './cluster.ts';
export { LinkProxy, type CutMode, type LinkProxyStats } from './proxy.ts';
export {
  runFaults,
  FAULT_KINDS,
  ALL_FAULT_KINDS,
  type FaultKind,
  type FaultEvent,
  type FaultOptions,
} from './faults.ts';
export {
  runClient,
  newStats,
  ALL_KEYS,
  REGISTER_KEYS,
  COUNTER_KEYS,
  type WorkloadStats,
  type ClientOptions,
} from './workload.ts';
export { RespConnection, RespError, parseResp, respOnce, type RespValue } from './resp.ts';
export { Rng } from './rng.ts';
export { runChunks, formatChunksReport, CHUNK_FAULT_KINDS, type ChunksOptions, type ChunksReport } from './chunks.ts';
export { CounterLedger, keyLabel, type CounterCheck, type CounterReport } from './counters.ts';
export {
  DEFAULT_CHUNK_SHAPE,
  runChunkWriter,
  newChunkStats,
  type ChunkShape,
  type ChunkStats,
  type PipelineRecord,
} from './chunk-writer.ts';
export { runRecordedClient, newRecordedStats, recordedKeys, type RecordedStats } from './recorded.ts';
export { runReconfig, type ConfigChange } from './reconfig.ts';
export { LeaderTracker, type TargetRole } from './leader.ts';
export { NO_RETRY_OPTIONS, connectNoRetry, doubtCause, causeLabel, type DoubtCause } from './redis.ts';
