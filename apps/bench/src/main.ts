/**
 * `npm run bench`: the whole suite in one run, side by side —
 *   engine     the in-process 3-replica engine (KV SETs pipelined, the engine alone, one client at a
 *              time with memory stores and with file WALs) and its latency by stage (bus tap)
 *   codec      MessagePack codecs
 *   storage    acceptor stores (group commit)
 *   cluster    3 replica processes loaded by redis-benchmark: TCP + file WAL, TCP + pmem log, NATS + file WAL
 *   baselines  redis-server (no replication) and a 3-member etcd, under the same loads (installed with
 *              apt-get as root, BENCH_INSTALL=0 aside; else a "skipped: … not installed" row)
 * and `tracing` and `recovery` (only when named). Select parts with `npm run bench -- engine cluster` (default: all
 * but tracing). A progress bar runs on stderr; the tables go to stdout, and to BENCH_OUT (default
 * .bench-out/) as results.json, results.md, results.svg (chart) and results.png (when chromium is
 * installed). BENCH_SECONDS sets each in-process throughput run (default 5); BENCH_N the requests of
 * each pipelined redis-benchmark run (default 400,000).
 *
 * `npm run bench` first bundles this file and the decree command with esbuild
 * (tools/scripts/build-replica.mjs --bench: plain JavaScript, no tsx keepNames wrappers) and runs
 * the bundle with --max-semi-space-size=64; `node --conditions=source --import tsx
 * apps/bench/src/main.ts` runs it from source.
 */
import { execSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { inProcessBench, inProcessLatencyBench, type InProcessRow } from './inprocess.ts';
import { Progress } from './progress.ts';
import { writeReport } from './report.ts';
import { stageTable } from './stages.ts';
import { type BenchRow, table } from './stats.ts';

const wanted = new Set(process.argv.slice(2).filter((a) => !a.startsWith('-')));
const want = (k: string) => wanted.size === 0 || wanted.has(k);
/** parts that run only when named */
const wantNamed = (k: string) => wanted.has(k);
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const n = Number(process.env.BENCH_N ?? 400_000);
const outDir = resolve(process.env.BENCH_OUT ?? '.bench-out');
const commit = (() => {
  try {
    return execSync('git rev-parse --short HEAD', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
})();
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const out: Record<string, unknown> = {
  date: new Date().toISOString(),
  commit,
  node: process.version,
  cpus: cpus().length,
  cpu: cpus()[0]?.model,
  loadAtStart: load(),
};
const md: string[] = [
  `# Decree benchmark run ${out.date}`,
  '',
  `Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model}, ` +
    `commit ${commit ?? '?'}, load average at start ${out.loadAtStart}`,
  '',
];
const all: BenchRow[] = [];

// the plan, for the progress bar: one step per measured run
const plan = {
  engine: 7,
  tracing: 13,
  codec: 1,
  storage: 1,
  cluster: 9 + 1,
  baselines: 5,
  recovery: 2,
};
/** the parts that run only when named (they take minutes) */
const namedOnly = new Set(['tracing', 'recovery']);
const total = Object.entries(plan).reduce((s, [k, v]) => s + ((namedOnly.has(k) ? wantNamed(k) : want(k)) ? v : 0), 0);
const progress = new Progress(total);
const print = (s: string) => progress.log(s);

if (want('engine')) {
  const rows: InProcessRow[] = [];
  const stageRuns: InProcessRow[] = [];
  progress.step('in-process engine: KV SETs, 8 × 1024 pipelined');
  rows.push(await inProcessBench({ seconds }));
  progress.step('in-process engine: no-op state machine, 8 × 1024 pipelined');
  rows.push(await inProcessBench({ seconds: Math.min(seconds, 3), machine: 'noop' }));
  progress.step('in-process engine: 1 client, memory stores');
  rows.push(await inProcessLatencyBench({ seconds: Math.min(seconds, 3) }));
  progress.step('in-process engine: 1 client, file WAL');
  rows.push(await inProcessLatencyBench({ seconds: Math.min(seconds, 3), store: 'wal' }));
  progress.step('latency by stage: 8 × 1024 pipelined');
  stageRuns.push(await inProcessBench({ seconds: Math.min(seconds, 3), stages: true }));
  progress.step('latency by stage: 1 client, memory stores');
  stageRuns.push(await inProcessLatencyBench({ seconds: Math.min(seconds, 3), stages: true }));
  progress.step('latency by stage: 1 client, file WAL');
  stageRuns.push(await inProcessLatencyBench({ seconds: Math.min(seconds, 3), stages: true, store: 'wal' }));
  out.engine = rows;
  out.stages = stageRuns.map((r) => ({ run: r.name, opsPerSec: r.opsPerSec, stages: r.stages }));
  all.push(...rows);
  md.push('## In-process engine (3 replicas in one process, KV state machine)', '', table(rows), '');
  print(table(rows));
  md.push('## Latency by stage (in-process engine, a bus tap on the leader)', '');
  for (const r of stageRuns) {
    const t = `${r.name}: ${Math.round(r.opsPerSec).toLocaleString('en-US')} ops/s\n\n${stageTable(r.stages ?? [])}\n`;
    md.push(`### ${t}`);
    print(`\n${t}`);
  }
}
if (wantNamed('tracing')) {
  const { tracingBench } = await import('./tracing.ts');
  const rows = await tracingBench({ seconds, log: (s) => progress.step(s.replace(/^» /, '').replace(/…$/, '')) });
  out.tracing = rows;
  md.push('## Tracing cost (in-process engine, 3 replicas, KV SETs)', '', table(rows), '');
  print(table(rows));
}
if (want('codec')) {
  progress.step('MessagePack codecs');
  const { codecBench, formatRows } = await import('./codec.ts');
  const rows = await codecBench();
  out.codec = rows;
  md.push('## MessagePack codecs', '', formatRows(rows), '');
  print(formatRows(rows));
}
if (want('storage')) {
  progress.step('acceptor stores');
  const { storageBench, formatTable, emulatedNvmRows } = await import('./storage.ts');
  const rows = await storageBench();
  try {
    // persistent memory EMULATED on /dev/shm (PMEM_IS_PMEM_FORCE=1): not durable across power loss
    rows.push(...(await emulatedNvmRows()));
  } catch (e) {
    print(`» emulated NVM rows skipped: ${(e as Error).message.split('\n')[0]}`);
  }
  out.storage = rows;
  md.push('## Acceptor stores', '', formatTable(rows), '');
  print(formatTable(rows));
}

if (want('cluster')) {
  const { haveRedisBenchmark, processClusterBench, ensureReplicaBundle } = await import('./cluster.ts');
  if (!haveRedisBenchmark())
    print('» skipping multi-process rows: redis-benchmark not found (apt-get install redis-tools)');
  else {
    progress.step('building the replica bundle (tools/scripts/build-replica.mjs)');
    await ensureReplicaBundle();
    const rows: BenchRow[] = [];
    const step = (s: string) => progress.step(s);
    rows.push(...(await processClusterBench({ transport: 'tcp', storage: 'wal', n, step })));
    try {
      // the pmem log on a plain file commits by msync (several ms): fewer unpipelined requests
      rows.push(...(await processClusterBench({ transport: 'tcp', storage: 'pmem', n, n1: 3_000, step })));
    } catch (e) {
      print(`» pmem rows skipped: ${(e as Error).message.split('\n')[0]}`);
    }
    try {
      const { startNatsServer } = await import('@decree/transport-nats/testing');
      const nats = await startNatsServer({});
      try {
        rows.push(...(await processClusterBench({ transport: 'nats', natsUrl: nats.url, n, step })));
      } finally {
        await nats.stop();
      }
    } catch (e) {
      print(`» NATS rows skipped: ${(e as Error).message.split('\n')[0]}`);
    }
    out.cluster = rows;
    all.push(...rows);
    md.push(
      '## 3 replica processes (3-way replication, durable stores), redis-benchmark against the leader',
      '',
      table(rows),
      '',
    );
    print(table(rows));
  }
}

if (want('baselines')) {
  const { redisBaseline, etcdBaseline } = await import('./baselines.ts');
  const step = (s: string) => progress.step(s);
  // a missing server is installed as root (apt-get,
  // tools/scripts/system-deps.json "bench"), else its row says "skipped: …"
  const deps = { log: print };
  const rows = [...(await redisBaseline(n, step, deps)), ...(await etcdBaseline(Math.min(seconds, 5), step, deps))];
  for (const r of rows) if (r.skipped) print(`» ${r.name.split(':')[0]} skipped: ${r.skipped}`);
  out.baselines = rows;
  all.push(...rows);
  md.push('## Baselines in the same run: redis-server (no replication) and a 3-member etcd', '', table(rows), '');
  print(table(rows));
}

if (wantNamed('recovery')) {
  // issue #16: restart after 1M pipelined SETs through npm start, and kill -9 of the leader
  const { restartAfterLoad, leaderKills } = await import('./recovery.ts');
  const sets = Number(process.env.BENCH_RESTART_SETS ?? 1_000_000);
  progress.step(`restart after ${sets.toLocaleString('en-US')} pipelined SETs (npm start, Ctrl-C, npm start)`);
  const r = await restartAfterLoad({ sets, log: print });
  progress.step('kill -9 of the leader, 20 times');
  const k = await leaderKills({ kills: 20, log: print });
  out.recovery = { restart: r, kills: k };
  const t = [
    '| recovery (issue #16) | this run | goal |',
    '|---|---:|---|',
    `| first write after the last ready line, restart after ` +
      `${sets.toLocaleString('en-US')} SETs (${Math.round(r.setsPerSec).toLocaleString('en-US')} ` +
      `SET/s) | ${(r.firstWriteMs / 1000).toFixed(3)} s | ≤ 2 s |`,
    `| acknowledged marker keys read back after the restart | ${r.markers - r.markersLost} / ${r.markers} | all |`,
    `| no-write window after kill -9 of the leader, p50 (20 kills) | ${(k.p50 / 1000).toFixed(2)} s | ≤ 1.5 s |`,
    `| no-write window after kill -9 of the leader, max | ${(k.max / 1000).toFixed(2)} s | ≤ 5 s |`,
  ].join('\n');
  md.push('## Recovery', '', t, '', ...r.replayed.map((x) => `- ${x}`), '');
  print(t);
}

// the targets (#9), judged on this run
const find = (re: RegExp) => all.find((r) => re.test(r.name));
const targets: { target: string; figure: string; met: boolean | undefined }[] = [];
const engineRow = find(/^in-process engine, 3 replicas, memory stores, \d+-byte SET, 8×1024 pipelined$/);
if (engineRow)
  targets.push({
    target: 'in-process 3-replica engine ≥ 1,000,000 ops/s',
    figure: `${Math.round(engineRow.opsPerSec).toLocaleString('en-US')} ops/s`,
    met: engineRow.opsPerSec >= 1e6,
  });
const setRow = find(/^3 processes, TCP, file WAL, SET -P 64 -c 50$/);
if (setRow)
  targets.push({
    target: '3 processes (TCP, file WAL): ≥ 300,000 SET/s, redis-benchmark -t set -P 64 -c 50 -d 64',
    figure: `${Math.round(setRow.opsPerSec).toLocaleString('en-US')} SET/s`,
    met: setRow.opsPerSec >= 300_000,
  });
const oneRow = find(/^3 processes, TCP, file WAL, SET 1 client unpipelined$/);
if (oneRow) {
  targets.push({
    target: '1 client unpipelined: p50 ≤ 0.5 ms',
    figure: `p50 ${oneRow.p50ms.toFixed(3)} ms`,
    met: oneRow.p50ms <= 0.5,
  });
  targets.push({
    target: '1 client unpipelined: p99 ≤ 2 ms',
    figure: `p99 ${oneRow.p99ms.toFixed(3)} ms`,
    met: oneRow.p99ms <= 2,
  });
  if (oneRow.maxMs !== undefined)
    targets.push({
      target: '1 client unpipelined: max ≤ 20 ms (issue #19)',
      figure: `max ${oneRow.maxMs.toFixed(3)} ms`,
      met: oneRow.maxMs <= 20,
    });
}
if (targets.length) {
  const t = [
    '| target (issues #9 and #19) | this run | met |',
    '|---|---:|---|',
    ...targets.map((x) => `| ${x.target} | ${x.figure} | ${x.met ? 'yes' : 'no'} |`),
  ].join('\n');
  out.targets = targets;
  md.push('## Targets', '', t, '');
  print(t);
}

out.loadAtEnd = load();
md.push(`Load average at the end: ${out.loadAtEnd}`, '');
progress.finish();
mkdirSync(outDir, { recursive: true });
const files = await writeReport(
  outDir,
  out,
  md,
  all,
  `Decree ${commit ?? ''} — ${String(out.date).slice(0, 16).replace('T', ' ')} ` +
    `UTC, load ${out.loadAtStart} → ${out.loadAtEnd}`,
);
console.error(`» wrote ${files.join(', ')}`);
