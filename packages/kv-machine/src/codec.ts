/**
 * The KV command and result encodings (see README.md for the table).
 *
 * Commands: first byte = opcode, then fields. Lengths and counts are unsigned LEB128 varints;
 * keys and values are raw bytes; INCR's increment is a signed 64-bit little-endian integer.
 * Results: first byte = a type tag, so a result decodes without knowing the command.
 */

export const Op = {
  SET: 0x01,
  GET: 0x02,
  DEL: 0x03,
  INCR: 0x04,
  MGET: 0x05,
  MSET: 0x06,
  EXISTS: 0x07,
  CAS: 0x08,
  /** the number of keys (a read) */
  DBSIZE: 0x09,
  /** a page of keys from a cursor (a read; see scan.ts) */
  SCAN: 0x0a,
  /** the type of a key's value: `string`, or `none` when absent (a read) */
  TYPE: 0x0b,
  /** the time to live: -1 for a key that exists (no expiry is kept), -2 for a missing one (a read) */
  TTL: 0x0c,
  /** wraps another command with (clientId, seq) for exactly-once execution */
  SESSION: 0x40,
} as const;
export type OpCode = (typeof Op)[keyof typeof Op];

export const ResultTag = {
  OK: 0x01,
  NIL: 0x02,
  BULK: 0x03,
  INT: 0x04,
  ARRAY: 0x05,
  ERROR: 0x06,
  /** a status line (RESP simple string), e.g. TYPE's `string` / `none` */
  STATUS: 0x07,
} as const;

export type Bytes = string | Uint8Array;

/** A decoded result. `int` is a number when it is a safe integer, a bigint otherwise (INCR is 64-bit). */
export type KvResult =
  | { readonly type: 'ok' }
  | { readonly type: 'nil' }
  | { readonly type: 'bulk'; readonly value: Uint8Array }
  | { readonly type: 'int'; readonly value: number | bigint }
  | { readonly type: 'array'; readonly items: readonly KvResult[] }
  | { readonly type: 'error'; readonly message: string }
  | { readonly type: 'status'; readonly value: string };

/** Thrown by the decoders on bytes that are not a valid result (never by KvMachine.apply). */
export class KvDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KvDecodeError';
  }
}

// ---------------------------------------------------------------- varints and i64

export function varintSize(n: number): number {
  let s = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    s++;
  }
  return s;
}

/** Writes `n` (0 <= n <= 2^53-1) as LEB128 at `off`; returns the offset after it. */
export function writeVarint(buf: Uint8Array, off: number, n: number): number {
  while (n >= 0x80) {
    buf[off++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[off++] = n;
  return off;
}

const TWO32 = 0x1_0000_0000;

/** Writes a safe integer or a bigint as int64 little-endian. */
export function writeI64(buf: Uint8Array, off: number, v: number | bigint): number {
  let lo: number;
  let hi: number;
  if (typeof v === 'number') {
    hi = Math.floor(v / TWO32);
    lo = v - hi * TWO32;
  } else {
    const u = BigInt.asUintN(64, v);
    lo = Number(u & 0xffff_ffffn);
    hi = Number(u >> 32n) | 0;
  }
  buf[off] = lo & 0xff;
  buf[off + 1] = (lo >>> 8) & 0xff;
  buf[off + 2] = (lo >>> 16) & 0xff;
  buf[off + 3] = (lo >>> 24) & 0xff;
  buf[off + 4] = hi & 0xff;
  buf[off + 5] = (hi >>> 8) & 0xff;
  buf[off + 6] = (hi >>> 16) & 0xff;
  buf[off + 7] = (hi >>> 24) & 0xff;
  return off + 8;
}

/** Reads int64 LE: a number when safe, a bigint otherwise. */
export function readI64(buf: Uint8Array, off: number): number | bigint {
  const lo = (buf[off]! | (buf[off + 1]! << 8) | (buf[off + 2]! << 16) | (buf[off + 3]! << 24)) >>> 0;
  const hi = buf[off + 4]! | (buf[off + 5]! << 8) | (buf[off + 6]! << 16) | (buf[off + 7]! << 24); // signed
  if (hi >= -0x20_0000 && hi < 0x20_0000) return hi * TWO32 + lo; // |v| < 2^53
  return (BigInt(hi) << 32n) | BigInt(lo);
}

// ---------------------------------------------------------------- command encoders

const utf8 = new TextEncoder();
const toBytes = (x: Bytes): Uint8Array => (typeof x === 'string' ? utf8.encode(x) : x);

/**
 * Small encodings are carved from a shared 64 KiB slab instead of one zero-filled allocation each
 * (a pipelined SET encodes one command per request: this halves the encoder's cost and the
 * garbage). A command is a view of the slab: it stays valid as long as it is referenced, and a slab
 * is freed once none of its commands is. Every byte of a carved range is written (`done` checks).
 */
const SLAB_BYTES = 64 * 1024;
const SLAB_MAX_ITEM = 1024;
let slab = new Uint8Array(SLAB_BYTES);
let slabOff = 0;
function carve(size: number): Uint8Array {
  if (size > SLAB_MAX_ITEM) return new Uint8Array(size);
  if (slabOff + size > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabOff = 0;
  }
  const b = slab.subarray(slabOff, slabOff + size);
  slabOff += (size + 7) & ~7; // keep views 8-byte aligned
  return b;
}

class Writer {
  readonly buf: Uint8Array;
  off = 0;
  constructor(size: number) {
    this.buf = carve(size);
  }
  u8(b: number): this {
    this.buf[this.off++] = b;
    return this;
  }
  varint(n: number): this {
    this.off = writeVarint(this.buf, this.off, n);
    return this;
  }
  bytes(b: Uint8Array): this {
    this.off = writeVarint(this.buf, this.off, b.length);
    this.buf.set(b, this.off);
    this.off += b.length;
    return this;
  }
  raw(b: Uint8Array): this {
    this.buf.set(b, this.off);
    this.off += b.length;
    return this;
  }
  done(): Uint8Array {
    if (this.off !== this.buf.length) throw new Error(`kv encoder size mismatch ${this.off} != ${this.buf.length}`);
    return this.buf;
  }
}

const lp = (b: Uint8Array): number => varintSize(b.length) + b.length;

function keyList(op: number, keys: readonly Bytes[]): Uint8Array {
  if (keys.length === 0) throw new RangeError('at least one key is required');
  const bs = keys.map(toBytes);
  let size = 1 + varintSize(bs.length);
  for (const b of bs) size += lp(b);
  const w = new Writer(size).u8(op).varint(bs.length);
  for (const b of bs) w.bytes(b);
  return w.done();
}

function checkInt(by: number | bigint): void {
  if (typeof by === 'number' ? !Number.isSafeInteger(by) : by < -(2n ** 63n) || by >= 2n ** 63n)
    throw new RangeError(`increment must be a safe integer or a 64-bit bigint: ${String(by)}`);
}

/** Client-side encoders of KV commands. Strings are encoded as UTF-8. */
export const KvCommands = {
  set(key: Bytes, value: Bytes): Uint8Array {
    const k = toBytes(key);
    const v = toBytes(value);
    return new Writer(1 + lp(k) + lp(v)).u8(Op.SET).bytes(k).bytes(v).done();
  },
  get(key: Bytes): Uint8Array {
    const k = toBytes(key);
    return new Writer(1 + lp(k)).u8(Op.GET).bytes(k).done();
  },
  del(keys: Bytes | readonly Bytes[]): Uint8Array {
    return keyList(Op.DEL, Array.isArray(keys) ? keys : [keys as Bytes]);
  },
  exists(keys: Bytes | readonly Bytes[]): Uint8Array {
    return keyList(Op.EXISTS, Array.isArray(keys) ? keys : [keys as Bytes]);
  },
  mget(keys: readonly Bytes[]): Uint8Array {
    return keyList(Op.MGET, keys);
  },
  /** INCRBY: adds `by` (default 1) to the integer stored at key (missing = 0). 64-bit signed. */
  incr(key: Bytes, by: number | bigint = 1): Uint8Array {
    checkInt(by);
    const k = toBytes(key);
    const w = new Writer(1 + lp(k) + 8).u8(Op.INCR).bytes(k);
    w.off = writeI64(w.buf, w.off, by);
    return w.done();
  },
  mset(pairs: readonly (readonly [Bytes, Bytes])[]): Uint8Array {
    if (pairs.length === 0) throw new RangeError('at least one pair is required');
    const bs = pairs.map(([k, v]) => [toBytes(k), toBytes(v)] as const);
    let size = 1 + varintSize(bs.length);
    for (const [k, v] of bs) size += lp(k) + lp(v);
    const w = new Writer(size).u8(Op.MSET).varint(bs.length);
    for (const [k, v] of bs) w.bytes(k).bytes(v);
    return w.done();
  },
  /** Compare-and-set: sets key to value iff its current value equals `expected` (null = key absent). Result 1/0. */
  cas(key: Bytes, expected: Bytes | null, value: Bytes): Uint8Array {
    const k = toBytes(key);
    const e = expected === null ? null : toBytes(expected);
    const v = toBytes(value);
    const w = new Writer(1 + lp(k) + 1 + (e ? lp(e) : 0) + lp(v)).u8(Op.CAS).bytes(k);
    if (e) w.u8(1).bytes(e);
    else w.u8(0);
    return w.bytes(v).done();
  },
  /** DBSIZE: the number of keys. */
  dbsize(): Uint8Array {
    return new Writer(1).u8(Op.DBSIZE).done();
  },
  /**
   * SCAN from `cursor` (0 starts): about `count` keys (a hint, >= 1) and the next cursor (0 when done),
   * keeping those that match the glob `match` (Redis MATCH; null: all).
   */
  scan(cursor: number, count: number, match: Bytes | null = null): Uint8Array {
    if (!Number.isSafeInteger(cursor) || cursor < 0)
      throw new RangeError(`cursor must be a non-negative safe integer: ${cursor}`);
    if (!Number.isSafeInteger(count) || count < 1)
      throw new RangeError(`count must be a positive safe integer: ${count}`);
    const m = match === null ? null : toBytes(match);
    const size = 1 + varintSize(cursor) + varintSize(count) + 1 + (m ? lp(m) : 0);
    const w = new Writer(size).u8(Op.SCAN).varint(cursor).varint(count);
    if (m) w.u8(1).bytes(m);
    else w.u8(0);
    return w.done();
  },
  /** TYPE: STATUS `string` or `none`. */
  type(key: Bytes): Uint8Array {
    const k = toBytes(key);
    return new Writer(1 + lp(k)).u8(Op.TYPE).bytes(k).done();
  },
  /** TTL (and PTTL): INT -1 for an existing key (keys never expire), -2 for a missing one. */
  ttl(key: Bytes): Uint8Array {
    const k = toBytes(key);
    return new Writer(1 + lp(k)).u8(Op.TTL).bytes(k).done();
  },
  /** Wraps `inner` for exactly-once execution: a retried (clientId, seq) returns the cached result. */
  session(clientId: Bytes, seq: number, inner: Uint8Array): Uint8Array {
    if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`seq must be a non-negative safe integer: ${seq}`);
    if (inner.length > 0 && inner[0] === Op.SESSION) throw new RangeError('sessions do not nest');
    const id = toBytes(clientId);
    return new Writer(1 + lp(id) + varintSize(seq) + inner.length)
      .u8(Op.SESSION)
      .bytes(id)
      .varint(seq)
      .raw(inner)
      .done();
  },
} as const;

/** The opcode of a command (following a session wrapper), or undefined for an empty/unknown one. */
export function commandOp(cmd: Uint8Array): OpCode | undefined {
  if (cmd.length === 0) return undefined;
  if (cmd[0] === Op.SESSION) {
    let p = 1;
    let len = 0;
    let mul = 1;
    for (;;) {
      if (p >= cmd.length) return undefined;
      const b = cmd[p++]!;
      len += (b & 0x7f) * mul;
      mul *= 128;
      if (b < 0x80) break;
    }
    p += len;
    for (;;) {
      if (p >= cmd.length) return undefined;
      if (cmd[p++]! < 0x80) break;
    }
    return commandOp(cmd.subarray(p));
  }
  const op = cmd[0]!;
  return op >= Op.SET && op <= Op.TTL ? (op as OpCode) : undefined;
}

/** Whether an opcode only reads (GET MGET EXISTS DBSIZE SCAN TYPE TTL). */
export function isReadOp(op: number | undefined): boolean {
  return op === Op.GET || op === Op.MGET || op === Op.EXISTS || (op !== undefined && op >= Op.DBSIZE && op <= Op.TTL);
}

/** Whether a command only reads (GET MGET EXISTS DBSIZE SCAN TYPE TTL): KvMachine.query serves it. */
export function isReadOnly(cmd: Uint8Array): boolean {
  return isReadOp(cmd[0]);
}

// ---------------------------------------------------------------- result decoding

function decodeAt(buf: Uint8Array, pos: { p: number }, depth: number): KvResult {
  if (pos.p >= buf.length) throw new KvDecodeError('truncated result');
  const tag = buf[pos.p++]!;
  const varint = (): number => {
    let n = 0;
    let mul = 1;
    for (let i = 0; ; i++) {
      if (pos.p >= buf.length || i > 7) throw new KvDecodeError('truncated or oversized varint');
      const b = buf[pos.p++]!;
      n += (b & 0x7f) * mul;
      mul *= 128;
      if (b < 0x80) return n;
    }
  };
  switch (tag) {
    case ResultTag.OK:
      return OK_RESULT;
    case ResultTag.NIL:
      return NIL_RESULT;
    case ResultTag.BULK: {
      const n = varint();
      if (pos.p + n > buf.length) throw new KvDecodeError('truncated bulk');
      const value = new Uint8Array(buf.subarray(pos.p, pos.p + n)); // a plain copy, even from a Buffer
      pos.p += n;
      return { type: 'bulk', value };
    }
    case ResultTag.INT: {
      if (pos.p + 8 > buf.length) throw new KvDecodeError('truncated integer');
      const value = readI64(buf, pos.p);
      pos.p += 8;
      return { type: 'int', value };
    }
    case ResultTag.ARRAY: {
      if (depth > 8) throw new KvDecodeError('result nested too deep');
      const n = varint();
      if (n > buf.length - pos.p) throw new KvDecodeError('truncated array');
      const items: KvResult[] = [];
      for (let i = 0; i < n; i++) items.push(decodeAt(buf, pos, depth + 1));
      return { type: 'array', items };
    }
    case ResultTag.ERROR:
    case ResultTag.STATUS: {
      const n = varint();
      if (pos.p + n > buf.length)
        throw new KvDecodeError(tag === ResultTag.ERROR ? 'truncated error' : 'truncated status');
      const text = new TextDecoder().decode(buf.subarray(pos.p, pos.p + n));
      pos.p += n;
      return tag === ResultTag.ERROR ? { type: 'error', message: text } : { type: 'status', value: text };
    }
    default:
      throw new KvDecodeError(`unknown result tag 0x${tag.toString(16)}`);
  }
}

const OK_RESULT: KvResult = Object.freeze({ type: 'ok' });
const NIL_RESULT: KvResult = Object.freeze({ type: 'nil' });

/** Decodes any result (results are self-describing). Throws KvDecodeError on bad bytes. */
export function decodeResult(bytes: Uint8Array): KvResult {
  const pos = { p: 0 };
  const r = decodeAt(bytes, pos, 0);
  if (pos.p !== bytes.length) throw new KvDecodeError('trailing bytes after result');
  return r;
}

/** An error result surfaced by the typed decoders below. */
export class KvCommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KvCommandError';
  }
}

function unwrap(r: KvResult): KvResult {
  if (r.type === 'error') throw new KvCommandError(r.message);
  return r;
}

/** Typed per-op decoders: they throw KvCommandError on an error result and KvDecodeError on a wrong type. */
export const KvResults = {
  ok(bytes: Uint8Array): 'OK' {
    const r = unwrap(decodeResult(bytes));
    if (r.type !== 'ok') throw new KvDecodeError(`expected OK, got ${r.type}`);
    return 'OK';
  },
  /** GET: the value, or null when the key is absent. */
  value(bytes: Uint8Array): Uint8Array | null {
    const r = unwrap(decodeResult(bytes));
    if (r.type === 'nil') return null;
    if (r.type !== 'bulk') throw new KvDecodeError(`expected a value, got ${r.type}`);
    return r.value;
  },
  /** DEL / EXISTS / INCR / CAS. */
  int(bytes: Uint8Array): number | bigint {
    const r = unwrap(decodeResult(bytes));
    if (r.type !== 'int') throw new KvDecodeError(`expected an integer, got ${r.type}`);
    return r.value;
  },
  /** MGET. */
  values(bytes: Uint8Array): (Uint8Array | null)[] {
    const r = unwrap(decodeResult(bytes));
    if (r.type !== 'array') throw new KvDecodeError(`expected an array, got ${r.type}`);
    return r.items.map((i) => {
      if (i.type === 'nil') return null;
      if (i.type !== 'bulk') throw new KvDecodeError(`expected a value in the array, got ${i.type}`);
      return i.value;
    });
  },
} as const;

// ---------------------------------------------------------------- result encoders (machine side)

export const RESULT_OK: Uint8Array = new Uint8Array([ResultTag.OK]);
export const RESULT_NIL: Uint8Array = new Uint8Array([ResultTag.NIL]);

export function encodeError(message: string): Uint8Array {
  const m = utf8.encode(message);
  return new Writer(1 + lp(m)).u8(ResultTag.ERROR).bytes(m).done();
}

/** A status line (RESP simple string): UTF-8 text. */
export function encodeStatus(text: string): Uint8Array {
  const m = utf8.encode(text);
  return new Writer(1 + lp(m)).u8(ResultTag.STATUS).bytes(m).done();
}

export function encodeInt(v: number | bigint): Uint8Array {
  const b = new Uint8Array(9);
  b[0] = ResultTag.INT;
  writeI64(b, 1, v);
  return b;
}

/** Encodes a KvResult (the machine writes its results directly; this is for tests and other producers). */
export function encodeResult(r: KvResult): Uint8Array {
  switch (r.type) {
    case 'ok':
      return RESULT_OK;
    case 'nil':
      return RESULT_NIL;
    case 'int':
      return encodeInt(r.value);
    case 'error':
      return encodeError(r.message);
    case 'status':
      return encodeStatus(r.value);
    case 'bulk':
      return new Writer(1 + lp(r.value)).u8(ResultTag.BULK).bytes(r.value).done();
    case 'array': {
      const parts = r.items.map(encodeResult);
      let size = 1 + varintSize(parts.length);
      for (const p of parts) size += p.length;
      const w = new Writer(size).u8(ResultTag.ARRAY).varint(parts.length);
      for (const p of parts) w.raw(p);
      return w.done();
    }
  }
}
