/**
 * The machine's memory latency, which bounds a hash-table lookup at a large working set (issue #19):
 * independent random byte reads over arrays of growing size, and a dependent chain of loads (each
 * address read from the one before) over 16 MB.
 *
 *   node --conditions=source --import tsx apps/bench/src/micro/memory-latency.ts
 */
const READS = 1 << 20;
let sink = 0;
for (const mb of [0.5, 2, 8, 16, 48, 128]) {
  const n = Math.floor(mb * 1024 * 1024);
  const a = new Uint8Array(n).fill(1);
  const at = new Int32Array(READS);
  for (let i = 0; i < READS; i++) at[i] = Math.floor(Math.random() * (n - 64));
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < 4; r++) for (let i = 0; i < READS; i++) sink += a[at[i]!]!;
  const ns = Number(process.hrtime.bigint() - t0) / (4 * READS);
  console.log(`${mb} MB: ${ns.toFixed(1)} ns per independent random read`);
}
const words = (16 << 20) / 4;
const next = new Int32Array(words);
// one load per 64-byte line, in a random cycle
const order = new Int32Array(words / 16);
for (let i = 0; i < order.length; i++) order[i] = i * 16;
for (let i = order.length - 1; i > 0; i--) {
  const j = Math.floor(Math.random() * (i + 1));
  const t = order[i]!;
  order[i] = order[j]!;
  order[j] = t;
}
for (let i = 0; i < order.length; i++) next[order[i]!] = order[(i + 1) % order.length]!;
let p = 0;
const t0 = process.hrtime.bigint();
for (let i = 0; i < 2_000_000; i++) p = next[p]!;
console.log(`16 MB: ${(Number(process.hrtime.bigint() - t0) / 2e6).toFixed(1)} ns per dependent load`);
if (sink + p < 0) console.log('');
