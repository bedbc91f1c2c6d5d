import { CONTRACTS, DecodeError, decodeValue, encodeValue, requires, writeSized } from '@decree/protocol';
import { copyWords, type TableCopy } from './table.ts';

/**
 * Snapshot stream format: a sequence of frames, each a u32 little-endian length followed by that
 * many bytes of one MessagePack map (encodeValue from @decree/protocol):
 *
 *   { t: 'decree-kv', v: 2, lastSlot, nextSweep, applied, ttl, nowMs, keys, sessions, forgotten }  header
 *   { d: [key, value, key, value, ...] }                                            data (bin), repeated
 *   { s: [[clientId, seq, lastSlot, result, lastMs], ...] }                         sessions, repeated
 *   { x: [[clientId, slot, ms], ...] }                                              forgotten sessions, repeated
 *   { end: true, keys, sessions }                                                   trailer (counts checked)
 *
 * The reader does not depend on how the stream is cut into chunks (a transport may re-chunk it).
 */

export const SNAPSHOT_FORMAT = 'decree-kv';
export const SNAPSHOT_VERSION = 2;
/** version 1 (before sessions had a time window): no nowMs, sessions without lastMs; still read */
const SNAPSHOT_VERSION_1 = 1;
/**
 * frames are cut near this many payload bytes: the writer yields between frames, so this bounds what one
 * turn of the event loop encodes (1 MiB frames stalled an unpipelined SET for 80–160 ms at a snapshot of
 * 100,000 keys in three processes on two cores; 256 KiB: 40–80 ms)
 */
const FRAME_TARGET_BYTES = 256 << 10;
const FRAME_MAX_ENTRIES = 1 << 16;
/** a reader refuses frames larger than this (a corrupt length must not make it buffer without bound) */
export const MAX_FRAME_BYTES = 256 << 20;

export class KvSnapshotError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KvSnapshotError';
  }
}

export interface SnapshotContents {
  lastSlot: number;
  nextSweep: number;
  applied: number;
  ttl: number;
  /** the log's time (ms) as of lastSlot: the latest leader timestamp applied */
  nowMs: number;
  /** binary (latin1) strings */
  keys: string[];
  values: string[];
  /** the entries as bytes (KvMachine's capture), written instead of keys/values (which are then empty) */
  table?: TableCopy;
  /** [clientId (binary string), seq, lastSlot, result, lastMs] */
  sessions: [string, number, number, Uint8Array, number][];
  /** sessions forgotten (expired or evicted) and when: [clientId, slot, ms], oldest first */
  forgotten: [string, number, number][];
}

function frame(v: unknown): Uint8Array {
  const body = encodeValue(v);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length, true);
  out.set(body, 4);
  return out;
}

const bin = (s: string): Buffer => Buffer.from(s, 'latin1');

const binHeaderBytes = (n: number) => (n < 0x100 ? 2 : n < 0x10000 ? 3 : 5);
const arrayHeaderBytes = (n: number) => (n < 16 ? 1 : n < 0x10000 ? 3 : 5);

/** The bytes of the data frame of entries [from, to) (its u32 length included); `len` as in writeDataFrame. */
function dataFrameBytes(from: number, to: number, len: (i: number, part: 0 | 1) => number): number {
  let body = 3 + arrayHeaderBytes(2 * (to - from)); // fixmap, "d", the array's header
  for (let i = from; i < to; i++) {
    const k = len(i, 0);
    const v = len(i, 1);
    body += binHeaderBytes(k) + k + binHeaderBytes(v) + v;
  }
  return 4 + body;
}

/**
 * Writes the data frame { d: [key, value, …] } of entries [from, to) at `at` of `out` (exactly
 * dataFrameBytes of room): the same bytes as frame({ d: [bin(k), bin(v), …] }). `len(i, part)` is the
 * length of entry i's key (part 0) or value (part 1); `write(out, at, i, part)` writes those bytes at
 * `at`. Returns the offset after the frame.
 */
function writeDataFrame(
  out: Buffer,
  at: number,
  from: number,
  to: number,
  len: (i: number, part: 0 | 1) => number,
  write: (out: Buffer, at: number, i: number, part: 0 | 1) => void,
): number {
  const end = at + dataFrameBytes(from, to, len);
  out.writeUInt32LE(end - at - 4, at);
  out[at + 4] = 0x81;
  out[at + 5] = 0xa1;
  out[at + 6] = 0x64; // "d"
  let o = writeSized(out, at + 7, 2 * (to - from), 0x90, 16, 0, 0xdc); // the array's header
  for (let i = from; i < to; i++) {
    const k = len(i, 0);
    o = writeSized(out, o, k, 0, 0, 0xc4, 0xc5); // bin
    write(out, o, i, 0);
    o += k;
    const v = len(i, 1);
    o = writeSized(out, o, v, 0, 0, 0xc4, 0xc5);
    write(out, o, i, 1);
    o += v;
  }
  return o;
}

/**
 * The data frame { d: [keys[from], values[from], …] } with the key and value strings (binary, latin1)
 * as MessagePack bin, without a Buffer per string (on a state of 100,000 keys, ten times faster).
 */
export function dataFrame(keys: readonly string[], values: readonly string[], from: number, to: number): Uint8Array {
  const len = (i: number, part: 0 | 1) => (part === 0 ? keys : values)[i]!.length;
  const out = Buffer.allocUnsafe(dataFrameBytes(from, to, len));
  writeDataFrame(out, 0, from, to, len, (o, at, i, part) => o.write((part === 0 ? keys : values)[i]!, at, 'latin1'));
  return out;
}

/** The data frame of rows [from, to) of a table copy, at `at` of `out`: copied from its slabs 4 bytes at a time. */
function writeTableFrame(
  out: Buffer,
  dv: DataView,
  at: number,
  t: TableCopy,
  from: number,
  to: number,
  size = tableFrameBytes(t, from, to),
): number {
  const rows = t.rows;
  const end = at + size;
  out.writeUInt32LE(end - at - 4, at);
  out[at + 4] = 0x81;
  out[at + 5] = 0xa1;
  out[at + 6] = 0x64; // "d"
  let o = writeSized(out, at + 7, 2 * (to - from), 0x90, 16, 0, 0xdc);
  const { slabs, views } = t;
  for (let i = from; i < to; i++) {
    const s = rows[4 * i]!;
    const src = slabs[s]!;
    const sv = views[s]!;
    const off = rows[4 * i + 1]!;
    const k = rows[4 * i + 2]!;
    const v = rows[4 * i + 3]!;
    o = writeSized(out, o, k, 0, 0, 0xc4, 0xc5);
    copyWords(src, sv, 0, off, out, dv, o, k); // a copy slab starts at byte 0 of its view
    o += k;
    o = writeSized(out, o, v, 0, 0, 0xc4, 0xc5);
    copyWords(src, sv, 0, off + k, out, dv, o, v);
    o += v;
  }
  CONTRACTS && requires(o === end, 'a table frame fills exactly the bytes its plan gave it');
  return o;
}
function tableFrameBytes(t: TableCopy, from: number, to: number): number {
  const rows = t.rows;
  let body = 3 + arrayHeaderBytes(2 * (to - from));
  for (let i = from; i < to; i++) {
    const k = rows[4 * i + 2]!;
    const v = rows[4 * i + 3]!;
    body += binHeaderBytes(k) + k + binHeaderBytes(v) + v;
  }
  return 4 + body;
}

/** The data frame of rows [from, to) of a table copy, in a buffer of its own. */
export function tableFrame(t: TableCopy, from: number, to: number): Uint8Array {
  const out = Buffer.allocUnsafe(tableFrameBytes(t, from, to));
  writeTableFrame(out, new DataView(out.buffer, out.byteOffset, out.length), 0, t, from, to);
  return out;
}

/** Where frames of many entries are cut: the end of each frame, by the same rule for every kind of entry. */
function cuts(n: number, entryBytes: (i: number) => number): number[] {
  const ends: number[] = [];
  let bytes = 0;
  let from = 0;
  for (let i = 0; i < n; i++) {
    bytes += entryBytes(i);
    if (bytes >= FRAME_TARGET_BYTES || i + 1 - from >= FRAME_MAX_ENTRIES) {
      ends.push(i + 1);
      from = i + 1;
      bytes = 0;
    }
  }
  if (from < n) ends.push(n);
  return ends;
}

/**
 * The data frames of a table copy, by the rule of `cuts`: where each ends and its bytes, in one pass over the
 * rows (with a closure per entry and a second pass for the sizes, this step took 10 ms at 100,000 keys).
 */
function tablePlan(t: TableCopy): { ends: number[]; sizes: number[] } {
  const rows = t.rows;
  const n = t.count;
  const ends: number[] = [];
  const sizes: number[] = [];
  let from = 0;
  let bytes = 0;
  let body = 0;
  for (let i = 0; i < n; i++) {
    const k = rows[4 * i + 2]!;
    const v = rows[4 * i + 3]!;
    bytes += k + v + 8;
    body += (k < 0x100 ? 2 : k < 0x10000 ? 3 : 5) + k + (v < 0x100 ? 2 : v < 0x10000 ? 3 : 5) + v;
    if (bytes >= FRAME_TARGET_BYTES || i + 1 - from >= FRAME_MAX_ENTRIES) {
      ends.push(i + 1);
      sizes.push(4 + 3 + arrayHeaderBytes(2 * (i + 1 - from)) + body);
      from = i + 1;
      bytes = 0;
      body = 0;
    }
  }
  if (from < n) {
    ends.push(n);
    sizes.push(4 + 3 + arrayHeaderBytes(2 * (n - from)) + body);
  }
  return { ends, sizes };
}

/**
 * The snapshot stream of `c`, frame by frame; `pause` (when given) is awaited after each frame of
 * entries, so that a consumer reading it in a loop lets the event loop turn between frames.
 *
 * Every frame is laid down in one buffer, sized at the start (the data frames exactly, the sessions
 * within a bound), and each is yielded as a view of it, one after the other: a consumer that gathers the
 * whole stream (collectSnapshot) gets it without copying, where a buffer per 256 KiB frame and then
 * their concatenation were a third of a snapshot's CPU at 100,000 keys (docs/benchmarks.md). A frame
 * that does not fit the bound (not expected) comes in a buffer of its own.
 */
export async function* writeSnapshot(c: SnapshotContents, pause?: () => Promise<void>): AsyncGenerator<Uint8Array> {
  const t = c.table;
  const keyCount = t ? t.count : c.keys.length;
  const head = frame({
    t: SNAPSHOT_FORMAT,
    v: SNAPSHOT_VERSION,
    lastSlot: c.lastSlot,
    nextSweep: c.nextSweep,
    applied: c.applied,
    ttl: c.ttl,
    nowMs: c.nowMs,
    keys: keyCount,
    sessions: c.sessions.length,
    forgotten: c.forgotten.length,
  });
  const tail = frame({ end: true, keys: keyCount, sessions: c.sessions.length });
  const len = t
    ? (i: number, part: 0 | 1) => t.rows[4 * i + 2 + part]!
    : (i: number, part: 0 | 1) => (part === 0 ? c.keys : c.values)[i]!.length;
  const plan = t ? tablePlan(t) : undefined;
  const dataEnds = plan ? plan.ends : cuts(keyCount, (i) => len(i, 0) + len(i, 1) + 8);
  const sessionEnds = cuts(c.sessions.length, (i) => c.sessions[i]![0].length + c.sessions[i]![3].length + 24);
  const forgottenEnds = cuts(c.forgotten.length, () => 0);
  // room for everything: data frames exactly; a session at most its bytes and 40 of MessagePack (5 for
  // the bin headers, 27 for the numbers, 1 for its array's), a forgotten one 24; 16 per frame for its head
  let room = head.length + tail.length;
  if (plan) for (const n of plan.sizes) room += n;
  else
    for (let from = 0, f = 0; f < dataEnds.length; from = dataEnds[f++]!)
      room += dataFrameBytes(from, dataEnds[f]!, len);
  for (const [id, , , result] of c.sessions) room += id.length + result.length + 40;
  for (const [id] of c.forgotten) room += id.length + 24;
  room += 16 * (sessionEnds.length + forgottenEnds.length);
  const out = Buffer.allocUnsafe(room);
  const dv = new DataView(out.buffer, out.byteOffset, out.length);
  let at = 0;
  /** a frame encoded on its own, copied into `out` when it fits */
  const place = (f: Uint8Array): Uint8Array => {
    if (at + f.length > out.length) return f;
    out.set(f, at);
    at += f.length;
    return out.subarray(at - f.length, at);
  };
  try {
    yield place(head);
    for (let from = 0, f = 0; f < dataEnds.length; from = dataEnds[f++]!) {
      const to = dataEnds[f]!;
      const start = at;
      at = t
        ? writeTableFrame(out, dv, at, t, from, to, plan!.sizes[f]!)
        : writeDataFrame(out, at, from, to, len, (o, p, i, part) =>
            o.write((part === 0 ? c.keys : c.values)[i]!, p, 'latin1'),
          );
      yield out.subarray(start, at);
      if (pause && f + 1 < dataEnds.length) await pause();
    }
  } finally {
    t?.release(); // also when the consumer stops early
  }
  for (let from = 0, f = 0; f < sessionEnds.length; from = sessionEnds[f++]!) {
    if (pause) await pause();
    const s = c.sessions
      .slice(from, sessionEnds[f])
      .map(([id, seq, lastSlot, result, lastMs]) => [bin(id), seq, lastSlot, result, lastMs]);
    yield place(frame({ s }));
  }
  for (let from = 0, f = 0; f < forgottenEnds.length; from = forgottenEnds[f++]!) {
    if (pause) await pause();
    yield place(frame({ x: c.forgotten.slice(from, forgottenEnds[f]).map(([id, slot, ms]) => [bin(id), slot, ms]) }));
  }
  yield place(tail);
}

// ---------------------------------------------------------------- reading

type Input = AsyncIterable<Uint8Array> | Iterable<Uint8Array> | Uint8Array;

async function* frames(input: Input): AsyncGenerator<Uint8Array> {
  const src: AsyncIterable<Uint8Array> | Iterable<Uint8Array> = input instanceof Uint8Array ? [input] : input;
  let buf: Uint8Array = new Uint8Array(0);
  let pos = 0;
  // chunks held back until the frame being waited for is complete (no quadratic re-copying)
  let pending: Uint8Array[] = [];
  let pendingLen = 0;
  let want = 0;
  for await (const chunk of src) {
    if (!(chunk instanceof Uint8Array)) throw new KvSnapshotError('snapshot chunk is not bytes');
    if (buf.length - pos + pendingLen + chunk.length < want) {
      pending.push(chunk);
      pendingLen += chunk.length;
      continue;
    }
    if (pos === buf.length && pendingLen === 0) {
      buf = chunk;
    } else {
      const merged = new Uint8Array(buf.length - pos + pendingLen + chunk.length);
      merged.set(buf.subarray(pos), 0);
      let off = buf.length - pos;
      for (const p of pending) {
        merged.set(p, off);
        off += p.length;
      }
      merged.set(chunk, off);
      buf = merged;
      pending = [];
      pendingLen = 0;
    }
    pos = 0;
    for (;;) {
      if (buf.length - pos < 4) {
        want = 4;
        break;
      }
      const len = (buf[pos]! | (buf[pos + 1]! << 8) | (buf[pos + 2]! << 16) | (buf[pos + 3]! << 24)) >>> 0;
      if (len > MAX_FRAME_BYTES) throw new KvSnapshotError(`snapshot frame too large (${len} bytes)`);
      if (buf.length - pos - 4 < len) {
        want = 4 + len;
        break;
      }
      yield buf.subarray(pos + 4, pos + 4 + len);
      pos += 4 + len;
    }
  }
  if (pos !== buf.length || pendingLen !== 0) throw new KvSnapshotError('snapshot truncated inside a frame');
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isBytes = (x: unknown): x is Uint8Array => x instanceof Uint8Array;
const str = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

function decodeFrame(f: Uint8Array): Record<string, unknown> {
  let v: unknown;
  try {
    v = decodeValue(f);
  } catch (e) {
    throw new KvSnapshotError(`bad snapshot frame: ${(e as DecodeError).message}`);
  }
  if (!isObj(v)) throw new KvSnapshotError('snapshot frame is not a map');
  return v;
}

/**
 * Reads and validates a whole snapshot stream; throws KvSnapshotError (only) on a bad one. With `onEntry`,
 * each key and value goes to it as bytes (views valid only during the call) and `keys`/`values` stay empty.
 */
export async function readSnapshot(
  input: Input,
  onEntry?: (k: Uint8Array, v: Uint8Array) => void,
): Promise<SnapshotContents> {
  let out: SnapshotContents | undefined;
  let nKeys = 0;
  let expectKeys = 0;
  let expectSessions = 0;
  let ended = false;
  let version = SNAPSHOT_VERSION;
  let expectForgotten = 0;
  try {
    for await (const f of frames(input)) {
      const m = decodeFrame(f);
      if (ended) throw new KvSnapshotError('frame after the snapshot trailer');
      if (out === undefined) {
        if (m.t !== SNAPSHOT_FORMAT) throw new KvSnapshotError('not a decree-kv snapshot');
        if (m.v !== SNAPSHOT_VERSION && m.v !== SNAPSHOT_VERSION_1)
          throw new KvSnapshotError(`unsupported snapshot version ${String(m.v)}`);
        version = m.v;
        for (const f of [
          'lastSlot',
          'nextSweep',
          'applied',
          'ttl',
          'keys',
          'sessions',
          ...(version === 1 ? [] : ['nowMs', 'forgotten']),
        ])
          if (!isCount(m[f])) throw new KvSnapshotError(`snapshot header: bad ${f}`);
        out = {
          lastSlot: m.lastSlot as number,
          nextSweep: m.nextSweep as number,
          applied: m.applied as number,
          ttl: m.ttl as number,
          nowMs: version === 1 ? 0 : (m.nowMs as number),
          keys: [],
          values: [],
          sessions: [],
          forgotten: [],
        };
        expectForgotten = version === 1 ? 0 : (m.forgotten as number);
        expectKeys = m.keys as number;
        expectSessions = m.sessions as number;
      } else if (Array.isArray(m.d)) {
        const d = m.d as unknown[];
        if (d.length % 2 !== 0) throw new KvSnapshotError('snapshot data frame has an odd length');
        for (let i = 0; i < d.length; i += 2) {
          const k = d[i];
          const v = d[i + 1];
          if (!isBytes(k) || !isBytes(v)) throw new KvSnapshotError('snapshot data entry is not bytes');
          nKeys++;
          if (onEntry) onEntry(k, v);
          else {
            out.keys.push(str(k));
            out.values.push(str(v));
          }
        }
        if (nKeys > expectKeys) throw new KvSnapshotError('snapshot has more keys than its header says');
      } else if (Array.isArray(m.s)) {
        const n = version === 1 ? 4 : 5;
        for (const e of m.s as unknown[]) {
          if (
            !Array.isArray(e) ||
            e.length !== n ||
            !isBytes(e[0]) ||
            !isCount(e[1]) ||
            !isCount(e[2]) ||
            !isBytes(e[3])
          )
            throw new KvSnapshotError('bad snapshot session entry');
          if (n === 5 && !isCount(e[4])) throw new KvSnapshotError('bad snapshot session entry');
          out.sessions.push([
            str(e[0]),
            e[1],
            e[2],
            Uint8Array.prototype.slice.call(e[3]),
            n === 5 ? (e[4] as number) : 0,
          ]);
        }
        if (out.sessions.length > expectSessions)
          throw new KvSnapshotError('snapshot has more sessions than its header says');
      } else if (Array.isArray(m.x) && version !== 1) {
        for (const e of m.x as unknown[]) {
          if (!Array.isArray(e) || e.length !== 3 || !isBytes(e[0]) || !isCount(e[1]) || !isCount(e[2]))
            throw new KvSnapshotError('bad snapshot forgotten-session entry');
          out.forgotten.push([str(e[0]), e[1], e[2]]);
        }
        if (out.forgotten.length > expectForgotten)
          throw new KvSnapshotError('snapshot has more forgotten sessions than its header says');
      } else if (m.end === true) {
        if (
          m.keys !== nKeys ||
          m.sessions !== out.sessions.length ||
          nKeys !== expectKeys ||
          out.sessions.length !== expectSessions
        )
          throw new KvSnapshotError('snapshot counts do not match');
        if (out.forgotten.length !== expectForgotten) throw new KvSnapshotError('snapshot counts do not match');
        ended = true;
      } else {
        throw new KvSnapshotError('unknown snapshot frame');
      }
    }
  } catch (e) {
    if (e instanceof KvSnapshotError) throw e;
    throw new KvSnapshotError(`snapshot read failed: ${(e as Error).message}`);
  }
  if (out === undefined) throw new KvSnapshotError('empty snapshot');
  if (!ended) throw new KvSnapshotError('snapshot has no trailer');
  return out;
}
