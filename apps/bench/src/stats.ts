import * as hdr from 'hdr-histogram-js';

/** A latency recorder in microseconds (HdrHistogram) reporting milliseconds. */
export class Latency {
  private h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  record(ms: number, count = 1): void {
    this.h.recordValueWithCount(Math.max(1, Math.round(ms * 1000)), count);
  }
  pct(p: number): number {
    return this.h.getValueAtPercentile(p) / 1000;
  }
  get count(): number {
    return this.h.totalCount;
  }
}

export interface BenchRow {
  name: string;
  ops: number;
  seconds: number;
  opsPerSec: number;
  p50ms: number;
  p99ms: number;
  p999ms: number;
  /** the slowest request, when the load generator reports it (redis-benchmark's 100th percentile) */
  maxMs?: number;
  cpuSecPerMillion: number;
  /**
   * CPU µs per operation of each server process (user + system from /proc), keyed by its name: the
   * leader first (the 3-process rows)
   */
  cpuUsPerOpByProcess?: Record<string, number>;
  note?: string;
  /** the load generator's command line, when one was used */
  command?: string;
  /** the part of the suite: engine, cluster, baselines */
  group?: string;
  /** not measured, and why (the table says "skipped: …"; the chart leaves it out) */
  skipped?: string;
}

/** A row that stands for runs that did not happen, so the table says so instead of dropping them. */
export function skippedRow(name: string, reason: string, group?: string): BenchRow {
  return {
    name,
    ops: 0,
    seconds: 0,
    opsPerSec: 0,
    p50ms: 0,
    p99ms: 0,
    p999ms: 0,
    cpuSecPerMillion: 0,
    skipped: reason,
    ...(group ? { group } : {}),
  };
}

export function table(rows: readonly BenchRow[]): string {
  const head =
    '| benchmark | ops/s | p50 ms | p99 ms | p99.9 ms | max ms | CPU s / M ' +
    'ops | ops | note |\n|---|---:|---:|---:|---:|---:|---:|---:|---|';
  const fmt = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : '-');
  return [
    head,
    ...rows.map((r) =>
      r.skipped !== undefined
        ? `| ${r.name} | skipped: ${r.skipped} | - | - | - | - | - | - | ${r.note ?? ''} |`
        : `| ${r.name} | ${Math.round(r.opsPerSec).toLocaleString('en-US')} | ` +
          `${fmt(r.p50ms, 3)} | ${fmt(r.p99ms, 3)} | ${fmt(r.p999ms, 3)} | ${fmt(r.maxMs ?? Number.NaN, 3)} | ` +
          `${fmt(r.cpuSecPerMillion)} | ${r.ops.toLocaleString('en-US')} | ${rowNote(r)} |`,
    ),
  ].join('\n');
}

/** The note of a row, after the CPU µs per operation of each process when the row has them. */
function rowNote(r: BenchRow): string {
  const by = r.cpuUsPerOpByProcess;
  const cpu =
    by === undefined
      ? ''
      : `CPU µs/op by process: ${Object.entries(by)
          .map(([p, us]) => `${p} ${Number.isFinite(us) ? us.toFixed(2) : '-'}`)
          .join(', ')}`;
  return [cpu, r.note ?? ''].filter((x) => x !== '').join('; ');
}

export function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}
