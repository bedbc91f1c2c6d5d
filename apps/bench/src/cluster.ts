/**
 * Multi-process benchmarks: a 3-replica cluster of `decree start` processes (TCP or NATS transport,
 * WAL storage), loaded by redis-benchmark through the leader's RESP port.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { BenchRow } from './stats.ts';

const root = resolve(import.meta.dirname, '../../..');

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

export interface ClusterHandle {
  leaderPort: number;
  ports: number[];
  stop(): Promise<void>;
}

/** Starts 3 decree processes; resolves once a leader is known. */
export async function startProcessCluster(o: { transport: 'tcp' | 'nats'; storage?: 'wal' | 'memory' | 'pmem'; natsUrl?: string }): Promise<ClusterHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'decree-bench-'));
  const replicas = [];
  for (let i = 1; i <= 3; i++) replicas.push({ id: `r${i}`, host: '127.0.0.1', port: await freePort(), clientPort: await freePort() });
  const cfg = {
    cluster: 'bench',
    dataDir: dir,
    storage: o.storage ?? 'wal',
    transport: o.transport,
    ...(o.transport === 'nats' ? { nats: { servers: [o.natsUrl!] } } : {}),
    replicas,
    batching: { maxInflightSlots: 32, maxBatchCmds: 8192 },
  };
  const cfgPath = join(dir, 'cluster.json');
  writeFileSync(cfgPath, JSON.stringify(cfg));
  const children: ChildProcess[] = [];
  let leader: string | undefined;
  await Promise.all(
    replicas.map(
      (r) =>
        new Promise<void>((res, rej) => {
          const c = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', join(root, 'apps/replica/src/cli.ts'), 'start', '--config', cfgPath, '--id', r.id, '--log-level', 'info'], {
            cwd: root,
            stdio: ['ignore', 'pipe', 'inherit'],
          });
          children.push(c);
          let buf = '';
          c.stdout!.on('data', (d) => {
            buf += d.toString();
            let nl;
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl);
              buf = buf.slice(nl + 1);
              if (line.includes('"replica started"')) res();
              if (line.includes('"this replica leads"')) leader = r.id;
            }
          });
          c.on('exit', (code) => rej(new Error(`${r.id} exited ${code}`)));
        }),
    ),
  );
  const t0 = Date.now();
  while (!leader && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 50));
  if (!leader) throw new Error('no leader within 15 s');
  return {
    leaderPort: replicas.find((r) => r.id === leader)!.clientPort,
    ports: replicas.map((r) => r.clientPort),
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

/** Runs redis-benchmark and turns its CSV into rows. */
export function redisBenchmark(port: number, args: string[], label: string): BenchRow[] {
  const cpu0 = process.cpuUsage();
  const t0 = Date.now();
  const r = spawnSync('redis-benchmark', ['-p', String(port), '--csv', ...args], { encoding: 'utf8', timeout: 300_000 });
  if (r.error || r.status !== 0) throw new Error(`redis-benchmark failed: ${r.error?.message ?? r.stderr}`);
  void cpu0;
  void t0;
  const lines = r.stdout.trim().split('\n').slice(1);
  return lines.map((l) => {
    const f = l.split(',').map((x) => x.replace(/"/g, ''));
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    return {
      name: `${label}: ${f[0]} (redis-benchmark ${args.join(' ')})`,
      ops: 0,
      seconds: 0,
      opsPerSec: Number(f[1]),
      p50ms: Number(f[4]),
      p99ms: Number(f[6]),
      p999ms: Number.NaN,
      cpuSecPerMillion: Number.NaN,
    };
  });
}

export function haveRedisBenchmark(): boolean {
  return spawnSync('redis-benchmark', ['--version']).status === 0;
}

export async function processClusterBench(o: { transport: 'tcp' | 'nats'; natsUrl?: string; n?: number }): Promise<BenchRow[]> {
  const c = await startProcessCluster(o);
  try {
    const n = String(o.n ?? 200_000);
    const rows = [
      ...redisBenchmark(c.leaderPort, ['-t', 'set,get', '-P', '64', '-c', '50', '-d', '64', '-n', n, '-r', '100000'], `3 processes, ${o.transport}, WAL`),
      ...redisBenchmark(c.leaderPort, ['-t', 'set', '-P', '1', '-c', '1', '-d', '64', '-n', '5000'], `3 processes, ${o.transport}, WAL, 1 client unpipelined`),
    ];
    return rows;
  } finally {
    await c.stop();
  }
}
