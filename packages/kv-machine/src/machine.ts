import { createHash } from 'node:crypto';
import { CONTRACTS, requires, type Slot, type StateMachine } from '@decree/protocol';
import {
  Op,
  ResultTag,
  RESULT_NIL,
  RESULT_OK,
  encodeError,
  encodeInt,
  encodeStatus,
  isReadOp,
  varintSize,
  writeVarint,
  type Bytes,
} from './codec.ts';
import { ScanIndex, globMatcher } from './scan.ts';
import { readSnapshot, writeSnapshot, type SnapshotContents } from './snapshot.ts';
import { ByteTable } from './table.ts';

/**
 * Keys and values live as bytes in a ByteTable (table.ts, docs/decisions/0012-byte-table.md): a SET to
 * an existing key writes its value in place and allocates nothing. Session ids, SCAN keys and the
 * string API (`get`, restore, the digest) use "binary" (latin1) strings: one char per byte.
 */
type BufProto = {
  latin1Slice(this: Uint8Array, start: number, end: number): string;
  latin1Write(this: Uint8Array, s: string, offset: number, length: number): number;
};
const { latin1Slice, latin1Write } = Buffer.prototype as unknown as BufProto;

export interface KvMachineOptions {
  /**
   * A client session is forgotten once it was unused for more than sessionTtlSlots slots AND more than
   * sessionTtlMs of log time (the leaders' timestamps in the log, never this replica's clock; 0: slots
   * only). A retry of a forgotten session's write is answered `ERR session expired`, never applied again.
   */
  readonly sessionTtlSlots?: number;
  readonly sessionTtlMs?: number;
  /** at most this many sessions are kept; beyond, the least recently used is forgotten (default 1,000,000) */
  readonly maxSessions?: number;
  /**
   * What the snapshot stream waits for between two frames (about 256 KiB of state each). Default: the
   * next turn of the event loop (setImmediate), so that encoding a large state never blocks the loop
   * for more than one frame (timers, sockets and the log's writes go on in between). false: no wait
   * (the stream is read in one go, as a deterministic simulation needs).
   */
  readonly snapshotYield?: (() => Promise<void>) | false;
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export const DEFAULT_SESSION_TTL_SLOTS = 100_000;
export const DEFAULT_SESSION_TTL_MS = 3_600_000;
export const DEFAULT_MAX_SESSIONS = 1_000_000;

export interface SessionEntry {
  /** highest seq applied for this client */
  seq: number;
  /** its result, returned again to a retry of the same seq */
  result: Uint8Array;
  /** last slot at which the session was used */
  lastSlot: Slot;
  /** the log's time (ms) when the session was last used */
  lastMs: number;
}

/** the decimal digits of an INCR result (at most 20) */
const INT_BUF = Buffer.alloc(24);
const ERR_SESSION_EXPIRED = encodeError('ERR session expired');

// ---------------------------------------------------------------- the hot-path reader
// A module-level cursor: apply is synchronous and never re-entered, so one cursor serves every machine.
let P = 0;
let END = 0;
/** the byte range readRange read last */
let R_OFF = 0;
let R_LEN = 0;
const TRUNCATED = { malformed: 'truncated' } as const;

function readLen(c: Uint8Array): number {
  if (P >= END) throw TRUNCATED;
  let b = c[P++]!;
  if (b < 0x80) return b;
  let n = b & 0x7f;
  let mul = 128;
  for (let i = 1; ; i++) {
    if (P >= END || i > 7) throw TRUNCATED;
    b = c[P++]!;
    n += (b & 0x7f) * mul;
    if (b < 0x80) break;
    mul *= 128;
  }
  if (n > Number.MAX_SAFE_INTEGER) throw TRUNCATED;
  return n;
}

function readStr(c: Uint8Array): string {
  const n = readLen(c);
  if (n > END - P) throw TRUNCATED;
  const s = n === 0 ? '' : latin1Slice.call(c, P, P + n);
  P += n;
  return s;
}

/** Reads a length-prefixed byte range into R_OFF / R_LEN (no allocation). */
function readRange(c: Uint8Array): void {
  const n = readLen(c);
  if (n > END - P) throw TRUNCATED;
  R_OFF = P;
  R_LEN = n;
  P += n;
}

/** A count of items that each take at least `minBytes`: a count the rest cannot hold is truncation. */
function readCount(c: Uint8Array, minBytes: number): number {
  const n = readLen(c);
  if (n * minBytes > END - P) throw TRUNCATED;
  return n;
}

const TWO32 = 0x1_0000_0000;
function readI64(c: Uint8Array): number | bigint {
  if (END - P < 8) throw TRUNCATED;
  const lo = (c[P]! | (c[P + 1]! << 8) | (c[P + 2]! << 16) | (c[P + 3]! << 24)) >>> 0;
  const hi = c[P + 4]! | (c[P + 5]! << 8) | (c[P + 6]! << 16) | (c[P + 7]! << 24);
  P += 8;
  if (hi >= -0x20_0000 && hi < 0x20_0000) return hi * TWO32 + lo;
  return (BigInt(hi) << 32n) | BigInt(lo);
}

// ---------------------------------------------------------------- results

const ERR_EMPTY = encodeError('ERR malformed command: empty');
const ERR_TRUNCATED = encodeError('ERR malformed command: truncated');
const ERR_TRAILING = encodeError('ERR malformed command: trailing bytes');
const ERR_NESTED = encodeError('ERR malformed command: nested session');
const ERR_CAS_FLAG = encodeError('ERR malformed command: bad CAS flag');
const ERR_ARGS = encodeError('ERR wrong number of arguments');
const ERR_NOT_INT = encodeError('ERR value is not an integer or out of range');
const ERR_OVERFLOW = encodeError('ERR increment or decrement would overflow');
const ERR_READONLY = encodeError('ERR only read commands (GET MGET EXISTS DBSIZE SCAN TYPE TTL) can be queried');
const ERR_SCAN_FLAG = encodeError('ERR malformed command: bad SCAN flag');
const ERR_SYNTAX = encodeError('ERR syntax error');
const STATUS_STRING = encodeStatus('string');
const STATUS_NONE = encodeStatus('none');
/** TTL of a key that exists (no expiry is kept) and of a missing one, as Redis answers */
const TTL_NO_EXPIRY = encodeInt(-1);
const TTL_MISSING = encodeInt(-2);

const SMALL_INTS: Uint8Array[] = Array.from({ length: 64 }, (_, i) => encodeInt(i));
const intResult = (n: number | bigint): Uint8Array =>
  typeof n === 'number' && n >= 0 && n < 64 ? SMALL_INTS[n]! : encodeInt(n);

function bulkSize(v: string): number {
  const n = v.length;
  return 1 + (n < 0x80 ? 1 : varintSize(n)) + n;
}
function writeBulk(r: Uint8Array, off: number, v: string): number {
  r[off++] = ResultTag.BULK;
  const n = v.length;
  off = writeVarint(r, off, n);
  if (n > 0) latin1Write.call(r, v, off, n);
  return off + n;
}
/**
 * Results that carry values are written into `Buffer.allocUnsafe` memory (every byte is written), pooled
 * for small sizes. A result kept for long (a session's cached result) is copied out of the pool.
 */
const unpooled = (r: Uint8Array): Uint8Array => (r.byteLength === r.buffer.byteLength ? r : new Uint8Array(r));

// ---------------------------------------------------------------- INCR arithmetic (Redis string2ll semantics)

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

/** The int64 a stored value holds, or undefined when it is not a canonical decimal integer. */
export function parseInt64(s: string): number | bigint | undefined {
  const len = s.length;
  if (len === 0 || len > 20) return undefined;
  if (len === 1 && s.charCodeAt(0) === 48) return 0;
  let i = 0;
  const neg = s.charCodeAt(0) === 45;
  if (neg) {
    i = 1;
    if (len === 1) return undefined;
  }
  const first = s.charCodeAt(i);
  if (first < 49 || first > 57) return undefined; // no leading zero, no "-0", no '+'
  if (len - i <= 15) {
    // at most 15 digits: exact in a double
    let n = 0;
    for (; i < len; i++) {
      const d = s.charCodeAt(i) - 48;
      if (d < 0 || d > 9) return undefined;
      n = n * 10 + d;
    }
    return neg ? -n : n;
  }
  for (let j = i + 1; j < len; j++) {
    const d = s.charCodeAt(j) - 48;
    if (d < 0 || d > 9) return undefined;
  }
  const b = BigInt(s);
  if (b < I64_MIN || b > I64_MAX) return undefined;
  return Number.isSafeInteger(Number(b)) && BigInt(Number(b)) === b ? Number(b) : b;
}

function addInt64(a: number | bigint, b: number | bigint): number | bigint | undefined {
  if (typeof a === 'number' && typeof b === 'number') {
    const s = a + b;
    if (Number.isSafeInteger(s)) return s;
  }
  const s = BigInt(a) + BigInt(b);
  if (s < I64_MIN || s > I64_MAX) return undefined;
  return s >= -BigInt(Number.MAX_SAFE_INTEGER) && s <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(s) : s;
}

// ---------------------------------------------------------------- the machine

const utf8ToBinary = (x: Bytes): string =>
  typeof x === 'string'
    ? Buffer.from(x, 'utf8').toString('latin1')
    : x.length === 0
      ? ''
      : latin1Slice.call(x, 0, x.length);

/** the most prefetch hints kept for one slot (their rows and keys stay within the L2 cache) */
const PREFETCH_MAX = 2048;

/**
 * An in-memory KV state machine: GET/SET/DEL/INCR/MGET/MSET/EXISTS/CAS over a compact binary
 * command encoding, with client sessions for exactly-once execution. `apply` never throws on bad
 * input: a malformed command gets an error result, the same on every replica.
 */
export class KvMachine implements StateMachine {
  /** snapshot() captures the maps at the call (copy-on-call): commands may apply while its stream is read */
  readonly snapshotIsCopy = true;
  private data = new ByteTable();
  private sessions = new Map<string, SessionEntry>();
  /**
   * Sessions forgotten (idle past their window, or evicted over the cap) and when, oldest first: a
   * later write under one of these ids may be the retry of a write already applied, so it is refused
   * (`ERR session expired`). Kept for another window, and at most maxSessions of them.
   */
  private forgotten = new Map<string, { slot: Slot; ms: number }>();
  private readonly ttl: number;
  private readonly ttlMs: number;
  private readonly maxSessions: number;
  /** the log's time: the newest leader timestamp of the batches applied (monotone) */
  private nowMs = 0;
  private lastSlot: Slot = 0;
  private nextSweep: Slot = 0;
  private appliedCount = 0;
  private readonly snapshotYield: (() => Promise<void>) | undefined;
  /** the SCAN cursor index: built at the first SCAN, then kept up to date (derived, not part of the state) */
  private index: ScanIndex | undefined = undefined;

  constructor(opts: KvMachineOptions = {}) {
    this.ttl = opts.sessionTtlSlots ?? DEFAULT_SESSION_TTL_SLOTS;
    this.ttlMs = opts.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
    this.maxSessions = opts.maxSessions ?? DEFAULT_MAX_SESSIONS;
    this.snapshotYield = opts.snapshotYield === false ? undefined : (opts.snapshotYield ?? nextTurn);
    CONTRACTS && requires(Number.isSafeInteger(this.ttl) && this.ttl >= 1, 'sessionTtlSlots is a positive integer');
    CONTRACTS &&
      requires(Number.isSafeInteger(this.ttlMs) && this.ttlMs >= 0, 'sessionTtlMs is a non-negative integer');
    CONTRACTS &&
      requires(Number.isSafeInteger(this.maxSessions) && this.maxSessions >= 1, 'maxSessions is a positive integer');
  }

  /** prefetchAt's entries waiting for the next apply (bounded: hints past the bound are dropped) */
  private readonly pfEntries = new Int32Array(PREFETCH_MAX);
  private pfN = 0;
  /** what the prefetch read, kept so that the reads are not optimised away */
  private pfSink = 0;

  /** The leader's timestamp of the batch about to be applied: the log's time moves forward (never back). */
  beforeBatch(_slot: Slot, atMs?: number): void {
    if (atMs !== undefined && atMs > this.nowMs) this.nowMs = atMs;
  }

  /** Idle for more than both windows (the time window counts only when the log carries timestamps). */
  private expired(s: { lastSlot: Slot; lastMs: number }): boolean {
    return this.lastSlot - s.lastSlot > this.ttl && (this.ttlMs === 0 || this.nowMs - s.lastMs > this.ttlMs);
  }

  /** Forgets a session: its id is remembered as forgotten (bounded, oldest first out). */
  private forget(id: string): void {
    this.sessions.delete(id);
    this.forgotten.delete(id);
    this.forgotten.set(id, { slot: this.lastSlot, ms: this.nowMs });
    if (this.forgotten.size > this.maxSessions) this.forgotten.delete(this.forgotten.keys().next().value!);
  }

  apply(command: Uint8Array, slot: Slot): Uint8Array | undefined {
    return this.applyAt(command, 0, command.length, slot);
  }

  /**
   * The learner's hint that the command at [start, end) comes next in this slot: a SET, GET or INCR
   * reads its key's home slot in the index now; the first apply after these hints reads the rows and
   * keys of all of them in two passes (ByteTable.touch). A batch's lookups then wait for memory
   * together instead of one after another: at 100,000 keys three misses per SET, 130 ns each here.
   */
  prefetchAt(buf: Uint8Array, start: number, end: number): void {
    if (this.pfN >= PREFETCH_MAX || end - start < 2 || end > buf.length || start < 0) return;
    const op = buf[start];
    if (op !== Op.SET && op !== Op.GET && op !== Op.INCR) return;
    let p = start + 1;
    let len = buf[p++]!;
    if (len >= 0x80) {
      if (p >= end || buf[p]! >= 0x80) return; // two-byte lengths at most: longer keys are not worth it
      len = (len & 0x7f) | (buf[p++]! << 7);
    }
    if (len > end - p) return;
    this.pfEntries[this.pfN++] = this.data.homeEntry(this.data.hash(buf, p, len));
  }

  /** apply() of the command at [start, end) of buf, read in place. */
  applyAt(buf: Uint8Array, start: number, end: number, slot: Slot): Uint8Array | undefined {
    if (this.pfN > 0) {
      this.pfSink ^= this.data.touch(this.pfEntries, this.pfN);
      this.pfN = 0;
    }
    CONTRACTS &&
      requires(
        Number.isSafeInteger(slot) && slot >= this.lastSlot,
        `slots are applied in order (${slot} >= ${this.lastSlot})`,
      );
    CONTRACTS && requires(start >= 0 && start <= end && end <= buf.length, 'the command lies inside the buffer');
    if (slot > this.lastSlot) this.advance(slot);
    this.appliedCount++;
    return this.exec(buf, start, end, true);
  }

  /**
   * Executes a read-only command (GET MGET EXISTS DBSIZE SCAN TYPE TTL) against the local state without
   * changing it: for stale reads at any replica, or linearizable reads once applied >= the read index.
   */
  query(command: Uint8Array): Uint8Array {
    if (!isReadOp(command[0])) return ERR_READONLY;
    return this.exec(command, 0, command.length, false);
  }

  /** Sets key → value (byte ranges) and keeps the SCAN index (when there is one) up to date. */
  private put(kb: Uint8Array, ko: number, kl: number, vb: Uint8Array, vo: number, vl: number): void {
    const r = this.data.set(kb, ko, kl, vb, vo, vl);
    if (r < 0 && this.index !== undefined) this.index.add(this.data.keyStr(-r - 1));
  }

  /** A BULK result of an entry's value. */
  private bulkOf(e: number): Uint8Array {
    const n = this.data.valueLength(e);
    const r = Buffer.allocUnsafe(1 + (n < 0x80 ? 1 : varintSize(n)) + n);
    r[0] = ResultTag.BULK;
    this.data.copyValue(e, r, writeVarint(r, 1, n));
    return r;
  }

  /** A SCAN page: ARRAY [BULK next-cursor, ARRAY of BULK keys]. */
  private scan(cursor: number, count: number, pattern: string | undefined): Uint8Array {
    if (this.index === undefined)
      this.index = ScanIndex.of(Array.from(this.data.entries(), (e) => this.data.keyStr(e)));
    const page = this.index.page(cursor, count);
    let keys = page.keys;
    if (pattern !== undefined && pattern !== '*') keys = keys.filter(globMatcher(pattern));
    const next = String(page.next);
    let size = 1 + 1 + bulkSize(next) + 1 + varintSize(keys.length);
    for (const k of keys) size += bulkSize(k);
    const r = Buffer.allocUnsafe(size);
    r[0] = ResultTag.ARRAY;
    r[1] = 2;
    let off = writeBulk(r, 2, next);
    r[off++] = ResultTag.ARRAY;
    off = writeVarint(r, off, keys.length);
    for (const k of keys) off = writeBulk(r, off, k);
    return r;
  }

  /** The value at `key` (a UTF-8 string or raw bytes), read locally. */
  get(key: Bytes): Uint8Array | undefined {
    const e = this.data.findStr(utf8ToBinary(key));
    if (e < 0) return undefined;
    const out = new Uint8Array(this.data.valueLength(e));
    this.data.copyValue(e, out, 0);
    return out;
  }

  get size(): number {
    return this.data.size;
  }

  stats(): { keys: number; sessions: number; forgotten: number; applied: number; lastSlot: Slot } {
    return {
      keys: this.data.size,
      sessions: this.sessions.size,
      forgotten: this.forgotten.size,
      applied: this.appliedCount,
      lastSlot: this.lastSlot,
    };
  }

  /** The session of a client, if it is live at the last applied slot (tests and introspection). */
  session(clientId: Bytes): Readonly<SessionEntry> | undefined {
    const s = this.sessions.get(utf8ToBinary(clientId));
    return s && !this.expired(s) ? s : undefined;
  }

  private advance(slot: Slot): void {
    this.lastSlot = slot;
    if (slot >= this.nextSweep) {
      // Expiry is decided on access (idle > ttl slots means gone); the sweep only frees memory, every ttl/2 slots.
      for (const [id, s] of this.sessions) if (this.expired(s)) this.forget(id);
      // forgotten long enough (another whole window): their retries are no longer expected
      for (const [id, f] of this.forgotten) {
        if (!this.expired({ lastSlot: f.slot, lastMs: f.ms })) break; // oldest first
        this.forgotten.delete(id);
      }
      this.nextSweep = slot + Math.max(1, Math.ceil(this.ttl / 2));
    }
  }

  private exec(c: Uint8Array, start: number, end: number, write: boolean, nested = false): Uint8Array {
    END = end;
    if (start >= END) return ERR_EMPTY;
    P = start + 1;
    const op = c[start]!;
    try {
      switch (op) {
        case Op.SET: {
          readRange(c);
          const ko = R_OFF;
          const kl = R_LEN;
          readRange(c);
          if (P !== END) return ERR_TRAILING;
          this.put(c, ko, kl, c, R_OFF, R_LEN);
          return RESULT_OK;
        }
        case Op.GET: {
          readRange(c);
          if (P !== END) return ERR_TRAILING;
          const e = this.data.find(c, R_OFF, R_LEN);
          return e < 0 ? RESULT_NIL : this.bulkOf(e);
        }
        case Op.DEL:
        case Op.EXISTS: {
          const n = readCount(c, 1);
          if (n === 0) return ERR_ARGS;
          const at = new Array<number>(2 * n);
          for (let i = 0; i < 2 * n; i += 2) {
            readRange(c);
            at[i] = R_OFF;
            at[i + 1] = R_LEN;
          }
          if (P !== END) return ERR_TRAILING;
          let count = 0;
          if (op === Op.DEL) {
            for (let i = 0; i < 2 * n; i += 2) {
              if (!this.data.delete(c, at[i]!, at[i + 1]!)) continue;
              count++;
              this.index?.delete(at[i + 1] === 0 ? '' : latin1Slice.call(c, at[i]!, at[i]! + at[i + 1]!));
            }
          } else {
            for (let i = 0; i < 2 * n; i += 2) if (this.data.find(c, at[i]!, at[i + 1]!) >= 0) count++;
          }
          return intResult(count);
        }
        case Op.INCR: {
          readRange(c);
          const ko = R_OFF;
          const kl = R_LEN;
          const by = readI64(c);
          if (P !== END) return ERR_TRAILING;
          const e = this.data.find(c, ko, kl);
          const old = e < 0 ? 0 : parseInt64(this.data.valueStr(e));
          if (old === undefined) return ERR_NOT_INT;
          const sum = addInt64(old, by);
          if (sum === undefined) return ERR_OVERFLOW;
          const digits = String(sum);
          latin1Write.call(INT_BUF, digits, 0, digits.length);
          this.put(c, ko, kl, INT_BUF, 0, digits.length);
          return intResult(sum);
        }
        case Op.MGET: {
          const n = readCount(c, 1);
          if (n === 0) return ERR_ARGS;
          const found = new Array<number>(n);
          for (let i = 0; i < n; i++) {
            readRange(c);
            found[i] = this.data.find(c, R_OFF, R_LEN);
          }
          if (P !== END) return ERR_TRAILING;
          let size = 1 + varintSize(n);
          for (let i = 0; i < n; i++) {
            const e = found[i]!;
            if (e < 0) size += 1;
            else {
              const vl = this.data.valueLength(e);
              size += 1 + (vl < 0x80 ? 1 : varintSize(vl)) + vl;
            }
          }
          const r = Buffer.allocUnsafe(size);
          r[0] = ResultTag.ARRAY;
          let off = writeVarint(r, 1, n);
          for (let i = 0; i < n; i++) {
            const e = found[i]!;
            if (e < 0) {
              r[off++] = ResultTag.NIL;
              continue;
            }
            r[off++] = ResultTag.BULK;
            off = writeVarint(r, off, this.data.valueLength(e));
            off = this.data.copyValue(e, r, off);
          }
          return r;
        }
        case Op.MSET: {
          const n = readCount(c, 2);
          if (n === 0) return ERR_ARGS;
          const at = new Array<number>(4 * n);
          for (let i = 0; i < 4 * n; i += 2) {
            readRange(c);
            at[i] = R_OFF;
            at[i + 1] = R_LEN;
          }
          if (P !== END) return ERR_TRAILING;
          for (let i = 0; i < 4 * n; i += 4) this.put(c, at[i]!, at[i + 1]!, c, at[i + 2]!, at[i + 3]!);
          return RESULT_OK;
        }
        case Op.CAS: {
          readRange(c);
          const ko = R_OFF;
          const kl = R_LEN;
          if (P >= END) throw TRUNCATED;
          const flag = c[P++]!;
          if (flag > 1) return ERR_CAS_FLAG;
          let eo = 0;
          let el = 0;
          if (flag === 1) {
            readRange(c);
            eo = R_OFF;
            el = R_LEN;
          }
          readRange(c);
          if (P !== END) return ERR_TRAILING;
          const e = this.data.find(c, ko, kl);
          const matches = flag === 0 ? e < 0 : e >= 0 && this.data.valueEquals(e, c, eo, el);
          if (!matches) return SMALL_INTS[0]!;
          this.put(c, ko, kl, c, R_OFF, R_LEN);
          return SMALL_INTS[1]!;
        }
        case Op.DBSIZE:
          if (P !== END) return ERR_TRAILING;
          return intResult(this.data.size);
        case Op.SCAN: {
          const cursor = readLen(c);
          const count = readLen(c);
          if (P >= END) throw TRUNCATED;
          const flag = c[P++]!;
          if (flag > 1) return ERR_SCAN_FLAG;
          const pattern = flag === 1 ? readStr(c) : undefined;
          if (P !== END) return ERR_TRAILING;
          if (count === 0) return ERR_SYNTAX;
          return this.scan(cursor, count, pattern);
        }
        case Op.TYPE:
        case Op.TTL: {
          readRange(c);
          if (P !== END) return ERR_TRAILING;
          const has = this.data.find(c, R_OFF, R_LEN) >= 0;
          if (op === Op.TYPE) return has ? STATUS_STRING : STATUS_NONE;
          return has ? TTL_NO_EXPIRY : TTL_MISSING;
        }
        case Op.SESSION: {
          if (!write || nested) return ERR_NESTED;
          const id = readStr(c);
          const seq = readLen(c);
          const innerAt = P;
          if (innerAt < END && c[innerAt] === Op.SESSION) return ERR_NESTED;
          const slot = this.lastSlot;
          let s = this.sessions.get(id);
          if (s !== undefined && this.expired(s)) {
            this.forget(id);
            s = undefined;
          }
          if (s !== undefined) {
            // most recently used last: the cap forgets from the front
            this.sessions.delete(id);
            this.sessions.set(id, s);
            s.lastSlot = slot;
            s.lastMs = this.nowMs;
            if (seq === s.seq) return s.result;
            if (seq < s.seq) return encodeError(`ERR stale session sequence ${seq} (last applied ${s.seq})`);
          } else if (this.forgotten.has(id)) {
            // a session that was forgotten (idle past its window, or over the cap): this may be a retry of a
            // write it already applied, so it is not applied again (Raft's client sessions do the same)
            return ERR_SESSION_EXPIRED;
          }
          const result = unpooled(this.exec(c, innerAt, END, true, true));
          if (s !== undefined) {
            s.seq = seq;
            s.result = result;
          } else {
            this.sessions.set(id, { seq, result, lastSlot: slot, lastMs: this.nowMs });
            if (this.sessions.size > this.maxSessions) this.forget(this.sessions.keys().next().value!);
          }
          return result;
        }
        default:
          return encodeError(`ERR malformed command: unknown opcode 0x${op.toString(16).padStart(2, '0')}`);
      }
    } catch (e) {
      if (e === TRUNCATED) return ERR_TRUNCATED;
      // Not reachable by design (a Map of sessions over V8's 2^24 entries would be one).
      return encodeError(`ERR internal: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  // ---------------------------------------------------------------- snapshots

  /**
   * A consistent copy of the state as of the last applied command. The references to keys, values
   * (immutable strings) and sessions are captured synchronously, so commands applied while the
   * stream is consumed do not show in it; the stream is encoded lazily, frame by frame, a turn of the
   * event loop between two frames (`snapshotYield`).
   */
  async snapshot(): Promise<AsyncIterable<Uint8Array>> {
    return writeSnapshot(this.capture(), this.snapshotYield);
  }

  /** The whole snapshot as one buffer. */
  async snapshotBytes(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    for await (const p of await this.snapshot()) parts.push(p);
    return Buffer.concat(parts);
  }

  private capture(): SnapshotContents {
    const sessions: SnapshotContents['sessions'] = [];
    for (const [id, s] of this.sessions) sessions.push([id, s.seq, s.lastSlot, s.result, s.lastMs]);
    return {
      lastSlot: this.lastSlot,
      nextSweep: this.nextSweep,
      applied: this.appliedCount,
      ttl: this.ttl,
      nowMs: this.nowMs,
      forgotten: Array.from(this.forgotten, ([id, f]) => [id, f.slot, f.ms] as [string, number, number]),
      keys: [],
      values: [],
      table: this.data.copy(),
      sessions,
    };
  }

  /** Replaces the state with a snapshot's; on a bad snapshot throws KvSnapshotError and keeps the old state. */
  async restore(snapshot: AsyncIterable<Uint8Array> | Iterable<Uint8Array> | Uint8Array): Promise<void> {
    const data = new ByteTable();
    const s = await readSnapshot(snapshot, (k, v) => data.set(k, 0, k.length, v, 0, v.length));
    const sessions = new Map<string, SessionEntry>();
    for (const [id, seq, lastSlot, result, lastMs] of s.sessions) sessions.set(id, { seq, lastSlot, result, lastMs });
    this.data = data;
    this.index = undefined; // rebuilt at the next SCAN
    this.sessions = sessions;
    this.forgotten = new Map(s.forgotten.map(([id, slot, ms]) => [id, { slot, ms }]));
    this.nowMs = s.nowMs;
    this.lastSlot = s.lastSlot;
    this.nextSweep = s.nextSweep;
    this.appliedCount = s.applied;
  }

  /**
   * A deterministic hash of the whole state (data and the sessions live at the last applied slot),
   * independent of insertion order: equal on replicas that applied the same commands.
   */
  digest(): string {
    const h = createHash('sha256');
    const len = Buffer.alloc(8);
    const put = (s: string) => {
      len.writeUInt32LE(s.length, 0);
      h.update(len.subarray(0, 4));
      h.update(s, 'latin1');
    };
    const byKey = Array.from(this.data.entries(), (e) => [this.data.keyStr(e), e] as const);
    byKey.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    for (const [k, e] of byKey) {
      put(k);
      put(this.data.valueStr(e));
    }
    h.update('|forgotten|');
    for (const id of Array.from(this.forgotten.keys()).sort()) put(id);
    h.update('|sessions|');
    const ids = Array.from(this.sessions.keys()).sort();
    for (const id of ids) {
      const s = this.sessions.get(id)!;
      if (this.expired(s)) continue;
      put(id);
      len.writeDoubleLE(s.seq, 0);
      h.update(len);
      len.writeDoubleLE(s.lastSlot, 0);
      h.update(len);
      len.writeUInt32LE(s.result.length, 0);
      h.update(len.subarray(0, 4));
      h.update(s.result);
    }
    return h.digest('hex');
  }
}
