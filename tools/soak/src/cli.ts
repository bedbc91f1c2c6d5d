#!/usr/bin/env node
/**
 * npm run soak -- --minutes 10 [--seed 42] [--json] [load knobs]
 * Exit 0: no lost acknowledged write, linearizable, no zero window after the first fault.
 * Exit 1: anything else. Exit 2: usage error.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { SOAK_FAULT_KINDS, type SoakFaultKind } from './faults.ts';
import { runSoak } from './harness.ts';
import { formatReport } from './report.ts';

const num =
  (what: string, int = false) =>
  (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0 || (int && !Number.isInteger(n)))
      throw new InvalidArgumentError(`${what} must be a positive ${int ? 'integer' : 'number'}`);
    return n;
  };

const program = new Command('soak')
  .description('real-process soak: 3 replicas, pipelined big-value load, kill -9, SIGSTOP, whole-cluster restarts')
  .option('--minutes <n>', 'minutes of faults (default 1)', num('--minutes'))
  .option('--seconds <n>', 'seconds of faults (short runs)', num('--seconds'))
  .option('--seed <n>', 'seed of the fault schedule and the load (default: time)', (v) => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError('--seed must be a non-negative integer');
    return Number(v) >>> 0;
  })
  .option('--dir <dir>', 'run directory (default: a new one under the temp dir)')
  .option('--keep', 'keep the data directories even when the run passes', false)
  .option('--json', 'print the report as JSON on stdout', false)
  .option('--faults <kinds>', `fault kinds, comma-separated (default all: ${SOAK_FAULT_KINDS.join(',')})`, (v) => {
    const ks = v.split(',').map((s) => s.trim());
    const bad = ks.find((k) => !(SOAK_FAULT_KINDS as readonly string[]).includes(k));
    if (bad !== undefined || ks.length === 0) throw new InvalidArgumentError(`unknown fault kind "${bad}"`);
    return ks as SoakFaultKind[];
  })
  .option('--connections <n>', 'bulk pipelining connections', num('--connections', true), 4)
  .option('--pipeline <n>', 'commands per pipeline', num('--pipeline', true), 400)
  .option(
    '--big <n>',
    '300 KB SETs per pipeline',
    (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('--big must be a non-negative integer');
      return n;
    },
    3,
  )
  .option('--big-bytes <n>', 'size of a big value', num('--big-bytes', true), 300 * 1024)
  .option('--keyspace <n>', 'keys of the 64-byte SETs', num('--keyspace', true), 10_000)
  .option('--checked-clients <n>', 'recorded one-op-at-a-time clients', num('--checked-clients', true), 2)
  .option('--pipeline-timeout <ms>', 'no reply for this long gives a pipeline up', num('--pipeline-timeout'), 10_000)
  .option('--recover-timeout <s>', 'seconds to wait for a recovery before the next fault', num('--recover-timeout'), 60)
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s.split('\n')[0] + '\n') });

try {
  program.parse(process.argv);
} catch (e) {
  process.exit(e instanceof CommanderError && e.exitCode === 0 ? 0 : 2);
}
const o = program.opts<{
  minutes?: number;
  seconds?: number;
  seed?: number;
  dir?: string;
  keep: boolean;
  json: boolean;
  faults?: SoakFaultKind[];
  connections: number;
  pipeline: number;
  big: number;
  bigBytes: number;
  keyspace: number;
  checkedClients: number;
  pipelineTimeout: number;
  recoverTimeout: number;
}>();
if (o.minutes !== undefined && o.seconds !== undefined) {
  console.error('soak: give --minutes or --seconds, not both');
  process.exit(2);
}
if (o.big > o.pipeline) {
  console.error('soak: --big must not exceed --pipeline');
  process.exit(2);
}
const durationMs = o.seconds !== undefined ? o.seconds * 1000 : (o.minutes ?? 1) * 60_000;

const report = await runSoak({
  durationMs,
  keep: o.keep,
  connections: o.connections,
  checkedClients: o.checkedClients,
  shape: { pipeline: o.pipeline, big: o.big, bigBytes: o.bigBytes, keyspace: o.keyspace },
  stallMs: o.pipelineTimeout,
  recoverTimeoutMs: o.recoverTimeout * 1000,
  log: (l) => console.error(l),
  ...(o.seed !== undefined ? { seed: o.seed } : {}),
  ...(o.faults ? { faultKinds: o.faults } : {}),
  ...(o.dir ? { dir: o.dir } : {}),
});
if (o.json) console.log(JSON.stringify(report, null, 2));
else console.log(formatReport(report));
process.exit(report.verdict === 'PASS' ? 0 : 1);
