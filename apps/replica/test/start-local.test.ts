/**
 * `npm start` (tools/scripts/start-local.mjs): a local 3-replica cluster on loopback. It prints each
 * replica's client address; a SET through one works; SIGINT stops it cleanly (exit 0, "stopped");
 * a second start on the same data dir keeps the value.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, exitOf, killAll, resp, tempDir, track, waitFor } from './helpers.ts';

const tmp = tempDir('local');
afterAll(async () => {
  await killAll();
  tmp.remove();
});

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}
/** A base port such that base, base+1, base+2 are all free right now. */
async function freeRun(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    if ((await canListen(base)) && (await canListen(base + 1)) && (await canListen(base + 2))) return base;
  }
  throw new Error('no run of 3 free ports');
}

interface Local {
  child: ChildProcess;
  out: () => string;
  err: () => string;
}
function startLocal(env: Record<string, string>): Local {
  // detached: its own process group, so cleanup can kill it and its replicas together
  const child = spawn(process.execPath, [path.join(ROOT, 'tools/scripts/start-local.mjs')], {
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
  return { child, out: () => out, err: () => err };
}

/** The three "rN ready: clients connect to host:port" lines. */
async function addresses(l: Local): Promise<Map<string, number>> {
  return waitFor(
    `three client addresses (stdout: ${l.out().slice(-400)} stderr: ${l.err().slice(-400)})`,
    () => {
      if (l.child.exitCode !== null) throw new Error(`start-local exited ${l.child.exitCode}: ${l.err()}`);
      const m = [...l.out().matchAll(/decree: (r\d) ready: clients connect to 127\.0\.0\.1:(\d+)/g)];
      return m.length === 3 && l.out().includes('cluster up') ? new Map(m.map((x) => [x[1]!, Number(x[2])])) : undefined;
    },
    60_000,
    100,
  );
}

/** A command retried while the cluster elects its first leader. */
async function settled(port: number, args: string[]) {
  return waitFor(`${args[0]} on ${port}`, async () => {
    const v = await resp(port, args, 8000);
    return v instanceof Error ? undefined : v;
  }, 30_000, 200);
}

describe('npm start (tools/scripts/start-local.mjs)', () => {
  it('prints the client addresses, serves SET/GET, stops on SIGINT and keeps its data for the next start', async () => {
    const base = await freeRun();
    let client = await freeRun();
    while (Math.abs(client - base) < 3) client = await freeRun();
    const env = { DECREE_DATA: path.join(tmp.dir, 'data'), DECREE_BASE_PORT: String(base), DECREE_CLIENT_PORT: String(client) };

    const first = startLocal(env);
    const addrs = await addresses(first);
    expect(first.out()).toContain(`wrote ${path.join(env.DECREE_DATA, 'cluster.json')}`);
    expect(addrs).toEqual(new Map([['r1', client], ['r2', client + 1], ['r3', client + 2]]));
    const cfg = JSON.parse(readFileSync(path.join(env.DECREE_DATA, 'cluster.json'), 'utf8'));
    expect(cfg.replicas.map((r: { port: number }) => r.port)).toEqual([base, base + 1, base + 2]);

    expect(await settled(client + 1, ['SET', 'kept', 'across-restarts'])).toBe('OK');
    expect(await settled(client, ['GET', 'kept'])).toBe('across-restarts');
    await waitFor('a leader line', () => /decree: r\d is the leader/.test(first.out()), 10_000);

    first.child.kill('SIGINT');
    const e1 = await exitOf(first.child, 30_000);
    expect(e1, first.out() + first.err()).toEqual({ code: 0, signal: null });
    expect(first.out()).toMatch(/decree: stopped; data kept in/);
    // each replica stopped gracefully (its own log says so), none was killed
    for (const id of ['r1', 'r2', 'r3']) expect(readFileSync(path.join(env.DECREE_DATA, 'logs', `${id}.log`), 'utf8')).toContain('"msg":"stopped"');
    for (const port of [client, client + 1, client + 2]) expect(await canListen(port)).toBe(true);

    const second = startLocal(env);
    await addresses(second);
    expect(second.out()).toContain('(existing data is kept)');
    expect(await settled(client + 2, ['GET', 'kept'])).toBe('across-restarts');
    second.child.kill('SIGINT');
    expect(await exitOf(second.child, 30_000)).toEqual({ code: 0, signal: null });
    expect(second.out()).toMatch(/decree: stopped/);
  }, 85_000);
});
