#!/usr/bin/env node
/**
 * npm run chaos -- --minutes 5 [--seed 42] [--out history.jsonl] [--clients 6] [--keep]
 * Exit 0: linearizable, converged, equal state. Exit 1: anything else. Exit 2: usage error.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { formatReport, runChaos } from './harness.ts';

const num = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${what} must be a positive number`);
  return n;
};

const program = new Command('chaos')
  .description('real-process fault harness: a 3-replica decree cluster, link proxies, random faults, linearizability check')
  .option('--minutes <n>', 'minutes of faults', num('--minutes'))
  .option('--seconds <n>', 'seconds of faults (short runs)', num('--seconds'))
  .option('--seed <n>', 'seed of the fault schedule and client choices (default: time)', (v) => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError('--seed must be a non-negative integer');
    return Number(v) >>> 0;
  })
  .option('--out <file>', 'history file (JSON lines; default <run dir>/history.jsonl)')
  .option('--dir <dir>', 'run directory (default: a new one under the temp dir)')
  .option('--clients <n>', 'concurrent client connections', num('--clients'), 6)
  .option('--op-timeout <ms>', 'per-operation timeout; no reply by then = unknown outcome', num('--op-timeout'), 2000)
  .option('--keep', 'keep the data directories even when the run passes', false)
  .option('--json', 'print the report as JSON', false)
  .exitOverride();

try {
  program.parse(process.argv);
} catch (e) {
  process.exit(e instanceof CommanderError && e.exitCode === 0 ? 0 : 2);
}
const o = program.opts<{ minutes?: number; seconds?: number; seed?: number; out?: string; dir?: string; clients: number; opTimeout: number; keep: boolean; json: boolean }>();
const durationMs = o.seconds !== undefined ? o.seconds * 1000 : (o.minutes ?? 1) * 60_000;

const report = await runChaos({
  durationMs,
  clients: Math.floor(o.clients),
  opTimeoutMs: o.opTimeout,
  keep: o.keep,
  log: (l) => console.error(l),
  ...(o.seed !== undefined ? { seed: o.seed } : {}),
  ...(o.out ? { out: o.out } : {}),
  ...(o.dir ? { dir: o.dir } : {}),
});
if (o.json) console.log(JSON.stringify({ ...report, check: { ...report.check, witness: undefined } }, null, 2));
else console.log(formatReport(report));
process.exit(report.verdict === 'PASS' ? 0 : 1);
