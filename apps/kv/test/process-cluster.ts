/**
 * A 3-replica KV cluster of real `decree start` processes on loopback (free ports, a temp data dir,
 * WAL storage), for tests of apps/kv and packages/client. Every child is SIGKILLed on stop() and at exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Redis from 'ioredis';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = path.join(ROOT, 'apps/replica/src/cli.ts');

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Server>((res, rej) => {
          const s = net.createServer();
          s.on('error', rej);
          s.listen(0, '127.0.0.1', () => res(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Member {
  id: string;
  clientPort: number;
  child: ChildProcess | undefined;
}

export class ProcessCluster {
  readonly members: Member[] = [];
  private dir = '';
  private configPath = '';
  constructor(private readonly opts: { password?: string } = {}) {}

  async start(): Promise<this> {
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'decree-kv-'));
    const ports = await freePorts(6);
    const replicas = [0, 1, 2].map((i) => ({
      id: `r${i + 1}`,
      host: '127.0.0.1',
      port: ports[i]!,
      clientPort: ports[i + 3]!,
    }));
    this.configPath = path.join(this.dir, 'cluster.json');
    writeFileSync(
      this.configPath,
      JSON.stringify({
        cluster: 'kvtest',
        dataDir: this.dir,
        storage: 'wal',
        transport: 'tcp',
        replicas,
        election: { minMs: 800, maxMs: 1600, heartbeatMs: 100 },
        ...(this.opts.password ? { kv: { password: this.opts.password } } : {}),
      }),
    );
    for (const r of replicas) this.members.push({ id: r.id, clientPort: r.clientPort, child: undefined });
    await Promise.all(this.members.map((m) => this.spawn(m)));
    return this;
  }

  /** starts (or restarts) a member's process; resolves when it logs "replica started" */
  spawn(m: Member): Promise<void> {
    const child = spawn(
      process.execPath,
      [
        '--conditions=source',
        '--import',
        'tsx',
        CLI,
        'start',
        '--config',
        this.configPath,
        '--id',
        m.id,
        '--log-level',
        'warn',
      ],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    live.add(child);
    child.once('exit', () => live.delete(child));
    m.child = child;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${m.id} did not start within 30 s`)), 30_000);
      const poll = setInterval(async () => {
        if (child.exitCode !== null) {
          clearInterval(poll);
          clearTimeout(t);
          reject(new Error(`${m.id} exited with ${child.exitCode}`));
          return;
        }
        try {
          await this.status(m, 500);
          clearInterval(poll);
          clearTimeout(t);
          resolve();
        } catch {
          /* not up yet */
        }
      }, 100);
      child.stdout!.resume();
      child.stderr!.resume();
    });
  }

  redis(m: Member): Redis {
    const r = new Redis({
      port: m.clientPort,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableReadyCheck: false,
      enableOfflineQueue: false,
      retryStrategy: () => null,
      protocol: 2,
      ...(this.opts.password ? { password: this.opts.password } : {}),
    });
    r.on('error', () => {});
    return r;
  }

  async status(m: Member, timeoutMs = 2_000): Promise<{ role: string; leader?: string; executedUpTo: number }> {
    const r = this.redis(m);
    try {
      await r.connect();
      const s = await Promise.race([
        r.call('DECREE', 'STATUS'),
        sleep(timeoutMs).then(() => Promise.reject(new Error('status timeout'))),
      ]);
      return JSON.parse(String(s));
    } finally {
      r.disconnect();
    }
  }

  /** the member every live member agrees leads (waits up to timeoutMs) */
  async waitForLeader(timeoutMs = 20_000, exclude?: string): Promise<Member> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      for (const m of this.alive()) {
        if (m.id === exclude) continue;
        try {
          const s = await this.status(m, 1_000);
          if (s.role === 'leader') return m;
        } catch {
          /* down or slow */
        }
      }
      await sleep(100);
    }
    throw new Error(`no leader within ${timeoutMs} ms`);
  }

  alive(): Member[] {
    return this.members.filter((m) => m.child && m.child.exitCode === null && m.child.signalCode === null);
  }

  async kill9(m: Member): Promise<void> {
    const c = m.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => this.kill9(m)));
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
