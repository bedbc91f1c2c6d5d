/**
 * `npm run start:roles` (tools/scripts/start-roles.mjs): 3 replicas × 7 processes (six roles and the
 * client side) over a local nats-server. It prints each replica's client address; SET and GET work
 * through the client processes of different replicas (reads go through the log); SIGINT stops every
 * process gracefully. And `decree start --role`'s one-line errors.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CLI,
  NODE_ARGS,
  ROOT,
  RespClient,
  exitOf,
  freePorts,
  killAll,
  tempDir,
  track,
  waitFor,
  canListen,
  freeRun,
  settledWithin as settledIn,
} from './helpers.ts';

const tmp = tempDir('roles');
afterAll(async () => {
  await killAll();
  tmp.remove();
});

describe('npm run start:roles (tools/scripts/start-roles.mjs)', () => {
  it('runs 3 replicas × 7 processes over nats-server; SET/GET through two replicas; SIGINT stops all', async () => {
    const base = await freeRun();
    let client = await freeRun();
    while (Math.abs(client - base) < 3) client = await freeRun();
    const [natsPort] = await freePorts(1);
    const dataDir = path.join(tmp.dir, 'data');
    const env = {
      DECREE_DATA: dataDir,
      DECREE_BASE_PORT: String(base),
      DECREE_CLIENT_PORT: String(client),
      DECREE_NATS_PORT: String(natsPort),
    };
    // detached: its own process group (the script and its role processes; the nats-server has its own,
    // with a watchdog), so cleanup can kill them together
    const child: ChildProcess = spawn(process.execPath, [path.join(ROOT, 'tools/scripts/start-roles.mjs')], {
      cwd: tmp.dir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    track(child, { group: true });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));

    const addrs = await waitFor(
      `three client addresses (stdout: ${out.slice(-400)} stderr: ${err.slice(-400)})`,
      () => {
        if (child.exitCode !== null) throw new Error(`start-roles exited ${child.exitCode}: ${err}`);
        const m = [...out.matchAll(/decree: (r\d) ready \(7 processes\): clients connect to 127\.0\.0\.1:(\d+)/g)];
        return m.length === 3 && out.includes('cluster up: 21 processes')
          ? new Map(m.map((x) => [x[1]!, Number(x[2])]))
          : undefined;
      },
      100_000,
      100,
    );
    expect(addrs).toEqual(
      new Map([
        ['r1', client],
        ['r2', client + 1],
        ['r3', client + 2],
      ]),
    );
    expect(out).toContain(`nats-server on nats://127.0.0.1:${natsPort}`);
    const cfg = JSON.parse(readFileSync(path.join(dataDir, 'cluster.json'), 'utf8'));
    expect(cfg).toMatchObject({ transport: 'nats', nats: { servers: [`nats://127.0.0.1:${natsPort}`] } });

    // writes at one replica's client process, reads (through the log) at another's; at most one of
    // them leads, so at least one of the two commands is forwarded to the leader's client process
    expect(await settledIn(40_000, client, ['SET', 'roles', 'written-at-r1'])).toBe('OK');
    expect(await settledIn(40_000, client + 1, ['GET', 'roles'])).toBe('written-at-r1');
    expect(await settledIn(40_000, client + 2, ['SET', 'other', 'written-at-r3'])).toBe('OK');
    expect(await settledIn(40_000, client, ['GET', 'other'])).toBe('written-at-r3');
    expect(await settledIn(40_000, client + 1, ['GET', 'other'])).toBe('written-at-r3');
    // READONLY has no local state to read in a client process: its GETs go through the log too
    const c = await RespClient.connect(client + 1);
    expect(await c.call(['READONLY'])).toBe('OK');
    expect(await c.call(['GET', 'roles'], 15_000)).toBe('written-at-r1');
    c.close();
    const st = JSON.parse((await settledIn(40_000, client + 2, ['DECREE', 'STATUS'])) as string);
    expect(st).toMatchObject({ id: 'r3', process: 'client' });
    expect(['r1', 'r2', 'r3']).toContain(st.leader);

    child.kill('SIGINT');
    const e = await exitOf(child, 40_000);
    expect(e, out + err).toEqual({ code: 0, signal: null });
    expect(out).toMatch(/decree: stopped; data kept in/);
    // every role process stopped gracefully (its own log says so)
    for (const id of ['r1', 'r2', 'r3'])
      for (const role of ['acceptor', 'proposer', 'learner', 'elector', 'snapshotter', 'config-manager', 'client'])
        expect(readFileSync(path.join(dataDir, 'logs', `${id}-${role}.log`), 'utf8'), `${id} ${role}`).toContain(
          '"msg":"stopped"',
        );
    for (const port of [client, client + 1, client + 2, natsPort!]) expect(await canListen(port)).toBe(true);
  }, 180_000);
});

/** `decree start …` from source: its exit code and stderr. */
async function decreeStart(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const c = spawn(process.execPath, [...NODE_ARGS, CLI, 'start', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(c);
  let stderr = '';
  c.stderr!.on('data', (d) => (stderr += d));
  const { code } = await exitOf(c, 60_000);
  return { code, stderr };
}

describe('decree start --role: one-line errors', () => {
  const tcp = path.join(tmp.dir, 'tcp.json');
  writeFileSync(tcp, JSON.stringify({ replicas: [{ id: 'r1', port: 7101, clientPort: 6381 }] }));

  it('an unknown role, and a config whose transport is not nats', async () => {
    const [bogus, acceptor] = await Promise.all([
      decreeStart(['--role', 'bogus', '--config', tcp, '--id', 'r1']),
      decreeStart(['--role', 'acceptor', '--config', tcp, '--id', 'r1']),
    ]);
    expect(bogus).toEqual({
      code: 1,
      stderr:
        'decree: --role: unknown role "bogus" ' +
        '(acceptor, proposer, learner, elector, snapshotter, config-manager, client)\n',
    });
    expect(acceptor).toEqual({
      code: 1,
      stderr:
        'decree: --role acceptor: roles as separate processes need transport "nats" ' +
        `(${tcp} has transport "tcp")\n`,
    });
  }, 60_000);
});
