import { C1, Packr, Unpackr } from 'msgpackr';
import { ROLE_OF, type Message, type MessageType } from './messages.ts';
import { lazyBatch, type WireCommands, wireCommands } from './lazy-batch.ts';
import type { Ballot, SlotValue } from './types.ts';

/**
 * The wire codec: plain MessagePack (no msgpackr records/extensions), so any MessagePack
 * implementation (msgpack-lite included) decodes what we write. See docs/decisions/0002-msgpack.md.
 */
// `skipValues: [undefined]` drops properties whose value is undefined (as JSON does) and
// `encodeUndefinedAsNil` writes an undefined array element as nil: without them msgpackr writes
// undefined as its own fixext(0) extension, which other MessagePack implementations do not know.
const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  variableMapSize: true,
  encodeUndefinedAsNil: true,
  skipValues: [undefined],
} as ConstructorParameters<typeof Packr>[0]);
const unpackr = new Unpackr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

const why = (e: unknown): string => (e instanceof Error ? e.message : typeof e);

// ---------------------------------------------------------------- a slot value's bytes, encoded once
//
// A slot's value (its commands) is the bulk of an accept and of the WAL record that stores it. Its
// MessagePack bytes are kept per value object: the leader packs a value once for the wire and its own
// WAL; a follower keeps the bytes it received and writes them to its WAL as they arrived (issue #19
// point 1). A map with `value` last is written as the other fields' map with one more entry and the
// value's bytes appended: plain MessagePack, the same to any decoder.

const VALUE_BYTES = new WeakMap<object, Uint8Array>();

/** The MessagePack bytes of a slot value (packed at most once per value object). */
export function slotValueBytes(v: SlotValue): Uint8Array {
  let b = VALUE_BYTES.get(v);
  if (b === undefined) {
    b = (v.k === 'batch' ? packBatch(v) : undefined) ?? packr.pack(v);
    VALUE_BYTES.set(v, b);
  }
  return b;
}

const BATCH_KEYS = new Set(['k', 'origin', 'inc', 'firstId', 'cmds', 'excl', 'last', 'at']);
const utf8Write = (Buffer.prototype as unknown as { utf8Write(s: string, o: number, n: number): number }).utf8Write;

const uintBytes = (n: number): number => (n < 0x80 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x1_0000_0000 ? 5 : 9);
function writeUint(o: Uint8Array, p: number, n: number): number {
  if (n < 0x80) o[p++] = n;
  else if (n < 0x100) {
    o[p++] = 0xcc;
    o[p++] = n;
  } else if (n < 0x10000) {
    o[p++] = 0xcd;
    o[p++] = n >>> 8;
    o[p++] = n & 0xff;
  } else if (n < 0x1_0000_0000) {
    o[p++] = 0xce;
    o[p++] = n >>> 24;
    o[p++] = (n >>> 16) & 0xff;
    o[p++] = (n >>> 8) & 0xff;
    o[p++] = n & 0xff;
  } else {
    // as msgpackr writes an integer of 2^32 or more: a float64 (exact for safe integers)
    o[p++] = 0xcb;
    F64[0] = n;
    for (let i = 7; i >= 0; i--) o[p++] = F_BYTES[i]!;
  }
  return p;
}
const strHeader = (n: number): number => (n < 32 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5);
/**
 * A MessagePack length header: the fix form (`fix | n` while n < fixBelow; fixBelow 0: none), else the 8-bit
 * form (t8; 0: none), else 16 or 32 bits big-endian.
 */
export function writeSized(
  o: Uint8Array,
  p: number,
  n: number,
  fix: number,
  fixBelow: number,
  t8: number,
  t16: number,
): number {
  if (n < fixBelow) o[p++] = fix | n;
  else if (t8 !== 0 && n < 0x100) {
    o[p++] = t8;
    o[p++] = n;
  } else if (n < 0x10000) {
    o[p++] = t16;
    o[p++] = n >>> 8;
    o[p++] = n & 0xff;
  } else {
    o[p++] = t16 + 1; // the 32-bit form follows the 16-bit one in every family (str, bin, array)
    o[p++] = n >>> 24;
    o[p++] = (n >>> 16) & 0xff;
    o[p++] = (n >>> 8) & 0xff;
    o[p++] = n & 0xff;
  }
  return p;
}
const writeStrHeader = (o: Uint8Array, p: number, n: number) => writeSized(o, p, n, 0xa0, 32, 0xd9, 0xda);
function writeKey(o: Uint8Array, p: number, k: string): number {
  o[p++] = 0xa0 | k.length;
  for (let i = 0; i < k.length; i++) o[p++] = k.charCodeAt(i);
  return p;
}

/**
 * A batch value written by hand (the leader's hot path: one value per slot, thousands of commands): the
 * same MessagePack as packr.pack gives, a bin per command copied once. Undefined (packr's path) for a
 * value with a field it does not know or a non-integer number.
 */
/** where packBatch's last value put its commands: the array header's offset, its end, the command bytes */
let PACKED_CMDS_AT = 0;
let PACKED_CMDS_END = 0;
let PACKED_PAYLOAD_BYTES = 0;

/**
 * A batch built in memory (a leader's proposal), packed now and read back as wire commands over its own
 * packed bytes, the form a follower keeps (issue #19). The per-command buffers of the leader's clients die
 * young instead of living in the acceptor's and learner's slots until the next truncation, where every
 * collection had to mark them; the learner applies from the packed bytes as a follower does. A value
 * packBatch does not pack (a field it does not know), or one already in wire form, is returned as is.
 */
export function packedBatch(v: Extract<SlotValue, { k: 'batch' }>): Extract<SlotValue, { k: 'batch' }> {
  if (wireCommands(v) !== undefined) return v;
  const bytes = packBatch(v);
  if (bytes === undefined) return v;
  const { cmds, ...fields } = v;
  const w: WireCommands = {
    buf: bytes,
    start: PACKED_CMDS_AT,
    end: PACKED_CMDS_END,
    count: cmds.length,
    payloadBytes: PACKED_PAYLOAD_BYTES,
  };
  const packed = lazyBatch(fields, w);
  VALUE_BYTES.set(packed, bytes);
  return packed;
}

/** @internal exported for its tests */
export function packBatch(v: Extract<SlotValue, { k: 'batch' }>): Uint8Array | undefined {
  for (const k in v) if (!BATCH_KEYS.has(k)) return undefined;
  const { origin, inc, firstId, cmds, excl, last, at } = v;
  if (!Number.isSafeInteger(inc) || inc < 0 || !Number.isSafeInteger(firstId) || firstId < 0) return undefined;
  if (at !== undefined && (!Number.isSafeInteger(at) || at < 0)) return undefined;
  const originBytes = Buffer.byteLength(origin, 'utf8');
  let fields = 5;
  let size = 1 + 2 + 6 + 7 + strHeader(originBytes) + originBytes + 4 + uintBytes(inc) + 8 + uintBytes(firstId) + 5;
  if (excl !== undefined) {
    fields += 1;
    size += 6;
  }
  if (last !== undefined) {
    fields += 1;
    size += 6;
  }
  if (at !== undefined) {
    fields += 1;
    size += 3 + uintBytes(at);
  }
  const n = cmds.length;
  size += n < 16 ? 1 : n < 0x10000 ? 3 : 5;
  for (let i = 0; i < n; i++) {
    const len = cmds[i]!.length;
    size += (len < 0x100 ? 2 : len < 0x10000 ? 3 : 5) + len;
  }
  const o = Buffer.allocUnsafe(size);
  let p = 0;
  o[p++] = 0x80 | fields;
  p = writeKey(o, p, 'k');
  p = writeKey(o, p, 'batch');
  p = writeKey(o, p, 'origin');
  p = writeStrHeader(o, p, originBytes);
  p += utf8Write.call(o, origin, p, originBytes);
  p = writeKey(o, p, 'inc');
  p = writeUint(o, p, inc);
  p = writeKey(o, p, 'firstId');
  p = writeUint(o, p, firstId);
  p = writeKey(o, p, 'cmds');
  PACKED_CMDS_AT = p;
  p = writeSized(o, p, n, 0x90, 16, 0, 0xdc);
  let payloadBytes = 0;
  for (let i = 0; i < n; i++) {
    const c = cmds[i]!;
    const len = c.length;
    p = writeSized(o, p, len, 0, 0, 0xc4, 0xc5);
    if (len <= 64) for (let j = 0; j < len; j++) o[p + j] = c[j]!;
    else o.set(c, p);
    p += len;
    payloadBytes += len;
  }
  PACKED_CMDS_END = p;
  PACKED_PAYLOAD_BYTES = payloadBytes;
  if (excl !== undefined) {
    p = writeKey(o, p, 'excl');
    o[p++] = excl ? 0xc3 : 0xc2;
  }
  if (last !== undefined) {
    p = writeKey(o, p, 'last');
    o[p++] = last ? 0xc3 : 0xc2;
  }
  if (at !== undefined) {
    p = writeKey(o, p, 'at');
    p = writeUint(o, p, at);
  }
  return p === size ? o : undefined;
}

const VALUE_KEY = [0xa5, 0x76, 0x61, 0x6c, 0x75, 0x65]; // fixstr "value"

/**
 * The MessagePack of `{ ...rest, value }` (value last) from the bytes of `rest` (a map of fewer than 15
 * entries) and the value's cached bytes.
 */
export function encodeWithValue(rest: object, value: SlotValue): Uint8Array {
  const parts = encodeWithValueParts(rest, value);
  if (parts.length === 1) return parts[0]!;
  const [head, v] = parts as [Uint8Array, Uint8Array];
  const out = Buffer.allocUnsafe(head.length + v.length);
  out.set(head, 0);
  out.set(v, head.length);
  return out;
}

/**
 * encodeWithValue's bytes in parts that a writer lays down one after the other: the head (the map
 * header, `rest`'s entries and the key "value") and the value's cached bytes, not copied; or one
 * part when `rest` is not a small map. A store copies them straight into its write buffer, so the
 * value is not first copied into a record of its own (issue #19: a follower's WAL record).
 */
export function encodeWithValueParts(rest: object, value: SlotValue): Uint8Array[] {
  const head = packr.pack(rest);
  const n = head[0]! & 0x0f;
  if ((head[0]! & 0xf0) !== 0x80 || n >= 15) return [packr.pack({ ...rest, value })];
  const v = slotValueBytes(value);
  const h = Buffer.allocUnsafe(head.length + VALUE_KEY.length);
  h.set(head, 0);
  h[0] = 0x80 | (n + 1);
  let o = head.length;
  for (const c of VALUE_KEY) h[o++] = c;
  return [h, v];
}

export function encodeMessage(msg: Message): Uint8Array {
  if (msg.type === 'accept') {
    const { value, ...rest } = msg;
    return encodeWithValue(rest, value);
  }
  return packr.pack(msg);
}

/**
 * The end of the MessagePack item at `p` in a buffer already decoded without error (so well formed);
 * -1 on anything unexpected.
 */
function skipItem(b: Uint8Array, p: number): number {
  let pending = 1;
  const n = b.length;
  const u16 = (at: number) => (b[at]! << 8) | b[at + 1]!;
  const u32 = (at: number) => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
  while (pending > 0) {
    if (p >= n) return -1;
    pending--;
    const t = b[p]!;
    if (t < 0x80 || t >= 0xe0) p += 1;
    else if (t < 0x90) {
      pending += 2 * (t & 0x0f);
      p += 1;
    } else if (t < 0xa0) {
      pending += t & 0x0f;
      p += 1;
    } else if (t < 0xc0) p += 1 + (t & 0x1f);
    else
      switch (t) {
        case 0xc0:
        case 0xc2:
        case 0xc3:
          p += 1;
          break;
        case 0xc4:
        case 0xd9:
          p += 2 + b[p + 1]!;
          break;
        case 0xc5:
        case 0xda:
          p += 3 + u16(p + 1);
          break;
        case 0xc6:
        case 0xdb:
          p += 5 + u32(p + 1);
          break;
        case 0xc7:
          p += 3 + b[p + 1]!;
          break;
        case 0xc8:
          p += 4 + u16(p + 1);
          break;
        case 0xc9:
          p += 6 + u32(p + 1);
          break;
        case 0xca:
        case 0xce:
        case 0xd2:
          p += 5;
          break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
          p += 9;
          break;
        case 0xcc:
        case 0xd0:
          p += 2;
          break;
        case 0xcd:
        case 0xd1:
          p += 3;
          break;
        case 0xd4:
          p += 3;
          break;
        case 0xd5:
          p += 4;
          break;
        case 0xd6:
          p += 6;
          break;
        case 0xd7:
          p += 10;
          break;
        case 0xd8:
          p += 18;
          break;
        case 0xdc:
          pending += u16(p + 1);
          p += 3;
          break;
        case 0xdd:
          pending += u32(p + 1);
          p += 5;
          break;
        case 0xde:
          pending += 2 * u16(p + 1);
          p += 3;
          break;
        case 0xdf:
          pending += 2 * u32(p + 1);
          p += 5;
          break;
        default:
          return -1;
      }
  }
  return p <= n ? p : -1;
}

// ---------------------------------------------------------------- accepts, decoded without a view per command
//
// An accept as Decree writes it (a map whose first entry is type: "accept") is read by a small decoder
// that leaves the value's commands in the buffer (lazy-batch.ts) and keeps the value's bytes. Anything it
// does not expect (another layout, a type it does not read, a bad length) sends the buffer to msgpackr
// and the full validation, as before, so its errors are unchanged.

const UNSUPPORTED = { fast: 'unsupported' } as const;
let FP = 0;
/** scratch for big-endian floats (this code runs little-endian: Node on x64 and arm64) */
const F64 = new Float64Array(1);
const F32 = new Float32Array(F64.buffer, 0, 1);
const F_BYTES = new Uint8Array(F64.buffer);
const utf8Slice = (Buffer.prototype as unknown as { utf8Slice(this: Uint8Array, s: number, e: number): string })
  .utf8Slice;

function fLen(b: Uint8Array, n: number): number {
  if (FP + n > b.length) throw UNSUPPORTED;
  let v = 0;
  for (let i = 0; i < n; i++) v = v * 256 + b[FP + i]!;
  FP += n;
  return v;
}
function fStr(b: Uint8Array, n: number): string {
  const s = FP;
  const e = s + n;
  if (e > b.length) throw UNSUPPORTED;
  FP = e;
  if (n < 24) {
    let out = '';
    for (let i = s; i < e; i++) {
      const c = b[i]!;
      if (c >= 0x80) return utf8Slice.call(b, s, e);
      out += String.fromCharCode(c);
    }
    return out;
  }
  return utf8Slice.call(b, s, e);
}
function fKey(b: Uint8Array): string {
  const t = b[FP++];
  let k: string;
  if (t !== undefined && t >= 0xa0 && t < 0xc0) k = fStr(b, t & 0x1f);
  else if (t === 0xd9) k = fStr(b, fLen(b, 1));
  else throw UNSUPPORTED;
  if (k === '__proto__') throw UNSUPPORTED;
  return k;
}
function fMap(b: Uint8Array, n: number): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) {
    const k = fKey(b);
    o[k] = fItem(b);
  }
  return o;
}
function fItem(b: Uint8Array): unknown {
  const t = b[FP++];
  if (t === undefined) throw UNSUPPORTED;
  if (t < 0x80) return t;
  if (t >= 0xe0) return t - 256;
  if (t < 0x90) return fMap(b, t & 0x0f);
  if (t < 0xa0) {
    const n = t & 0x0f;
    const a: unknown[] = new Array(n);
    for (let i = 0; i < n; i++) a[i] = fItem(b);
    return a;
  }
  if (t < 0xc0) return fStr(b, t & 0x1f);
  switch (t) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4:
    case 0xc5:
    case 0xc6: {
      const n = fLen(b, t === 0xc4 ? 1 : t === 0xc5 ? 2 : 4);
      if (FP + n > b.length) throw UNSUPPORTED;
      FP += n;
      return b.subarray(FP - n, FP);
    }
    case 0xcc:
      return fLen(b, 1);
    case 0xcd:
      return fLen(b, 2);
    case 0xce:
      return fLen(b, 4);
    case 0xcf: {
      const v = fLen(b, 8);
      if (!Number.isSafeInteger(v)) throw UNSUPPORTED;
      return v;
    }
    case 0xca:
    case 0xcb: {
      // msgpackr writes an integer of 2^32 or more as a float64
      const n = t === 0xca ? 4 : 8;
      if (FP + n > b.length) throw UNSUPPORTED;
      for (let i = 0; i < n; i++) F_BYTES[n - 1 - i] = b[FP + i]!;
      FP += n;
      return n === 4 ? F32[0] : F64[0];
    }
    case 0xd9:
      return fStr(b, fLen(b, 1));
    case 0xda:
      return fStr(b, fLen(b, 2));
    case 0xdb:
      return fStr(b, fLen(b, 4));
    case 0xde:
      return fMap(b, fLen(b, 2));
    default:
      throw UNSUPPORTED; // negative ints, floats, extensions, big arrays: msgpackr's path
  }
}
/** A slot value; the commands of a batch stay in the buffer. */
function fValue(b: Uint8Array): SlotValue {
  const t = b[FP++];
  let n: number;
  if (t !== undefined && (t & 0xf0) === 0x80) n = t & 0x0f;
  else if (t === 0xde) n = fLen(b, 2);
  else throw UNSUPPORTED;
  const o: Record<string, unknown> = {};
  let wire: WireCommands | undefined;
  for (let i = 0; i < n; i++) {
    const k = fKey(b);
    if (k !== 'cmds') {
      o[k] = fItem(b);
      continue;
    }
    const start = FP;
    const h = b[FP++];
    let count: number;
    if (h !== undefined && (h & 0xf0) === 0x90) count = h & 0x0f;
    else if (h === 0xdc) count = fLen(b, 2);
    else if (h === 0xdd) count = fLen(b, 4);
    else throw UNSUPPORTED;
    let payload = 0;
    for (let j = 0; j < count; j++) {
      const bt = b[FP++];
      if (bt !== 0xc4 && bt !== 0xc5 && bt !== 0xc6) throw UNSUPPORTED;
      const len = fLen(b, bt === 0xc4 ? 1 : bt === 0xc5 ? 2 : 4);
      if (FP + len > b.length) throw UNSUPPORTED;
      FP += len;
      payload += len;
    }
    wire = { buf: b, start, end: FP, count, payloadBytes: payload };
  }
  if (wire === undefined) return o as unknown as SlotValue;
  if (o.k !== 'batch') throw UNSUPPORTED;
  return lazyBatch(o, wire);
}

const ACCEPT_HEAD = [0xa4, 0x74, 0x79, 0x70, 0x65, 0xa6, 0x61, 0x63, 0x63, 0x65, 0x70, 0x74]; // "type" "accept"

/** An accept by the fast decoder, validated; undefined when the buffer is not one it reads. */
function decodeAcceptFast(b: Uint8Array): Message | undefined {
  const t = b[0];
  if (t === undefined || (t & 0xf0) !== 0x80 || b.length < 13) return undefined;
  for (let i = 0; i < ACCEPT_HEAD.length; i++) if (b[1 + i] !== ACCEPT_HEAD[i]) return undefined;
  let raw: Record<string, unknown>;
  let valueStart = 0;
  let valueEnd = 0;
  try {
    FP = 13;
    raw = { type: 'accept' };
    const n = t & 0x0f;
    for (let i = 1; i < n; i++) {
      const k = fKey(b);
      if (k === 'value') {
        valueStart = FP;
        raw.value = fValue(b);
        valueEnd = FP;
      } else raw[k] = fItem(b);
    }
    if (FP !== b.length || valueEnd === 0) return undefined;
  } catch (e) {
    if (e === UNSUPPORTED) return undefined;
    throw e;
  }
  const msg = validateMessage(raw);
  if (msg.type === 'accept') VALUE_BYTES.set(msg.value, b.subarray(valueStart, valueEnd));
  return msg;
}

/** Remembers the bytes of a decoded top-level map's `value` field as that value's encoding. */
function keepValueBytes(buf: Uint8Array, value: object): void {
  const t = buf[0]!;
  let count: number;
  let p: number;
  if ((t & 0xf0) === 0x80) {
    count = t & 0x0f;
    p = 1;
  } else if (t === 0xde) {
    count = (buf[1]! << 8) | buf[2]!;
    p = 3;
  } else return;
  for (let i = 0; i < count; i++) {
    const isValue =
      buf[p] === 0xa5 && buf[p + 1] === 0x76 && buf[p + 2] === 0x61 && buf[p + 3] === 0x6c && buf[p + 4] === 0x75;
    const keyEnd = skipItem(buf, p);
    if (keyEnd < 0) return;
    const end = skipItem(buf, keyEnd);
    if (end < 0) return;
    if (isValue && buf[p + 5] === 0x65) {
      VALUE_BYTES.set(value, buf.subarray(keyEnd, end));
      return;
    }
    p = end;
  }
}

/**
 * Decodes and validates; throws DecodeError (never anything else) on bad input.
 * Byte fields of the result are views into `buf` (no copy): do not reuse `buf` while the message lives.
 */
export function decodeMessage(buf: Uint8Array): Message {
  const fast = decodeAcceptFast(buf);
  if (fast !== undefined) return fast;
  let raw: unknown;
  try {
    raw = unpackr.unpack(buf);
  } catch (e) {
    throw new DecodeError(`not MessagePack: ${why(e)}`);
  }
  const msg = validateMessage(raw);
  if (msg.type === 'accept') keepValueBytes(buf, msg.value);
  return msg;
}

/** Encodes any plain value as MessagePack (used by storage records and snapshots). */
export function encodeValue(v: unknown): Uint8Array {
  return packr.pack(v);
}
export function decodeValue(buf: Uint8Array): unknown {
  let v: unknown;
  try {
    v = unpackr.unpack(buf);
  } catch (e) {
    throw new DecodeError(`not MessagePack: ${why(e)}`);
  }
  // msgpackr returns a marker object for the never-used byte 0xc1 instead of failing
  if (v === C1) throw new DecodeError('not MessagePack: 0xc1');
  return v;
}

// ---------------------------------------------------------------- validation
const isObj = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && x !== C1 && !Array.isArray(x) && !(x instanceof Uint8Array);
const isInt = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isStr = (x: unknown): x is string => typeof x === 'string';
const isBool = (x: unknown): x is boolean => typeof x === 'boolean';
const isBytes = (x: unknown): x is Uint8Array => x instanceof Uint8Array;
const isU32 = (x: unknown): x is number => isInt(x) && x <= 0xffffffff;
/** never calls user toString/valueOf (a decoded map may carry a non-callable `toString` key) */
const describe = (x: unknown): string =>
  typeof x === 'string'
    ? JSON.stringify(x.length > 40 ? `${x.slice(0, 40)}…` : x)
    : x === null
      ? 'null'
      : Array.isArray(x)
        ? 'array'
        : typeof x;

function fail(what: string): never {
  throw new DecodeError(`invalid message: ${what}`);
}

/** A required (or, with `optional`, optional) array of strings, naming the bad element. */
function strArray(o: Record<string, unknown>, field: string, path: string, optional = false): void {
  if (optional && (o[field] === undefined || o[field] === null)) {
    if (o[field] === null) delete o[field];
    return;
  }
  const a = needArray(o, field, path);
  for (let i = 0; i < a.length; i++) if (!isStr(a[i])) fail(`${path}.${field}[${i}] is not a string`);
}
/** A configuration {epoch, members, startSlot}, naming the bad field. */
function configuration(o: Record<string, unknown>, field: string, path: string, optional = false): void {
  const c = o[field];
  if (optional && (c === undefined || c === null)) {
    if (c === null) delete o[field];
    return;
  }
  const p = `${path}.${field}`;
  if (!isObj(c)) fail(`${p} is ${c === undefined ? 'missing' : `not an object (${describe(c)})`}`);
  need(c, 'epoch', isInt, p);
  need(c, 'startSlot', isInt, p);
  strArray(c, 'members', p);
}

export function isBallot(x: unknown): x is Ballot {
  return isObj(x) && isInt(x.round) && isStr(x.leader);
}

type Check = (x: unknown) => boolean;

/** A required field of `o`; `path` names it in the error. */
function need(o: Record<string, unknown>, field: string, ok: Check, path: string): void {
  if (!ok(o[field]))
    fail(`${path}.${field} is ${o[field] === undefined ? 'missing' : `not valid (${describe(o[field])})`}`);
}
/**
 * An optional field: absent, undefined, or valid. MessagePack has no undefined, so other
 * implementations write an undefined property as nil: nil counts as absent and is removed.
 */
function opt(o: Record<string, unknown>, field: string, ok: Check, path: string): void {
  const x = o[field];
  if (x === undefined) return;
  if (x === null) {
    delete o[field];
    return;
  }
  if (!ok(x)) fail(`${path}.${field} is not valid (${describe(x)})`);
}
function needArray(o: Record<string, unknown>, field: string, path: string): unknown[] {
  const x = o[field];
  if (!Array.isArray(x)) fail(`${path}.${field} is ${x === undefined ? 'missing' : `not an array (${describe(x)})`}`);
  return x;
}

export function validateSlotValue(v: unknown, where = 'value'): SlotValue {
  if (!isObj(v)) fail(`${where} is not an object`);
  switch (v.k) {
    case 'noop':
      return v as SlotValue;
    case 'batch': {
      need(v, 'origin', isStr, where);
      need(v, 'inc', isInt, where);
      need(v, 'firstId', isInt, where);
      // commands left in their wire bytes were checked to be bins when they were read
      if (wireCommands(v as SlotValue) === undefined) {
        const cmds = needArray(v, 'cmds', where);
        for (let i = 0; i < cmds.length; i++) if (!isBytes(cmds[i])) fail(`${where}.cmds[${i}] is not bytes`);
      }
      opt(v, 'excl', isBool, where);
      opt(v, 'last', isBool, where);
      opt(v, 'at', isInt, where);
      return v as SlotValue;
    }
    case 'config': {
      need(v, 'epoch', isInt, where);
      need(v, 'origin', isStr, where);
      need(v, 'inc', isInt, where);
      need(v, 'firstId', isInt, where);
      const members = needArray(v, 'members', where);
      for (let i = 0; i < members.length; i++) if (!isStr(members[i])) fail(`${where}.members[${i}] is not a string`);
      opt(v, 'cookie', isBytes, where);
      return v as SlotValue;
    }
    default:
      return fail(`${where}.k: unknown kind ${describe(v.k)}`);
  }
}

/**
 * Checks that `raw` is a well-formed Message (every required field present and well-typed, every
 * optional one absent or well-typed) and returns it. Throws DecodeError naming the first bad field,
 * as `<type>.<field>` (for instance `accept.value.cmds[2]`). A nil optional field is removed.
 */
export function validateMessage(raw: unknown): Message {
  if (!isObj(raw)) fail('not an object');
  const t = raw.type;
  if (!isStr(t) || !Object.prototype.hasOwnProperty.call(ROLE_OF, t)) fail(`unknown type ${describe(t)}`);
  const m = raw;
  need(m, 'ring', isStr, t);
  need(m, 'from', isStr, t);
  need(m, 'to', isStr, t);
  if (m.headers !== undefined && m.headers !== null) {
    const h = m.headers;
    if (!isObj(h)) fail(`${t}.headers is not an object`);
    for (const [k, v] of Object.entries(h)) if (!isStr(v)) fail(`${t}.headers.${k} is not a string`);
  } else if (m.headers === null) delete m.headers;
  switch (t as MessageType) {
    case 'prepare':
      need(m, 'ballot', isBallot, t);
      need(m, 'fromSlot', isInt, t);
      opt(m, 'cookie', isBytes, t);
      opt(m, 'pageFrom', isInt, t);
      break;
    case 'accept':
      need(m, 'ballot', isBallot, t);
      need(m, 'slot', isInt, t);
      need(m, 'decidedUpTo', isInt, t);
      validateSlotValue(m.value, `${t}.value`);
      break;
    case 'promise': {
      need(m, 'ballot', isBallot, t);
      need(m, 'fromSlot', isInt, t);
      need(m, 'truncatedBelow', isInt, t);
      opt(m, 'executedUpTo', isInt, t);
      opt(m, 'pageFrom', isInt, t);
      opt(m, 'more', isInt, t);
      const acc = needArray(m, 'accepted', t);
      for (let i = 0; i < acc.length; i++) {
        const e = acc[i];
        const p = `${t}.accepted[${i}]`;
        if (!isObj(e)) fail(`${p} is not an object`);
        need(e, 'slot', isInt, p);
        need(e, 'ballot', isBallot, p);
        validateSlotValue(e.value, `${p}.value`);
      }
      break;
    }
    case 'accepted':
      need(m, 'ballot', isBallot, t);
      need(m, 'slot', isInt, t);
      break;
    case 'nack':
      need(m, 'ballot', isBallot, t);
      need(m, 'promised', isBallot, t);
      opt(m, 'slot', isInt, t);
      opt(m, 'reason', isStr, t);
      break;
    case 'learn':
      need(m, 'ballot', isBallot, t);
      need(m, 'slot', isInt, t);
      need(m, 'decidedUpTo', isInt, t);
      validateSlotValue(m.value, `${t}.value`);
      break;
    case 'decide':
      need(m, 'ballot', isBallot, t);
      need(m, 'upTo', isInt, t);
      break;
    case 'catchup-req':
      need(m, 'fromSlot', isInt, t);
      need(m, 'toSlot', isInt, t);
      break;
    case 'catchup-rep': {
      need(m, 'truncatedBelow', isInt, t);
      need(m, 'chosenUpTo', isInt, t);
      const entries = needArray(m, 'entries', t);
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i];
        const p = `${t}.entries[${i}]`;
        if (!isObj(e)) fail(`${p} is not an object`);
        need(e, 'slot', isInt, p);
        validateSlotValue(e.value, `${p}.value`);
      }
      break;
    }
    case 'heartbeat':
      need(m, 'ballot', isBallot, t);
      need(m, 'decidedUpTo', isInt, t);
      opt(m, 'cookie', isBytes, t);
      break;
    case 'heartbeat-ack':
      need(m, 'ballot', isBallot, t);
      need(m, 'appliedUpTo', isInt, t);
      opt(m, 'payload', isBytes, t);
      break;
    case 'campaign':
      need(m, 'round', isInt, t);
      opt(m, 'cookie', isBytes, t);
      break;
    case 'resign':
      need(m, 'reason', isStr, t);
      break;
    case 'leader-state':
      need(m, 'state', (x) => x === 'follower' || x === 'preparing' || x === 'leading', t);
      need(m, 'ballot', isBallot, t);
      need(m, 'maxRound', isInt, t);
      need(m, 'decidedUpTo', isInt, t);
      need(m, 'executedUpTo', isInt, t);
      opt(m, 'leaderHint', isStr, t);
      opt(m, 'relinquished', isBool, t);
      configuration(m, 'config', t, true);
      strArray(m, 'observers', t, true);
      break;
    case 'progress':
      need(m, 'executedUpTo', isInt, t);
      need(m, 'chosenUpTo', isInt, t);
      configuration(m, 'config', t, true);
      break;
    case 'submit': {
      const items = needArray(m, 'items', t);
      for (let i = 0; i < items.length; i++) {
        const it = items[i];
        const p = `${t}.items[${i}]`;
        if (!isObj(it)) fail(`${p} is not an object`);
        need(it, 'id', isInt, p);
        need(it, 'cmd', isBytes, p);
        opt(it, 'excl', isBool, p);
        opt(it, 'last', isBool, p);
      }
      break;
    }
    case 'executed': {
      need(m, 'slot', isInt, t);
      need(m, 'inc', isInt, t);
      need(m, 'firstId', isInt, t);
      const results = needArray(m, 'results', t);
      for (let i = 0; i < results.length; i++) {
        if (results[i] === null)
          results[i] = undefined; // nil on the wire
        else if (results[i] !== undefined && !isBytes(results[i])) fail(`${t}.results[${i}] is not bytes`);
      }
      break;
    }
    case 'aborted': {
      const ids = needArray(m, 'ids', t);
      for (let i = 0; i < ids.length; i++) if (!isInt(ids[i])) fail(`${t}.ids[${i}] is not an integer`);
      need(m, 'maybeChosen', isBool, t);
      opt(m, 'leaderHint', isStr, t);
      opt(m, 'busy', isBool, t);
      break;
    }
    case 'recovered':
      need(m, 'ballot', isBallot, t);
      need(m, 'upTo', isInt, t);
      break;
    case 'learner-event':
      need(m, 'executedUpTo', isInt, t);
      need(m, 'chosenUpTo', isInt, t);
      break;
    case 'client-req': {
      need(m, 'id', isInt, t);
      opt(m, 'inc', isInt, t);
      const cmds = needArray(m, 'cmds', t);
      for (let i = 0; i < cmds.length; i++) if (!isBytes(cmds[i])) fail(`${t}.cmds[${i}] is not bytes`);
      break;
    }
    case 'read-confirm':
      need(m, 'ballot', isBallot, t);
      need(m, 'seq', isInt, t);
      break;
    case 'read-ack':
      need(m, 'ballot', isBallot, t);
      need(m, 'seq', isInt, t);
      need(m, 'ok', (x: unknown) => typeof x === 'boolean', t);
      break;
    case 'snap-req':
      need(m, 'xfer', isInt, t);
      need(m, 'slot', isInt, t);
      need(m, 'crc', isU32, t);
      need(m, 'next', isInt, t);
      need(m, 'window', isInt, t);
      break;
    case 'snap-chunk': {
      need(m, 'xfer', isInt, t);
      need(m, 'slot', isInt, t);
      need(m, 'length', isInt, t);
      need(m, 'crc', isU32, t);
      need(m, 'index', isInt, t);
      need(m, 'count', isInt, t);
      need(m, 'chunkCrc', isU32, t);
      need(m, 'data', isBytes, t);
      const members = needArray(m, 'members', t);
      for (let i = 0; i < members.length; i++) if (!isStr(members[i])) fail(`${t}.members[${i}] is not a string`);
      opt(m, 'epoch', isInt, t);
      break;
    }
    case 'pre-vote':
      need(m, 'round', isInt, t);
      break;
    case 'pre-vote-ack':
      need(m, 'round', isInt, t);
      need(m, 'granted', isBool, t);
      break;
    case 'bootstrap':
      strArray(m, 'members', t);
      break;
    case 'bootstrap-ack':
      need(m, 'ok', isBool, t);
      opt(m, 'error', isStr, t);
      break;
    case 'snap-executed':
      need(m, 'slot', isInt, t);
      need(m, 'bytes', isInt, t);
      need(m, 'requested', isBool, t);
      break;
    case 'snap-need':
      need(m, 'peer', isStr, t);
      need(m, 'below', isInt, t);
      break;
    case 'snap-take':
      need(m, 'seq', isInt, t);
      opt(m, 'forced', isBool, t);
      break;
    case 'snap-data':
      need(m, 'seq', isInt, t);
      need(m, 'slot', isInt, t);
      need(m, 'data', isBytes, t);
      configuration(m, 'config', t, true);
      opt(m, 'error', isStr, t);
      opt(m, 'requested', isBool, t);
      opt(m, 'refused', isBool, t);
      break;
    case 'snap-saved':
      need(m, 'slot', isInt, t);
      need(m, 'name', isStr, t);
      need(m, 'copied', isBool, t);
      break;
    case 'snap-install':
      need(m, 'seq', isInt, t);
      need(m, 'slot', isInt, t);
      need(m, 'data', isBytes, t);
      configuration(m, 'config', t, true);
      break;
    case 'snap-installed':
      need(m, 'seq', isInt, t);
      need(m, 'ok', isBool, t);
      opt(m, 'error', isStr, t);
      break;
    case 'log-full':
      need(m, 'usedBytes', isInt, t);
      need(m, 'capacityBytes', isInt, t);
      break;
    case 'log-truncate':
    case 'retain-truncate':
      need(m, 'below', isInt, t);
      break;
    case 'exec-mark': {
      need(m, 'upTo', isInt, t);
      opt(m, 'flush', isBool, t);
      if (m.decided !== undefined) {
        if (!isObj(m.decided)) fail(`${t}.decided is not an object`);
        need(m.decided, 'ballot', isBallot, `${t}.decided`);
        need(m.decided, 'upTo', isInt, `${t}.decided`);
      }
      const fills = needArray(m, 'fills', t);
      for (let i = 0; i < fills.length; i++) {
        const e = fills[i];
        const p = `${t}.fills[${i}]`;
        if (!isObj(e)) fail(`${p} is not an object`);
        need(e, 'slot', isInt, p);
        validateSlotValue(e.value, `${p}.value`);
      }
      break;
    }
    case 'config-change':
    case 'config-proposal':
      need(m, 'id', isInt, t);
      strArray(m, 'members', t);
      opt(m, 'cookie', isBytes, t);
      if (t === 'config-change') opt(m, 'inc', isInt, t);
      break;
    case 'config-result':
      need(m, 'id', isInt, t);
      need(m, 'ok', isBool, t);
      opt(m, 'epoch', isInt, t);
      strArray(m, 'members', t, true);
      opt(m, 'slot', isInt, t);
      opt(m, 'error', isStr, t);
      opt(m, 'code', isStr, t);
      opt(m, 'leaderHint', isStr, t);
      opt(m, 'maybeChosen', isBool, t);
      opt(m, 'inc', isInt, t);
      break;
    case 'config-notice':
      need(m, 'kind', (x) => x === 'changed' || x === 'aborted', t);
      need(m, 'epoch', isInt, t);
      strArray(m, 'members', t);
      opt(m, 'cookie', isBytes, t);
      opt(m, 'reason', isStr, t);
      break;
    case 'config-refused':
      need(m, 'id', isInt, t);
      need(m, 'maybeChosen', isBool, t);
      need(m, 'reason', isStr, t);
      opt(m, 'leaderHint', isStr, t);
      break;
    case 'set-observers':
      strArray(m, 'observers', t);
      break;
    case 'reconfigured':
      need(m, 'slot', isInt, t);
      configuration(m, 'config', t);
      opt(m, 'origin', isStr, t);
      opt(m, 'inc', isInt, t);
      opt(m, 'firstId', isInt, t);
      opt(m, 'cookie', isBytes, t);
      break;
    case 'watch-peers':
      strArray(m, 'observers', t);
      need(m, 'watch', isBool, t);
      break;
    case 'peer-progress': {
      need(m, 'leading', isBool, t);
      opt(m, 'leader', isStr, t);
      need(m, 'decidedUpTo', isInt, t);
      need(m, 'windowMs', isInt, t);
      const peers = needArray(m, 'peers', t);
      for (let i = 0; i < peers.length; i++) {
        const e = peers[i];
        const p = `${t}.peers[${i}]`;
        if (!isObj(e)) fail(`${p} is not an object`);
        need(e, 'id', isStr, p);
        need(e, 'appliedUpTo', isInt, p);
        need(e, 'ageMs', isInt, p);
      }
      break;
    }
    case 'client-rep': {
      need(m, 'id', isInt, t);
      if (m.results !== undefined && m.results !== null) {
        const results = needArray(m, 'results', t);
        for (let i = 0; i < results.length; i++)
          if (results[i] !== null && !isBytes(results[i])) fail(`${t}.results[${i}] is not bytes or nil`);
      } else if (m.results === null) delete m.results;
      opt(m, 'error', isStr, t);
      opt(m, 'leaderHint', isStr, t);
      opt(m, 'maybeExecuted', isBool, t);
      opt(m, 'inc', isInt, t);
      opt(m, 'slot', isInt, t);
      if (m.failed !== undefined) {
        const failed = needArray(m, 'failed', t);
        for (let i = 0; i < failed.length; i++) {
          const f = failed[i];
          const p = `${t}.failed[${i}]`;
          if (!isObj(f)) fail(`${p} is not an object`);
          need(f, 'i', isInt, p);
          need(f, 'error', isStr, p);
          need(f, 'maybeExecuted', isBool, p);
        }
      }
      break;
    }
  }
  return m as unknown as Message;
}
