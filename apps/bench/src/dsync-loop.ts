/**
 * The disk's own tail (issue #19 point 4): one small O_DSYNC write after another (the WAL's write of
 * one unpipelined SET, with nothing else in the process), for `seconds`; prints p50 / p99 / max and
 * the wall-clock time (ms since the epoch) of every write over 10 ms, to line them up with a cluster
 * run going on alongside (stalls.ts prints times relative to its run's start; --since makes these so).
 *
 *   node --conditions=source --import tsx apps/bench/src/dsync-loop.ts [seconds=20] [--bytes 200] [--since <ms>]
 */
import { closeSync, constants, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const seconds = Number(args.find((a) => /^\d+(\.\d+)?$/.test(a)) ?? 20);
const at = (k: string) => (args.includes(k) ? Number(args[args.indexOf(k) + 1]) : undefined);
const bytes = at('--bytes') ?? 200;
const since = at('--since') ?? 0;
const dir = mkdtempSync(join(tmpdir(), 'decree-dsync-'));
const fd = openSync(join(dir, 'log'), constants.O_RDWR | constants.O_CREAT | constants.O_DSYNC);
const buf = Buffer.alloc(bytes, 7);
const lat: number[] = [];
const slow: string[] = [];
const end = performance.now() + seconds * 1000;
let pos = 0;
// preallocated like a WAL segment, so the writes below allocate no blocks
writeSync(fd, Buffer.alloc(64 << 20), 0, 64 << 20, 0);
fdatasyncSync(fd);
while (performance.now() < end) {
  const t0 = performance.now();
  writeSync(fd, buf, 0, bytes, pos);
  const ms = performance.now() - t0;
  pos = (pos + bytes) % ((64 << 20) - bytes);
  lat.push(ms);
  if (ms > 10) slow.push(`+${Math.round(performance.timeOrigin + t0 - since)}:${ms.toFixed(1)}`);
}
closeSync(fd);
rmSync(dir, { recursive: true, force: true });
lat.sort((a, b) => a - b);
const q = (p: number) => lat[Math.min(lat.length - 1, Math.ceil(p * lat.length) - 1)]!.toFixed(3);
console.log(
  `O_DSYNC ${bytes}-byte writes: ${lat.length} in ${seconds} s; p50 ${q(0.5)} p99 ${q(0.99)} ` +
    `p99.9 ${q(0.999)} max ${q(1)} ms; over 10 ms: ${slow.length ? slow.join(' ') : 'none'}`,
);
