/**
 * Multi-process benchmarks: a 3-replica cluster of `decree start` processes (TCP or NATS transport,
 * WAL or pmem storage), loaded by redis-benchmark through the leader's RESP port. The replica
 * processes run from the esbuild bundle (tools/scripts/build-replica.mjs: no keepNames wrappers)
 * unless `runner: 'tsx'`; the CPU they use is read from /proc/<pid>/stat around every run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { BenchRow } from './stats.ts';

const root = resolve(import.meta.dirname, '../../..');
/** the V8 flags a replica process runs with (apps/replica/node-flags.json says why) */
const REPLICA_NODE_FLAGS: string[] = JSON.parse(readFileSync(join(root, 'apps/replica/node-flags.json'), 'utf8')).flags;

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
    s.on('error', rej);
  });
}

/**
 * n different free ports. The kernel may hand out a port freePort just closed again, so a cluster of
 * ports taken one by one could name one twice (a bench run failed on it: "already used by replicas[1]").
 */
export async function distinctFreePorts(n: number): Promise<number[]> {
  const got = new Set<number>();
  for (let tries = 0; got.size < n; tries++) {
    if (tries > 100 * n) throw new Error(`no ${n} distinct free ports after ${tries} tries`);
    got.add(await freePort());
  }
  return [...got];
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat; NaN when unavailable. */
export function procCpuSeconds(pid: number | undefined): number {
  const [user, system] = procCpuTimes(pid);
  return user + system;
}

/** [user, system] CPU seconds of a process so far (NaN when it is gone or unknown). */
export function procCpuTimes(pid: number | undefined): [number, number] {
  if (pid === undefined) return [Number.NaN, Number.NaN];
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the parenthesised command name: state is field 3, utime 14, stime 15
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return [Number(f[11]) / CLK_TCK, Number(f[12]) / CLK_TCK];
  } catch {
    return [Number.NaN, Number.NaN];
  }
}
const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return n > 0 ? n : 100;
})();

export type Runner = 'bundle' | 'tsx';
export type Storage = 'wal' | 'memory' | 'pmem';

export interface ClusterOptions {
  transport: 'tcp' | 'nats';
  storage?: Storage;
  natsUrl?: string;
  /** how the replica processes run: the esbuild bundle (default) or TypeScript through tsx */
  runner?: Runner;
  /** proposer pipeline and batch bounds (config `batching`) */
  batching?: { maxInflightSlots?: number; maxBatchCmds?: number };
  /** extra sections of the cluster config (e.g. { wal: { sync: 'fdatasync' } }) */
  config?: Record<string, unknown>;
  /** extra environment for the replica processes */
  env?: Record<string, string>;
  /** extra node flags for the replica processes (e.g. --cpu-prof) */
  nodeFlags?: string[];
  /** false: leave out the replica's own V8 flags (apps/replica/node-flags.json), for an A/B of them */
  replicaFlags?: boolean;
  /** another bundle of the decree command to run (A/B comparisons of a change) */
  entry?: string;
  /** every stdout line of a replica process (logs, --trace-gc) */
  onLine?: (id: string, line: string) => void;
}

export interface ClusterHandle {
  /** the cluster's data directory (cluster.json, one directory per replica) */
  readonly dir: string;
  /** the client port of the replica that last said it leads */
  readonly leaderPort: number;
  readonly leaderId: string;
  ports: number[];
  /** leader changes seen after the first leader */
  readonly leaderChanges: number;
  pids: Record<string, number>;
  /** CPU seconds used by the three replica processes so far */
  cpuSeconds(): number;
  /** CPU seconds used so far by each replica process, the leader's name marked "(leader)" and first */
  cpuSecondsByProcess(): Record<string, number>;
  stop(): Promise<void>;
}

let built: Promise<string> | undefined;
/** Builds apps/replica/dist/decree.mjs once per bench process. */
export function ensureReplicaBundle(): Promise<string> {
  built ??= import(join(root, 'tools/scripts/build-replica.mjs')).then(
    (m: { buildReplica: (o: { quiet: boolean }) => Promise<string> }) => m.buildReplica({ quiet: true }),
  );
  return built;
}

/** Starts 3 decree processes; resolves once a leader is known. */
export async function startProcessCluster(o: ClusterOptions): Promise<ClusterHandle> {
  const runner = o.runner ?? 'bundle';
  const entry = o.entry ?? (runner === 'bundle' ? await ensureReplicaBundle() : join(root, 'apps/replica/src/cli.ts'));
  if (runner === 'bundle' && !existsSync(entry)) throw new Error(`no replica bundle at ${entry}`);
  const dir = mkdtempSync(join(tmpdir(), 'decree-bench-'));
  const replicas: { id: string; host: string; port: number; clientPort: number }[] = [];
  const ports = await distinctFreePorts(6);
  for (let i = 1; i <= 3; i++)
    replicas.push({ id: `r${i}`, host: '127.0.0.1', port: ports[2 * i - 2]!, clientPort: ports[2 * i - 1]! });
  const cfg = {
    cluster: 'bench',
    dataDir: dir,
    storage: o.storage ?? 'wal',
    transport: o.transport,
    ...(o.transport === 'nats' ? { nats: { servers: [o.natsUrl!] } } : {}),
    replicas,
    batching: { maxInflightSlots: o.batching?.maxInflightSlots ?? 32, maxBatchCmds: o.batching?.maxBatchCmds ?? 8192 },
    ...o.config,
  };
  const cfgPath = join(dir, 'cluster.json');
  writeFileSync(cfgPath, JSON.stringify(cfg));
  const children: ChildProcess[] = [];
  const pids: Record<string, number> = {};
  let leader: string | undefined;
  let changes = -1;
  const nodeArgs = [
    ...(o.replicaFlags === false ? [] : REPLICA_NODE_FLAGS),
    ...(o.nodeFlags ?? []),
    ...(runner === 'bundle' ? [entry] : ['--conditions=source', '--import', 'tsx', entry]),
  ];
  try {
    await Promise.all(
      replicas.map(
        (r) =>
          new Promise<void>((res, rej) => {
            const c = spawn(
              process.execPath,
              [...nodeArgs, 'start', '--config', cfgPath, '--id', r.id, '--log-level', 'info'],
              {
                cwd: root,
                stdio: ['ignore', 'pipe', 'inherit'],
                env: { ...process.env, ...o.env },
              },
            );
            children.push(c);
            if (c.pid !== undefined) pids[r.id] = c.pid;
            let buf = '';
            c.stdout!.on('data', (d) => {
              buf += d.toString();
              let nl;
              while ((nl = buf.indexOf('\n')) >= 0) {
                const line = buf.slice(0, nl);
                buf = buf.slice(nl + 1);
                o.onLine?.(r.id, line);
                if (line.includes('"replica started"')) res();
                if (line.includes('"this replica leads"')) {
                  leader = r.id;
                  changes++;
                }
              }
            });
            c.on('exit', (code) => rej(new Error(`${r.id} exited ${code}`)));
          }),
      ),
    );
    const t0 = Date.now();
    while (!leader && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 50));
    if (!leader) throw new Error('no leader within 15 s');
  } catch (e) {
    for (const c of children) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    dir,
    get leaderPort() {
      return replicas.find((r) => r.id === leader)!.clientPort;
    },
    get leaderId() {
      return leader!;
    },
    get leaderChanges() {
      return changes;
    },
    ports: replicas.map((r) => r.clientPort),
    pids,
    cpuSeconds: () => Object.values(pids).reduce((s, pid) => s + procCpuSeconds(pid), 0),
    cpuSecondsByProcess: () => {
      const out: Record<string, number> = {};
      const ids = Object.keys(pids).sort((a, b) => (a === leader ? -1 : b === leader ? 1 : a < b ? -1 : 1));
      for (const id of ids) out[id === leader ? `${id} (leader)` : id] = procCpuSeconds(pids[id]);
      return out;
    },
    async stop() {
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((res) => {
              if (c.exitCode !== null) return res();
              c.removeAllListeners('exit');
              c.on('exit', () => res());
              c.kill('SIGTERM');
              setTimeout(() => c.kill('SIGKILL'), 10_000).unref();
            }),
        ),
      );
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisBenchResult {
  test: string;
  requests: number;
  seconds: number;
  rps: number;
  /** [percentile, ms] from redis-benchmark's "Latency by percentile distribution" */
  percentiles: [number, number][];
}

/** Parses redis-benchmark's plain (non-CSV) report: one section per test. */
export function parseRedisBenchmark(text: string): RedisBenchResult[] {
  const out: RedisBenchResult[] = [];
  const sections = text.replace(/\r/g, '\n').split(/====== (.+?) ======/);
  for (let i = 1; i + 1 < sections.length; i += 2) {
    const test = sections[i]!.trim();
    const body = sections[i + 1]!;
    const done = /(\d+) requests completed in ([\d.]+) seconds/.exec(body);
    const rps = /throughput summary: ([\d.]+) requests per second/.exec(body);
    const percentiles: [number, number][] = [];
    const dist = body.split('Latency by percentile distribution:')[1]?.split('Cumulative distribution')[0] ?? '';
    for (const m of dist.matchAll(/([\d.]+)% <= ([\d.]+) milliseconds/g))
      percentiles.push([Number(m[1]), Number(m[2])]);
    if (!done || !rps) continue;
    out.push({ test, requests: Number(done[1]), seconds: Number(done[2]), rps: Number(rps[1]), percentiles });
  }
  return out;
}

/** The latency at percentile p: the first reported bucket at or above p. */
export function percentile(r: RedisBenchResult, p: number): number {
  for (const [q, ms] of r.percentiles) if (q >= p) return ms;
  return r.percentiles.at(-1)?.[1] ?? Number.NaN;
}

/**
 * Runs redis-benchmark (one test per call, so CPU is per test) and turns its report into a row.
 * `cpu` reads the CPU seconds of the server processes (for CPU s per million ops).
 */
export async function redisBenchmark(
  port: number,
  args: string[],
  label: string,
  cpu?: () => number,
  cpuByProcess?: () => Record<string, number>,
): Promise<BenchRow[]> {
  const c0 = cpu?.() ?? Number.NaN;
  const p0 = cpuByProcess?.();
  const r = await run('redis-benchmark', ['-p', String(port), ...args], 300_000);
  const c1 = cpu?.() ?? Number.NaN;
  const p1 = cpuByProcess?.();
  if (r.status !== 0) throw new Error(`redis-benchmark failed: ${r.stderr || r.stdout.slice(-500)}`);
  const results = parseRedisBenchmark(r.stdout);
  if (results.length === 0) throw new Error(`redis-benchmark: no result in its output:\n${r.stdout.slice(-2000)}`);
  return results.map((res) => ({
    name: `${label}: ${res.test}`,
    command: `redis-benchmark ${args.join(' ')}`,
    ops: res.requests,
    seconds: res.seconds,
    opsPerSec: res.rps,
    p50ms: percentile(res, 50),
    p99ms: percentile(res, 99),
    p999ms: percentile(res, 99.9),
    maxMs: percentile(res, 100),
    // per test only when the run had one test
    cpuSecPerMillion: results.length === 1 ? ((c1 - c0) / res.requests) * 1e6 : Number.NaN,
    ...(p0 && p1 && results.length === 1
      ? {
          cpuUsPerOpByProcess: Object.fromEntries(
            Object.keys(p1).map((k) => [k, (((p1[k] ?? Number.NaN) - (p0[k] ?? Number.NaN)) / res.requests) * 1e6]),
          ),
        }
      : {}),
  }));
}

/** Runs a command to completion without blocking the event loop (the progress bar keeps ticking). */
function run(
  cmd: string,
  args: string[],
  timeoutMs: number,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', (e) => {
      clearTimeout(t);
      rej(e);
    });
    p.on('close', (status) => {
      clearTimeout(t);
      res({ status, stdout, stderr });
    });
  });
}

export function haveRedisBenchmark(): boolean {
  return spawnSync('redis-benchmark', ['--version']).status === 0;
}

/**
 * The redis-benchmark loads of every multi-process row (and of the redis-server baseline): all of them over
 * 100,000 random keys (`-r 100000`, issue #19), the unpipelined one too (before 2026-12-06 14:20 UTC it set
 * one key over and over).
 */
export const LOADS = {
  setPipelined: (n: number) => ['-t', 'set', '-P', '64', '-c', '50', '-d', '64', '-n', String(n), '-r', '100000'],
  getPipelined: (n: number) => ['-t', 'get', '-P', '64', '-c', '50', '-d', '64', '-n', String(n), '-r', '100000'],
  setUnpipelined: (n: number) => ['-t', 'set', '-P', '1', '-c', '1', '-d', '64', '-n', String(n), '-r', '100000'],
};

export interface ClusterBenchOptions extends ClusterOptions {
  /** requests per pipelined run (default 400,000) */
  n?: number;
  /** requests of the unpipelined run (default 10,000) */
  n1?: number;
  /** skip the GET row */
  noGet?: boolean;
  /** called before each redis-benchmark run (progress) */
  step?: (what: string) => void;
}

export function clusterLabel(o: ClusterOptions): string {
  const storage = { wal: 'file WAL', pmem: 'pmem log', memory: 'memory' }[o.storage ?? 'wal'];
  return `3 processes, ${o.transport.toUpperCase()}, ${storage}${o.runner === 'tsx' ? ', tsx' : ''}`;
}

/**
 * One redis-benchmark run against the current leader. On a 2-core machine shared with other work a
 * leader can lose its quorum mid-run (its heartbeats late); then the run is repeated once against
 * the new leader and the row notes it.
 */
async function leaderRun(c: ClusterHandle, args: string[], label: string): Promise<BenchRow> {
  const before = c.leaderChanges;
  try {
    const [row] = await redisBenchmark(c.leaderPort, args, label, c.cpuSeconds, c.cpuSecondsByProcess);
    if (c.leaderChanges !== before) return { ...row!, note: 'the leader changed during this run' };
    return row!;
  } catch (e) {
    if (!/TRYAGAIN|NOT_LEADER|MOVED|leader/i.test((e as Error).message)) throw e;
    const t0 = Date.now();
    while (c.leaderChanges === before && Date.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 100));
    const [row] = await redisBenchmark(c.leaderPort, args, label, c.cpuSeconds, c.cpuSecondsByProcess);
    return { ...row!, note: 'repeated: the leader changed during the first attempt' };
  }
}

export async function processClusterBench(o: ClusterBenchOptions): Promise<BenchRow[]> {
  const c = await startProcessCluster(o);
  const label = clusterLabel(o);
  const n = o.n ?? 400_000;
  try {
    const rows: BenchRow[] = [];
    o.step?.(`${label}: SET P64 c50`);
    rows.push(await leaderRun(c, LOADS.setPipelined(n), `${label}, SET -P 64 -c 50`));
    if (!o.noGet) {
      o.step?.(`${label}: GET P64 c50`);
      rows.push(await leaderRun(c, LOADS.getPipelined(n), `${label}, GET -P 64 -c 50 (read-index)`));
    }
    o.step?.(`${label}: SET, 1 client unpipelined`);
    rows.push(await leaderRun(c, LOADS.setUnpipelined(o.n1 ?? 10_000), `${label}, SET 1 client unpipelined`));
    return rows.map((r) => ({ ...r, name: r.name.replace(/: (SET|GET)$/, ''), group: 'cluster' }));
  } finally {
    await c.stop();
  }
}
