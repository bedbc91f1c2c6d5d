/**
 * A baseline whose server is missing is never dropped silently: its row says "skipped: …" in the
 * table (the console and results.md print the same table) and stays out of the chart; as root the
 * bench installs the server with apt-get first (tools/scripts/system-deps.json "bench").
 */
import { describe, expect, it } from 'vitest';
import { ETCD_BASELINE, REDIS_BASELINE, etcdBaseline, redisBaseline } from '../src/baselines.ts';
import { chartSvg } from '../src/report.ts';
import { type BenchRow, skippedRow, table } from '../src/stats.ts';
import { benchDep, benchDeps, ensureCommand } from '../src/system-deps.ts';

const measured: BenchRow = {
  name: 'redis-server, GET -P 64 -c 50',
  group: 'baselines',
  ops: 400_000,
  seconds: 0.5,
  opsPerSec: 800_000,
  p50ms: 3.7,
  p99ms: 5.3,
  p999ms: 5.9,
  cpuSecPerMillion: 1.27,
};

describe('baseline rows', () => {
  it('a skipped row renders as "skipped: <reason>" in the table, next to measured rows', () => {
    const reason = 'redis-server not installed (apt-get install redis-server)';
    const lines = table([measured, skippedRow(REDIS_BASELINE, reason, 'baselines')]).split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[2]).toBe(
      '| redis-server, GET -P 64 -c 50 | 800,000 | 3.700 | 5.300 | 5.900 | - | 1.27 | 400,000 |  |',
    );
    expect(lines[3]).toBe(
      `| ${REDIS_BASELINE} | skipped: redis-server not installed ` +
        `(apt-get install redis-server) | - | - | - | - | - | - |  |`,
    );
    // as many cells as the header
    const cells = (l: string) => l.split('|').length;
    expect(cells(lines[3]!)).toBe(cells(lines[0]!));
  });

  it('a 3-process row shows its maximum and the CPU µs per operation of each process', () => {
    const row = {
      ...measured,
      maxMs: 12.5,
      cpuUsPerOpByProcess: { 'r2 (leader)': 4.567, r1: 2.5, r3: Number.NaN },
      note: 'the leader changed during this run',
    };
    const [, , line] = table([row]).split('\n');
    expect(line).toBe(
      '| redis-server, GET -P 64 -c 50 | 800,000 | 3.700 | 5.300 | 5.900 | 12.500 | 1.27 | 400,000 | ' +
        'CPU µs/op by process: r2 (leader) 4.57, r1 2.50, r3 -; the leader changed during this run |',
    );
  });

  it('the chart leaves a skipped row out', () => {
    const svg = chartSvg(
      [measured, skippedRow(ETCD_BASELINE, 'etcd not installed (apt-get install etcd-server)', 'baselines')],
      't',
    );
    expect(svg).toContain('redis-server, GET');
    expect(svg).not.toContain('3 members (HTTP gateway)');
  });
});

describe('the bench system deps', () => {
  it("system-deps.json lists the baselines' servers and their Debian packages", () => {
    expect(benchDeps()).toEqual([
      { command: 'redis-server', debian: 'redis-server' },
      { command: 'etcd', debian: 'etcd-server' },
    ]);
    expect(benchDep('etcd').debian).toBe('etcd-server');
  });

  it('missing and not root: the reason names the package', () => {
    const r = ensureCommand(benchDep('etcd'), { install: false, have: () => false });
    expect(r).toEqual({ ok: false, reason: 'etcd not installed (apt-get install etcd-server)' });
  });

  it('missing as root: installs it with apt-get, or says that apt-get failed', () => {
    const calls: string[][] = [];
    let present = false;
    const logs: string[] = [];
    const ok = ensureCommand(benchDep('redis-server'), {
      install: true,
      have: () => present,
      aptGet: (args) => {
        calls.push(args);
        present = true;
        return { ok: true, output: '' };
      },
      log: (s) => logs.push(s),
    });
    expect(ok).toEqual({ ok: true, installed: true });
    expect(calls).toEqual([['install', '-y', '-q', '--no-install-recommends', 'redis-server']]);
    expect(logs[0]).toMatch(/installing Debian's redis-server with apt-get/);

    const failed = ensureCommand(benchDep('redis-server'), {
      install: true,
      have: () => false,
      aptGet: () => ({ ok: false, output: 'Reading package lists...\nE: Unable to locate package redis-server\n' }),
    });
    expect(failed).toEqual({
      ok: false,
      reason: 'redis-server not installed (apt-get install redis-server failed: Unable to locate package redis-server)',
    });
  });

  it('present: nothing to do', () => {
    expect(
      ensureCommand(benchDep('redis-server'), { have: () => true, aptGet: () => ({ ok: false, output: '' }) }),
    ).toEqual({
      ok: true,
      installed: false,
    });
  });

  it('redisBaseline and etcdBaseline return their skip row when the server is missing', async () => {
    const missing = { install: false, have: () => false };
    expect(await redisBaseline(1000, undefined, missing)).toEqual([
      skippedRow(REDIS_BASELINE, 'redis-server not installed (apt-get install redis-server)', 'baselines'),
    ]);
    const [etcd] = await etcdBaseline(1, undefined, missing);
    expect(table([etcd!])).toContain(
      `| ${ETCD_BASELINE} | skipped: etcd not installed (apt-get install etcd-server) |`,
    );
  });
});
