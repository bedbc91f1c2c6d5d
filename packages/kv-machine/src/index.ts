export {
  Op,
  ResultTag,
  KvCommands,
  KvResults,
  KvDecodeError,
  KvCommandError,
  decodeResult,
  encodeResult,
  encodeError,
  encodeInt,
  encodeStatus,
  commandOp,
  isReadOnly,
  isReadOp,
  varintSize,
  writeVarint,
  readI64,
  writeI64,
  RESULT_OK,
  RESULT_NIL,
  type OpCode,
  type Bytes,
  type KvResult,
} from './codec.ts';
export { KvMachine, KvShareGroup, DEFAULT_SESSION_TTL_SLOTS, parseInt64, type KvMachineOptions, type SessionEntry } from './machine.ts';
export { KvSnapshotError, readSnapshot, writeSnapshot, SNAPSHOT_FORMAT, SNAPSHOT_VERSION, MAX_FRAME_BYTES, type SnapshotContents } from './snapshot.ts';
export { SCAN_SLOTS, ScanIndex, globMatcher, keyHash, scanSlot } from './scan.ts';
