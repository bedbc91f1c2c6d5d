/**
 * node --conditions=source --import tsx apps/bench/src/recovery-cli.ts [restart] [kills]
 *   [--sets N] [--kills N] [--storage wal|pmem]
 * The recovery benchmarks of issue #16 on their own (`npm run bench -- recovery` runs them in the suite).
 */
import { leaderKills, restartAfterLoad } from './recovery.ts';

const args = process.argv.slice(2);
const num = (flag: string, d: number) => {
  const i = args.indexOf(flag);
  return i >= 0 ? Number(args[i + 1]) : d;
};
const storage = args.includes('pmem') || args[args.indexOf('--storage') + 1] === 'pmem' ? 'pmem' : 'wal';
const log = (s: string) => console.error(`[recovery] ${s}`);
const which = args.filter((a) => a === 'restart' || a === 'kills');
if (which.length === 0 || which.includes('restart')) {
  const r = await restartAfterLoad({ sets: num('--sets', 1_000_000), storage, log });
  console.log(
    `restart after ${r.sets} SETs (${storage}, ${Math.round(r.setsPerSec)} SET/s, data ` +
      `${(r.walBytesBefore / 1e6).toFixed(0)} MB): ` +
      `ready after ${(r.readyMs / 1000).toFixed(2)} s; first write ${(r.firstWriteMs / 1000).toFixed(3)} s ` +
      `after the last ready line; ` +
      `${r.markers - r.markersLost}/${r.markers} acknowledged marker keys read back`,
  );
  for (const x of r.replayed) console.log(`  ${x}`);
}
if (which.length === 0 || which.includes('kills')) {
  const k = await leaderKills({ kills: num('--kills', 20), log });
  console.log(
    `leader kill -9 x${k.kills}: no-write window p50 ${(k.p50 / 1000).toFixed(2)} s, max ` +
      `${(k.max / 1000).toFixed(2)} s (${k.noLeaderMs.map((x) => Math.round(x)).join(', ')} ms)`,
  );
}
