/**
 * Per-process CPU of the 3-process cluster (TCP, file WAL) under pipelined SETs: user and system CPU
 * microseconds per SET of the leader and of each follower, from /proc/<pid>/stat. With a second
 * bundle of the decree command (`entry`), A/B runs of a hot-path change compare the processes one by one.
 *
 *   node --conditions=source --import tsx apps/bench/src/cpu-split.ts [N=400000] [bundle]
 */
import { execFileSync } from 'node:child_process';
import { procCpuTimes, startProcessCluster } from './cluster.ts';

const n = Number(process.argv[2] ?? 400_000);
const entry = process.argv[3];
const h = await startProcessCluster({ transport: 'tcp', storage: 'wal', ...(entry ? { entry } : {}) });
try {
  await new Promise((r) => setTimeout(r, 1000));
  const cpu = procCpuTimes;
  const before = new Map(Object.entries(h.pids).map(([id, pid]) => [id, cpu(pid)]));
  const out = execFileSync(
    'redis-benchmark',
    [
      '-p',
      String(h.leaderPort),
      '-t',
      'set',
      '-P',
      '64',
      '-c',
      '50',
      '-d',
      '64',
      '-n',
      String(n),
      '-r',
      '100000',
      '-q',
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  ).toString();
  console.log(out.trim().split('\r').pop());
  let total = 0;
  for (const [id, pid] of Object.entries(h.pids)) {
    const [u, s] = cpu(pid);
    const [u0, s0] = before.get(id)!;
    const us = (x: number) => (x / n) * 1e6;
    total += us(u - u0 + s - s0);
    console.log(
      `${id}${id === h.leaderId ? ' (leader)' : ''}: user ${us(u - u0).toFixed(2)} sys ${us(s - s0).toFixed(2)} µs/SET`,
    );
  }
  console.log(`all three: ${total.toFixed(2)} CPU µs/SET`);
} finally {
  await h.stop();
}
