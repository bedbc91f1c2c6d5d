import type { ReplicaId } from '@decree/protocol';
import type { RefusalCode } from './refusal.ts';

/**
 * The one shape of every error a transport reports: a code (a string union per transport), a
 * one-line message, the remote replica when known and, for a refused handshake, the refusal code.
 */
export class WireError<Code extends string = string> extends Error {
  constructor(
    readonly code: Code,
    message: string,
    /** the remote replica, when known */
    readonly peer?: ReplicaId,
    /** the handshake's refusal code, when this error is a refused handshake (either side) */
    readonly refusal?: RefusalCode,
  ) {
    super(message);
    this.name = 'WireError';
  }
}

/** A handshake frame that does not decode (bad magic, wrong kind, short, malformed body). */
export class HandshakeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HandshakeError';
  }
}

export type TransportErrorCode =
  /** the listener refused our hello: no protocol version in common */
  | 'version-refused'
  /** we refused a dialler's hello: no protocol version in common */
  | 'version-mismatch'
  /** the listener refused our hello for another reason (wrong replica, bad hello) */
  | 'handshake-refused'
  /** bad magic, malformed handshake, oversized frame, handshake timeout */
  | 'protocol'
  /** a frame that is not a valid message (the connection goes on) */
  | 'decode'
  /** a message we could not encode, or one too large to send */
  | 'encode'
  /** dialling failed (refused, unreachable, name not resolved, timeout) */
  | 'connect'
  /** a message for a replica this process does not host, or from one the peer did not name */
  | 'misrouted'
  /** shared-secret authentication failed or was missing on one side */
  | 'auth'
  /** the receiver threw */
  | 'receiver';

/** An error of the TCP transport (`@decree/transport-tcp`). */
export class TransportError extends WireError<TransportErrorCode> {
  constructor(code: TransportErrorCode, message: string, peer?: ReplicaId, refusal?: RefusalCode) {
    super(code, message, peer, refusal);
    this.name = 'TransportError';
  }
}

export type ShmTransportErrorCode =
  /** a ring file that could not be created or opened (other than "not there yet") */
  | 'ring'
  /** a frame that is not a valid message */
  | 'decode'
  /** a message we could not encode, or one larger than the ring's largest frame */
  | 'encode'
  /** a message for a replica that is not ours, or to a replica that is not a peer */
  | 'misrouted'
  /** the receiver threw */
  | 'receiver'
  /** no RDMA device, or the RDMA setup failed */
  | 'rdma';

/** An error of the shared-memory / RDMA ring transport (`@decree/transport-shm`). */
export class ShmTransportError extends WireError<ShmTransportErrorCode> {
  constructor(code: ShmTransportErrorCode, message: string, peer?: ReplicaId) {
    super(code, message, peer);
    this.name = 'ShmTransportError';
  }
}

export type RdmaExchangeErrorCode =
  /** the peer's side channel cannot be reached */
  | 'connect'
  /** no protocol version in common (either side refused) */
  | 'version'
  /** shared secret missing on one side, different, or a replica that is not a member */
  | 'auth'
  /** the peer refused the session for another reason */
  | 'refused'
  /** a malformed frame, bad endpoint details, a timeout */
  | 'protocol'
  /** our endpoints could not be made or connected with the peer's details */
  | 'rdma';

/** An error of the RDMA side channel (`RdmaSideChannel` in `@decree/transport-shm`). */
export class RdmaExchangeError extends WireError<RdmaExchangeErrorCode> {
  constructor(code: RdmaExchangeErrorCode, message: string, peer?: ReplicaId, refusal?: RefusalCode) {
    super(code, message, peer, refusal);
    this.name = 'RdmaExchangeError';
  }
}
