import { randomBytes } from 'node:crypto';

/**
 * ByteTable: the KV state as bytes, with no JavaScript object per key or value (issue #19 point 1,
 * docs/decisions/0012-byte-table.md).
 *
 * - The index is open addressing with linear probing over two Int32Arrays (the entry in each slot and
 *   its hash, so a probe reads no entry it does not match); deletion shifts the run back (no tombstones).
 * - An entry is a row of six Int32Arrays (hash, slab, offset, capacity, key length, value length) and a
 *   chunk of `capacity` bytes in a slab: the key, then the value.
 * - Chunks up to 64 KiB come from 4 MiB slabs in size classes of four steps per power of two (as
 *   memcached's slab allocator); a freed chunk goes on its class's free list. A larger chunk is a slab of
 *   its own, dropped when freed. Overwriting a value that fits its chunk writes it in place, so a steady
 *   stream of SETs to existing keys allocates nothing at all.
 * - Entry numbers are reused lowest-last (a stack); iteration is in entry order. Nothing observable
 *   depends on the order (the digest sorts, SCAN has its own index), so replicas may differ in it.
 * - The hash is seeded per table (random): no client can choose keys that collide on every replica.
 */

const SLAB_BYTES = 4 << 20;
// the fields of an entry's row
const H = 0;
const SLAB = 1;
const OFF = 2;
const CAP = 3;
const KLEN = 4;
const VLEN = 5;
/** chunks above this get a slab of their own */
const BIG_CHUNK = 64 << 10;
const MIN_CHUNK = 16;
/** size classes 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, … up to BIG_CHUNK */
const CLASSES = 1 + 4 * (Math.log2(BIG_CHUNK) - Math.log2(MIN_CHUNK));

/** The size class of a chunk of n bytes (n ≤ BIG_CHUNK). */
function classOf(n: number): number {
  if (n <= MIN_CHUNK) return 0;
  const p = 31 - Math.clz32(n - 1);
  return (p - 4) * 4 + ((n - 1 - (1 << p)) >> (p - 2)) + 1;
}
/** The bytes of a chunk of class c. */
function classBytes(c: number): number {
  if (c === 0) return MIN_CHUNK;
  const p = ((c - 1) >> 2) + 4;
  return (1 << p) + (((c - 1) & 3) + 1) * (1 << (p - 2));
}

type BufProto = {
  latin1Slice(this: Uint8Array, start: number, end: number): string;
  latin1Write(this: Uint8Array, s: string, offset: number, length: number): number;
};
const { latin1Slice, latin1Write } = Buffer.prototype as unknown as BufProto;

/** a scratch buffer for the string API (keys and values given as binary strings) */
let scratch = Buffer.allocUnsafe(1 << 16);
function toScratch(s: string, at: number): number {
  const need = at + s.length;
  if (need > scratch.length) {
    const grown = Buffer.allocUnsafe(Math.max(need, scratch.length * 2));
    scratch.copy(grown, 0, 0, at);
    scratch = grown;
  }
  if (s.length > 0) latin1Write.call(scratch, s, at, s.length);
  return need;
}

/**
 * Copies n bytes: a loop for short ranges (a subarray for set() is an object per call, which costs more
 * than copying a key or a small value byte by byte), a native copy for long ones.
 */
export function copyBytes(src: Uint8Array, from: number, dst: Uint8Array, to: number, n: number): void {
  if (n <= 128) for (let i = 0; i < n; i++) dst[to + i] = src[from + i]!;
  else dst.set(src.subarray(from, from + n), to);
}

/** A DataView over exactly a byte array's bytes. */
const viewOver = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

/**
 * copyBytes with DataViews of both arrays: 4 bytes per step up to 128 bytes, a native copy above. A 64-byte
 * value took 112 ns byte by byte, 65 ns through subarray + set and 42 ns this way (docs/benchmarks.md).
 */
function copyWords(
  src: Uint8Array,
  sv: DataView,
  base: number,
  from: number,
  dst: Uint8Array,
  dv: DataView,
  to: number,
  n: number,
): void {
  if (n > 128) {
    dst.set(src.subarray(from, from + n), to);
    return;
  }
  // sv spans src's whole ArrayBuffer from `base` (src.byteOffset; ByteTable.viewOf), dv exactly dst
  const at = base + from;
  let i = 0;
  for (; i + 4 <= n; i += 4) dv.setInt32(to + i, sv.getInt32(at + i));
  for (; i < n; i++) dst[to + i] = src[from + i]!;
}

/** A consistent copy of a table (its own bytes): what a snapshot streams while the table goes on. */
export interface TableCopy {
  readonly count: number;
  /** entry rows in use, in order: slab, offset, key length, value length */
  readonly rows: Int32Array;
  readonly slabs: readonly Uint8Array[];
}

export class ByteTable {
  private readonly seed: number;
  // ---- the index
  private mask = 0;
  /** two ints per index slot: entry + 1 (0: empty) and the entry's hash */
  private idx: Int32Array = new Int32Array(0);
  // ---- entries (struct of arrays)
  /** ROW ints per entry: H, SLAB, OFF, CAP, KLEN, VLEN (one 32-byte row: one cache miss per entry) */
  private rows: Int32Array = new Int32Array(0);
  /** entry numbers ever used (the high water mark); free ones are in freeEntries */
  private top = 0;
  private freeEntries: Int32Array = new Int32Array(16);
  private nFreeEntries = 0;
  private count = 0;
  // ---- memory
  private slabs: (Uint8Array | undefined)[] = [];
  /** a DataView of each slab (word-wise key compares and copies) */
  private views: (DataView | undefined)[] = [];
  /**
   * the ArrayBuffer of the last source given to set / find, and a DataView of all of it: a slot's commands
   * share one, and so do commands cut from one pool or batch buffer (a view per command would allocate)
   */
  private srcBuffer: ArrayBufferLike | undefined = undefined;
  private srcView: DataView = viewOver(EMPTY);
  /** the last source array itself, and its byteOffset in srcBuffer (set by viewOf) */
  private srcBuf: Uint8Array | undefined = undefined;
  private srcBase = 0;
  private freeSlabIds: number[] = [];
  /** the slab small chunks are cut from, and where its free space starts */
  private cur = -1;
  private curOff = SLAB_BYTES;
  /** per class: a stack of free chunks as (slab, offset) pairs */
  private readonly freeChunks: Int32Array[] = Array.from({ length: CLASSES }, () => new Int32Array(0));
  private readonly nFreeChunks = new Int32Array(CLASSES);
  private bytesInUse = 0;

  constructor(seed?: number) {
    this.seed = seed ?? randomBytes(4).readInt32LE(0);
    this.resizeIndex(16);
    this.growEntries(16);
  }

  get size(): number {
    return this.count;
  }

  /** bytes of chunks holding entries (capacity, not payload), and of the slabs allocated */
  memory(): { chunkBytes: number; slabBytes: number } {
    let slabBytes = 0;
    for (const s of this.slabs) if (s !== undefined) slabBytes += s.length;
    return { chunkBytes: this.bytesInUse, slabBytes };
  }

  // ---------------------------------------------------------------- hashing and lookup

  hash(b: Uint8Array, off: number, len: number): number {
    // murmur3's body over 4-byte words, then its tail and fmix32
    let h = this.seed ^ len;
    const end4 = off + (len & ~3);
    let i = off;
    for (; i < end4; i += 4) {
      let k = b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
      k = Math.imul(k, 0xcc9e2d51);
      k = (k << 15) | (k >>> 17);
      h ^= Math.imul(k, 0x1b873593);
      h = (h << 13) | (h >>> 19);
      h = (Math.imul(h, 5) + 0xe6546b64) | 0;
    }
    const rest = len & 3;
    if (rest !== 0) {
      let k = b[i]!;
      if (rest > 1) k ^= b[i + 1]! << 8;
      if (rest > 2) k ^= b[i + 2]! << 16;
      k = Math.imul(k, 0xcc9e2d51);
      k = (k << 15) | (k >>> 17);
      h ^= Math.imul(k, 0x1b873593);
    }
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return h ^ (h >>> 16);
  }

  /** A DataView of the whole ArrayBuffer under b; b starts at srcBase in it. */
  private viewOf(b: Uint8Array): DataView {
    if (b !== this.srcBuf) {
      this.srcBuf = b;
      this.srcBase = b.byteOffset;
      const ab = b.buffer;
      if (ab !== this.srcBuffer) {
        this.srcBuffer = ab;
        this.srcView = new DataView(ab);
      }
    }
    return this.srcView;
  }

  private keyEquals(e: number, b: Uint8Array, off: number, len: number): boolean {
    if (this.rows[8 * e + KLEN] !== len) return false;
    const slab = this.rows[8 * e + SLAB]!;
    const o = this.rows[8 * e + OFF]!;
    const dv = this.views[slab]!;
    const sv = this.viewOf(b);
    const at = this.srcBase + off;
    let i = 0;
    for (; i + 4 <= len; i += 4) if (dv.getInt32(o + i) !== sv.getInt32(at + i)) return false;
    const s = this.slabs[slab]!;
    for (; i < len; i++) if (s[o + i] !== b[off + i]) return false;
    return true;
  }

  /** The index slot holding the key, or -(the empty slot where it would go) - 1. */
  private probe(b: Uint8Array, off: number, len: number, h: number): number {
    const mask = this.mask;
    const idx = this.idx;
    let i = h & mask;
    for (;;) {
      const e1 = idx[2 * i]!;
      if (e1 === 0) return -i - 1;
      if (idx[2 * i + 1] === h && this.keyEquals(e1 - 1, b, off, len)) return i;
      i = (i + 1) & mask;
    }
  }

  /**
   * Prefetch, first step: the entry (+1; 0 for none) in a hash's home slot of the index. Reading it
   * starts that cache miss; calls for a batch's keys in a row overlap their misses (issue #19).
   */
  homeEntry(h: number): number {
    return this.idx[2 * (h & this.mask)]!;
  }

  /**
   * Prefetch, second step: reads the rows, then the first key byte and the last value byte, of
   * entries (+1, as homeEntry gives them), in two passes whose loads do not wait on one another, so
   * the misses of a batch overlap instead of following each other. Changes nothing; returns the
   * bytes read folded together.
   */
  touch(entries: Int32Array, n: number): number {
    const rows = this.rows;
    const top = this.top;
    let s = 0;
    for (let i = 0; i < n; i++) {
      const e = entries[i]! - 1;
      if (e >= 0 && e < top) s ^= rows[8 * e + OFF]!;
    }
    const slabs = this.slabs;
    for (let i = 0; i < n; i++) {
      const e = entries[i]! - 1;
      if (e < 0 || e >= top) continue;
      const slab = slabs[rows[8 * e + SLAB]!];
      if (slab === undefined) continue;
      const o = rows[8 * e + OFF]!;
      // the key's first byte and the value's last: a chunk of more than one cache line gets both read
      s ^= (slab[o] ?? 0) ^ (slab[o + rows[8 * e + KLEN]! + rows[8 * e + VLEN]! - 1] ?? 0);
    }
    return s;
  }

  /** The entry of a key, or -1. */
  find(b: Uint8Array, off: number, len: number): number {
    const i = this.probe(b, off, len, this.hash(b, off, len));
    return i < 0 ? -1 : this.idx[2 * i]! - 1;
  }

  findStr(k: string): number {
    toScratch(k, 0);
    return this.find(scratch, 0, k.length);
  }

  // ---------------------------------------------------------------- entry access

  valueLength(e: number): number {
    return this.rows[8 * e + VLEN]!;
  }
  keyLength(e: number): number {
    return this.rows[8 * e + KLEN]!;
  }
  /** the slab and the offset of an entry's value (valid until the next change to the table) */
  valueSlab(e: number): Uint8Array {
    return this.slabs[this.rows[8 * e + SLAB]!]!;
  }
  valueOffset(e: number): number {
    return this.rows[8 * e + OFF]! + this.rows[8 * e + KLEN]!;
  }
  /** copies the value into dst at off; returns the offset after it */
  copyValue(e: number, dst: Uint8Array, off: number): number {
    const n = this.rows[8 * e + VLEN]!;
    copyBytes(this.slabs[this.rows[8 * e + SLAB]!]!, this.rows[8 * e + OFF]! + this.rows[8 * e + KLEN]!, dst, off, n);
    return off + n;
  }
  valueStr(e: number): string {
    const n = this.rows[8 * e + VLEN]!;
    if (n === 0) return '';
    const from = this.rows[8 * e + OFF]! + this.rows[8 * e + KLEN]!;
    return latin1Slice.call(this.slabs[this.rows[8 * e + SLAB]!]!, from, from + n);
  }
  keyStr(e: number): string {
    const n = this.rows[8 * e + KLEN]!;
    if (n === 0) return '';
    const from = this.rows[8 * e + OFF]!;
    return latin1Slice.call(this.slabs[this.rows[8 * e + SLAB]!]!, from, from + n);
  }
  /** whether an entry's value equals bytes */
  valueEquals(e: number, b: Uint8Array, off: number, len: number): boolean {
    if (this.rows[8 * e + VLEN] !== len) return false;
    const s = this.slabs[this.rows[8 * e + SLAB]!]!;
    const o = this.rows[8 * e + OFF]! + this.rows[8 * e + KLEN]!;
    for (let i = 0; i < len; i++) if (s[o + i] !== b[off + i]) return false;
    return true;
  }

  /** The entries in use, in entry order (a snapshot of the numbers: safe to change the table meanwhile). */
  entries(): Int32Array {
    const out = new Int32Array(this.count);
    let n = 0;
    const rows = this.rows;
    for (let e = 0; e < this.top; e++) if (rows[8 * e + SLAB]! >= 0) out[n++] = e;
    return out;
  }

  // ---------------------------------------------------------------- changes

  /**
   * Sets key → value (both byte ranges; they may be in the same buffer, never in the table's own slabs).
   * Returns the entry and whether it is new as (entry + 1), negated when new.
   */
  set(kb: Uint8Array, koff: number, klen: number, vb: Uint8Array, voff: number, vlen: number): number {
    const h = this.hash(kb, koff, klen);
    const i = this.probe(kb, koff, klen, h);
    if (i >= 0) {
      const e = this.idx[2 * i]! - 1;
      const cap = this.rows[8 * e + CAP]!;
      const need = klen + vlen;
      if (need <= cap && (cap <= MIN_CHUNK || need > cap >> 1)) {
        const slab = this.rows[8 * e + SLAB]!;
        const to = this.rows[8 * e + OFF]! + klen;
        copyWords(vb, this.viewOf(vb), this.srcBase, voff, this.slabs[slab]!, this.views[slab]!, to, vlen);
        this.rows[8 * e + VLEN] = vlen;
        return e + 1;
      }
      // a new chunk: the key moves with the value
      this.freeChunk(this.rows[8 * e + SLAB]!, this.rows[8 * e + OFF]!, cap);
      this.place(e, kb, koff, klen, vb, voff, vlen);
      return e + 1;
    }
    const e = this.newEntry();
    this.rows[8 * e + H] = h;
    this.place(e, kb, koff, klen, vb, voff, vlen);
    const slot = -i - 1;
    this.idx[2 * slot] = e + 1;
    this.idx[2 * slot + 1] = h;
    this.count++;
    if (this.count * 2 > this.mask + 1) this.resizeIndex((this.mask + 1) * 2);
    return -(e + 1);
  }

  /** set() with a binary (latin1) string key and value */
  setStr(k: string, v: string): number {
    const end = toScratch(k, 0);
    toScratch(v, end);
    return this.set(scratch, 0, k.length, scratch, end, v.length);
  }

  /** Deletes a key; whether it was there. */
  delete(b: Uint8Array, off: number, len: number): boolean {
    const i = this.probe(b, off, len, this.hash(b, off, len));
    if (i < 0) return false;
    const e = this.idx[2 * i]! - 1;
    this.freeChunk(this.rows[8 * e + SLAB]!, this.rows[8 * e + OFF]!, this.rows[8 * e + CAP]!);
    this.rows[8 * e + SLAB] = -1;
    if (this.nFreeEntries === this.freeEntries.length) {
      const grown = new Int32Array(this.freeEntries.length * 2);
      grown.set(this.freeEntries);
      this.freeEntries = grown;
    }
    this.freeEntries[this.nFreeEntries++] = e;
    this.count--;
    // backward-shift deletion: move later members of the run into the hole when their home allows
    const mask = this.mask;
    const idx = this.idx;
    let hole = i;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const e1 = idx[2 * j]!;
      if (e1 === 0) break;
      const home = idx[2 * j + 1]! & mask;
      // j's entry may move to the hole unless its home lies cyclically in (hole, j]
      const inRange = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (inRange) continue;
      idx[2 * hole] = e1;
      idx[2 * hole + 1] = idx[2 * j + 1]!;
      hole = j;
    }
    idx[2 * hole] = 0;
    idx[2 * hole + 1] = 0;
    return true;
  }

  deleteStr(k: string): boolean {
    toScratch(k, 0);
    return this.delete(scratch, 0, k.length);
  }

  clear(): void {
    this.slabs = [];
    this.views = [];
    this.freeSlabIds = [];
    this.cur = -1;
    this.curOff = SLAB_BYTES;
    for (let c = 0; c < CLASSES; c++) {
      this.freeChunks[c] = new Int32Array(0);
      this.nFreeChunks[c] = 0;
    }
    this.bytesInUse = 0;
    this.top = 0;
    this.nFreeEntries = 0;
    this.count = 0;
    this.resizeIndex(16);
  }

  /** A copy of every entry's bytes as of now (one memcpy per slab in use). */
  copy(): TableCopy {
    const rows = new Int32Array(this.count * 4);
    let n = 0;
    for (let e = 0; e < this.top; e++) {
      const s = this.rows[8 * e + SLAB]!;
      if (s < 0) continue;
      rows[n++] = s;
      rows[n++] = this.rows[8 * e + OFF]!;
      rows[n++] = this.rows[8 * e + KLEN]!;
      rows[n++] = this.rows[8 * e + VLEN]!;
    }
    const slabs: Uint8Array[] = new Array(this.slabs.length);
    for (let i = 0; i < this.slabs.length; i++) {
      const s = this.slabs[i];
      if (s === undefined) slabs[i] = EMPTY;
      else slabs[i] = Uint8Array.prototype.slice.call(s, 0, i === this.cur ? this.curOff : s.length);
    }
    return { count: this.count, rows, slabs };
  }

  // ---------------------------------------------------------------- internals

  private newEntry(): number {
    if (this.nFreeEntries > 0) return this.freeEntries[--this.nFreeEntries]!;
    if (8 * this.top === this.rows.length) this.growEntries(this.top * 2);
    return this.top++;
  }

  private growEntries(n: number): void {
    const rows = new Int32Array(8 * n);
    rows.set(this.rows);
    this.rows = rows;
  }

  private resizeIndex(n: number): void {
    this.mask = n - 1;
    this.idx = new Int32Array(2 * n);
    for (let e = 0; e < this.top; e++) {
      if (this.rows[8 * e + SLAB]! < 0) continue;
      const h = this.rows[8 * e + H]!;
      let i = h & this.mask;
      while (this.idx[2 * i] !== 0) i = (i + 1) & this.mask;
      this.idx[2 * i] = e + 1;
      this.idx[2 * i + 1] = h;
    }
  }

  /** gives entry e a chunk for key + value and writes both */
  private place(e: number, kb: Uint8Array, koff: number, klen: number, vb: Uint8Array, voff: number, vlen: number) {
    const need = klen + vlen;
    let slab: number;
    let off: number;
    let cap: number;
    if (need > BIG_CHUNK) {
      cap = need;
      slab = this.freeSlabIds.length > 0 ? this.freeSlabIds.pop()! : this.slabs.length;
      this.setSlab(slab, Buffer.allocUnsafeSlow(need));
      off = 0;
    } else {
      const c = classOf(need);
      cap = classBytes(c);
      const nf = this.nFreeChunks[c]!;
      if (nf > 0) {
        const list = this.freeChunks[c]!;
        slab = list[2 * nf - 2]!;
        off = list[2 * nf - 1]!;
        this.nFreeChunks[c] = nf - 1;
      } else {
        if (this.curOff + cap > SLAB_BYTES) {
          // the rest of the current slab is left unused (at most one chunk's worth)
          this.cur = this.freeSlabIds.length > 0 ? this.freeSlabIds.pop()! : this.slabs.length;
          this.setSlab(this.cur, Buffer.allocUnsafeSlow(SLAB_BYTES));
          this.curOff = 0;
        }
        slab = this.cur;
        off = this.curOff;
        this.curOff += cap;
      }
    }
    this.rows[8 * e + SLAB] = slab;
    this.rows[8 * e + OFF] = off;
    this.rows[8 * e + CAP] = cap;
    this.rows[8 * e + KLEN] = klen;
    this.rows[8 * e + VLEN] = vlen;
    this.bytesInUse += cap;
    const s = this.slabs[slab]!;
    const dv = this.views[slab]!;
    copyWords(kb, this.viewOf(kb), this.srcBase, koff, s, dv, off, klen);
    copyWords(vb, this.viewOf(vb), this.srcBase, voff, s, dv, off + klen, vlen);
  }

  private setSlab(id: number, b: Uint8Array): void {
    this.slabs[id] = b;
    this.views[id] = viewOver(b);
  }

  private freeChunk(slab: number, off: number, cap: number): void {
    this.bytesInUse -= cap;
    if (cap > BIG_CHUNK) {
      this.slabs[slab] = undefined;
      this.views[slab] = undefined;
      this.freeSlabIds.push(slab);
      return;
    }
    const c = classOf(cap);
    const nf = this.nFreeChunks[c]!;
    let list = this.freeChunks[c]!;
    if (2 * nf + 2 > list.length) {
      const grown = new Int32Array(Math.max(16, list.length * 2));
      grown.set(list);
      this.freeChunks[c] = list = grown;
    }
    list[2 * nf] = slab;
    list[2 * nf + 1] = off;
    this.nFreeChunks[c] = nf + 1;
  }
}

const EMPTY = new Uint8Array(0);
