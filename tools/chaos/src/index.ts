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
export { runFaults, FAULT_KINDS, type FaultKind, type FaultEvent, type FaultOptions } from './faults.ts';
export { runClient, newStats, ALL_KEYS, REGISTER_KEYS, COUNTER_KEYS, type WorkloadStats, type ClientOptions } from './workload.ts';
export { RespConnection, RespError, parseResp, respOnce, type RespValue } from './resp.ts';
export { Rng } from './rng.ts';
