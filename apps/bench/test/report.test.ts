import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseRedisBenchmark, percentile } from '../src/cluster.ts';
import { Progress } from '../src/progress.ts';
import { chartSvg } from '../src/report.ts';
import { stageTable, StageTracker } from '../src/stages.ts';
import { inProcessBench, inProcessLatencyBench } from '../src/inprocess.ts';
import type { BenchRow } from '../src/stats.ts';

// redis-benchmark 7's plain report (progress lines end in \r)
const SAMPLE = [
  'SET: rps=0.0 (overall: inf) avg_msec=0.396 (overall: 0.396)\r====== SET ======',
  '  20000 requests completed in 0.03 seconds',
  '  10 parallel clients',
  '',
  'Latency by percentile distribution:',
  '0.000% <= 0.071 milliseconds (cumulative count 48)',
  '50.000% <= 0.143 milliseconds (cumulative count 10544)',
  '99.219% <= 0.487 milliseconds (cumulative count 19856)',
  '99.902% <= 0.967 milliseconds (cumulative count 19984)',
  '100.000% <= 0.991 milliseconds (cumulative count 20000)',
  '',
  'Cumulative distribution of latencies:',
  '11.680% <= 0.103 milliseconds (cumulative count 2336)',
  '',
  'Summary:',
  '  throughput summary: 800000.00 requests per second',
  '',
].join('\n');

describe('redis-benchmark report', () => {
  it('gives requests, rps and percentiles (the first bucket at or above)', () => {
    const [r] = parseRedisBenchmark(SAMPLE);
    expect(r).toMatchObject({ test: 'SET', requests: 20000, rps: 800000 });
    expect(percentile(r!, 50)).toBe(0.143);
    expect(percentile(r!, 99)).toBe(0.487);
    expect(percentile(r!, 99.9)).toBe(0.967);
  });
});

describe('outputs', () => {
  const row = (name: string, group: string, ops: number): BenchRow => ({
    name,
    group,
    ops: 1,
    seconds: 1,
    opsPerSec: ops,
    p50ms: 0.5,
    p99ms: 2,
    p999ms: 3,
    cpuSecPerMillion: 1,
  });
  it('the chart has a bar per row and the unpipelined rows in the latency panel', () => {
    const svg = chartSvg(
      [
        row('engine <pipelined>', 'engine', 1e6),
        row('3 processes, SET 1 client unpipelined', 'cluster', 900),
        row('etcd', 'baselines', 4000),
      ],
      'title',
    );
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('engine &lt;pipelined&gt;');
    expect(svg).toContain('1,000,000');
    expect(svg).toContain('p99 2.000');
  });
  it('without a terminal the progress is one line per step', () => {
    const s = new PassThrough() as unknown as NodeJS.WriteStream;
    let text = '';
    (s as unknown as PassThrough).on('data', (d) => (text += d));
    const p = new Progress(2, s);
    p.step('first');
    p.step('second');
    p.finish();
    expect(text).toMatch(/\[1\/2\] \d\d:\d\d first\n/);
    expect(text).toMatch(/\[2\/2\] \d\d:\d\d second\n/);
    expect(text).toMatch(/2 steps in/);
  });
});

describe('latency by stage', () => {
  it('a bus tap attributes every stage of pipelined batches', async () => {
    const r = await inProcessBench({ seconds: 0.5, clients: 2, pipeline: 64, stages: true });
    expect(r.ops).toBeGreaterThan(0);
    expect(r.stages!.map((s) => s.stage)).toEqual([
      'to proposer',
      'accept sent',
      'durable',
      'chosen',
      'applied',
      'replied',
    ]);
    for (const s of r.stages!)
      for (const v of [s.p50ms, s.p99ms, s.cumP50ms, s.cumP99ms]) expect(Number.isFinite(v)).toBe(true);
    // time since received only grows along the path; these four stages are recorded for the same commands
    const cum = r.stages!.slice(1, 5).map((s) => s.cumP50ms);
    expect([...cum].sort((a, b) => a - b)).toEqual(cum);
    expect(stageTable(r.stages!)).toContain('| durable:');
  });
  it('one client at a time, file WAL', async () => {
    const r = await inProcessLatencyBench({ seconds: 0.3, stages: true, store: 'wal' });
    expect(r.ops).toBeGreaterThan(0);
    expect(r.stages!.every((s) => s.cumP99ms >= s.cumP50ms)).toBe(true);
  });
  it('a tracker ignores slots it did not see proposed', () => {
    const t = new StageTracker('r1');
    expect(t.rows().every((s) => s.p50ms === 0)).toBe(true);
  });
});
