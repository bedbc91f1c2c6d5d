/**
 * `npm run bench`: every benchmark in one run, one table each; results also as JSON and markdown
 * under .bench-out/. Select with `npm run bench -- engine codec storage` (default: all but
 * `tracing`, which runs only when named: `npm run bench -- tracing`).
 * BENCH_SECONDS sets the length of each throughput run (default 5).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { inProcessBench, inProcessLatencyBench } from './inprocess.ts';
import { type BenchRow, table } from './stats.ts';

const wanted = new Set(process.argv.slice(2).filter((a) => !a.startsWith('-')));
const want = (k: string) => wanted.size === 0 || wanted.has(k);
/** parts that run only when named */
const wantNamed = (k: string) => wanted.has(k);
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const out: Record<string, unknown> = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: cpus().length,
  cpu: cpus()[0]?.model,
};
const md: string[] = [`# Decree benchmark run ${out.date}`, '', `Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model}`, ''];

if (want('engine')) {
  console.error('» in-process engine…');
  const rows: BenchRow[] = [
    await inProcessBench({ seconds }),
    await inProcessBench({ seconds: Math.min(seconds, 3), machine: 'noop' }),
    await inProcessLatencyBench({ seconds: Math.min(seconds, 3) }),
  ];
  out.engine = rows;
  md.push('## In-process engine (3 replicas, memory stores, KV state machine)', '', table(rows), '');
  console.log(table(rows));
}
if (wantNamed('tracing')) {
  const { tracingBench } = await import('./tracing.ts');
  const rows = await tracingBench({ seconds, log: (s) => console.error(s) });
  out.tracing = rows;
  md.push('## Tracing cost (in-process engine, 3 replicas, KV SETs)', '', table(rows), '');
  console.log(table(rows));
}
if (want('codec')) {
  console.error('» codec…');
  const { codecBench, formatRows } = await import('./codec.ts');
  const rows = await codecBench();
  out.codec = rows;
  md.push('## MessagePack codecs', '', formatRows(rows), '');
  console.log(formatRows(rows));
}
if (want('storage')) {
  console.error('» storage…');
  const { storageBench, formatTable } = await import('./storage.ts');
  const rows = await storageBench();
  out.storage = rows;
  md.push('## Acceptor stores', '', formatTable(rows), '');
  console.log(formatTable(rows));
}

if (want('cluster')) {
  const { haveRedisBenchmark, processClusterBench } = await import('./cluster.ts');
  if (!haveRedisBenchmark()) console.error('» skipping multi-process rows: redis-benchmark not found (apt-get install redis-tools)');
  else {
    console.error('» 3 processes over TCP…');
    const rows = await processClusterBench({ transport: 'tcp' });
    try {
      console.error('» 3 processes over NATS…');
      const { startNatsServer } = await import('@decree/transport-nats/testing');
      const nats = await startNatsServer({});
      try {
        rows.push(...(await processClusterBench({ transport: 'nats', natsUrl: nats.url })));
      } finally {
        await nats.stop();
      }
    } catch (e) {
      console.error(`» NATS rows skipped: ${(e as Error).message}`);
    }
    out.cluster = rows;
    md.push('## 3-process clusters (redis-benchmark against the leader)', '', table(rows), '');
    console.log(table(rows));
  }
}

if (want('baselines')) {
  const { redisBaseline, etcdBaseline } = await import('./baselines.ts');
  console.error('» redis-server and etcd baselines…');
  const rows = [...(await redisBaseline()), ...(await etcdBaseline(Math.min(seconds, 5)))];
  out.baselines = rows;
  md.push('## Baselines in the same run: redis-server (no replication) and a 3-member etcd', '', table(rows), '');
  console.log(table(rows));
}

mkdirSync('.bench-out', { recursive: true });
writeFileSync('.bench-out/results.json', JSON.stringify(out, null, 2));
writeFileSync('.bench-out/results.md', md.join('\n'));
console.error('» wrote .bench-out/results.json and .bench-out/results.md');
