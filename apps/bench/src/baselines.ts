/**
 * Side-by-side baselines in the same run: Debian's redis-server (no replication: the ceiling) loaded by
 * the same redis-benchmark command, and a 3-member etcd cluster (Debian's etcd-server: a production
 * consensus peer) loaded over its HTTP/JSON gateway (PUT /v3/kv/put) by concurrent keep-alive clients.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOADS, distinctFreePorts, freePort, procCpuSeconds, redisBenchmark } from './cluster.ts';
import { type BenchRow, Latency, skippedRow } from './stats.ts';
import { type EnsureOptions, benchDep, ensureCommand } from './system-deps.ts';

/** the names of the skip rows that stand for each baseline's runs */
export const REDIS_BASELINE = 'redis-server (no replication): SET, GET -P 64 -c 50; SET 1 client unpipelined';
export const ETCD_BASELINE = 'etcd, 3 members (HTTP gateway): 64 concurrent PUT clients; 1 client unpipelined';

const firstLine = (e: unknown) => String((e as Error)?.message ?? e).split('\n')[0]!;

async function waitFor(fn: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not start within ${ms} ms`);
}

function stopAll(ps: ChildProcess[]): Promise<void> {
  return Promise.all(
    ps.map(
      (p) =>
        new Promise<void>((res) => {
          if (p.exitCode !== null || p.signalCode !== null) return res();
          p.on('exit', () => res());
          p.kill('SIGTERM');
          setTimeout(() => p.kill('SIGKILL'), 5_000).unref();
        }),
    ),
  ).then(() => undefined);
}

/**
 * redis-server under the same redis-benchmark loads as the cluster. Without redis-server (and no
 * apt-get as root: system-deps.ts), or when it fails, a skip row says so.
 */
export async function redisBaseline(
  n = 400_000,
  step?: (s: string) => void,
  deps: EnsureOptions = {},
): Promise<BenchRow[]> {
  const dep = ensureCommand(benchDep('redis-server'), deps);
  if (!dep.ok) return [skippedRow(REDIS_BASELINE, dep.reason, 'baselines')];
  const port = await freePort();
  const p = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1'], {
    stdio: 'ignore',
  });
  p.on('error', () => {}); // reported by waitFor
  const rows: BenchRow[] = [];
  const named = () => rows.map((r) => ({ ...r, name: r.name.replace(/: (SET|GET)$/, ''), group: 'baselines' }));
  try {
    await waitFor(
      async () => spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout.includes('PONG'),
      10_000,
      'redis-server',
    );
    const cpu = () => procCpuSeconds(p.pid);
    step?.('redis-server: SET P64 c50');
    rows.push(
      ...(await redisBenchmark(
        port,
        LOADS.setPipelined(n),
        'redis-server 7 (1 process, no replication, no fsync), SET -P 64 -c 50',
        cpu,
      )),
    );
    step?.('redis-server: GET P64 c50');
    rows.push(...(await redisBenchmark(port, LOADS.getPipelined(n), 'redis-server, GET -P 64 -c 50', cpu)));
    step?.('redis-server: SET, 1 client unpipelined');
    rows.push(
      ...(await redisBenchmark(port, LOADS.setUnpipelined(10_000), 'redis-server, SET 1 client unpipelined', cpu)),
    );
    return named();
  } catch (e) {
    return [...named(), skippedRow(REDIS_BASELINE, `redis-server failed: ${firstLine(e)}`, 'baselines')];
  } finally {
    await stopAll([p]);
  }
}

function put(agent: http.Agent, port: number, key: string, value: string): Promise<void> {
  const body = JSON.stringify({
    key: Buffer.from(key).toString('base64'),
    value: Buffer.from(value).toString('base64'),
  });
  return new Promise((res, rej) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/v3/kv/put',
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (r) => {
        r.resume();
        r.on('end', () => (r.statusCode === 200 ? res() : rej(new Error(`etcd HTTP ${r.statusCode}`))));
      },
    );
    req.on('error', rej);
    req.end(body);
  });
}

/**
 * A 3-member etcd cluster under concurrent PUTs. Without etcd (Debian's etcd-server; installed as
 * root: system-deps.ts), or when it fails, a skip row says so.
 */
export async function etcdBaseline(
  seconds = 5,
  step?: (s: string) => void,
  deps: EnsureOptions = {},
): Promise<BenchRow[]> {
  const dep = ensureCommand(benchDep('etcd'), deps);
  if (!dep.ok) return [skippedRow(ETCD_BASELINE, dep.reason, 'baselines')];
  const dir = mkdtempSync(join(tmpdir(), 'decree-etcd-'));
  const members: { name: string; client: number; peer: number }[] = [];
  const ports = await distinctFreePorts(6);
  for (let i = 1; i <= 3; i++) members.push({ name: `e${i}`, client: ports[2 * i - 2]!, peer: ports[2 * i - 1]! });
  const initial = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
  const procs = members.map((m) =>
    spawn(
      'etcd',
      [
        '--name',
        m.name,
        '--data-dir',
        join(dir, m.name),
        '--listen-client-urls',
        `http://127.0.0.1:${m.client}`,
        '--advertise-client-urls',
        `http://127.0.0.1:${m.client}`,
        '--listen-peer-urls',
        `http://127.0.0.1:${m.peer}`,
        '--initial-advertise-peer-urls',
        `http://127.0.0.1:${m.peer}`,
        '--initial-cluster',
        initial,
        '--initial-cluster-state',
        'new',
        '--initial-cluster-token',
        'decree-bench',
        '--log-level',
        'error',
      ],
      { stdio: 'ignore', env: { ...process.env, ETCD_UNSUPPORTED_ARCH: process.arch } },
    ),
  );
  for (const p of procs) p.on('error', () => {}); // reported by waitFor
  const rows: BenchRow[] = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  try {
    const port = members[0]!.client;
    await waitFor(async () => (await put(agent, port, 'probe', 'x'), true), 30_000, 'etcd cluster');
    const cpu = () => procs.reduce((s, p) => s + procCpuSeconds(p.pid), 0);
    const run = async (clients: number, label: string): Promise<BenchRow> => {
      const c0 = cpu();
      const lat = new Latency();
      let ops = 0;
      const t0 = performance.now();
      const end = t0 + seconds * 1000;
      const value = 'v'.repeat(64);
      await Promise.all(
        Array.from({ length: clients }, async (_, c) => {
          let i = 0;
          while (performance.now() < end) {
            const s = performance.now();
            await put(agent, members[0]!.client, `key:${c}:${i++ % 1000}`, value);
            lat.record(performance.now() - s);
            ops++;
          }
        }),
      );
      const secs = (performance.now() - t0) / 1000;
      return {
        name: label,
        group: 'baselines',
        command: `${clients} keep-alive HTTP clients, POST /v3/kv/put, ${seconds} s`,
        ops,
        seconds: secs,
        opsPerSec: ops / secs,
        p50ms: lat.pct(50),
        p99ms: lat.pct(99),
        p999ms: lat.pct(99.9),
        cpuSecPerMillion: ((cpu() - c0) / ops) * 1e6,
        note: 'CPU: the three etcd processes',
      };
    };
    step?.('etcd: 64 PUT clients');
    rows.push(await run(64, 'etcd 3.4, 3 members (HTTP gateway), 64 concurrent PUT clients, 64-byte values'));
    step?.('etcd: 1 client unpipelined');
    rows.push(await run(1, 'etcd 3 members, 1 client unpipelined PUT'));
    return rows;
  } catch (e) {
    return [...rows, skippedRow(ETCD_BASELINE, `etcd failed: ${firstLine(e)}`, 'baselines')];
  } finally {
    agent.destroy();
    await stopAll(procs);
    rmSync(dir, { recursive: true, force: true });
  }
}
