/**
 * Why a handshake failed, as a code both ends agree on. A listener that refuses a hello sends its
 * code in the refusal (the welcome's `code` field, next to the human-readable `error`), so the
 * dialler learns the reason without reading the text.
 */
export const REFUSAL_CODES = [
  /** no protocol version in common (or the listener chose one outside the dialler's range) */
  'VERSION',
  /** a handshake frame that does not decode: bad magic, wrong kind, truncated, malformed body, oversized */
  'BAD_FRAME',
  /** the hello names a replica this process does not host, or the welcome does not answer for the one dialled */
  'WRONG_REPLICA',
  /** the shared secret: missing on one side, no challenge, or a proof that does not match */
  'AUTH',
  /** a replica id that is not a member of the cluster */
  'NOT_MEMBER',
  /** (mutual TLS) the peer's certificate does not name every replica id it claims */
  'TLS_NAME',
  /** refused by the host's own policy, or by a peer too old to send a code */
  'REFUSED',
  /** the handshake did not complete in time */
  'TIMEOUT',
] as const;

export type RefusalCode = (typeof REFUSAL_CODES)[number];

const KNOWN: ReadonlySet<string> = new Set(REFUSAL_CODES);

export function isRefusalCode(x: unknown): x is RefusalCode {
  return typeof x === 'string' && KNOWN.has(x);
}
