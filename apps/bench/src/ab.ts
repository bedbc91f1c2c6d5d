/**
 * A/B comparisons of the 3-process cluster (TCP, file WAL) for optimisation steps: variants run in
 * interleaved rounds (so a change in machine load hits them alike) and the medians are printed.
 *
 *   node --conditions=source --import tsx apps/bench/src/ab.ts [--rounds 3] tsx bundle noenc …
 *   node --conditions=source --import tsx apps/bench/src/ab.ts bundle entry=/path/to/other-decree.mjs
 *   (noflags=/path/to/decree.mjs: that bundle without apps/replica/node-flags.json;
 *   flags=--a,--b: the current bundle with these node flags too)
 *
 * Each run: redis-benchmark -t set -P 64 -c 50 -d 64 -n 400000 -r 100000 (SET/s, CPU s per million
 * SETs of the three replica processes), then -t set -P 1 -c 1 -n 5000 -r 100000 (p50, p99, max; --n1 sets the
 * count).
 */
import { loadavg } from 'node:os';
import { processClusterBench, type ClusterOptions } from './cluster.ts';

const VARIANTS: Record<string, Partial<ClusterOptions>> = {
  /** replica processes from TypeScript through tsx (keepNames) */
  tsx: { runner: 'tsx' },
  /** replica processes from the esbuild bundle (the default) */
  bundle: {},
  /** the TCP transport packs a message sent to several peers once per peer again */
  noenc: { config: { tcp: { encodeOnce: false } } },
  inflight8: { batching: { maxInflightSlots: 8 } },
  inflight128: { batching: { maxInflightSlots: 128 } },
  batch1024: { batching: { maxBatchCmds: 1024 } },
  semi64: { nodeFlags: ['--max-semi-space-size=64'] },
  /** without the replica's V8 flags (apps/replica/node-flags.json): V8's default old-generation floor */
  noflags: { replicaFlags: false },
  /** memory stores: the same cluster without a disk (how much of the latency is the WAL) */
  memory: { storage: 'memory' },
  /** the WAL writes, then fdatasyncs (the default opens segments O_DSYNC: one round trip per batch) */
  fdatasync: { config: { wal: { sync: 'fdatasync' } } },
};

const args = process.argv.slice(2);
let rounds = 3;
let n1 = 5000;
const picks: [string, Partial<ClusterOptions>][] = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  if (a === '--rounds') rounds = Number(args[++i]);
  else if (a === '--n1') n1 = Number(args[++i]);
  else if (a.startsWith('entry=')) picks.push([a, { entry: a.slice(6) }]);
  // a bundle run without the replica's V8 flags (the code before decision 0015, as it ran then)
  else if (a.startsWith('noflags=')) picks.push([a, { entry: a.slice(8), replicaFlags: false }]);
  // the current bundle with more node flags for the replica processes: flags=--a,--b
  else if (a.startsWith('flags=')) picks.push([a, { nodeFlags: a.slice(6).split(',') }]);
  else if (VARIANTS[a]) picks.push([a, VARIANTS[a]]);
  else throw new Error(`unknown variant ${a} (${Object.keys(VARIANTS).join(', ')}, entry=<bundle>)`);
}
if (picks.length === 0) picks.push(['tsx', VARIANTS.tsx!], ['bundle', VARIANTS.bundle!]);

const res = new Map<string, number[][]>();
for (let r = 0; r < rounds; r++)
  for (const [name, v] of picks) {
    const load = loadavg()[0]!.toFixed(1);
    try {
      const rows = await processClusterBench({ transport: 'tcp', storage: 'wal', noGet: true, n1, ...v });
      const [p, one] = rows;
      const row = [p!.opsPerSec, p!.cpuSecPerMillion, one!.p50ms, one!.p99ms, one!.maxMs ?? Number.NaN];
      res.set(name, [...(res.get(name) ?? []), row]);
      console.log(
        `${name} round ${r} load ${load}: SET P64 ${Math.round(p!.opsPerSec)} (${p!.cpuSecPerMillion.toFixed(2)} ` +
          `CPU s/M) | P1 p50 ${one!.p50ms} p99 ${one!.p99ms} max ${one!.maxMs}`,
      );
    } catch (e) {
      console.log(`${name} round ${r} failed: ${(e as Error).message.split('\n')[0]}`);
    }
  }
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const [k, v] of res)
  console.log(
    `MEDIAN ${k}: ${Math.round(med(v.map((x) => x[0]!)))} SET/s, ${med(v.map((x) => x[1]!)).toFixed(2)} ` +
      `CPU s/M, P1 p50 ${med(v.map((x) => x[2]!))} p99 ${med(v.map((x) => x[3]!))} ` +
      `max ${med(v.map((x) => x[4]!))} (worst ${Math.max(...v.map((x) => x[4]!))})`,
  );
