/**
 * Long fuzzing runs: `npm run fuzz -- --minutes N [--target name] [--seed S] [--budget-ms B]`.
 * Splits the time between the targets (or gives it all to one), runs each in a worker thread with a
 * hang watchdog, in rounds of fresh seeds, and reports how many inputs each target took and any
 * failure with its seed and (shrunk) input. Exits 1 when any target failed or hung.
 */
import { Command } from 'commander';
import { TARGETS, fuzzInWorker, targetByName, type WatchedResult } from '../fuzz/src/index.ts';

const program = new Command()
  .name('fuzz')
  .description('fuzz every decoder of Decree (wire frames, handshake, messages, RESP, config files)')
  .option('--minutes <n>', 'total time to spend', '1')
  .option('--target <name>', `one target (${TARGETS.map((t) => t.name).join(', ')})`)
  .option('--seed <n>', 'first seed (each round adds 1)')
  .option('--budget-ms <n>', 'per-input time budget (ms)', '2000')
  .option('--hang-ms <n>', 'no progress for this long is a hang (ms)', '20000')
  .option('--list', 'list the targets and exit')
  .parse();
const o = program.opts<{
  minutes: string;
  target?: string;
  seed?: string;
  budgetMs: string;
  hangMs: string;
  list?: boolean;
}>();

if (o.list) {
  for (const t of TARGETS) console.log(`${t.name.padEnd(14)} ${t.what}`);
  process.exit(0);
}
const minutes = Number(o.minutes);
if (!(minutes > 0)) {
  console.error(`fuzz: --minutes must be a positive number, got "${o.minutes}"`);
  process.exit(2);
}
let targets;
try {
  targets = o.target ? [targetByName(o.target)] : [...TARGETS];
} catch (e) {
  console.error(`fuzz: ${(e as Error).message}`);
  process.exit(2);
}
const perTargetMs = (minutes * 60_000) / targets.length;
const roundMs = Math.min(perTargetMs, 60_000);
let seed = o.seed !== undefined ? Number(o.seed) : Date.now() % 1_000_000_000;
let failed = 0;
console.log(
  `fuzzing ${targets.map((t) => t.name).join(', ')} for ${minutes} ` +
    `min (${Math.round(perTargetMs / 1000)} s each), first seed ${seed}`,
);
for (const t of targets) {
  const end = Date.now() + perTargetMs;
  let runs = 0;
  let rounds = 0;
  let slowest = 0;
  const known: Record<string, number> = {};
  let bad: WatchedResult | undefined;
  while (Date.now() < end - 1000 && !bad) {
    const r = await fuzzInWorker(t.name, {
      numRuns: 1_000_000_000,
      seed: seed++,
      budgetMs: Number(o.budgetMs),
      hangMs: Number(o.hangMs),
      timeLimitMs: Math.max(1000, Math.min(roundMs, end - Date.now())),
    });
    runs += r.runs;
    rounds++;
    slowest = Math.max(slowest, r.slowestMs);
    for (const [k, n] of Object.entries(r.known)) known[k] = (known[k] ?? 0) + n;
    if (!r.ok) bad = r;
  }
  const line =
    `${t.name.padEnd(14)} ` +
    `${String(runs).padStart(10)} inputs in ` +
    `${rounds} round(s), slowest input ${slowest} ms`;
  if (bad) {
    failed++;
    console.log(
      `${line}  FAILED${bad.hung ? ' (hang)' : ''}\n  seed ${bad.seed}: ` +
        `${bad.failure}\n  input: ${bad.counterexample ?? '?'}`,
    );
    console.log(`  reproduce: npm run fuzz -- --target ${t.name} --seed ${bad.seed} --minutes 1`);
  } else console.log(`${line}  ok`);
  for (const [k, n] of Object.entries(known)) console.log(`  known open finding, hit ${n} times: ${k}`);
}
console.log(failed ? `${failed} of ${targets.length} targets failed` : `all ${targets.length} targets passed`);
process.exit(failed ? 1 : 0);
