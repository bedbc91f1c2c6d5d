import { encodeMessage, type Message } from '@decree/protocol';

/**
 * Encodes a message sent to several peers once. A proposer sends the same `accept` (same slot
 * value, ballot, slot) to every member as separate message objects that differ only in `to`; the
 * encoding of the first is kept, and the next one whose fields are the very same values (===)
 * except `to` is that encoding with the `to` string replaced (a memcpy instead of packing every
 * command again).
 *
 * Only when it is exact: the message's keys before `to` must all hold ASCII strings (so the byte
 * offset of `to` is computed, not searched) and the bytes found there must be the `to` key and the
 * old value; otherwise the message is encoded normally. Messages with headers (trace context,
 * different per copy) and small messages (below `minBytes`) are never reused.
 */
export class EncodeOnce {
  private last: Message | undefined;
  private bytes: Uint8Array | undefined;
  /** offset and length of the encoded `to` value in `bytes` */
  private toAt = 0;
  private toLen = 0;
  hits = 0;

  constructor(private readonly minBytes = 2048) {}

  encode(msg: Message): Uint8Array {
    const prev = this.last;
    if (prev !== undefined && prev !== msg && sameExceptTo(prev, msg)) {
      const b = this.bytes!;
      const enc = encodeAsciiStr(msg.to);
      if (enc) {
        this.hits++;
        const out = Buffer.allocUnsafe(b.length - this.toLen + enc.length);
        out.set(b.subarray(0, this.toAt), 0);
        out.set(enc, this.toAt);
        out.set(b.subarray(this.toAt + this.toLen), this.toAt + enc.length);
        return out;
      }
    }
    const bytes = encodeMessage(msg);
    this.last = undefined;
    this.bytes = undefined;
    if (bytes.length >= this.minBytes && msg.headers === undefined) {
      const at = toOffset(msg, bytes);
      if (at >= 0) {
        this.last = msg;
        this.bytes = bytes;
        this.toAt = at;
        this.toLen = encodeAsciiStr(msg.to)!.length;
      }
    }
    return bytes;
  }
}

function sameExceptTo(a: Message, b: Message): boolean {
  if (b.headers !== undefined) return false;
  let na = 0;
  for (const k in a) {
    na++;
    if (k !== 'to' && (a as unknown as Record<string, unknown>)[k] !== (b as unknown as Record<string, unknown>)[k])
      return false;
  }
  let nb = 0;
  for (const _ in b) nb++;
  return na === nb;
}

/** MessagePack encoding of an ASCII string of up to 255 bytes (fixstr or str8); undefined otherwise. */
function encodeAsciiStr(s: string): Uint8Array | undefined {
  const n = s.length;
  if (n > 255) return undefined;
  const h = n < 32 ? 1 : 2;
  const out = new Uint8Array(h + n);
  if (h === 1) out[0] = 0xa0 | n;
  else {
    out[0] = 0xd9;
    out[1] = n;
  }
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return undefined;
    out[h + i] = c;
  }
  return out;
}

/** The offset of the encoded `to` value in `bytes`, or -1 when it cannot be computed exactly. */
function toOffset(msg: Message, bytes: Uint8Array): number {
  const first = bytes[0]!;
  let off: number;
  if (first >= 0x80 && first <= 0x8f) off = 1;
  else if (first === 0xde) off = 3;
  else return -1;
  for (const k in msg) {
    const v = (msg as unknown as Record<string, unknown>)[k];
    if (v === undefined) continue; // skipped by the encoder
    const ek = encodeAsciiStr(k);
    if (!ek) return -1;
    if (k === 'to') {
      off += ek.length;
      const ev = typeof v === 'string' ? encodeAsciiStr(v) : undefined;
      if (!ev || off + ev.length > bytes.length) return -1;
      // verify: the key and the value are where we computed them
      for (let i = 0; i < ek.length; i++) if (bytes[off - ek.length + i] !== ek[i]) return -1;
      for (let i = 0; i < ev.length; i++) if (bytes[off + i] !== ev[i]) return -1;
      return off;
    }
    if (typeof v !== 'string') return -1;
    const ev = encodeAsciiStr(v);
    if (!ev) return -1;
    off += ek.length + ev.length;
  }
  return -1;
}
