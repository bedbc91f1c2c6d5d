export { runSoak, type SoakOptions } from './harness.ts';
export {
  formatReport,
  formatWindow,
  formatFault,
  summarizeRecovery,
  type SoakReport,
  type RecoverySummary,
} from './report.ts';
export { Ledger, type SetEntry, type LedgerCheck, type LostWrite } from './ledger.ts';
export { Meter, percentile, zeroWindows, type Window, type HeldDown, type RecoveryWatch } from './meter.ts';
export {
  planFault,
  runSoakFaults,
  SOAK_FAULT_KINDS,
  DEFAULT_TIMING,
  type SoakFaultKind,
  type SoakFault,
  type FaultPlan,
  type FaultTiming,
} from './faults.ts';
export { runBulkClient, DEFAULT_SHAPE, type BulkShape, type BulkStats } from './bulk.ts';
export { runCheckedClient, checkedKeys } from './checked.ts';
export { PipelineConnection, encodeCommand, type PipelineResult } from './pipeline.ts';
export { smallValue, valueHeader, parseValue, makeTemplate, bigValueIntact } from './values.ts';
