export {
  TARGETS,
  SELF_TEST_TARGETS,
  targetByName,
  FuzzFailure,
  mutate,
  chunk,
  cleanupTemp,
  knownIssues,
  VALID_CONFIG,
  framesTarget,
  handshakeTarget,
  messagesTarget,
  respCommandsTarget,
  respValuesTarget,
  configTarget,
  configFileTarget,
  type FuzzTarget,
} from './targets.ts';
export { fuzzTarget, type FuzzOptions, type FuzzResult } from './run.ts';
export { fuzzInWorker, type WatchedOptions, type WatchedResult } from './watchdog.ts';
