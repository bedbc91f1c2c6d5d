// Runs seeds as the seeds tests do and reports snapshot activity and violations (development aid):
//   node --conditions=source --import tsx tools/sim/scripts/snapshot-activity.ts <startSeed> <count>
import { simulate } from '../src/simulate.ts';

async function main(): Promise<void> {
  const start = Number(process.argv[2] ?? 1);
  const count = Number(process.argv[3] ?? 20);
  let saved = 0;
  let installed = 0;
  let withInstall = 0;
  const fails: string[] = [];
  const t0 = Date.now();
  for (let seed = start; seed < start + count; seed++) {
    const r = await simulate({ seed, durationMs: 600, faultRate: 0.12 });
    saved += r.snapshots.saved;
    installed += r.snapshots.installed;
    if (r.snapshots.installed) withInstall++;
    if (!r.ok) fails.push(`seed ${seed}: ${r.violation}`);
  }
  console.log(JSON.stringify({ start, count, saved, installed, withInstall, fails, ms: Date.now() - t0 }));
}
void main();
