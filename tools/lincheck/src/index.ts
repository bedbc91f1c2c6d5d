export type { Op, OpKind, CheckOptions, CheckResult } from './types.ts';
export { HistoryFormatError, OP_KINDS } from './types.ts';
export {
  parseHistory,
  serializeHistory,
  serializeOp,
  validateOp,
  readHistoryFile,
  readHistoryFileSync,
  isIntegerString,
} from './format.ts';
export { checkHistory, describeOp } from './checker.ts';
export { HistoryRecorder, type OpHandle, type HistoryRecorderOptions } from './recorder.ts';
