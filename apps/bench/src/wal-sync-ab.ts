/**
 * A/B of the WAL's sync mode on the in-process engine, one client, one command at a time, file WALs:
 *   node --conditions=source --import tsx apps/bench/src/wal-sync-ab.ts [rounds] [seconds]
 * Interleaves 'dsync' (O_DSYNC writes) and 'fdatasync' (write, then fdatasync) rounds; prints medians.
 */
import { inProcessLatencyBench } from './inprocess.ts';

const rounds = Number(process.argv[2] ?? 3);
const seconds = Number(process.argv[3] ?? 3);
const res: Record<string, { p50: number[]; p99: number[]; ops: number[] }> = {
  dsync: { p50: [], p99: [], ops: [] },
  fdatasync: { p50: [], p99: [], ops: [] },
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (let r = 0; r < rounds; r++) {
  for (const mode of r % 2 ? (['fdatasync', 'dsync'] as const) : (['dsync', 'fdatasync'] as const)) {
    const row = await inProcessLatencyBench({ seconds, store: 'wal', walSync: mode });
    res[mode]!.p50.push(row.p50ms);
    res[mode]!.p99.push(row.p99ms);
    res[mode]!.ops.push(row.opsPerSec);
    console.log(
      `round ${r + 1} ${mode}: ${row.opsPerSec.toFixed(0)} ops/s, ` +
        `p50 ${row.p50ms.toFixed(3)} ms, p99 ${row.p99ms.toFixed(3)} ms`,
    );
  }
}
for (const [mode, v] of Object.entries(res))
  console.log(
    `${mode}: median ${median(v.ops).toFixed(0)} ops/s, p50 ` +
      `${median(v.p50).toFixed(3)} ms, p99 ${median(v.p99).toFixed(3)} ms`,
  );
process.exit(0);
