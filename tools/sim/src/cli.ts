/**
 * npm run sim -- --seeds N --start-seed S [--duration MS] [--fault-rate P] [--verbose] [--history FILE]
 * npm run sim -- --scale [--slots N] [--value-bytes B] [--restarts R] [--disk-bytes B] [--link-bytes B] ...
 * Runs N deterministic simulations from seed S; on a violation prints the seed and the command that replays it.
 * See docs/simulator.md.
 */
import { writeFileSync } from 'node:fs';
import { type SimLinkOptions, TCP_QUEUE_BYTES, TCP_QUEUE_MESSAGES, twoLanes } from '@decree/bus';
import { Command, InvalidArgumentError, Option } from 'commander';
import { type ScaleParams, simulateScale } from './scale.ts';
import { READS_MODE, simulate } from './simulate.ts';
import { contractsWanted, setContracts } from '@decree/protocol';

// a program (not a library) reads the environment: DECREE_CONTRACTS=1 turns the code contracts on
setContracts(contractsWanted(process.env.DECREE_CONTRACTS));

const int =
  (name: string, min = 0) =>
  (v: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got "${v}"`);
    return n;
  };
const rate = (name: string) => (v: string) => {
  const n = Number(v);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError(`${name} must be between 0 and 1, got "${v}"`);
  return n;
};
/** An integer option with a default. */
const num = (flags: string, about: string, min: number, def?: number) => {
  const opt = new Option(flags, about).argParser(int(flags.split(' ')[0]!, min));
  return def === undefined ? opt : opt.default(def);
};

const program = new Command('sim')
  .description('Deterministic simulation of a Decree KV cluster under faults: safety, linearizability, liveness')
  .addOption(num('--seeds <n>', 'how many seeds to run', 0, 100))
  .addOption(num('--start-seed <s>', 'the first seed', 0, 1))
  .addOption(num('--duration <ms>', 'simulated milliseconds of faults and load per seed', 0, 3000))
  .addOption(
    new Option('--fault-rate <p>', 'probability of a fault per ~5 simulated ms (default 0.03; --scale: 0)').argParser(
      rate('--fault-rate'),
    ),
  )
  .addOption(
    num(
      '--spares <n>',
      'replicas outside the initial configuration, for configuration changes ' + '(default 1; --reads: 2)',
      0,
    ),
  )
  // --- read-index reads (issue #17)
  .option(
    '--reads',
    'read-index reads around configuration changes: --read-index 0.5 --readers 2 --reconfig 0.05 ' +
      '--spares 2 unless given',
    false,
  )
  .addOption(
    new Option(
      '--read-index <p>',
      "share of the clients' GETs served by read-index instead of the log (default 0)",
    ).argParser(rate('--read-index')),
  )
  .addOption(num('--readers <n>', 'clients that only issue read-index reads at any replica that believes it leads', 0))
  .addOption(
    new Option(
      '--reconfig <p>',
      'probability per ~5 simulated ms of a reconfiguration episode (crash a member, ' +
        'change the configuration, crash the leader just after, restart the member from its old state)',
    ).argParser(rate('--reconfig')),
  )
  .addOption(
    num(
      '--liveness-ms <ms>',
      'once faults stop, a leader and a committed write within this virtual time ' +
        '(--scale: default 10000; otherwise default: off)',
      1,
    ),
  )
  .option('--verbose', 'print each run and its fault trace', false)
  .option('--history <file>', 'write the client history of the last run (JSON lines)')
  // --- scale (issue #16)
  .option('--scale', 'the scale scenario: long log, large values, pipelined clients, whole-cluster restarts', false)
  .addOption(num('--slots <n>', '--scale: slots executed under load before the last whole-cluster restart', 1, 2000))
  .addOption(num('--value-bytes <b>', '--scale: bytes of each large value (one shared buffer)', 1, 100 << 10))
  .addOption(num('--clients <n>', '--scale: pipelined clients', 1, 4))
  .addOption(num('--pipeline <n>', '--scale: commands in flight per client (every other one a large SET)', 1, 16))
  .addOption(num('--restarts <n>', '--scale: whole-cluster restarts, spread over the load, the last after it', 1, 1))
  .addOption(num('--disk-bytes <b>', "--scale: capacity of each replica's disk (0: unlimited)", 0, 0))
  .addOption(new Option('--n <n>', 'cluster size (default: 3 with --scale, else by seed)').choices(['3', '5']))
  // --- links bounded like the TCP transport's (always with --scale; otherwise when one of these is given)
  .addOption(num('--link-bytes <b>', `bytes a link's lane holds before it drops (default ${TCP_QUEUE_BYTES})`, 1))
  .addOption(num('--link-messages <n>', `messages a link's lane holds (default ${TCP_QUEUE_MESSAGES})`, 1))
  .addOption(num('--bandwidth <bytes-per-ms>', 'bytes per virtual ms on each directed link (default 125000)', 1))
  .addOption(
    new Option(
      '--lanes <n>',
      'link lanes: 2 (control ahead of bulk, as the TCP transport; default with --scale) or 1',
    ).choices(['1', '2']),
  )
  .showHelpAfterError();
program.parse();
const o = program.opts<{
  seeds: number;
  startSeed: number;
  duration: number;
  verbose: boolean;
  history?: string;
  faultRate?: number;
  spares?: number;
  livenessMs?: number;
  reads: boolean;
  readIndex?: number;
  readers?: number;
  reconfig?: number;
  scale: boolean;
  slots: number;
  valueBytes: number;
  clients: number;
  pipeline: number;
  restarts: number;
  diskBytes: number;
  n?: '3' | '5';
  linkBytes?: number;
  linkMessages?: number;
  bandwidth?: number;
  lanes?: '1' | '2';
}>();

const spares = o.spares ?? (o.reads ? READS_MODE.spares : 1);
const readIndexShare = o.readIndex ?? (o.reads ? READS_MODE.readIndexShare : 0);
const readers = o.readers ?? (o.reads ? READS_MODE.readers : 0);
const reconfig = o.reconfig ?? (o.reads ? READS_MODE.reconfig : 0);

/** The flags of this run, for the replay line. */
function replayFlags(): string {
  const f: string[] = [];
  if (o.scale) {
    f.push(
      '--scale',
      `--slots ${o.slots}`,
      `--value-bytes ${o.valueBytes}`,
      `--clients ${o.clients}`,
      `--pipeline ${o.pipeline}`,
      `--restarts ${o.restarts}`,
    );
    if (o.diskBytes) f.push(`--disk-bytes ${o.diskBytes}`);
  } else {
    f.push(`--duration ${o.duration}`, `--spares ${spares}`);
    if (readIndexShare) f.push(`--read-index ${readIndexShare}`);
    if (readers) f.push(`--readers ${readers}`);
    if (reconfig) f.push(`--reconfig ${reconfig}`);
  }
  if (o.faultRate !== undefined) f.push(`--fault-rate ${o.faultRate}`);
  if (o.livenessMs !== undefined) f.push(`--liveness-ms ${o.livenessMs}`);
  if (o.n) f.push(`--n ${o.n}`);
  if (o.linkBytes !== undefined) f.push(`--link-bytes ${o.linkBytes}`);
  if (o.linkMessages !== undefined) f.push(`--link-messages ${o.linkMessages}`);
  if (o.bandwidth !== undefined) f.push(`--bandwidth ${o.bandwidth}`);
  if (o.lanes) f.push(`--lanes ${o.lanes}`);
  return f.join(' ');
}

const linkFlags = o.linkBytes !== undefined || o.linkMessages !== undefined || o.bandwidth !== undefined || !!o.lanes;
function links(): SimLinkOptions {
  const bounds = { maxBytes: o.linkBytes ?? TCP_QUEUE_BYTES, maxMessages: o.linkMessages ?? TCP_QUEUE_MESSAGES };
  return {
    ...(o.bandwidth !== undefined ? { bandwidthBytesPerMs: o.bandwidth } : {}),
    ...(o.lanes === '2' ? twoLanes({ control: bounds, bulk: bounds }) : { lanes: [{ name: 'default', ...bounds }] }),
  };
}

let failures = 0;
const t0 = Date.now();
const readTotals = {
  runs: 0,
  issued: 0,
  ok: 0,
  reprepare: 0,
  reprepareOk: 0,
  pending: 0,
  pendingOk: 0,
  episodes: 0,
  staleRestarts: 0,
};
let last;
for (let s = o.startSeed; s < o.startSeed + o.seeds; s++) {
  let ok: boolean;
  let violation: string | undefined;
  if (o.scale) {
    const params: ScaleParams = {
      seed: s,
      slots: o.slots,
      valueBytes: o.valueBytes,
      clients: o.clients,
      pipeline: o.pipeline,
      restarts: o.restarts,
      diskBytes: o.diskBytes,
      ...(o.n ? { n: Number(o.n) as 3 | 5 } : {}),
      ...(o.faultRate !== undefined ? { faultRate: o.faultRate } : {}),
      ...(o.livenessMs !== undefined ? { livenessMs: o.livenessMs } : {}),
      ...(o.linkBytes !== undefined ? { linkBytes: o.linkBytes } : {}),
      ...(o.linkMessages !== undefined ? { linkMessages: o.linkMessages } : {}),
      ...(o.bandwidth !== undefined ? { bandwidth: o.bandwidth } : {}),
      ...(o.lanes ? { lanes: Number(o.lanes) as 1 | 2 } : {}),
    };
    const started = Date.now();
    const r = await simulateScale(params);
    ({ ok, violation } = r);
    const rec = r.recoveries
      .map((x) => `leader ${x.leaderAfterMs?.toFixed(0) ?? '-'} ms, commit ${x.commitAfterMs?.toFixed(0) ?? '-'} ms`)
      .join('; ');
    const drops = r.links ? `drops full ${r.links.drops.full} down ${r.links.drops.down}` : '';
    const mb = (b: number) => (b / 1e6).toFixed(0);
    const disk = o.diskBytes ? ` disk max ${mb(r.disk.maxUsedBytes)} MB, full errors ${r.disk.fullErrors}` : '';
    console.log(
      `seed ${s}: n=${r.n} slots=${r.loadSlots} (${r.slots} at the end) ` +
        `acked ${r.acked.large} large (${mb(r.acked.largeBytes)} MB) + ` +
        `${r.acked.small} small; restarts ${r.restarts} [${rec}]; ${drops};${disk} ` +
        `virtual ${(r.virtualMs / 1000).toFixed(1)} s, real ${((Date.now() - started) / 1000).toFixed(1)} s ` +
        `${r.ok ? 'ok' : 'VIOLATION'}`,
    );
    if (o.verbose) for (const line of r.trace) console.log(`   ${line}`);
  } else {
    const r = await simulate({
      seed: s,
      durationMs: o.duration,
      faultRate: o.faultRate ?? 0.03,
      spares,
      ...(readIndexShare ? { readIndexShare } : {}),
      ...(readers ? { readers } : {}),
      ...(reconfig ? { reconfig } : {}),
      ...(o.n ? { n: Number(o.n) as 3 | 5 } : {}),
      ...(o.livenessMs !== undefined ? { livenessMs: o.livenessMs } : {}),
      ...(linkFlags ? { links: links() } : {}),
    });
    last = r;
    ({ ok, violation } = r);
    const rd = r.reads;
    if (rd.issued > 0 || r.episodes.started > 0) {
      readTotals.runs++;
      readTotals.issued += rd.issued;
      readTotals.ok += rd.ok;
      readTotals.reprepare += rd.reprepare.issued;
      readTotals.reprepareOk += rd.reprepare.ok;
      readTotals.pending += rd.pendingConfig.issued;
      readTotals.pendingOk += rd.pendingConfig.ok;
      readTotals.episodes += r.episodes.started;
      readTotals.staleRestarts += r.episodes.staleRestarts;
    }
    if (o.verbose) {
      const cfg = `${r.configChanges.applied}/${r.configChanges.asked}->${r.configChanges.finalMembers.join(',')}`;
      const ep = r.episodes;
      const rds =
        rd.issued > 0
          ? ` read-index ${rd.issued} (ok ${rd.ok}, failed ${rd.failed}; in reprepare ${rd.reprepare.issued} ` +
            `ok ${rd.reprepare.ok}; pendingConfig ${rd.pendingConfig.issued} ok ${rd.pendingConfig.ok}) ` +
            `episodes ${ep.started} (chosen ${ep.chosen}, leader crashes ${ep.leaderCrashes}, ` +
            `stale restarts ${ep.staleRestarts})`
          : '';
      console.log(
        `seed ${s}: n=${r.n} ops=${r.ops} (ok ${r.okOps}, unknown ${r.unknownOps}) applied=${r.applied} ` +
          `faults=${r.faults} config=${cfg}${rds} ${r.ok ? 'ok' : 'VIOLATION'}`,
      );
      for (const line of r.trace) console.log(`   ${line}`);
    }
  }
  if (!ok) {
    failures++;
    console.log(`VIOLATION at seed ${s}: ${violation}`);
    console.log(`replay: npm run sim -- --seeds 1 --start-seed ${s} ${replayFlags()} --verbose`);
  } else if (!o.verbose && !o.scale && (s - o.startSeed + 1) % 50 === 0) {
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    console.log(`${s - o.startSeed + 1}/${o.seeds} seeds, ${failures} violations, ${secs} s`);
  }
}
if (o.history && last) writeFileSync(o.history, last.history.map((op) => JSON.stringify(op)).join('\n') + '\n');
if (readTotals.runs > 0) {
  const x = readTotals;
  console.log(
    `read-index reads: ${x.issued} issued, ${x.ok} ok; ` +
      `issued in a re-prepare ${x.reprepare} (ok ${x.reprepareOk}), ` +
      `with a config value in flight ${x.pending} (ok ${x.pendingOk}); ` +
      `episodes ${x.episodes}, stale restarts ${x.staleRestarts}`,
  );
}
const total = ((Date.now() - t0) / 1000).toFixed(1);
console.log(`${o.seeds} seeds from ${o.startSeed}: ${failures} violations (${total} s)`);
process.exit(failures > 0 ? 1 : 0);
