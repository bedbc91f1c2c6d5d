#!/usr/bin/env node
/**
 * npm run chaos -- --minutes 5 [--seed 42] [--out history.jsonl] [--clients 6] [--keep]
 * npm run chaos -- --workload chunks --seconds 60 [--seed 7] [--writers 3] [--faults kill9,pause,deafen,isolate]
 * Exit 0: linearizable, converged, equal state (chunks: and every counter check holds). Exit 1: anything
 * else. Exit 2: usage error.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { formatChunksReport, runChunks } from './chunks.ts';
import { ALL_FAULT_KINDS, type FaultKind } from './faults.ts';
import { formatReport, runChaos } from './harness.ts';

const num = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${what} must be a positive number`);
  return n;
};
const int0 = (what: string) => (v: string) => {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${what} must be a non-negative integer`);
  return Number(v);
};
const range =
  (what: string) =>
  (v: string): [number, number] => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(v);
    const lo = m ? Number(m[1]) : NaN;
    const hi = m ? Number(m[2] ?? m[1]) : NaN;
    if (!m || lo < 1 || hi < lo) throw new InvalidArgumentError(`${what} must be N or MIN-MAX (positive, MIN <= MAX)`);
    return [lo, hi];
  };
const share = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError(`${what} must be between 0 and 1`);
  return n;
};
const faultList = (v: string): FaultKind[] => {
  const ks = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = ks.filter((k) => !(ALL_FAULT_KINDS as readonly string[]).includes(k));
  if (!ks.length || bad.length)
    throw new InvalidArgumentError(`--faults takes a list of ${ALL_FAULT_KINDS.join(', ')}`);
  return ks as FaultKind[];
};

const program = new Command('chaos')
  .description('real-process fault harness: a decree cluster, link proxies, random faults, linearizability check')
  .option(
    '--workload <name>',
    'registers (default: small ops, 3 replicas) or chunks (pipelined chunks across slots, ' +
      'counters, configuration changes, 4 processes)',
    (v) => {
      if (v !== 'registers' && v !== 'chunks') throw new InvalidArgumentError('--workload must be registers or chunks');
      return v;
    },
    'registers',
  )
  .option('--minutes <n>', 'minutes of faults', num('--minutes'))
  .option('--seconds <n>', 'seconds of faults (short runs)', num('--seconds'))
  .option('--seed <n>', 'seed of the fault schedule and client choices (default: time)', (v) => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError('--seed must be a non-negative integer');
    return Number(v) >>> 0;
  })
  .option('--out <file>', 'history file (JSON lines; default <run dir>/history.jsonl)')
  .option('--dir <dir>', 'run directory (default: a new one under the temp dir)')
  .option('--clients <n>', 'recorded client connections (registers: 6, chunks: 3)', num('--clients'))
  .option('--op-timeout <ms>', 'per-operation timeout; no reply by then = unknown outcome', num('--op-timeout'), 2000)
  .option('--keep', 'keep the data directories even when the run passes', false)
  .option('--json', 'print the report as JSON', false)
  // chunks workload
  .option('--writers <n>', 'chunks: pipelining writer connections', num('--writers'), 3)
  .option('--to-leader <x>', 'chunks: share of the pipelines sent to the leader', share('--to-leader'), 0.6)
  .option('--chunk-size <range>', 'chunks: commands per pipeline, N or MIN-MAX', range('--chunk-size'), [100, 400])
  .option('--big <n>', 'chunks: big SETs per pipeline', int0('--big'), 3)
  .option('--big-bytes <n>', 'chunks: bytes of a big SET value', num('--big-bytes'), 300 * 1024)
  .option('--incr-share <x>', 'chunks: share of the other commands that are INCRs', share('--incr-share'), 0.6)
  .option('--own-share <x>', "chunks: share of the INCRs on the pipeline's own counter", share('--own-share'), 0.7)
  .option('--key-pad <n>', "chunks: bytes of padding in each pipeline's own counter key", int0('--key-pad'), 200)
  .option('--counters <n>', 'chunks: shared counter keys', num('--counters'), 4)
  .option('--pipeline-timeout <ms>', 'chunks: ms until a pipeline is given up', num('--pipeline-timeout'), 15_000)
  .option('--inflight-slots <n>', 'chunks: batching.maxInflightSlots of the replicas', num('--inflight-slots'), 4)
  .option('--faults <kinds>', `chunks: fault kinds, of ${ALL_FAULT_KINDS.join(',')}`, faultList, [
    'kill9',
    'pause',
    'deafen',
    'isolate',
  ])
  .option('--leader-share <x>', 'chunks: share of the faults aimed at the leader', share('--leader-share'), 0.75)
  .option(
    '--config-gap <range>',
    'chunks: ms between configuration changes, MIN-MAX',
    range('--config-gap'),
    [2000, 5000],
  )
  .option('--no-config', 'chunks: no configuration changes')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s.split('\n')[0] + '\n') });

try {
  program.parse(process.argv);
} catch (e) {
  process.exit(e instanceof CommanderError && e.exitCode === 0 ? 0 : 2);
}
const o = program.opts<{
  workload: 'registers' | 'chunks';
  minutes?: number;
  seconds?: number;
  seed?: number;
  out?: string;
  dir?: string;
  clients?: number;
  opTimeout: number;
  keep: boolean;
  json: boolean;
  writers: number;
  toLeader: number;
  chunkSize: [number, number];
  big: number;
  bigBytes: number;
  incrShare: number;
  counters: number;
  keyPad: number;
  ownShare: number;
  pipelineTimeout: number;
  inflightSlots: number;
  faults: FaultKind[];
  leaderShare: number;
  configGap: [number, number];
  config: boolean;
}>();
const durationMs = o.seconds !== undefined ? o.seconds * 1000 : (o.minutes ?? 1) * 60_000;
const common = {
  durationMs,
  opTimeoutMs: o.opTimeout,
  keep: o.keep,
  log: (l: string) => console.error(l),
  ...(o.seed !== undefined ? { seed: o.seed } : {}),
  ...(o.out ? { out: o.out } : {}),
  ...(o.dir ? { dir: o.dir } : {}),
};

if (o.workload === 'chunks') {
  if (o.big > o.chunkSize[0]) {
    console.error(`chaos: --big ${o.big} is more than the smallest pipeline (--chunk-size ${o.chunkSize.join('-')})`);
    process.exit(2);
  }
  const report = await runChunks({
    ...common,
    writers: Math.floor(o.writers),
    toLeader: o.toLeader,
    clients: Math.floor(o.clients ?? 3),
    shape: {
      size: o.chunkSize,
      big: o.big,
      bigBytes: Math.floor(o.bigBytes),
      incrShare: o.incrShare,
      counters: Math.floor(o.counters),
      keyPad: o.keyPad,
      ownShare: o.ownShare,
    },
    pipelineTimeoutMs: o.pipelineTimeout,
    inflightSlots: Math.floor(o.inflightSlots),
    faultKinds: o.faults,
    leaderShare: o.leaderShare,
    configGapMs: o.configGap,
    configChanges: o.config,
  });
  const chunks = { ...report.chunks, log: `${report.chunks.log.length} pipelines in ${report.dir}/pipelines.jsonl` };
  const check = { ...report.check, witness: undefined };
  if (o.json) console.log(JSON.stringify({ ...report, chunks, check }, null, 2));
  else console.log(formatChunksReport(report));
  process.exit(report.verdict === 'PASS' ? 0 : 1);
}

const report = await runChaos({ ...common, clients: Math.floor(o.clients ?? 6) });
if (o.json) console.log(JSON.stringify({ ...report, check: { ...report.check, witness: undefined } }, null, 2));
else console.log(formatReport(report));
process.exit(report.verdict === 'PASS' ? 0 : 1);
