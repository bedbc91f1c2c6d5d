/**
 * Per-process CPU of the 3-process cluster (TCP, file WAL) under SETs from redis-benchmark: user and
 * system CPU microseconds per SET of the leader and of each follower, split into the main thread and
 * the other threads (libuv's pool: the WAL writes; V8's: GC), and the read and write syscalls per
 * 1,000 SETs, from /proc/<pid>/task/<tid>/stat and /proc/<pid>/io. With a second bundle of the decree
 * command (`entry`), A/B runs of a hot-path change compare the processes one by one.
 *
 *   node --conditions=source --import tsx apps/bench/src/cpu-split.ts [N=400000] [bundle]
 *       [--pipeline 64] [--clients 50] [--no-replica-flags]
 *
 * `--pipeline 1 --clients 1` is the single-command path (issue #19 point 4).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { procCpuTimes, startProcessCluster } from './cluster.ts';

const args = process.argv.slice(2);
const flag = (name: string, dflt: string): string => {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = args[i + 1]!;
  args.splice(i, 2);
  return v;
};
const pipeline = flag('--pipeline', '64');
const clients = flag('--clients', '50');
/** --no-replica-flags: without apps/replica/node-flags.json (an A/B of those V8 flags) */
const replicaFlags = !args.includes('--no-replica-flags');
if (!replicaFlags) args.splice(args.indexOf('--no-replica-flags'), 1);
const n = Number(args[0] ?? 400_000);
const entry = args[1];

const CLK_TCK = 100; // USER_HZ on Linux
/** CPU seconds of the main thread and of all the other threads of a process */
function threadCpu(pid: number): { main: number; other: number } {
  const r = { main: 0, other: 0 };
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    const st = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    const s = (Number(f[11]) + Number(f[12])) / CLK_TCK;
    if (t === String(pid)) r.main += s;
    else r.other += s;
  }
  return r;
}
/** read and write syscalls of a process so far */
function syscalls(pid: number): { r: number; w: number } {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  return { r: Number(/syscr: (\d+)/.exec(io)![1]), w: Number(/syscw: (\d+)/.exec(io)![1]) };
}

const h = await startProcessCluster({ transport: 'tcp', storage: 'wal', replicaFlags, ...(entry ? { entry } : {}) });
try {
  await new Promise((r) => setTimeout(r, 1000));
  const snap = () =>
    new Map(
      Object.entries(h.pids).map(([id, pid]) => [id, { cpu: procCpuTimes(pid), t: threadCpu(pid), io: syscalls(pid) }]),
    );
  const before = snap();
  const load = ['-t', 'set', '-P', pipeline, '-c', clients, '-d', '64', '-n', String(n), '-r', '100000', '-q'];
  const out = execFileSync('redis-benchmark', ['-p', String(h.leaderPort), ...load], {
    stdio: ['ignore', 'pipe', 'ignore'],
  }).toString();
  const after = snap();
  console.log(`-P ${pipeline} -c ${clients}: ${out.trim().split('\r').pop()}`);
  let total = 0;
  const us = (x: number) => (x / n) * 1e6;
  const per1k = (x: number) => ((x / n) * 1000).toFixed(1);
  for (const id of Object.keys(h.pids)) {
    const a = after.get(id)!;
    const b = before.get(id)!;
    const [u, s] = [a.cpu[0] - b.cpu[0], a.cpu[1] - b.cpu[1]];
    total += us(u + s);
    console.log(
      `${id}${id === h.leaderId ? ' (leader)' : ''}: user ${us(u).toFixed(2)} sys ${us(s).toFixed(2)} µs/SET ` +
        `(main thread ${us(a.t.main - b.t.main).toFixed(2)}, other threads ${us(a.t.other - b.t.other).toFixed(2)}); ` +
        `per 1,000 SETs ${per1k(a.io.r - b.io.r)} read and ${per1k(a.io.w - b.io.w)} write syscalls`,
    );
  }
  console.log(`all three: ${total.toFixed(2)} CPU µs/SET`);
} finally {
  await h.stop();
}
