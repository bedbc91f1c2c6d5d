/**
 * Recovery benchmarks (issue #16), on real processes with the default timeouts:
 *
 * - restartAfterLoad: `npm start` (tools/scripts/start-local.mjs, as a user runs it), redis-benchmark
 *   `-t set -d 64 -P 64 -c 50 -n 1000000 -r 100000` against the leader, 2,000 acknowledged marker
 *   keys, Ctrl-C (SIGINT to the launcher), `npm start` again: the time from the last replica's ready
 *   line to the first acknowledged SET, and whether every marker key is still there.
 * - leaderKills: three `decree start` processes under a light write load; kill -9 of the leader,
 *   N times (restarted after each): the time from the kill until a write commits again (p50, max).
 *
 * Usage: apps/bench/src/recovery-cli.ts, or `npm run bench -- recovery`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { distinctFreePorts } from './cluster.ts';

const root = resolve(import.meta.dirname, '../../..');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One RESP command; resolves with the first reply line (e.g. "+OK", "$5", "-TRYAGAIN ..."), or rejects on timeout. */
export function resp(port: number, args: readonly string[], timeoutMs = 1000): Promise<string> {
  return new Promise((res, rej) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    const t = setTimeout(() => {
      s.destroy();
      rej(new Error('timeout'));
    }, timeoutMs);
    s.on('connect', () =>
      s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`),
    );
    s.on('data', (d) => {
      buf += d.toString('latin1');
      const nl = buf.indexOf('\r\n');
      if (nl < 0) return;
      // a bulk string: wait for its body too
      if (buf[0] === '$' && Number(buf.slice(1, nl)) >= 0 && buf.length < nl + 2 + Number(buf.slice(1, nl)) + 2) return;
      clearTimeout(t);
      s.destroy();
      res(
        buf[0] === '$' && Number(buf.slice(1, nl)) >= 0
          ? buf.slice(nl + 2, nl + 2 + Number(buf.slice(1, nl)))
          : buf.slice(0, nl),
      );
    });
    s.on('error', (e) => {
      clearTimeout(t);
      rej(e);
    });
  });
}

/**
 * Sends a SET to every port every 10 ms (without waiting for earlier ones: a follower may hold a
 * request for the dead leader) until one answers +OK; resolves with the ms until that answer.
 */
function firstWrite(ports: readonly number[], key: string, budgetMs: number): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let done = false;
    let i = 0;
    const finish = (ms: number) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      resolve(ms);
    };
    const fire = () => {
      if (performance.now() - t0 > budgetMs) return finish(Number.POSITIVE_INFINITY);
      const n = i++;
      for (const p of ports)
        resp(p, ['SET', key, String(n)], 2000).then(
          (r) => r === '+OK' && finish(performance.now() - t0),
          () => {},
        );
    };
    const timer = setInterval(fire, 10);
    fire();
  });
}

const portFree = (port: number): Promise<boolean> =>
  new Promise((res) => {
    const s = net.createServer();
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });

const taken = new Set<number>();
/** The first of `n` consecutive free ports (outside the ephemeral range), not handed out before. */
async function freeRun(n: number): Promise<number> {
  for (let base = 20_000 + Math.floor(Math.random() * 10_000); ; base += n) {
    let ok = true;
    for (let i = 0; i < n && ok; i++) ok = !taken.has(base + i) && (await portFree(base + i));
    if (ok) {
      for (let i = 0; i < n; i++) taken.add(base + i);
      return base;
    }
  }
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return n;
}

interface Launcher {
  child: ChildProcess;
  ready: Map<string, { port: number; at: number }>;
  leader: string | undefined;
  lines: string[];
}

/** `npm start`'s launcher with its own data dir and ports; resolves once the three replicas are ready. */
async function launch(env: Record<string, string>): Promise<Launcher> {
  const child = spawn(process.execPath, [join(root, 'tools/scripts/start-local.mjs')], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const l: Launcher = { child, ready: new Map(), leader: undefined, lines: [] };
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      l.lines.push(line);
      const m = /^decree: (r\d) ready: clients connect to [\d.]+:(\d+)/.exec(line);
      if (m) l.ready.set(m[1]!, { port: Number(m[2]), at: performance.now() });
      const lead = /^decree: (r\d) is the leader/.exec(line);
      if (lead) l.leader = lead[1];
    }
  });
  child.stderr!.on('data', (d: Buffer) => l.lines.push(...d.toString().split('\n').filter(Boolean)));
  const t0 = Date.now();
  while (l.ready.size < 3) {
    if (child.exitCode !== null) throw new Error(`npm start exited: ${l.lines.slice(-5).join(' | ')}`);
    if (Date.now() - t0 > 180_000) throw new Error('npm start: not ready within 180 s');
    await sleep(20);
  }
  return l;
}

async function stopLauncher(l: Launcher, signal: NodeJS.Signals = 'SIGINT'): Promise<void> {
  if (l.child.exitCode !== null) return;
  const done = new Promise<void>((r) => l.child.once('exit', () => r()));
  l.child.kill(signal);
  await done;
}

export interface RestartResult {
  sets: number;
  setsPerSec: number;
  walBytesBefore: number;
  /** from the last ready line to the first acknowledged SET */
  firstWriteMs: number;
  /** from the launcher's start to the last ready line (process start, recovery, replay) */
  readyMs: number;
  markers: number;
  markersLost: number;
  replayed: string[];
}

/** Ctrl-C after a redis-benchmark run and `npm start` again: how soon it serves, and what it kept. */
export async function restartAfterLoad(
  o: { sets?: number; storage?: 'wal' | 'pmem'; log?: (s: string) => void } = {},
): Promise<RestartResult> {
  const log = o.log ?? (() => {});
  const sets = o.sets ?? 1_000_000;
  const dir = mkdtempSync(join(tmpdir(), 'decree-restart-bench-'));
  try {
    // npm start takes three consecutive ports from each base
    const env = {
      DECREE_DATA: join(dir, 'data'),
      DECREE_BASE_PORT: String(await freeRun(3)),
      DECREE_CLIENT_PORT: String(await freeRun(3)),
      DECREE_STATUS_PORT: String(await freeRun(3)),
    };
    if (o.storage === 'pmem') {
      mkdirSync(env.DECREE_DATA, { recursive: true });
      const replicas = [1, 2, 3].map((i) => ({
        id: `r${i}`,
        host: '127.0.0.1',
        port: Number(env.DECREE_BASE_PORT) + i - 1,
        clientPort: Number(env.DECREE_CLIENT_PORT) + i - 1,
      }));
      writeFileSync(
        join(env.DECREE_DATA, 'cluster.json'),
        JSON.stringify({ cluster: 'local', dataDir: env.DECREE_DATA, storage: 'pmem', transport: 'tcp', replicas }),
      );
    }
    let l = await launch(env);
    const ports = [...l.ready.values()].map((r) => r.port);
    await firstWrite(ports, 'warmup', 30_000);
    for (let i = 0; i < 200 && !l.leader; i++) await sleep(50);
    const leaderPort = l.ready.get(l.leader ?? 'r1')!.port;
    log(`redis-benchmark: ${sets} SETs against ${l.leader} (port ${leaderPort})`);
    const t0 = performance.now();
    const rb = spawnSync(
      'redis-benchmark',
      [
        '-p',
        String(leaderPort),
        '-t',
        'set',
        '-d',
        '64',
        '-P',
        '64',
        '-c',
        '50',
        '-n',
        String(sets),
        '-r',
        '100000',
        '-q',
      ],
      { encoding: 'utf8', timeout: 600_000 },
    );
    const secs = (performance.now() - t0) / 1000;
    if (rb.status !== 0) throw new Error(`redis-benchmark failed: ${rb.stderr || rb.stdout}`);
    log(`redis-benchmark: ${rb.stdout.trim().split('\r').pop()!.trim()}`);
    // marker keys, each acknowledged before the stop
    const markers = 2000;
    for (let i = 0; i < markers; i += 100) {
      const batch = Array.from({ length: 100 }, (_, j) =>
        resp(leaderPort, ['SET', `marker:${i + j}`, `v${i + j}`], 10_000),
      );
      const got = await Promise.all(batch);
      if (got.some((g) => g !== '+OK')) throw new Error(`marker SET not acknowledged: ${got.find((g) => g !== '+OK')}`);
    }
    const walBytesBefore = dirBytes(env.DECREE_DATA);
    log(`Ctrl-C; data dir ${(walBytesBefore / 1e6).toFixed(0)} MB`);
    await stopLauncher(l, 'SIGINT');
    const t1 = performance.now();
    l = await launch(env);
    const lastReady = Math.max(...[...l.ready.values()].map((r) => r.at));
    // launch() returns as it sees the last ready line: the probe starts right then
    const firstWriteMs = await firstWrite(ports, 'after-restart', 120_000);
    let lost = 0;
    for (let i = 0; i < markers; i += 100) {
      const got = await Promise.all(
        Array.from({ length: 100 }, (_, j) =>
          resp(ports[(i / 100) % 3]!, ['GET', `marker:${i + j}`], 10_000).catch(() => 'ERR'),
        ),
      );
      got.forEach((g, j) => {
        if (g !== `v${i + j}`) lost++;
      });
    }
    await stopLauncher(l, 'SIGINT');
    const replayed: string[] = [];
    for (const id of ['r1', 'r2', 'r3']) {
      const text = readFileSync(join(env.DECREE_DATA, 'logs', `${id}.log`), 'utf8');
      const last = text
        .split('\n')
        .filter((x) => x.includes('replayed slots'))
        .at(-1);
      if (last) {
        const j = JSON.parse(last) as { msg: string; commands: number; ms: number };
        replayed.push(`${id}: ${j.msg} (${j.commands} commands in ${j.ms} ms)`);
      }
    }
    return {
      sets,
      setsPerSec: sets / secs,
      walBytesBefore,
      firstWriteMs,
      readyMs: lastReady - t1,
      markers,
      markersLost: lost,
      replayed,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Proc {
  id: string;
  child: ChildProcess;
}

export interface KillResult {
  kills: number;
  /** ms from each kill -9 of the leader until a write committed again */
  noLeaderMs: number[];
  p50: number;
  max: number;
}

/** kill -9 of the leader, `kills` times: the time until a write commits again. */
export async function leaderKills(o: { kills?: number; log?: (s: string) => void } = {}): Promise<KillResult> {
  const log = o.log ?? (() => {});
  const kills = o.kills ?? 20;
  const dir = mkdtempSync(join(tmpdir(), 'decree-kill-bench-'));
  const procs = new Map<string, Proc>();
  try {
    const ids = ['r1', 'r2', 'r3'];
    const replicas: { id: string; host: string; port: number; clientPort: number }[] = [];
    const ports = await distinctFreePorts(2 * ids.length);
    ids.forEach((id, i) =>
      replicas.push({ id, host: '127.0.0.1', port: ports[2 * i]!, clientPort: ports[2 * i + 1]! }),
    );
    const cfgPath = join(dir, 'cluster.json');
    writeFileSync(
      cfgPath,
      JSON.stringify({ cluster: 'killbench', dataDir: join(dir, 'data'), storage: 'wal', transport: 'tcp', replicas }),
    );
    const port = (id: string) => replicas.find((r) => r.id === id)!.clientPort;
    const start = async (id: string) => {
      const child = spawn(
        process.execPath,
        [
          '--conditions=source',
          '--import',
          'tsx',
          join(root, 'apps/replica/src/cli.ts'),
          'start',
          '--config',
          cfgPath,
          '--id',
          id,
        ],
        { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      procs.set(id, { id, child });
      await new Promise<void>((res, rej) => {
        let buf = '';
        const t = setTimeout(() => rej(new Error(`${id} not started`)), 60_000);
        child.stdout!.on('data', (d: Buffer) => {
          buf += d.toString();
          if (buf.includes('"replica started"')) {
            clearTimeout(t);
            res();
          }
        });
        child.stderr!.on('data', () => {});
      });
    };
    await Promise.all(ids.map(start));
    const leaderOf = async (): Promise<string | undefined> => {
      // ask each replica who leads (DECREE STATUS answers its status as JSON)
      for (const id of ids) {
        if (!procs.has(id)) continue;
        const j = await resp(port(id), ['DECREE', 'STATUS'], 1000).catch(() => '');
        const m = /"leader":"(r\d)"/.exec(j);
        if (m && procs.has(m[1]!)) return m[1];
      }
      return undefined;
    };
    // a light background write load (one SET in flight per replica)
    let loading = true;
    const load = (async () => {
      for (let i = 0; loading; i++) {
        await Promise.allSettled(
          ids.filter((id) => procs.has(id)).map((id) => resp(port(id), ['SET', `bg:${i % 100}`, String(i)], 500)),
        );
        await sleep(5);
      }
    })();
    const noLeaderMs: number[] = [];
    await firstWrite(ids.map(port), 'warmup', 60_000);
    for (let k = 0; k < kills; k++) {
      await sleep(1500);
      let leader: string | undefined;
      for (let i = 0; i < 100 && !(leader = await leaderOf()); i++) await sleep(100);
      if (!leader) throw new Error('no leader to kill');
      const p = procs.get(leader)!;
      const exited = new Promise<void>((r) => p.child.once('exit', () => r()));
      const t0 = performance.now();
      p.child.kill('SIGKILL');
      procs.delete(leader);
      const ms = await firstWrite(ids.filter((id) => id !== leader).map(port), `after-kill-${k}`, 60_000);
      noLeaderMs.push(performance.now() - t0);
      log(
        `kill ${k + 1}/${kills}: ${leader} killed; a write committed again after ` +
          `${Math.round(performance.now() - t0)} ms (probe ${Math.round(ms)} ms)`,
      );
      await exited;
      await start(leader);
    }
    loading = false;
    await load;
    const sorted = [...noLeaderMs].sort((a, b) => a - b);
    return { kills, noLeaderMs, p50: sorted[Math.floor(sorted.length / 2)]!, max: sorted.at(-1)! };
  } finally {
    for (const p of procs.values()) p.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}
