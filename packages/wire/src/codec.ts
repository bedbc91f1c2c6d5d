import { createHmac, timingSafeEqual } from 'node:crypto';
import { decodeValue, encodeValue, type ReplicaId } from '@decree/protocol';
import { HandshakeError } from './errors.ts';
import { isRefusalCode, type RefusalCode } from './refusal.ts';

/**
 * The handshake that opens every connection. Its fixed header (magic, kind, versions) never
 * changes between protocol versions, so a replica of any version can read any other's hello and
 * answer with a clear refusal during a rolling upgrade.
 *
 *   hello   (dialler -> listener): "DCRE" u8 kind=1 u16 minVersion u16 maxVersion,
 *                                  MessagePack { ids, to, nonce }
 *   welcome (listener -> dialler): "DCRE" u8 kind=2 u8 status u16 version,
 *                                  MessagePack { ids, nonce, proof? } | { ids, error, code? }
 *   auth    (dialler -> listener, only when the listener proved a shared secret): "DCRE" u8 kind=3,
 *                                  MessagePack { proof }
 *
 * A refusal carries the status byte (1: no version in common, 2: anything else), a one-line `error`
 * for logs, and the refusal `code` (a RefusalCode string). A peer that predates `code` ignores it
 * and still reads status and error; a refusal from such a peer carries no code, and decodeWelcome
 * derives one from the status (VERSION or REFUSED). The text is never parsed.
 *
 * With a shared secret both sides prove it: proof = HMAC-SHA256(secret, MessagePack([label,
 * dialler nonce, listener nonce, dialler ids, listener ids])), label "decree/listener" or
 * "decree/dialler". Fresh nonces on both sides make a recorded handshake useless.
 */
export const MAGIC = Buffer.from('DCRE', 'latin1');
export const KIND_HELLO = 1;
export const KIND_WELCOME = 2;
export const KIND_AUTH = 3;
/** A range of protocol versions, both ends included. */
export interface VersionRange {
  readonly min: number;
  readonly max: number;
}

/** The protocol versions this build speaks. */
export const PROTOCOL_VERSION_MIN = 1;
export const PROTOCOL_VERSION_MAX = 1;

export const STATUS_OK = 0;
/** refused: no protocol version in common */
export const STATUS_VERSION = 1;
/** refused for another reason (bad hello, wrong replica) */
export const STATUS_REFUSED = 2;

const HELLO_FIXED = 9;
const WELCOME_FIXED = 8;

export interface Hello {
  readonly minVersion: number;
  readonly maxVersion: number;
  readonly ids: readonly ReplicaId[];
  /** the replica the dialler means to reach */
  readonly to: ReplicaId;
  /** the dialler's challenge (16 random bytes) */
  readonly nonce?: Uint8Array;
}

export interface Welcome {
  readonly status: number;
  readonly version: number;
  readonly ids: readonly ReplicaId[];
  readonly error?: string;
  /** why the hello was refused (status other than STATUS_OK); derived from the status for older peers */
  readonly code?: RefusalCode;
  /** the listener's challenge */
  readonly nonce?: Uint8Array;
  /** the listener's proof of the shared secret (present when it has one) */
  readonly proof?: Uint8Array;
}

export function encodeHello(h: Hello): Buffer {
  const body = encodeValue(h.nonce ? { ids: h.ids, to: h.to, nonce: h.nonce } : { ids: h.ids, to: h.to });
  const out = Buffer.allocUnsafe(HELLO_FIXED + body.length);
  MAGIC.copy(out, 0);
  out.writeUInt8(KIND_HELLO, 4);
  out.writeUInt16BE(h.minVersion, 5);
  out.writeUInt16BE(h.maxVersion, 7);
  out.set(body, HELLO_FIXED);
  return out;
}

function checkMagic(buf: Uint8Array, kind: number, fixed: number, what: string): void {
  if (buf.length < fixed) throw new HandshakeError(`${what} too short (${buf.length} bytes)`);
  for (let i = 0; i < 4; i++) {
    if (buf[i] !== MAGIC[i]) throw new HandshakeError(`${what}: bad magic (not a Decree peer)`);
  }
  if (buf[4] !== kind) throw new HandshakeError(`${what}: unexpected frame kind ${buf[4]}`);
}

const isIdList = (x: unknown): x is string[] =>
  Array.isArray(x) && x.length > 0 && x.length <= 1024 && x.every((s) => typeof s === 'string' && s.length > 0);

/** The fixed part of a hello (readable from any version). Throws HandshakeError. */
export function decodeHelloHeader(buf: Buffer): { minVersion: number; maxVersion: number } {
  checkMagic(buf, KIND_HELLO, HELLO_FIXED, 'hello');
  const minVersion = buf.readUInt16BE(5);
  const maxVersion = buf.readUInt16BE(7);
  if (minVersion > maxVersion) {
    throw new HandshakeError(`hello: version range ${minVersion}..${maxVersion} is empty`);
  }
  return { minVersion, maxVersion };
}

/** The whole hello. Throws HandshakeError. */
export function decodeHello(buf: Buffer): Hello {
  const head = decodeHelloHeader(buf);
  let body: unknown;
  try {
    body = decodeValue(buf.subarray(HELLO_FIXED));
  } catch (e) {
    throw new HandshakeError(`hello: ${(e as Error).message}`);
  }
  const b = body as { ids?: unknown; to?: unknown; nonce?: unknown } | null;
  if (typeof b !== 'object' || b === null || !isIdList(b.ids) || typeof b.to !== 'string')
    throw new HandshakeError('hello: body must be { ids: string[], to: string }');
  return { ...head, ids: b.ids, to: b.to, ...(b.nonce instanceof Uint8Array ? { nonce: b.nonce } : {}) };
}

/** The ids named in a hello, best effort (for error messages about a hello we refuse). */
export function helloIds(buf: Buffer): string {
  try {
    return decodeHello(buf).ids.join(',');
  } catch {
    return '?';
  }
}

export function encodeWelcome(w: Welcome): Buffer {
  const body = encodeValue(
    w.status === STATUS_OK
      ? { ids: w.ids, ...(w.nonce ? { nonce: w.nonce } : {}), ...(w.proof ? { proof: w.proof } : {}) }
      : { ids: w.ids, error: w.error ?? 'refused', ...(w.code ? { code: w.code } : {}) },
  );
  const out = Buffer.allocUnsafe(WELCOME_FIXED + body.length);
  MAGIC.copy(out, 0);
  out.writeUInt8(KIND_WELCOME, 4);
  out.writeUInt8(w.status, 5);
  out.writeUInt16BE(w.version, 6);
  out.set(body, WELCOME_FIXED);
  return out;
}

export function decodeWelcome(buf: Buffer): Welcome {
  checkMagic(buf, KIND_WELCOME, WELCOME_FIXED, 'welcome');
  const status = buf.readUInt8(5);
  const version = buf.readUInt16BE(6);
  let body: unknown;
  try {
    body = decodeValue(buf.subarray(WELCOME_FIXED));
  } catch (e) {
    throw new HandshakeError(`welcome: ${(e as Error).message}`);
  }
  const b = body as { ids?: unknown; error?: unknown; code?: unknown; nonce?: unknown; proof?: unknown } | null;
  if (typeof b !== 'object' || b === null) throw new HandshakeError('welcome: body is not a map');
  const ids = isIdList(b.ids) ? b.ids : [];
  if (status === STATUS_OK && ids.length === 0) throw new HandshakeError('welcome: no replica ids');
  let code: RefusalCode | undefined;
  if (status !== STATUS_OK) code = isRefusalCode(b.code) ? b.code : status === STATUS_VERSION ? 'VERSION' : 'REFUSED';
  return {
    status,
    version,
    ids,
    ...(typeof b.error === 'string' ? { error: b.error } : {}),
    ...(code ? { code } : {}),
    ...(b.nonce instanceof Uint8Array ? { nonce: b.nonce } : {}),
    ...(b.proof instanceof Uint8Array ? { proof: b.proof } : {}),
  };
}

export function encodeAuth(proof: Uint8Array): Buffer {
  const body = encodeValue({ proof });
  const out = Buffer.allocUnsafe(5 + body.length);
  MAGIC.copy(out, 0);
  out.writeUInt8(KIND_AUTH, 4);
  out.set(body, 5);
  return out;
}

export function decodeAuth(buf: Buffer): Uint8Array {
  checkMagic(buf, KIND_AUTH, 5, 'auth');
  let body: unknown;
  try {
    body = decodeValue(buf.subarray(5));
  } catch (e) {
    throw new HandshakeError(`auth: ${(e as Error).message}`);
  }
  const p = (body as { proof?: unknown } | null)?.proof;
  if (!(p instanceof Uint8Array)) throw new HandshakeError('auth: no proof');
  return p;
}

/** HMAC-SHA256 proof of the shared secret for one handshake (see the header comment). */
export function handshakeProof(
  secret: Uint8Array,
  label: 'decree/listener' | 'decree/dialler',
  diallerNonce: Uint8Array,
  listenerNonce: Uint8Array,
  diallerIds: readonly string[],
  listenerIds: readonly string[],
): Buffer {
  const input = encodeValue([label, diallerNonce, listenerNonce, diallerIds, listenerIds]);
  return createHmac('sha256', secret).update(input).digest();
}

/** Constant-time comparison of a proof with the expected one. */
export function proofMatches(got: Uint8Array | undefined, expected: Uint8Array): boolean {
  return !!got && got.length === expected.length && timingSafeEqual(got, expected);
}

/** The highest version both ranges hold, or undefined. */
export function negotiateVersion(a: VersionRange, b: VersionRange): number | undefined {
  const hi = Math.min(a.max, b.max);
  const lo = Math.max(a.min, b.min);
  return hi >= lo ? hi : undefined;
}

export function describeVersions(min: number, max: number): string {
  return min === max ? `protocol version ${min}` : `protocol versions ${min}..${max}`;
}
