/**
 * RESP (the Redis serialization protocol, versions 2 and 3): an incremental parser of client commands,
 * an incremental decoder of any RESP2 or RESP3 value (replies), and serializers for either version.
 *
 * Parsers take chunks as they come off a socket and give back complete items. Bulk strings are
 * returned as `subarray`s of the chunk just fed (or of the parser's own buffer, which it never rewrites
 * once handed out): zero-copy, so use or copy the items before reusing that chunk, and copy what you
 * keep for long (it pins its chunk). What the parser keeps across calls (an unfinished item, the
 * unconsumed tail) it copies out of the caller's chunk, so a read buffer may be reused after each feed.
 * Every limit violation is a RespProtocolError with Redis's wording; after one the parser stays failed
 * (a server answers `-ERR Protocol error: ...` and closes the connection, as Redis does).
 */

export class RespProtocolError extends Error {
  /**
   * @param reason what is wrong, e.g. "invalid bulk length" (the message is "Protocol error: <reason>")
   * @param completed the items the same `feed` call completed before the error (Redis executes those
   *   commands, then answers the error and closes the connection)
   */
  constructor(
    readonly reason: string,
    readonly completed: readonly unknown[] = [],
  ) {
    super(`Protocol error: ${reason}`);
    this.name = 'RespProtocolError';
  }
}

export interface RespLimits {
  /** largest bulk string accepted (Redis proto-max-bulk-len is 512 MiB) */
  readonly maxBulkLength: number;
  /** most elements in one array (Redis: 1024*1024 for a multibulk request) */
  readonly maxArrayElements: number;
  /** longest inline command or simple-string/error/integer line (Redis PROTO_INLINE_MAX_SIZE: 64 KiB) */
  readonly maxInlineLength: number;
  /** deepest array nesting the value decoder accepts */
  readonly maxDepth: number;
}

export const DEFAULT_RESP_LIMITS: RespLimits = Object.freeze({
  maxBulkLength: 64 * 1024 * 1024,
  maxArrayElements: 1024 * 1024,
  maxInlineLength: 64 * 1024,
  maxDepth: 32,
});

/** A decoded error reply (`-ERR ...`, or RESP3's blob error `!`): a value, not a thrown error. */
export class RespErrorReply {
  constructor(readonly message: string) {}
}

/** RESP3 map `%`: key/value pairs in wire order (keys are any values, so not a JS Map). */
export class RespMap {
  constructor(readonly entries: [RespValue, RespValue][]) {}
  /** the value of the first entry whose key is the string or bulk `key` */
  get(key: string): RespValue | undefined {
    for (const [k, v] of this.entries)
      if ((typeof k === 'string' || Buffer.isBuffer(k)) && k.toString() === key) return v;
    return undefined;
  }
}
/** RESP3 set `~`. */
export class RespSet {
  constructor(readonly items: RespValue[]) {}
}
/** RESP3 push `>` (out-of-band data such as pub/sub messages). */
export class RespPush {
  constructor(readonly items: RespValue[]) {}
}
/** RESP3 double `,` (`inf`, `-inf`, `nan` included). */
export class RespDouble {
  constructor(readonly value: number) {}
}
/** RESP3 big number `(`. */
export class RespBigNumber {
  constructor(readonly value: bigint) {}
}
/** RESP3 verbatim string `=`: a 3-letter format (`txt`, `mkd`) and the text. */
export class RespVerbatim {
  constructor(
    readonly format: string,
    readonly text: Buffer,
  ) {}
}
/** RESP3 attribute `|`: the attribute entries and the value they describe (the value that follows them). */
export class RespAttributed {
  constructor(
    readonly attributes: [RespValue, RespValue][],
    readonly value: RespValue,
  ) {}
}

/**
 * A decoded value: simple string -> string, error (simple or blob) -> RespErrorReply, integer -> number
 * (bigint beyond 2^53), bulk string -> Buffer, nil bulk / nil array / RESP3 null -> null, array ->
 * RespValue[]; RESP3: boolean -> boolean, and the classes above for maps, sets, pushes, doubles, big
 * numbers, verbatim strings and attributes.
 */
export type RespValue =
  | string
  | RespErrorReply
  | number
  | bigint
  | Buffer
  | null
  | boolean
  | RespValue[]
  | RespMap
  | RespSet
  | RespPush
  | RespDouble
  | RespBigNumber
  | RespVerbatim
  | RespAttributed;

/** The protocol version of a connection: 2 (the default) or 3 (after `HELLO 3`). */
export type RespProtocol = 2 | 3;

/** a byte as an error message shows it: the character if printable ASCII, else `\xNN` */
const shownByte = (t: number): string =>
  t >= 32 && t < 127 ? String.fromCharCode(t) : `\\x${t.toString(16).padStart(2, '0')}`;

const CR = 13;
const LF = 10;
/** the longest valid "*<n>" / "$<n>" / ":<n>" header line (sign + 19 digits), before CRLF */
const MAX_NUMBER_LINE = 21;

/** Parses a decimal int64 from buf[start, end); undefined when not one (Redis string2ll, strict). */
function parseNumber(buf: Uint8Array, start: number, end: number): number | bigint | undefined {
  const len = end - start;
  if (len <= 0 || len > 20) return undefined;
  let i = start;
  const neg = buf[i] === 0x2d;
  if (neg) i++;
  if (i === end) return undefined;
  if (buf[i] === 0x30 && end - i > 1) return undefined; // leading zero
  let n = 0;
  for (let j = i; j < end; j++) {
    const d = buf[j]! - 0x30;
    if (d < 0 || d > 9) return undefined;
    n = n * 10 + d;
  }
  if (neg && n === 0) return undefined;
  if (Number.isSafeInteger(n)) return neg ? -n : n;
  const b = BigInt(Buffer.from(buf.buffer, buf.byteOffset + start, len).toString('latin1'));
  if (b < -(2n ** 63n) || b > 2n ** 63n - 1n) return undefined;
  return b;
}

/** The growable input buffer shared by both parsers. */
abstract class RespInput {
  protected readonly limits: RespLimits;
  protected buf: Buffer = Buffer.alloc(0);
  protected pos = 0;
  protected end = 0;
  /** whether `buf` was allocated here (so its spare capacity after `end` may be written) */
  private owned = false;
  /** how many bytes from `pos` the parser waits for (to size the next allocation) */
  protected want = 0;
  /** where the search for the end of the current line resumes */
  protected scan = 0;
  private error: RespProtocolError | undefined;

  constructor(limits: Partial<RespLimits> = {}) {
    this.limits = { ...DEFAULT_RESP_LIMITS, ...limits };
  }

  /** Bytes received but not yet part of a complete item. */
  get buffered(): number {
    return this.end - this.pos;
  }

  /** The protocol error that stopped this parser, if any. */
  get failed(): RespProtocolError | undefined {
    return this.error;
  }

  protected append(chunk: Uint8Array): void {
    if (this.error) throw this.error;
    const c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (c.length === 0) return;
    const left = this.end - this.pos;
    if (left === 0) {
      this.buf = c;
      this.pos = 0;
      this.end = c.length;
      this.owned = false;
      this.scan = 0;
      return;
    }
    if (this.owned && this.buf.length - this.end >= c.length) {
      c.copy(this.buf, this.end);
      this.end += c.length;
      return;
    }
    // geometric growth towards what the parser waits for: linear copying overall, and a declared
    // bulk length allocates only as its bytes arrive
    const have = left + c.length;
    const next = Buffer.allocUnsafe(Math.max(have, Math.min(this.want, 2 * have), 4096));
    this.buf.copy(next, 0, this.pos, this.end);
    c.copy(next, left);
    this.scan -= this.pos;
    this.buf = next;
    this.pos = 0;
    this.end = left + c.length;
    this.owned = true;
  }

  /** Runs a parse; a protocol error carries the items completed before it in this call. */
  protected guard<T>(out: T[], parse: () => void): T[] {
    try {
      parse();
    } catch (e) {
      if (e instanceof RespProtocolError && out.length > 0) throw new RespProtocolError(e.reason, out);
      throw e;
    }
    return out;
  }

  protected fail(message: string): never {
    this.error = new RespProtocolError(message);
    throw this.error;
  }

  /** Index of the first LF in [from, end), or -1 (the spare capacity after `end` is never searched). */
  protected findLF(from: number): number {
    if (from >= this.end) return -1;
    const lf = (this.end === this.buf.length ? this.buf : this.buf.subarray(0, this.end)).indexOf(LF, from);
    return lf;
  }

  /**
   * Finds the CRLF ending the line that starts at `pos`; returns the index of its CR, or -1 when the
   * line is not complete yet (and not over `max` bytes, else a protocol error `tooLong`).
   */
  protected lineEnd(max: number, tooLong: string): number {
    const from = Math.max(this.scan, this.pos);
    let lf = -1;
    if (max <= MAX_NUMBER_LINE) {
      // a short header line: a JS scan beats a native indexOf call
      const stop = Math.min(this.end, this.pos + max + 2);
      const b = this.buf;
      for (let i = from; i < stop; i++) {
        if (b[i] === LF) {
          lf = i;
          break;
        }
      }
    } else {
      lf = this.findLF(from);
    }
    if (lf < 0) {
      if (this.end - this.pos > max + 1) this.fail(tooLong);
      this.scan = this.end;
      return -1;
    }
    if (lf - this.pos > max + 1) this.fail(tooLong);
    if (lf === this.pos || this.buf[lf - 1] !== CR) this.fail('expected CRLF at the end of a line');
    return lf - 1;
  }

  /** Consumes a "<type><int>\r\n" line; undefined while incomplete. */
  protected numberLine(invalid: string, tooLong: string): number | bigint | undefined {
    const cr = this.lineEnd(MAX_NUMBER_LINE, tooLong);
    if (cr < 0) return undefined;
    const n = parseNumber(this.buf, this.pos + 1, cr);
    if (n === undefined) this.fail(invalid);
    this.pos = cr + 2;
    return n;
  }

  /** Consumes a bulk body of `len` bytes + CRLF; undefined while incomplete. */
  protected bulkBody(len: number): Buffer | undefined {
    if (this.end - this.pos < len + 2) {
      this.want = len + 2;
      return undefined;
    }
    if (this.buf[this.pos + len] !== CR || this.buf[this.pos + len + 1] !== LF)
      this.fail('expected CRLF after a bulk string');
    const b = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len + 2;
    this.want = 0;
    return b;
  }

  /** Copies the parts of an unfinished item that still point into the caller's chunk. */
  protected abstract retain(chunk: ArrayBufferLike): void;

  /**
   * End of a feed: nothing kept across calls may point into the caller's chunk (a socket may reuse it),
   * so the unfinished item's parts and the unconsumed tail are copied when they do.
   */
  protected compact(): void {
    if (!this.owned) this.retain(this.buf.buffer);
    if (this.pos === this.end) {
      // drop the reference to a fully consumed buffer (the items handed out keep what they need)
      this.buf = EMPTY;
      this.pos = this.end = this.scan = 0;
      this.owned = false;
    } else if (!this.owned) {
      // keep the unconsumed tail in a buffer of our own: the caller may reuse its chunk for the next read
      const left = this.end - this.pos;
      const next = Buffer.allocUnsafe(Math.max(left, Math.min(this.want, 2 * left), 4096));
      this.buf.copy(next, 0, this.pos, this.end);
      this.scan -= this.pos;
      this.buf = next;
      this.pos = 0;
      this.end = left;
      this.owned = true;
    }
  }
}

const EMPTY = Buffer.alloc(0);

// ---------------------------------------------------------------- client commands

/**
 * Incremental parser of client commands, as a Redis server reads them: `*<n>` arrays of `$<len>`
 * bulk strings, or inline commands (a line of space-separated words, with "double" and 'single'
 * quotes as redis-cli and telnet users send). Empty commands (`*0`, `*-1`, blank lines) are skipped.
 */
/**
 * The first element of a SET the parser encoded itself (`encodeSetMaxValue`): `[ENCODED_SET, command]`,
 * where command is the KV machine's SET (opcode 0x01, varint key length, key, varint value length, value).
 */
export const ENCODED_SET: Buffer = Buffer.from('SET');

/** The [SET, key, value] arguments of a command the parser encoded (the rare paths need them back). */
export function encodedSetArgs(cmd: Uint8Array): Buffer[] {
  const b = Buffer.from(cmd.buffer, cmd.byteOffset, cmd.byteLength);
  let p = 1;
  const varint = (): number => {
    let n = 0;
    let mul = 1;
    for (;;) {
      const x = b[p++]!;
      n += (x & 0x7f) * mul;
      if (x < 0x80) return n;
      mul *= 128;
    }
  };
  const kl = varint();
  const key = b.subarray(p, p + kl);
  p += kl;
  const vl = varint();
  return [Buffer.from('SET'), key, b.subarray(p, p + vl)];
}

const varintBytes = (n: number): number =>
  n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x20_0000 ? 3 : n < 0x1000_0000 ? 4 : 5;
function putVarint(o: Uint8Array, p: number, n: number): number {
  while (n >= 0x80) {
    o[p++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  o[p++] = n;
  return p;
}
/**
 * Copies n bytes; short runs byte by byte: Buffer#copy of a sub-range makes a Uint8Array view per call,
 * which was a fifth of the leader's allocations under pipelined SETs (a sampling heap profile).
 */
function copyIn(src: Uint8Array, from: number, dst: Uint8Array, to: number, n: number): void {
  if (n <= 128) for (let i = 0; i < n; i++) dst[to + i] = src[from + i]!;
  else dst.set(src.subarray(from, from + n), to);
}

export interface RespCommandParserOptions {
  /**
   * A complete `*3 $3 SET $k key $v value` (SET in any case) whose value is at most this many bytes comes
   * out already encoded as the KV machine's SET command, `[ENCODED_SET, command]`: one buffer instead of
   * three argument views and a second copy (issue #19 point 2). Undefined: every command comes out as its
   * arguments.
   */
  readonly encodeSetMaxValue?: number;
}

export class RespCommandParser extends RespInput {
  private args: Buffer[] | null = null;
  private remaining = 0;
  private bulkLen = -1;
  private readonly setMax: number;

  constructor(limits: Partial<RespLimits> = {}, opts: RespCommandParserOptions = {}) {
    super(limits);
    this.setMax = opts.encodeSetMaxValue ?? -1;
  }

  /** A decimal length at p (no sign or leading zero, at most 9 digits) and its CRLF: sets fastN; the end or -1. */
  private fastLen(p: number): number {
    const b = this.buf;
    const end = this.end;
    const first = p;
    let n = 0;
    while (p < end) {
      const d = b[p]! - 0x30;
      if (d < 0 || d > 9) break;
      n = n * 10 + d;
      p++;
    }
    const digits = p - first;
    if (digits === 0 || digits > 9 || (digits > 1 && b[first] === 0x30)) return -1;
    if (p + 1 >= end || b[p] !== CR || b[p + 1] !== LF) return -1;
    this.fastN = n;
    return p + 2;
  }
  private fastN = 0;

  /**
   * A whole SET at pos, encoded; false (nothing consumed) for anything else or anything incomplete, which
   * the general parser then reads (with its checks and errors).
   */
  private fastSet(out: Buffer[][]): boolean {
    const b = this.buf;
    const p0 = this.pos;
    if (this.end - p0 < 22) return false;
    // "*3\r\n$3\r\n" then SET in any case, then "\r\n$"
    if (b[p0 + 1] !== 0x33 || b[p0 + 2] !== CR || b[p0 + 3] !== LF || b[p0 + 4] !== 0x24 || b[p0 + 5] !== 0x33)
      return false;
    if (b[p0 + 6] !== CR || b[p0 + 7] !== LF) return false;
    if ((b[p0 + 8]! | 0x20) !== 0x73 || (b[p0 + 9]! | 0x20) !== 0x65 || (b[p0 + 10]! | 0x20) !== 0x74) return false;
    if (b[p0 + 11] !== CR || b[p0 + 12] !== LF || b[p0 + 13] !== 0x24) return false;
    let p = this.fastLen(p0 + 14);
    if (p < 0) return false;
    const kl = this.fastN;
    const ko = p;
    p += kl;
    if (p + 3 > this.end || b[p] !== CR || b[p + 1] !== LF || b[p + 2] !== 0x24) return false;
    p = this.fastLen(p + 3);
    if (p < 0) return false;
    const vl = this.fastN;
    const vo = p;
    p += vl;
    if (p + 2 > this.end || b[p] !== CR || b[p + 1] !== LF) return false;
    const L = this.limits;
    if (kl > L.maxBulkLength || vl > L.maxBulkLength || vl > this.setMax) return false;
    const cmd = Buffer.allocUnsafe(1 + varintBytes(kl) + kl + varintBytes(vl) + vl);
    cmd[0] = 0x01;
    let o = putVarint(cmd, 1, kl);
    copyIn(b, ko, cmd, o, kl);
    o = putVarint(cmd, o + kl, vl);
    copyIn(b, vo, cmd, o, vl);
    out.push([ENCODED_SET, cmd]);
    this.pos = p + 2;
    this.want = 0;
    return true;
  }

  protected retain(chunk: ArrayBufferLike): void {
    const a = this.args;
    if (a) for (let i = 0; i < a.length; i++) if (a[i]!.buffer === chunk) a[i] = Buffer.from(a[i]!);
  }

  /**
   * Feeds a chunk; returns the commands it completed (possibly none). Throws RespProtocolError, whose
   * `completed` holds the commands this call completed before the error; the parser then stays failed
   * (`failed`) and every later call throws.
   */
  feed(chunk: Uint8Array): Buffer[][] {
    this.append(chunk);
    const out: Buffer[][] = [];
    return this.guard(out, () => this.parse(out));
  }

  private parse(out: Buffer[][]): void {
    const L = this.limits;
    for (;;) {
      if (this.args === null) {
        if (this.pos >= this.end) break;
        if (this.buf[this.pos] === 0x2a /* '*' */) {
          if (this.setMax >= 0 && this.fastSet(out)) continue;
          const n = this.numberLine('invalid multibulk length', 'too big mbulk count string');
          if (n === undefined) break;
          if (typeof n === 'bigint' || n > L.maxArrayElements) this.fail('invalid multibulk length');
          if (n <= 0) continue;
          this.args = [];
          this.remaining = n;
          this.bulkLen = -1;
        } else {
          const cmd = this.inline();
          if (cmd === undefined) break;
          if (cmd.length > 0) out.push(cmd);
          continue;
        }
      }
      if (this.bulkLen < 0) {
        if (this.pos >= this.end) break;
        const t = this.buf[this.pos]!;
        if (t !== 0x24 /* '$' */) this.fail(`expected '$', got '${shownByte(t)}'`);
        const len = this.numberLine('invalid bulk length', 'too big bulk count string');
        if (len === undefined) break;
        if (typeof len === 'bigint' || len < 0 || len > L.maxBulkLength) this.fail('invalid bulk length');
        this.bulkLen = len;
      }
      const b = this.bulkBody(this.bulkLen);
      if (b === undefined) break;
      this.args!.push(b);
      this.bulkLen = -1;
      if (--this.remaining === 0) {
        out.push(this.args!);
        this.args = null;
      }
    }
    this.compact();
  }

  private inline(): Buffer[] | undefined {
    const lf = this.findLF(Math.max(this.scan, this.pos));
    const max = this.limits.maxInlineLength;
    if (lf < 0) {
      if (this.end - this.pos > max) this.fail('too big inline request');
      this.scan = this.end;
      return undefined;
    }
    if (lf - this.pos > max) this.fail('too big inline request');
    let e = lf;
    if (e > this.pos && this.buf[e - 1] === CR) e--;
    const line = this.buf.subarray(this.pos, e);
    this.pos = lf + 1;
    const args = splitArgs(line);
    if (args === undefined) this.fail('unbalanced quotes in request');
    return args;
  }
}

const isSpace = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0b || c === 0x0c || c === 0x0d;
const hexVal = (c: number) =>
  c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;

/**
 * Redis's sdssplitargs on bytes: words separated by spaces; "double quotes" with \n \r \t \b \a \xHH
 * and \<c> escapes; 'single quotes' with \' only; a quote may start mid-word (foo"bar baz" is one
 * argument); a closing quote must be followed by a space or the end. Undefined on unbalanced quotes.
 * Unlike C, a NUL byte is an ordinary byte of a word.
 */
export function splitArgs(line: Uint8Array): Buffer[] | undefined {
  const out: Buffer[] = [];
  const n = line.length;
  let i = 0;
  for (;;) {
    while (i < n && isSpace(line[i]!)) i++;
    if (i >= n) return out;
    let inq = false;
    let insq = false;
    const cur: number[] = [];
    let start = i; // bare bytes since `start` are copied in one go
    const flush = () => {
      for (let j = start; j < i; j++) cur.push(line[j]!);
    };
    for (;;) {
      if (inq) {
        if (i >= n) return undefined;
        const c = line[i]!;
        if (c === 0x5c && i + 3 < n && line[i + 1] === 0x78 && hexVal(line[i + 2]!) >= 0 && hexVal(line[i + 3]!) >= 0) {
          cur.push(hexVal(line[i + 2]!) * 16 + hexVal(line[i + 3]!));
          i += 4;
        } else if (c === 0x5c && i + 1 < n) {
          const e = line[i + 1]!;
          cur.push(e === 0x6e ? 10 : e === 0x72 ? 13 : e === 0x74 ? 9 : e === 0x62 ? 8 : e === 0x61 ? 7 : e);
          i += 2;
        } else if (c === 0x22) {
          if (i + 1 < n && !isSpace(line[i + 1]!)) return undefined;
          i++;
          break;
        } else {
          cur.push(c);
          i++;
        }
      } else if (insq) {
        if (i >= n) return undefined;
        const c = line[i]!;
        if (c === 0x5c && i + 1 < n && line[i + 1] === 0x27) {
          cur.push(0x27);
          i += 2;
        } else if (c === 0x27) {
          if (i + 1 < n && !isSpace(line[i + 1]!)) return undefined;
          i++;
          break;
        } else {
          cur.push(c);
          i++;
        }
      } else {
        if (i >= n) {
          flush();
          break;
        }
        const c = line[i]!;
        if (isSpace(c)) {
          flush();
          break;
        }
        if (c === 0x22 || c === 0x27) {
          flush();
          if (c === 0x22) inq = true;
          else insq = true;
          i++;
        } else {
          i++;
          continue;
        }
      }
      start = i;
    }
    out.push(Buffer.from(cur));
  }
}

// ---------------------------------------------------------------- any RESP2 or RESP3 value (replies)

type Aggregate = 'array' | 'map' | 'set' | 'push' | 'attr';

interface Frame {
  kind: Aggregate;
  items: RespValue[];
  remaining: number;
}

/** what the body of a length-prefixed value becomes */
const enum Body {
  Bulk,
  BlobError,
  Verbatim,
}

const DOUBLE_RE = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const BIG_RE = /^[+-]?\d+$/;

function parseDouble(s: string): number | undefined {
  if (s === 'inf' || s === '+inf') return Infinity;
  if (s === '-inf') return -Infinity;
  if (s === 'nan' || s === '-nan') return NaN;
  return DOUBLE_RE.test(s) ? Number(s) : undefined;
}

function close(f: Frame): RespValue {
  const pairs = (items: RespValue[]): [RespValue, RespValue][] => {
    const out: [RespValue, RespValue][] = [];
    for (let i = 0; i < items.length; i += 2) out.push([items[i]!, items[i + 1]!]);
    return out;
  };
  switch (f.kind) {
    case 'array':
      return f.items;
    case 'map':
      return new RespMap(pairs(f.items));
    case 'set':
      return new RespSet(f.items);
    case 'push':
      return new RespPush(f.items);
    case 'attr':
      return new RespAttributed(pairs(f.items.slice(0, -1)), f.items[f.items.length - 1]!);
  }
}

/**
 * Incremental decoder of RESP2 and RESP3 values (what a server replies), with nesting kept across chunks.
 * RESP3's streamed strings and aggregates (`$?`, `*?`) are not supported (a protocol error).
 */
export class RespDecoder extends RespInput {
  private stack: Frame[] = [];
  private bulkLen = -1;
  private body: Body = Body.Bulk;

  protected retain(chunk: ArrayBufferLike): void {
    const copy = (items: RespValue[]): void => {
      for (let i = 0; i < items.length; i++) {
        const v = items[i];
        if (Buffer.isBuffer(v)) {
          if (v.buffer === chunk) items[i] = Buffer.from(v);
        } else if (Array.isArray(v)) copy(v);
        else if (v instanceof RespSet || v instanceof RespPush) copy(v.items);
        else if (v instanceof RespVerbatim) {
          if (v.text.buffer === chunk) items[i] = new RespVerbatim(v.format, Buffer.from(v.text));
        } else if (v instanceof RespMap) for (const e of v.entries) copy(e);
        else if (v instanceof RespAttributed) {
          for (const e of v.attributes) copy(e);
          const inner = [v.value];
          copy(inner);
          if (inner[0] !== v.value) items[i] = new RespAttributed(v.attributes, inner[0]!);
        }
      }
    };
    for (const f of this.stack) copy(f.items);
  }

  /** Feeds a chunk; returns the complete top-level values (possibly none). Errors as RespCommandParser.feed. */
  feed(chunk: Uint8Array): RespValue[] {
    this.append(chunk);
    const out: RespValue[] = [];
    return this.guard(out, () => this.parse(out));
  }

  /** the text of a one-line value (`+ - , ( _ #`), or undefined while incomplete */
  private lineText(tooLong: string): string | undefined {
    const cr = this.lineEnd(this.limits.maxInlineLength, tooLong);
    if (cr < 0) return undefined;
    const s = this.buf.toString('utf8', this.pos + 1, cr);
    this.pos = cr + 2;
    return s;
  }

  private parse(out: RespValue[]): void {
    const L = this.limits;
    for (;;) {
      let v: RespValue;
      if (this.bulkLen >= 0) {
        const b = this.bulkBody(this.bulkLen);
        if (b === undefined) break;
        this.bulkLen = -1;
        if (this.body === Body.Bulk) v = b;
        else if (this.body === Body.BlobError) v = new RespErrorReply(b.toString('utf8'));
        else {
          if (b.length < 4 || b[3] !== 0x3a /* : */) this.fail('invalid verbatim string');
          v = new RespVerbatim(b.toString('latin1', 0, 3), b.subarray(4));
        }
      } else {
        if (this.pos >= this.end) break;
        const t = this.buf[this.pos]!;
        if (t === 0x2b /* + */ || t === 0x2d /* - */) {
          const s = this.lineText('too big inline reply');
          if (s === undefined) break;
          v = t === 0x2b ? s : new RespErrorReply(s);
        } else if (t === 0x3a /* : */) {
          const n = this.numberLine('invalid integer', 'too big integer string');
          if (n === undefined) break;
          v = n;
        } else if (t === 0x24 /* $ */ || t === 0x21 /* ! */ || t === 0x3d /* = */) {
          const n = this.numberLine('invalid bulk length', 'too big bulk count string');
          if (n === undefined) break;
          const nilOk = t === 0x24;
          if (typeof n === 'bigint' || n < (nilOk ? -1 : 0) || n > L.maxBulkLength) this.fail('invalid bulk length');
          if (n === -1) v = null;
          else {
            this.bulkLen = n;
            this.body = t === 0x24 ? Body.Bulk : t === 0x21 ? Body.BlobError : Body.Verbatim;
            continue;
          }
        } else if (
          t === 0x2a /* * */ ||
          t === 0x25 /* % */ ||
          t === 0x7e /* ~ */ ||
          t === 0x3e /* > */ ||
          t === 0x7c /* | */
        ) {
          const n = this.numberLine('invalid multibulk length', 'too big mbulk count string');
          if (n === undefined) break;
          const nilOk = t === 0x2a;
          if (typeof n === 'bigint' || n < (nilOk ? -1 : 0) || n > L.maxArrayElements)
            this.fail('invalid multibulk length');
          const kind: Aggregate =
            t === 0x2a ? 'array' : t === 0x25 ? 'map' : t === 0x7e ? 'set' : t === 0x3e ? 'push' : 'attr';
          // a map's or attribute's count is of pairs; an attribute then wraps the one value after it
          const items = kind === 'map' ? 2 * n : kind === 'attr' ? 2 * n + 1 : n;
          if (n === -1) v = null;
          else if (items === 0) v = close({ kind, items: [], remaining: 0 });
          else {
            if (this.stack.length >= L.maxDepth) this.fail('too deeply nested array');
            this.stack.push({ kind, items: [], remaining: items });
            continue;
          }
        } else if (t === 0x5f /* _ */) {
          const s = this.lineText('too big inline reply');
          if (s === undefined) break;
          if (s !== '') this.fail('invalid null');
          v = null;
        } else if (t === 0x23 /* # */) {
          const s = this.lineText('too big inline reply');
          if (s === undefined) break;
          if (s !== 't' && s !== 'f') this.fail('invalid boolean');
          v = s === 't';
        } else if (t === 0x2c /* , */) {
          const s = this.lineText('too big inline reply');
          if (s === undefined) break;
          const d = parseDouble(s);
          if (d === undefined) this.fail('invalid double');
          v = new RespDouble(d);
        } else if (t === 0x28 /* ( */) {
          const s = this.lineText('too big inline reply');
          if (s === undefined) break;
          if (!BIG_RE.test(s)) this.fail('invalid big number');
          v = new RespBigNumber(BigInt(s));
        } else {
          this.fail(`invalid type byte '${shownByte(t)}'`);
        }
      }
      // place v: into the innermost open aggregate, closing the aggregates it completes
      for (;;) {
        const top = this.stack[this.stack.length - 1];
        if (top === undefined) {
          out.push(v);
          break;
        }
        top.items.push(v);
        if (--top.remaining > 0) break;
        this.stack.pop();
        v = close(top);
      }
    }
    this.compact();
  }
}

// ---------------------------------------------------------------- serializers

const CRLF = Buffer.from('\r\n');
const oneLine = (s: string) => s.replace(/[\r\n]+/g, ' ');
const asBuffer = (b: Uint8Array | string): Buffer =>
  typeof b === 'string'
    ? Buffer.from(b, 'utf8')
    : Buffer.isBuffer(b)
      ? b
      : Buffer.from(b.buffer, b.byteOffset, b.byteLength);

export const NIL_BULK: Buffer = Buffer.from('$-1\r\n');
export const NIL_ARRAY: Buffer = Buffer.from('*-1\r\n');
/** RESP3's null (every nil reply under RESP3) */
export const NULL3: Buffer = Buffer.from('_\r\n');
export const OK: Buffer = Buffer.from('+OK\r\n');

/** A double as RESP3 writes it: `inf`, `-inf`, `nan`, else the shortest decimal that reads back exactly. */
function doubleText(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  return Object.is(x, -0) ? '-0' : String(x);
}

/** `+s\r\n` (CR/LF in `s` become spaces: a simple string is one line). */
export function simpleString(s: string): Buffer {
  return Buffer.from(`+${oneLine(s)}\r\n`, 'utf8');
}
/** `-message\r\n`; Redis style is a code first: "ERR ...", "WRONGTYPE ...". */
export function errorReply(message: string): Buffer {
  return Buffer.from(`-${oneLine(message)}\r\n`, 'utf8');
}
export function integer(n: number | bigint): Buffer {
  if (typeof n === 'number' && !Number.isSafeInteger(n)) throw new RangeError(`RESP integer must be an integer: ${n}`);
  return Buffer.from(`:${n}\r\n`, 'latin1');
}
/** `$len\r\n<bytes>\r\n`, or the nil bulk string for null. */
export function bulkString(b: Uint8Array | string | null): Buffer {
  if (b === null) return NIL_BULK;
  const body = asBuffer(b);
  return Buffer.concat([Buffer.from(`$${body.length}\r\n`, 'latin1'), body, CRLF]);
}
/** `*n\r\n` then the items, already serialized; null is the nil array. */
export function arrayOf(items: readonly Buffer[] | null): Buffer {
  if (items === null) return NIL_ARRAY;
  return Buffer.concat([Buffer.from(`*${items.length}\r\n`, 'latin1'), ...items]);
}

/**
 * Serializes a value by its JS type (the inverse of RespDecoder): string -> simple string,
 * Uint8Array -> bulk, number/bigint -> integer, null -> nil bulk (RESP3: `_`), RespErrorReply -> error,
 * array -> array, and the RESP3 types (under `protocol` 2 as Redis sends them to a RESP2 client: a map as
 * a flat array, a set or push as an array, a double, big number or verbatim string as a bulk string, a
 * boolean as 1/0; attributes are dropped).
 */
export function encodeResp(v: RespValue | Uint8Array, protocol: RespProtocol = 2): Buffer {
  const w = new RespWriter(4096, protocol);
  w.value(v);
  return w.take();
}

/** A command as a client sends it: an array of bulk strings. */
export function encodeCommand(args: readonly (Uint8Array | string)[]): Buffer {
  const w = new RespWriter();
  w.arrayHeader(args.length);
  for (const a of args) w.bulk(a);
  return w.take();
}

/**
 * Accumulates replies in one growing buffer: a server answers a pipelined batch of commands with one
 * socket write.
 */
export class RespWriter {
  private buf: Buffer;
  private len = 0;

  /**
   * @param proto the protocol of the client the replies are for: under 2, RESP3 types are written as their
   *   RESP2 equivalents (as Redis does), so one reply-building function serves both kinds of clients
   */
  constructor(
    initialCapacity = 4096,
    readonly proto: RespProtocol = 2,
  ) {
    this.buf = Buffer.allocUnsafe(initialCapacity);
  }

  get length(): number {
    return this.len;
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  private ascii(s: string): this {
    this.room(s.length);
    this.len += this.buf.write(s, this.len, 'latin1');
    return this;
  }

  raw(b: Uint8Array): this {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  private line(prefix: string, s: string): this {
    const t = /[\r\n]/.test(s) ? oneLine(s) : s;
    this.room(1 + Buffer.byteLength(t, 'utf8') + 2);
    this.buf[this.len++] = prefix.charCodeAt(0);
    this.len += this.buf.write(t, this.len, 'utf8');
    this.buf[this.len++] = CR;
    this.buf[this.len++] = LF;
    return this;
  }
  simple(s: string): this {
    return s === 'OK' ? this.raw(OK) : this.line('+', s);
  }
  /** `-message` (RESP3: a message with CR/LF goes as a blob error `!`, so it arrives whole) */
  error(message: string): this {
    if (this.proto === 3 && /[\r\n]/.test(message)) return this.lengthPrefixed('!', Buffer.from(message, 'utf8'));
    return this.line('-', message);
  }
  private lengthPrefixed(prefix: string, body: Buffer): this {
    this.ascii(`${prefix}${body.length}\r\n`);
    this.raw(body);
    return this.ascii('\r\n');
  }
  integer(n: number | bigint): this {
    if (typeof n === 'number' && !Number.isSafeInteger(n))
      throw new RangeError(`RESP integer must be an integer: ${n}`);
    return this.ascii(`:${n}\r\n`);
  }
  bulk(b: Uint8Array | string | null): this {
    if (b === null) return this.nil();
    return this.lengthPrefixed('$', asBuffer(b));
  }
  /** the nil bulk string `$-1` (RESP3: `_`) */
  nil(): this {
    return this.raw(this.proto === 3 ? NULL3 : NIL_BULK);
  }
  /** the nil array `*-1` (RESP3: `_`) */
  nilArray(): this {
    return this.raw(this.proto === 3 ? NULL3 : NIL_ARRAY);
  }
  arrayHeader(n: number): this {
    return this.ascii(`*${n}\r\n`);
  }
  /** a map of n pairs (then 2n values, key first): `%n` (RESP2: the flat array `*2n`) */
  mapHeader(n: number): this {
    return this.ascii(this.proto === 3 ? `%${n}\r\n` : `*${2 * n}\r\n`);
  }
  /** a set of n items: `~n` (RESP2: `*n`) */
  setHeader(n: number): this {
    return this.ascii(this.proto === 3 ? `~${n}\r\n` : `*${n}\r\n`);
  }
  /** a push of n items: `>n` (RESP2: `*n`) */
  pushHeader(n: number): this {
    return this.ascii(this.proto === 3 ? `>${n}\r\n` : `*${n}\r\n`);
  }
  /** `,x` (RESP2: a bulk string) */
  double(x: number): this {
    const t = doubleText(x);
    return this.proto === 3 ? this.ascii(`,${t}\r\n`) : this.bulk(t);
  }
  /** `#t` / `#f` (RESP2: the integer 1 / 0) */
  boolean(b: boolean): this {
    return this.proto === 3 ? this.ascii(b ? '#t\r\n' : '#f\r\n') : this.integer(b ? 1 : 0);
  }
  /** `(n` (RESP2: a bulk string) */
  bigNumber(n: bigint): this {
    return this.proto === 3 ? this.ascii(`(${n}\r\n`) : this.bulk(String(n));
  }
  /** `=len\r\nfmt:text` with a 3-letter format such as `txt` (RESP2: a bulk string of the text) */
  verbatim(format: string, text: Uint8Array | string): this {
    if (this.proto !== 3) return this.bulk(text);
    if (!/^[\x21-\x7e]{3}$/.test(format) || format.includes(':'))
      throw new RangeError(`bad verbatim format: ${format}`);
    return this.lengthPrefixed('=', Buffer.concat([Buffer.from(`${format}:`, 'latin1'), asBuffer(text)]));
  }
  value(v: RespValue | Uint8Array): this {
    if (v === null) return this.nil();
    if (typeof v === 'string') return this.simple(v);
    if (typeof v === 'number' || typeof v === 'bigint') return this.integer(v);
    if (typeof v === 'boolean') return this.boolean(v);
    if (v instanceof RespErrorReply) return this.error(v.message);
    if (v instanceof Uint8Array) return this.bulk(v);
    if (Array.isArray(v)) {
      this.arrayHeader(v.length);
      for (const x of v) this.value(x);
      return this;
    }
    if (v instanceof RespMap) return this.entries(this.mapHeader(v.entries.length), v.entries);
    if (v instanceof RespSet || v instanceof RespPush) {
      if (v instanceof RespSet) this.setHeader(v.items.length);
      else this.pushHeader(v.items.length);
      for (const x of v.items) this.value(x);
      return this;
    }
    if (v instanceof RespDouble) return this.double(v.value);
    if (v instanceof RespBigNumber) return this.bigNumber(v.value);
    if (v instanceof RespVerbatim) return this.verbatim(v.format, v.text);
    // an attribute: RESP2 has none (Redis drops them for RESP2 clients)
    if (this.proto === 3) this.entries(this.ascii(`|${v.attributes.length}\r\n`), v.attributes);
    return this.value(v.value);
  }
  private entries(_: this, entries: readonly [RespValue, RespValue][]): this {
    for (const [k, x] of entries) this.value(k).value(x);
    return this;
  }

  /** The bytes written so far (a fresh Buffer); the writer starts over. */
  take(): Buffer {
    const out = Buffer.from(this.buf.subarray(0, this.len));
    this.len = 0;
    return out;
  }
}
