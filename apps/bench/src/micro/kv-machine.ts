/**
 * Micro-benchmark of KvMachine.apply.
 *   [KEYS=100000] node --conditions=source --import tsx apps/bench/src/micro/kv-machine.ts [seconds-per-case]
 * A "64-byte SET" is a 64-byte command: opcode + 16-byte key + 45-byte value (+ 2 length bytes).
 * Commands sit in one batch buffer (as subarrays), like the commands of a decided slot.
 */
import { KvCommands, KvMachine } from '@decree/kv-machine';

const seconds = Number(process.argv[2] ?? 2);
const KEYS = Number(process.env.KEYS ?? 100_000);
const N_CMDS = 1 << 16;

function batch(make: (i: number) => Uint8Array): Uint8Array[] {
  const cmds = Array.from({ length: N_CMDS }, (_, i) => make(i));
  const total = cmds.reduce((a, c) => a + c.length, 0);
  const buf = new Uint8Array(total);
  const out: Uint8Array[] = [];
  let off = 0;
  for (const c of cmds) {
    buf.set(c, off);
    out.push(buf.subarray(off, off + c.length));
    off += c.length;
  }
  return out;
}

const key = (i: number) => `key:${String((i * 7919) % KEYS).padStart(12, '0')}`; // 16 bytes
const value45 = 'v'.repeat(45);
const sets = batch((i) => KvCommands.set(key(i), value45));
if (sets[0]!.length !== 64) throw new Error(`SET is ${sets[0]!.length} bytes, not 64`);
const gets = batch((i) => KvCommands.get(key(i)));
const incrs = batch((i) => KvCommands.incr(`ctr:${i % 1000}`, 1));
const sessSets = batch((i) => KvCommands.session(`client-${i % 64}`, i, KvCommands.set(key(i), value45)));
const setsFresh = sets;

/** `fresh`: a new machine for each pass over the commands (session seqs would otherwise go back: stale). */
function run(name: string, cmds: Uint8Array[], m: KvMachine, fresh = false): void {
  let n = 0;
  let slot = 1;
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() < deadline) {
    for (let j = 0; j < 1024; j++, n++) m.apply(cmds[n & (N_CMDS - 1)]!, slot);
    slot++; // 1024 commands per slot
    if (fresh && (n & (N_CMDS - 1)) === 0) m = new KvMachine();
  }
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(
    `${name.padEnd(30)} ${(n / dt / 1e6).toFixed(2).padStart(6)} M applies/s ` +
      ` (${n} in ${dt.toFixed(2)} s, ${((dt / n) * 1e9).toFixed(0)} ns each)`,
  );
}

const m = new KvMachine();
// warm-up on every kind of command, so that later cases do not pay for re-optimisation
{
  const w = new KvMachine();
  const mixed = [sets, gets, incrs, sessSets];
  for (let i = 0; i < 400_000; i++) w.apply(mixed[i & 3]![i & (N_CMDS - 1)]!, 1 + (i >> 10));
}
run('SET 64-byte (first pass)', sets, m);
run('SET 64-byte', sets, m);
run('SET 64-byte, new machine per 64K', setsFresh, new KvMachine(), true);
run('GET 16-byte key (45-byte value)', gets, m);
run('INCR', incrs, m);
run('SESSION(SET 64-byte), 64 clients', sessSets, new KvMachine(), true);
{
  const three = [0, 1, 2].map(() => new KvMachine());
  let n = 0;
  let slot = 1;
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() < deadline) {
    for (const r of three) for (let j = 0; j < 1000; j++) r.apply(sets[(n + j) & (N_CMDS - 1)]!, slot);
    n += 1000;
    slot++;
  }
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(
    `${'SET 64-byte x 3 replicas'.padEnd(30)} ` +
      `${(n / dt / 1e6).toFixed(2).padStart(6)} M replicated ops/s (apply cost only)`,
  );
}
const mem = process.memoryUsage();
console.log(`keys ${m.size}, rss ${(mem.rss / 2 ** 20).toFixed(0)} MiB, node ${process.version}`);

// snapshot + restore of a 1M-key state (16-byte keys, 45-byte values)
{
  const big = new KvMachine();
  for (let i = 0; i < 1_000_000; i++)
    big.apply(KvCommands.set(`key:${String(i).padStart(12, '0')}`, value45), 1 + (i >> 10));
  let t0 = performance.now();
  const stream = await big.snapshot();
  const tCapture = performance.now() - t0;
  const frames: Uint8Array[] = [];
  for await (const f of stream) frames.push(f);
  const tEncode = performance.now() - t0;
  const bytes = frames.reduce((a, f) => a + f.length, 0);
  t0 = performance.now();
  const fresh = new KvMachine();
  await fresh.restore(frames);
  const tRestore = performance.now() - t0;
  t0 = performance.now();
  const same = fresh.digest() === big.digest();
  const tDigest = (performance.now() - t0) / 2;
  console.log(
    `snapshot 1M keys: capture ${tCapture.toFixed(0)} ms, stream ${tEncode.toFixed(0)} ms (${frames.length} ` +
      `frames, ${(bytes / 2 ** 20).toFixed(1)} MiB), ` +
      `restore ${tRestore.toFixed(0)} ms, digest ${tDigest.toFixed(0)} ms, equal: ${same}`,
  );
}
