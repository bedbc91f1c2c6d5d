import { DecodeError, decodeValue, encodeValue, writeSized } from '@decree/protocol';
import { copyBytes, type TableCopy } from './table.ts';

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

/**
 * A data frame { d: [key, value, …] } of entries [from, to), written straight into one buffer: the same
 * bytes as frame({ d: [bin(k), bin(v), …] }). `len(i, part)` is the length of entry i's key (part 0) or value
 * (part 1); `write(out, at, i, part)` writes those bytes at `at`.
 */
function dataFrameOf(
  from: number,
  to: number,
  len: (i: number, part: 0 | 1) => number,
  write: (out: Buffer, at: number, i: number, part: 0 | 1) => void,
): Uint8Array {
  const count = 2 * (to - from);
  let body = 3 + (count < 16 ? 1 : count < 0x10000 ? 3 : 5); // fixmap, "d", the array's header
  for (let i = from; i < to; i++) {
    const k = len(i, 0);
    const v = len(i, 1);
    body += binHeaderBytes(k) + k + binHeaderBytes(v) + v;
  }
  const out = Buffer.allocUnsafe(4 + body);
  out.writeUInt32LE(body, 0);
  out[4] = 0x81;
  out[5] = 0xa1;
  out[6] = 0x64; // "d"
  let o = writeSized(out, 7, count, 0x90, 16, 0, 0xdc); // the array's header
  for (let i = from; i < to; i++) {
    for (const part of [0, 1] as const) {
      const n = len(i, part);
      o = writeSized(out, o, n, 0, 0, 0xc4, 0xc5); // bin
      write(out, o, i, part);
      o += n;
    }
  }
  return out;
}

/**
 * The data frame { d: [keys[from], values[from], …] } with the key and value strings (binary, latin1)
 * as MessagePack bin, without a Buffer per string (on a state of 100,000 keys, ten times faster).
 */
export function dataFrame(keys: readonly string[], values: readonly string[], from: number, to: number): Uint8Array {
  return dataFrameOf(
    from,
    to,
    (i, part) => (part === 0 ? keys : values)[i]!.length,
    (out, at, i, part) => out.write((part === 0 ? keys : values)[i]!, at, 'latin1'),
  );
}

/** The same data frame, of rows [from, to) of a table copy: the bytes copied from its slabs. */
export function tableFrame(t: TableCopy, from: number, to: number): Uint8Array {
  const rows = t.rows;
  return dataFrameOf(
    from,
    to,
    (i, part) => rows[4 * i + 2 + part]!,
    (out, at, i, part) => {
      const off = rows[4 * i + 1]! + (part === 0 ? 0 : rows[4 * i + 2]!);
      copyBytes(t.slabs[rows[4 * i]!]!, off, out, at, rows[4 * i + 2 + part]!);
    },
  );
}

/**
 * The snapshot stream of `c`, frame by frame; `pause` (when given) is awaited after each frame of
 * entries, so that a consumer reading it in a loop lets the event loop turn between frames.
 */
export async function* writeSnapshot(c: SnapshotContents, pause?: () => Promise<void>): AsyncGenerator<Uint8Array> {
  const keyCount = c.table ? c.table.count : c.keys.length;
  yield frame({
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
  const t = c.table;
  const entryBytes = t
    ? (i: number) => t.rows[4 * i + 2]! + t.rows[4 * i + 3]!
    : (i: number) => c.keys[i]!.length + c.values[i]!.length;
  const frameOf = t
    ? (from: number, to: number) => tableFrame(t, from, to)
    : (from: number, to: number) => dataFrame(c.keys, c.values, from, to);
  let from = 0;
  let bytes = 0;
  for (let i = 0; i < keyCount; i++) {
    bytes += entryBytes(i) + 8;
    if (bytes >= FRAME_TARGET_BYTES || i + 1 - from >= FRAME_MAX_ENTRIES) {
      yield frameOf(from, i + 1);
      from = i + 1;
      bytes = 0;
      if (pause) await pause();
    }
  }
  if (from < keyCount) yield frameOf(from, keyCount);
  let s: [Buffer, number, number, Uint8Array, number][] = [];
  bytes = 0;
  for (const [id, seq, lastSlot, result, lastMs] of c.sessions) {
    s.push([bin(id), seq, lastSlot, result, lastMs]);
    bytes += id.length + result.length + 24;
    if (bytes >= FRAME_TARGET_BYTES || s.length >= FRAME_MAX_ENTRIES) {
      yield frame({ s });
      s = [];
      bytes = 0;
      if (pause) await pause();
    }
  }
  if (s.length > 0) yield frame({ s });
  let x: [Buffer, number, number][] = [];
  for (const [id, slot, ms] of c.forgotten) {
    x.push([bin(id), slot, ms]);
    if (x.length >= FRAME_MAX_ENTRIES) {
      yield frame({ x });
      x = [];
      if (pause) await pause();
    }
  }
  if (x.length > 0) yield frame({ x });
  yield frame({ end: true, keys: keyCount, sessions: c.sessions.length });
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
