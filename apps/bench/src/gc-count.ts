/**
 * Garbage collections of each replica process of the 3-process cluster (TCP, file WAL) under
 * pipelined SETs (issue #19): Mark-Compacts and scavenges from `--trace-gc`, and how many of the
 * scavenges V8 started for "external memory pressure" (ArrayBuffer memory outside its heap).
 *
 *   node --conditions=source --import tsx apps/bench/src/gc-count.ts [N=800000] [bundle]
 */
import { spawn } from 'node:child_process';
import { startProcessCluster } from './cluster.ts';

const n = Number(process.argv[2] ?? 800_000);
const entry = process.argv[3];
const lines: Record<string, string[]> = {};
const h = await startProcessCluster({
  transport: 'tcp',
  storage: 'wal',
  ...(entry ? { entry } : {}),
  nodeFlags: ['--trace-gc'],
  onLine: (id, l) => {
    (lines[id] ??= []).push(l);
  },
});
try {
  await new Promise((r) => setTimeout(r, 1000));
  for (const k of Object.keys(lines)) lines[k] = [];
  const load = ['-t', 'set', '-P', '64', '-c', '50', '-d', '64', '-n', String(n), '-r', '100000', '-q'];
  const t0 = Date.now();
  await new Promise((r) =>
    spawn('redis-benchmark', ['-p', String(h.leaderPort), ...load], { stdio: 'ignore' }).once('exit', r),
  );
  const s = (Date.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 300));
  console.log(`${n} SETs in ${s.toFixed(1)} s`);
  for (const [id, ls] of Object.entries(lines)) {
    const mc = ls.filter((l) => l.includes('Mark-Compact')).length;
    const sc = ls.filter((l) => l.includes('Scavenge'));
    const ext = sc.filter((l) => l.includes('external memory pressure')).length;
    console.log(
      `${id}${id === h.leaderId ? ' (leader)' : ''}: ${mc} Mark-Compact, ${sc.length} scavenges ` +
        `(${ext} for external memory pressure)`,
    );
  }
} finally {
  await h.stop();
}
