// Codec benchmark: msgpackr (as our codec configures it) against msgpack-lite on Decree messages.
// Run alone:  node --conditions=source --import tsx apps/bench/src/codec.ts
// Time is this process's CPU time (process.cpuUsage), so other load on the machine skews it less.
// Env: CODEC_BENCH_MS (CPU time per sample, default 500), CODEC_BENCH_SAMPLES (default 3; the median is kept).
import { pathToFileURL } from 'node:url';
import { decodeMessage, encodeMessage, type Message } from '@decree/protocol';
import lite from 'msgpack-lite';
import { Packr, Unpackr } from 'msgpackr';

export interface Row {
  message: string;
  codec: string;
  /** encoded size */
  bytes: number;
  /** encode + decode round trips per CPU second of this process (median of the samples) */
  opsPerSec: number;
  usPerOp: number;
}

const u8 = (n: number, fill: number) => new Uint8Array(n).fill(fill);
const ballot = { round: 7, leader: 'replica-1' };
const head = { ring: 'ring-0', from: 'replica-1', to: 'replica-2' };

/** The three messages of docs/decisions/0002-msgpack.md. */
export function benchMessages(): { name: string; msg: Message }[] {
  const accepted: Message = { type: 'accepted', ...head, ballot, slot: 123_456 };
  const promise: Message = {
    type: 'promise',
    ...head,
    ballot,
    fromSlot: 1000,
    truncatedBelow: 900,
    accepted: Array.from({ length: 10 }, (_, i) => ({
      slot: 1000 + i,
      ballot: { round: 6, leader: 'replica-3' },
      value: { k: 'batch' as const, origin: 'replica-3', inc: 2, firstId: 10 * i, cmds: [u8(64, i), u8(64, i + 1)] },
    })),
  };
  const accept: Message = {
    type: 'accept',
    ...head,
    ballot,
    slot: 123_457,
    decidedUpTo: 123_450,
    value: {
      k: 'batch',
      origin: 'replica-1',
      inc: 3,
      firstId: 5000,
      cmds: Array.from({ length: 100 }, (_, i) => u8(64, i)),
    },
  };
  return [
    { name: 'Accepted (small)', msg: accepted },
    { name: 'Promise, 10 entries', msg: promise },
    { name: 'Accept, 100 x 64 B batch', msg: accept },
  ];
}

/** What a msgpack-lite user holds: Buffers (msgpack-lite writes a bare Uint8Array as its own ext type). */
function withBuffers(x: unknown): unknown {
  if (x instanceof Uint8Array) return Buffer.from(x);
  if (Array.isArray(x)) return x.map(withBuffers);
  if (typeof x === 'object' && x !== null)
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, withBuffers(v)]));
  return x;
}

interface Codec {
  name: string;
  prepare(m: Message): unknown;
  encode(v: unknown): Uint8Array;
  decode(b: Uint8Array): unknown;
}

// msgpackr exactly as packages/protocol/src/codec.ts configures it, without the validation step
const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  variableMapSize: true,
  encodeUndefinedAsNil: true,
  skipValues: [undefined],
} as ConstructorParameters<typeof Packr>[0]);
const unpackr = new Unpackr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

const CODECS: Codec[] = [
  { name: 'msgpack-lite', prepare: withBuffers, encode: (v) => lite.encode(v), decode: (b) => lite.decode(b) },
  { name: 'msgpackr', prepare: (m) => m, encode: (v) => packr.pack(v), decode: (b) => unpackr.unpack(b) },
  {
    name: 'decree codec (msgpackr + validation)',
    prepare: (m) => m,
    encode: (v) => encodeMessage(v as Message),
    decode: (b) => decodeMessage(b),
  },
];

let sink = 0;
/** CPU milliseconds this process has used (user + system): less sensitive to other load than wall time. */
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
/** Round trips per CPU second, over about `ms` of CPU time. */
function sample(codec: Codec, v: unknown, ms: number): number {
  let n = 0;
  const t0 = cpuMs();
  let t = t0;
  while (t - t0 < ms) {
    for (let i = 0; i < 200; i++) {
      const out = codec.decode(codec.encode(v)) as { type?: string };
      sink += out.type!.length;
    }
    n += 200;
    t = cpuMs();
  }
  return (n * 1000) / (t - t0);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function codecBench(opts: { ms?: number; samples?: number } = {}): Promise<Row[]> {
  const ms = opts.ms ?? Number(process.env.CODEC_BENCH_MS ?? 500);
  const samples = opts.samples ?? Number(process.env.CODEC_BENCH_SAMPLES ?? 3);
  const rows: Row[] = [];
  for (const { name, msg } of benchMessages()) {
    const values = CODECS.map((c) => c.prepare(msg));
    CODECS.forEach((c, i) => sample(c, values[i], Math.min(200, ms))); // warm-up
    // samples interleave the codecs, so a change in machine load hits all of them alike
    const runs: number[][] = CODECS.map(() => []);
    for (let s = 0; s < samples; s++) {
      CODECS.forEach((c, i) => runs[i]!.push(sample(c, values[i], ms)));
      await new Promise((r) => setImmediate(r)); // let the event loop breathe between rounds
    }
    CODECS.forEach((c, i) => {
      const ops = median(runs[i]!);
      rows.push({
        message: name,
        codec: c.name,
        bytes: c.encode(values[i]).length,
        opsPerSec: Math.round(ops),
        usPerOp: Number((1e6 / ops).toFixed(2)),
      });
    });
  }
  if (sink < 0) console.log(sink);
  return rows;
}

export function formatRows(rows: Row[]): string {
  const lines = [['message', 'codec', 'bytes', 'round trips/s', 'µs/op', 'vs msgpack-lite']];
  for (const r of rows) {
    const base = rows.find((x) => x.message === r.message && x.codec === 'msgpack-lite')!;
    lines.push([
      r.message,
      r.codec,
      String(r.bytes),
      r.opsPerSec.toLocaleString('en-US'),
      r.usPerOp.toFixed(2),
      `${(r.opsPerSec / base.opsPerSec).toFixed(2)}x`,
    ]);
  }
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  return lines
    .map((l) => l.map((c, i) => (i >= 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  '))
    .join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await codecBench();
  console.log(
    `node ${process.version}, msgpackr vs msgpack-lite: encode+decode round trips ` +
      `per CPU second (median of ${process.env.CODEC_BENCH_SAMPLES ?? 3} samples)`,
  );
  console.log(formatRows(rows));
}
