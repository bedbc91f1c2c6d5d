/**
 * The handshake as a pure step function: a state and one input (a frame payload, or a timeout) in,
 * a new state, the bytes to write and an outcome out. No sockets, no timers, no randomness (the
 * caller passes this end's nonce in), no clock: a transport (the TCP transport, the RDMA side
 * channel) feeds it the frames its FrameReader cuts and acts on the outcome.
 *
 *   dialler                                   listener
 *   startDialler(cfg) -> send hello   ---->   startListener(cfg); step(frame = hello)
 *                                               refuse: send a refusal welcome (status, error, code), end
 *   step(frame = welcome)             <----     or send welcome (+ proof with a secret)
 *     refuse locally: close, no frame           no secret: established
 *     or send auth (with a secret)    ---->   step(frame = auth): established, or AUTH (close)
 *     established
 *
 * The bytes on the wire are those of codec.ts; a refusal adds only the `code` field to the refusal
 * welcome's body (older peers ignore it). Checks, in order — listener: header, version, body, the
 * replica dialled, the shared secret's challenge, membership, TLS names, the host's `admit`; the
 * proof in the auth frame. Dialler: the welcome, a refusal in it, the version chosen, membership,
 * TLS names, the replica answering, `admit`, the listener's proof.
 */
import { type ReplicaId } from '@decree/protocol';
import {
  STATUS_OK,
  STATUS_REFUSED,
  STATUS_VERSION,
  decodeAuth,
  decodeHello,
  decodeHelloHeader,
  decodeWelcome,
  describeVersions,
  encodeAuth,
  encodeHello,
  encodeWelcome,
  handshakeProof,
  helloIds,
  negotiateVersion,
  proofMatches,
  type Hello,
  type VersionRange,
} from './codec.ts';
import { HandshakeError } from './errors.ts';
import { frame } from './framing.ts';
import type { RefusalCode } from './refusal.ts';

/** Largest frame accepted before a handshake completes. */
export const HANDSHAKE_MAX_FRAME_BYTES = 64 * 1024;

/** A policy check of the host on the peer's ids: a refusal, or undefined to admit. */
export type AdmitCheck = (ids: readonly ReplicaId[]) => { code: RefusalCode; reason: string } | undefined;

interface CommonConfig {
  /** the replica ids this end hosts (named in its hello or welcome) */
  readonly selfIds: readonly ReplicaId[];
  /** the protocol versions this end speaks */
  readonly versions: VersionRange;
  /** the cluster's shared secret: both ends prove they hold it (HMAC challenge-response) */
  readonly secret?: Uint8Array;
  /** the replica ids allowed at the other end (default: any) */
  readonly isMember?: (id: ReplicaId) => boolean;
  /**
   * mutual TLS: the names the peer's certificate gives it (CN, subjectAltNames); each id the peer
   * claims must be one of them. Undefined: no TLS check.
   */
  readonly peerNames?: readonly string[];
  /** the host's own last check of the peer's ids (after membership and TLS) */
  readonly admit?: AdmitCheck;
  /** this end's challenge: fresh random bytes (16) for every connection */
  readonly nonce: Uint8Array;
}

export interface ListenerConfig extends CommonConfig {
  /** the dialler's address as `host:port`, for messages */
  readonly remote: string;
}

export interface DiallerConfig extends CommonConfig {
  /** the replica dialled */
  readonly to: ReplicaId;
  /** how messages name the listener, e.g. `r2@10.0.0.2:7001` */
  readonly label: string;
}

export type HandshakePhase =
  /** listener: waiting for the hello */
  | 'hello'
  /** listener: welcome sent, waiting for the dialler's proof of the shared secret */
  | 'auth'
  /** dialler: hello sent, waiting for the welcome */
  | 'welcome'
  /** finished: established or refused; frames from now on are not the handshake's */
  | 'done';

export type HandshakeState =
  | {
      readonly side: 'listener';
      readonly phase: 'hello' | 'auth' | 'done';
      readonly config: ListenerConfig;
      /** how messages name the peer: `inbound host:port`, then `ids@host:port` once the hello is read */
      readonly label: string;
      /** set once the hello is accepted */
      readonly hello?: Hello;
      readonly version?: number;
    }
  | {
      readonly side: 'dialler';
      readonly phase: 'welcome' | 'done';
      readonly config: DiallerConfig;
      readonly label: string;
    };

export type HandshakeInput =
  /** one frame's payload (the FrameReader's output) */
  | { readonly type: 'frame'; readonly payload: Uint8Array }
  /** the caller's handshake timer fired */
  | { readonly type: 'timeout'; readonly afterMs: number };

/** What an established handshake agreed on. */
export interface HandshakeSession {
  readonly version: number;
  /** the replica ids the other end authenticated as */
  readonly remoteIds: readonly ReplicaId[];
  /** both challenges (empty when a side sent none): keys for MACs over later frames */
  readonly diallerNonce: Uint8Array;
  readonly listenerNonce: Uint8Array;
}

export interface Refusal {
  readonly code: RefusalCode;
  /** 'local': this end refused the peer; 'remote': the peer refused this end (code from its refusal) */
  readonly by: 'local' | 'remote';
  readonly side: 'listener' | 'dialler';
  /** one line for logs, naming the peer */
  readonly message: string;
  /** the bare reason (for a remote refusal: the peer's own text, or 'no reason given') */
  readonly reason: string;
  /** the remote replica, when known */
  readonly peer?: ReplicaId;
}

export type HandshakeOutcome =
  | { readonly kind: 'pending' }
  | { readonly kind: 'established'; readonly session: HandshakeSession }
  | { readonly kind: 'refused'; readonly refusal: Refusal };

export interface HandshakeStep {
  readonly state: HandshakeState;
  /**
   * bytes to write, already framed. With a refused outcome this is a refusal the peer can read:
   * write it, then end the connection. A refusal without bytes: just close.
   */
  readonly send?: Buffer;
  readonly outcome: HandshakeOutcome;
}

const PENDING: HandshakeOutcome = { kind: 'pending' };
const EMPTY = new Uint8Array(0);

/** A listener's handshake for one inbound connection: waits for the hello. */
export function startListener(config: ListenerConfig): HandshakeState {
  checkConfig(config);
  return { side: 'listener', phase: 'hello', config, label: `inbound ${config.remote}` };
}

/** A dialler's handshake for one outbound connection: the hello to write once connected. */
export function startDialler(config: DiallerConfig): HandshakeStep {
  checkConfig(config);
  const { versions, selfIds, to, nonce } = config;
  const hello = encodeHello({ minVersion: versions.min, maxVersion: versions.max, ids: selfIds, to, nonce });
  const state: HandshakeState = { side: 'dialler', phase: 'welcome', config, label: config.label };
  return { state, send: frame(hello), outcome: PENDING };
}

function checkConfig(c: CommonConfig): void {
  const v = c.versions;
  if (!(Number.isInteger(v.min) && Number.isInteger(v.max) && v.min >= 0 && v.max <= 0xffff && v.min <= v.max)) {
    throw new TypeError(`handshake: bad protocol versions ${v.min}..${v.max}`);
  }
  if (c.selfIds.length === 0) throw new TypeError('handshake: selfIds must name at least one replica');
  if (c.secret !== undefined && c.secret.length === 0) throw new TypeError('handshake: an empty secret');
}

/**
 * One step. Never throws on any input bytes: a malformed frame is a BAD_FRAME refusal. Throws a
 * HandshakeError only when called again after the outcome was decided (phase 'done').
 */
export function handshakeStep(state: HandshakeState, input: HandshakeInput): HandshakeStep {
  if (state.phase === 'done') throw new HandshakeError('handshake: already finished');
  if (input.type === 'timeout') {
    const what = state.phase === 'hello' ? 'hello' : state.phase === 'auth' ? 'proof of the shared secret' : 'welcome';
    const peer = state.side === 'listener' ? state.hello?.ids[0] : state.config.to;
    const message = `no ${what} from ${state.label} within ${input.afterMs} ms`;
    return finish(state, local(state, 'TIMEOUT', message, message, peer));
  }
  const payload = Buffer.isBuffer(input.payload)
    ? input.payload
    : Buffer.from(input.payload.buffer, input.payload.byteOffset, input.payload.byteLength);
  if (state.side === 'dialler') return onWelcome(state, payload);
  return state.phase === 'hello' ? onHello(state, payload) : onAuth(state, payload);
}

type ListenerState = Extract<HandshakeState, { side: 'listener' }>;
type DiallerState = Extract<HandshakeState, { side: 'dialler' }>;

/**
 * One line of at most 1000 characters: ids and a peer's error text come from the other end, and a
 * log line must not be forged or flooded with them.
 */
function oneLine(text: string): string {
  const flat = text.replace(/[\u0000-\u001f\u007f\u2028\u2029]+/g, ' ');
  return flat.length > 1000 ? `${flat.slice(0, 1000)}…` : flat;
}

function local(state: HandshakeState, code: RefusalCode, message: string, reason: string, peer?: ReplicaId): Refusal {
  const r = { code, by: 'local' as const, side: state.side, message: oneLine(message), reason: oneLine(reason) };
  return peer !== undefined ? { ...r, peer } : r;
}

function finish(state: HandshakeState, refusal: Refusal, send?: Buffer): HandshakeStep {
  return { state: { ...state, phase: 'done' }, ...(send ? { send } : {}), outcome: { kind: 'refused', refusal } };
}

/** A refusal the dialler can read: the status byte for peers of any build, the error text, the code. */
function refuseHello(state: ListenerState, code: RefusalCode, why: string, peer?: ReplicaId): HandshakeStep {
  const status = code === 'VERSION' ? STATUS_VERSION : STATUS_REFUSED;
  const welcome = encodeWelcome({ status, version: 0, ids: state.config.selfIds, error: why, code });
  return finish(state, local(state, code, why, why, peer), frame(welcome));
}

function badFrame(state: HandshakeState, e: unknown, peer?: ReplicaId): HandshakeStep {
  const why = e instanceof Error ? e.message : String(e);
  return finish(state, local(state, 'BAD_FRAME', `${why} from ${state.label}`, why, peer));
}

/**
 * Why the other end may not act as `ids`, or undefined when it may: a non-member id, a TLS
 * certificate that does not name every id, the host's own check.
 */
type Problem = { code: RefusalCode; reason: string } | undefined;

function identityProblem(c: CommonConfig, ids: readonly ReplicaId[]): Problem {
  if (c.isMember) {
    const outsiders = ids.filter((id) => !c.isMember!(id));
    if (outsiders.length > 0) {
      const verb = outsiders.length > 1 ? 'are not members' : 'is not a member';
      return { code: 'NOT_MEMBER', reason: `${outsiders.join(',')} ${verb} of this cluster` };
    }
  }
  if (c.peerNames) {
    const names = c.peerNames;
    const unnamed = ids.filter((id) => !names.includes(id));
    if (unnamed.length > 0) {
      const named = names.length ? [...new Set(names)].join(',') : 'nothing';
      return { code: 'TLS_NAME', reason: `the certificate names ${named}, not ${unnamed.join(',')}` };
    }
  }
  return c.admit?.(ids);
}

function onHello(state: ListenerState, payload: Buffer): HandshakeStep {
  const c = state.config;
  let head: { minVersion: number; maxVersion: number };
  try {
    head = decodeHelloHeader(payload);
  } catch (e) {
    return badFrame(state, e);
  }
  const version = negotiateVersion({ min: head.minVersion, max: head.maxVersion }, c.versions);
  if (version === undefined) {
    const who = helloIds(payload);
    const theirs = describeVersions(head.minVersion, head.maxVersion);
    const ours = `${c.versions.min}..${c.versions.max}`;
    const why = `peer ${who} speaks ${theirs}, this replica (${c.selfIds.join(',')}) supports ${ours}`;
    return refuseHello(state, 'VERSION', why, who === '?' ? undefined : who.split(',')[0]);
  }
  let hello: Hello;
  try {
    hello = decodeHello(payload);
  } catch (e) {
    return badFrame(state, e);
  }
  const ids = hello.ids.join(',');
  const at: ListenerState = { ...state, label: `${ids}@${c.remote}` };
  const peer = hello.ids[0];
  if (!c.selfIds.includes(hello.to)) {
    const why = `${ids} dialled replica ${hello.to}, but this process hosts ${c.selfIds.join(',')}`;
    return refuseHello(at, 'WRONG_REPLICA', why, peer);
  }
  if (c.secret && !hello.nonce) {
    const self = c.selfIds.join(',');
    const why = `${ids} sent no challenge, but this replica (${self}) requires shared-secret authentication`;
    return refuseHello(at, 'AUTH', why, peer);
  }
  const denied = identityProblem(c, hello.ids);
  if (denied) return refuseHello(at, denied.code, `refused ${ids}: ${denied.reason}`, peer);
  const proof =
    c.secret && hello.nonce
      ? handshakeProof(c.secret, 'decree/listener', hello.nonce, c.nonce, hello.ids, c.selfIds)
      : undefined;
  const welcome = encodeWelcome({
    status: STATUS_OK,
    version,
    ids: c.selfIds,
    nonce: c.nonce,
    ...(proof && { proof }),
  });
  const send = frame(welcome);
  if (c.secret) return { state: { ...at, phase: 'auth', hello, version }, send, outcome: PENDING };
  const session = { version, remoteIds: hello.ids, diallerNonce: hello.nonce ?? EMPTY, listenerNonce: c.nonce };
  return { state: { ...at, phase: 'done', hello, version }, send, outcome: { kind: 'established', session } };
}

function onAuth(state: ListenerState, payload: Buffer): HandshakeStep {
  const c = state.config;
  const hello = state.hello!;
  let proof: Uint8Array | undefined;
  try {
    proof = decodeAuth(payload);
  } catch {
    proof = undefined; // a frame that is not an auth frame is a missing proof
  }
  const expected = handshakeProof(c.secret!, 'decree/dialler', hello.nonce!, c.nonce, hello.ids, c.selfIds);
  if (!proofMatches(proof, expected)) {
    const why = `failed the shared-secret check (${proof ? 'different secret?' : 'no proof'})`;
    return finish(state, local(state, 'AUTH', `${state.label} ${why}`, why, hello.ids[0]));
  }
  const session = { version: state.version!, remoteIds: hello.ids, diallerNonce: hello.nonce!, listenerNonce: c.nonce };
  return { state: { ...state, phase: 'done' }, outcome: { kind: 'established', session } };
}

function onWelcome(state: DiallerState, payload: Buffer): HandshakeStep {
  const c = state.config;
  const label = state.label;
  const refuse = (code: RefusalCode, message: string, reason: string): HandshakeStep =>
    finish(state, local(state, code, message, reason, c.to));
  let w;
  try {
    w = decodeWelcome(payload);
  } catch (e) {
    return badFrame(state, e, c.to);
  }
  if (w.status !== STATUS_OK) {
    const reason = oneLine(w.error ?? 'no reason given');
    const code = w.code ?? (w.status === STATUS_VERSION ? 'VERSION' : 'REFUSED');
    const message = oneLine(`handshake refused by ${label}: ${reason}`);
    const refusal: Refusal = { code, by: 'remote', side: 'dialler', message, reason, peer: c.to };
    return finish(state, refusal);
  }
  if (w.version < c.versions.min || w.version > c.versions.max) {
    const chose = describeVersions(w.version, w.version);
    const why = `${label} chose ${chose}, this replica supports ${c.versions.min}..${c.versions.max}`;
    return refuse('VERSION', why, why);
  }
  const ids = w.ids.join(',');
  const denied =
    identityProblem(c, w.ids) ??
    (w.ids.includes(c.to) ? undefined : { code: 'WRONG_REPLICA' as const, reason: `it does not answer for ${c.to}` });
  if (denied) return refuse(denied.code, `refused listener ${label} (${ids}): ${denied.reason}`, denied.reason);
  let send: Buffer | undefined;
  if (c.secret || w.proof) {
    let why: string | undefined;
    if (!c.secret) why = 'requires a shared secret and none is configured here';
    else if (!w.proof || !w.nonce) why = 'did not prove the shared secret (is one configured there?)';
    else if (!proofMatches(w.proof, handshakeProof(c.secret, 'decree/listener', c.nonce, w.nonce, c.selfIds, w.ids)))
      why = 'failed the shared-secret check (different secret?)';
    if (why) return refuse('AUTH', `${label} ${why}`, why);
    send = frame(encodeAuth(handshakeProof(c.secret!, 'decree/dialler', c.nonce, w.nonce!, c.selfIds, w.ids)));
  }
  const session = { version: w.version, remoteIds: w.ids, diallerNonce: c.nonce, listenerNonce: w.nonce ?? EMPTY };
  return { state: { ...state, phase: 'done' }, ...(send ? { send } : {}), outcome: { kind: 'established', session } };
}
