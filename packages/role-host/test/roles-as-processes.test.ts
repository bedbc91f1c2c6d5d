import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KvCommands, KvMachine } from '@decree/kv-machine';
import { startNatsServer } from '@decree/transport-nats/testing';

const root = resolve(import.meta.dirname, '../../..');
const children: ChildProcess[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const f of cleanups) await f();
});

async function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
  });
}

/** Spawns a TS entry point; returns its JSON log lines as they come. */
function run(args: string[]): { proc: ChildProcess; lines: Record<string, unknown>[] } {
  const proc = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(proc);
  const lines: Record<string, unknown>[] = [];
  let buf = '';
  proc.stdout!.on('data', (d) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        lines.push(JSON.parse(l));
      } catch {}
    }
  });
  proc.stderr!.on('data', (d) => process.stderr.write(`[${args.slice(-6).join(' ')}] ${d}`));
  return { proc, lines };
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * An IDEMPOTENT command (GET, a SET of a fixed value) repeated until its raw reply is `want` (up to 20
 * attempts): leadership can move on a loaded machine, and a command then gets TRYAGAIN or times out.
 * Returns the last reply.
 */
async function settled(port: number, args: string[], want: string): Promise<string> {
  let reply = '';
  for (let attempt = 0; attempt < 20; attempt++) {
    reply = await resp(port, args).catch((e: Error) => `(${e.message})`);
    if (reply === want) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return reply;
}

/** One RESP command over a fresh connection; resolves with the raw reply text. */
function resp(port: number, args: string[]): Promise<string> {
  return new Promise((res, rej) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let out = '';
    const t = setTimeout(() => {
      s.destroy();
      rej(new Error('RESP timeout'));
    }, 10_000);
    s.on('connect', () =>
      s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`),
    );
    s.on('data', (d) => {
      out += d.toString();
      if (out.endsWith('\r\n') && (!out.startsWith('$') || out.split('\r\n').length >= 3 || out.startsWith('$-1'))) {
        clearTimeout(t);
        s.destroy();
        res(out);
      }
    });
    s.on('error', (e) => {
      clearTimeout(t);
      rej(e);
    });
  });
}

describe('roles as separate processes over NATS', () => {
  it('the six roles of r1 (and its client side) run as separate processes beside two ordinary replicas: ' +
    'commands replicate, snapshots are taken, a configuration change runs', async () => {
    const nats = await startNatsServer({});
    cleanups.push(() => nats.stop());
    const dir = mkdtempSync(join(tmpdir(), 'decree-roles-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const replicas: { id: string; host: string; port: number; clientPort: number }[] = [];
    for (const id of ['r1', 'r2', 'r3'])
      replicas.push({ id, host: '127.0.0.1', port: await freePort(), clientPort: await freePort() });
    const cfgPath = join(dir, 'cluster.json');
    const cfg = (election: object, more: object = {}) =>
      JSON.stringify({
        cluster: 'roles',
        dataDir: dir,
        transport: 'nats',
        nats: { servers: [nats.url] },
        replicas,
        election,
        ...more,
      });
    // r1's snapshotter: a snapshot every 8 slots, the log kept 10 slots below it
    writeFileSync(
      cfgPath,
      cfg({ minMs: 1500, maxMs: 3000, heartbeatMs: 100 }, { snapshots: { everySlots: 8, marginSlots: 10 } }),
    );
    // r2 and r3 wait much longer before they campaign (election timeouts are each replica's own): on a
    // loaded machine one of them could otherwise win before r1's role processes are all up
    const slowPath = join(dir, 'cluster-slow.json');
    writeFileSync(slowPath, cfg({ minMs: 20_000, maxMs: 40_000, heartbeatMs: 100 }));
    const inc = 1 + Math.floor(Math.random() * 1e9);
    const roles: Record<string, ReturnType<typeof run>> = {};
    for (const role of ['acceptor', 'learner', 'snapshotter', 'config-manager', 'client', 'proposer', 'elector'])
      roles[role] = run([
        'apps/replica/src/cli.ts',
        'start',
        '--role',
        role,
        '--config',
        cfgPath,
        '--id',
        'r1',
        '--inc',
        String(inc),
        ...(role === 'elector' ? ['--promote'] : []),
      ]);
    const r2 = run(['apps/replica/src/cli.ts', 'start', '--config', slowPath, '--id', 'r2']);
    const r3 = run(['apps/replica/src/cli.ts', 'start', '--config', slowPath, '--id', 'r3']);
    await until(
      () => Object.values(roles).every((r) => r.lines.some((l) => l.msg === 'role started')),
      60_000,
      'role processes',
    );
    await until(() => [r2, r3].every((r) => r.lines.some((l) => l.msg === 'replica started')), 60_000, 'r2 and r3');
    // r1's elector campaigns at once with a round above anything seen: r1's proposer process leads
    await until(
      () => roles.proposer!.lines.some((l) => String(l.state).startsWith('leading')),
      30_000,
      "r1's proposer to lead",
    );

    // writes through r2 and r3 are forwarded to r1 (its client-role process), chosen, executed by r1's learner
    // process; r1's client process serves RESP too (its commands go to r1's proposer process)
    const expected = new KvMachine();
    for (let i = 0; i < 30; i++) {
      const port = replicas[i % 3]!.clientPort;
      expect(await settled(port, ['SET', `k${i}`, `v${i}`], '+OK\r\n')).toBe('+OK\r\n');
      expected.apply(KvCommands.set(`k${i}`, `v${i}`), i + 1);
    }
    expect(await settled(replicas[2]!.clientPort, ['GET', 'k7'], '$2\r\nv7\r\n')).toBe('$2\r\nv7\r\n');
    // a GET at r1's client process is a read through the log (its state machine is in the learner's process)
    expect(await settled(replicas[0]!.clientPort, ['GET', 'k8'], '$2\r\nv8\r\n')).toBe('$2\r\nv8\r\n');
    // r1's learner (another process) executed the same commands: its state digest matches
    const learnerDigest = () =>
      (roles.learner!.lines.filter((l) => l.msg === 'executed').at(-1)?.digest as string | undefined) ?? '';
    await until(() => learnerDigest() === expected.digest(), 30_000, "r1's learner to execute the writes");
    expect(learnerDigest()).toBe(expected.digest());
    // r1's snapshotter process took snapshots from the learner process's copies, stored them and had the log truncated
    const snaps = () =>
      roles.snapshotter!.lines.filter((l) => l.msg === 'snapshots').at(-1) as
        | { saved?: number; latestSlot?: number; truncatedBelow?: number }
        | undefined;
    await until(
      () => (snaps()?.saved ?? 0) > 0 && (snaps()?.truncatedBelow ?? 0) > 0,
      30_000,
      "r1's snapshotter to save a snapshot and truncate",
    );
    expect(snaps()!.latestSlot).toBeGreaterThan(0);
    // a configuration change asked at r2 runs in r1's config-manager process (r1 leads) and takes effect everywhere
    const change = await resp(replicas[1]!.clientPort, ['DECREE', 'CONFIG', 'SET', 'r1', 'r2']);
    expect(change).toMatch(/"epoch":2,"members":\["r1","r2"\]/);
    const cm = () =>
      roles['config-manager']!.lines.filter((l) => l.msg === 'state').at(-1) as
        | { epoch?: number; members?: string[] }
        | undefined;
    await until(() => cm()?.epoch === 2, 30_000, "r1's config-manager process to run configuration 2");
    expect(cm()!.members).toEqual(['r1', 'r2']);
    // and the shrunk cluster still writes
    expect(await settled(replicas[1]!.clientPort, ['SET', 'after', 'change'], '+OK\r\n')).toBe('+OK\r\n');
    for (const c of children) c.kill('SIGTERM');
  }, 240_000);
});
