/**
 * npm run sim -- --seeds N --start-seed S [--duration MS] [--fault-rate P] [--verbose] [--history FILE]
 * Runs N deterministic simulations from seed S; on a violation prints the seed and the command that replays it.
 */
import { writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { simulate } from './simulate.ts';

const int = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer, got "${v}"`);
  return n;
};

const program = new Command('sim')
  .description('Deterministic simulation of a Decree KV cluster under faults, with safety and linearizability checks')
  .option('--seeds <n>', 'how many seeds to run', int('--seeds'), 100)
  .option('--start-seed <s>', 'the first seed', int('--start-seed'), 1)
  .option('--duration <ms>', 'simulated milliseconds of faults and load per seed', int('--duration'), 3000)
  .option('--fault-rate <p>', 'probability of a fault per client round (~5 simulated ms)', (v: string) => {
    const n = Number(v);
    if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError(`--fault-rate must be between 0 and 1, got "${v}"`);
    return n;
  }, 0.03)
  .option('--spares <n>', 'replicas of the ring outside the initial configuration, for configuration changes (0: no changes)', int('--spares'), 1)
  .option('--verbose', 'print each run and its fault trace', false)
  .option('--history <file>', 'write the client history of the last run (JSON lines)')
  .showHelpAfterError();
program.parse();
const o = program.opts<{ seeds: number; startSeed: number; duration: number; verbose: boolean; history?: string; faultRate: number; spares: number }>();

let failures = 0;
const t0 = Date.now();
let last;
for (let s = o.startSeed; s < o.startSeed + o.seeds; s++) {
  const r = await simulate({ seed: s, durationMs: o.duration, faultRate: o.faultRate, spares: o.spares });
  last = r;
  if (o.verbose) {
    console.log(`seed ${s}: n=${r.n} ops=${r.ops} (ok ${r.okOps}, unknown ${r.unknownOps}) applied=${r.applied} faults=${r.faults} config=${r.configChanges.applied}/${r.configChanges.asked}->${r.configChanges.finalMembers.join(",")} ${r.ok ? 'ok' : 'VIOLATION'}`);
    for (const line of r.trace) console.log(`   ${line}`);
  }
  if (!r.ok) {
    failures++;
    console.log(`VIOLATION at seed ${s}: ${r.violation}`);
    console.log(`replay: npm run sim -- --seeds 1 --start-seed ${s} --duration ${o.duration} --fault-rate ${o.faultRate} --spares ${o.spares} --verbose`);
  } else if (!o.verbose && (s - o.startSeed + 1) % 50 === 0) {
    console.log(`${s - o.startSeed + 1}/${o.seeds} seeds, ${failures} violations, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
}
if (o.history && last) writeFileSync(o.history, last.history.map((op) => JSON.stringify(op)).join('\n') + '\n');
console.log(`${o.seeds} seeds from ${o.startSeed}: ${failures} violations (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
process.exit(failures > 0 ? 1 : 0);
