export { FRAME_HEADER_BYTES, FrameReader, frame, frames, type FrameHandler } from './framing.ts';
export {
  MAGIC,
  KIND_HELLO,
  KIND_WELCOME,
  KIND_AUTH,
  PROTOCOL_VERSION_MIN,
  PROTOCOL_VERSION_MAX,
  STATUS_OK,
  STATUS_VERSION,
  STATUS_REFUSED,
  encodeHello,
  decodeHello,
  decodeHelloHeader,
  helloIds,
  encodeWelcome,
  decodeWelcome,
  encodeAuth,
  decodeAuth,
  handshakeProof,
  proofMatches,
  negotiateVersion,
  describeVersions,
  type Hello,
  type Welcome,
  type VersionRange,
} from './codec.ts';
export { REFUSAL_CODES, isRefusalCode, type RefusalCode } from './refusal.ts';
export {
  HANDSHAKE_MAX_FRAME_BYTES,
  startListener,
  startDialler,
  handshakeStep,
  type AdmitCheck,
  type ListenerConfig,
  type DiallerConfig,
  type HandshakePhase,
  type HandshakeState,
  type HandshakeInput,
  type HandshakeStep,
  type HandshakeOutcome,
  type HandshakeSession,
  type Refusal,
} from './handshake.ts';
export { LaneQueue, PeerQueue, DEFAULT_LANE_BOUNDS, type LaneBounds, type PeerQueueBounds } from './queue.ts';
export {
  WireError,
  HandshakeError,
  TransportError,
  ShmTransportError,
  RdmaExchangeError,
  type TransportErrorCode,
  type ShmTransportErrorCode,
  type RdmaExchangeErrorCode,
} from './errors.ts';
export { consoleLogger, silentLogger, resolveLogger, type WireLogger } from './log.ts';
export { backoffDelay, peerAddress, type BackoffOptions, type PeerAddress, type PeerDirectory } from './peer.ts';
