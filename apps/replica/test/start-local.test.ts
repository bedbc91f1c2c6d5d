/**
 * `npm start` (tools/scripts/start-local.mjs): a local 3-replica cluster on loopback. It prints each
 * replica's client address; a SET through one works; SIGINT stops it cleanly (exit 0, "stopped");
 * a second start on the same data dir keeps the value. A kill -9 of the leader leaves the others
 * serving: the launcher names the dead replica and the new leader, restarts the dead one, and no
 * acknowledged write is lost.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ROOT,
  RespClient,
  RespError,
  exitOf,
  killAll,
  resp,
  sleep,
  status,
  tempDir,
  track,
  waitFor,
  canListen,
  freeRun,
  settledWithin as settledIn,
} from './helpers.ts';

const tmp = tempDir('local');
afterAll(async () => {
  await killAll();
  tmp.remove();
});

/** The launcher's environment: a data dir and three disjoint runs of 3 free ports (peers, clients, status pages). */
async function localEnv(name: string): Promise<Record<string, string>> {
  const bases: number[] = [];
  while (bases.length < 3) {
    const b = await freeRun();
    if (bases.every((x) => Math.abs(x - b) >= 3)) bases.push(b);
  }
  return {
    DECREE_DATA: path.join(tmp.dir, name),
    DECREE_BASE_PORT: String(bases[0]),
    DECREE_CLIENT_PORT: String(bases[1]),
    DECREE_STATUS_PORT: String(bases[2]),
  };
}

/** pid and arguments of every process on the machine whose command line contains `text` */
function processesWith(text: string): { pid: number; args: string }[] {
  const out = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => /^\s*(\d+)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && m[2]!.includes(text) && !m[2]!.startsWith('ps '))
    .map((m) => ({ pid: Number(m[1]), args: m[2]! }));
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
      return m.length === 3 && l.out().includes('cluster up')
        ? new Map(m.map((x) => [x[1]!, Number(x[2])]))
        : undefined;
    },
    60_000,
    100,
  );
}

/** A command retried while the cluster elects its first leader. */

describe('npm start (tools/scripts/start-local.mjs)', () => {
  it('prints the client addresses, serves SET/GET, stops on SIGINT and keeps its data for the next start', async () => {
    const env = await localEnv('data');
    const base = Number(env.DECREE_BASE_PORT);
    const client = Number(env.DECREE_CLIENT_PORT);

    const first = startLocal(env);
    const addrs = await addresses(first);
    expect(first.out()).toContain(`wrote ${path.join(env.DECREE_DATA, 'cluster.json')}`);
    expect(addrs).toEqual(
      new Map([
        ['r1', client],
        ['r2', client + 1],
        ['r3', client + 2],
      ]),
    );
    const cfg = JSON.parse(readFileSync(path.join(env.DECREE_DATA, 'cluster.json'), 'utf8'));
    expect(cfg.replicas.map((r: { port: number }) => r.port)).toEqual([base, base + 1, base + 2]);

    expect(await settledIn(30_000, client + 1, ['SET', 'kept', 'across-restarts'])).toBe('OK');
    expect(await settledIn(30_000, client, ['GET', 'kept'])).toBe('across-restarts');
    await waitFor('a leader line', () => /decree: r\d is the leader/.test(first.out()), 10_000);

    first.child.kill('SIGINT');
    const e1 = await exitOf(first.child, 30_000);
    expect(e1, first.out() + first.err()).toEqual({ code: 0, signal: null });
    expect(first.out()).toMatch(/decree: stopped; data kept in/);
    // each replica stopped gracefully (its own log says so), none was killed
    for (const id of ['r1', 'r2', 'r3'])
      expect(readFileSync(path.join(env.DECREE_DATA, 'logs', `${id}.log`), 'utf8')).toContain('"msg":"stopped"');
    for (const port of [client, client + 1, client + 2]) expect(await canListen(port)).toBe(true);

    const second = startLocal(env);
    await addresses(second);
    expect(second.out()).toContain('(existing data is kept)');
    expect(await settledIn(30_000, client + 2, ['GET', 'kept'])).toBe('across-restarts');
    second.child.kill('SIGINT');
    expect(await exitOf(second.child, 30_000)).toEqual({ code: 0, signal: null });
    expect(second.out()).toMatch(/decree: stopped/);
  }, 85_000);

  it('survives kill -9 of the leader: names the new leader, restarts the ' +
    'dead replica, keeps every acknowledged write; SIGINT leaves no process', async () => {
    const env = await localEnv('crash');
    const client = Number(env.DECREE_CLIENT_PORT);
    const portOf = (id: string) => client + Number(id.slice(1)) - 1;
    const l = startLocal(env);
    await addresses(l);
    expect(await settledIn(30_000, client, ['SET', 'warmup', 'x'])).toBe('OK');
    // the replica the launcher last named, once it says so itself
    const leader = await waitFor(
      `a leader line (stdout: ${l.out().slice(-300)})`,
      async () => {
        const id = [...l.out().matchAll(/decree: (r\d) is the leader/g)].at(-1)?.[1];
        return id && (await status(portOf(id)))?.role === 'leader' ? id : undefined;
      },
      20_000,
      200,
    );
    const survivors = ['r1', 'r2', 'r3'].filter((id) => id !== leader);

    // one writer, one SET at a time, to the leader and then, when its connection breaks, the next replica;
    // a SET counts only once answered OK
    const acked = new Map<string, string>();
    let writing = true;
    let errors = 0;
    let killedAt = 0;
    let firstAfterKill = 0;
    let slowest = 0;
    const writer = (async () => {
      const ports = [leader, ...survivors].map(portOf);
      let at = 0;
      let conn: Awaited<ReturnType<typeof RespClient.connect>> | undefined;
      for (let i = 0; writing; i++) {
        const key = `crash:${i}`;
        const value = `v${i}-${Math.random().toString(36).slice(2, 8)}`;
        try {
          conn ??= await RespClient.connect(ports[at % 3]!, '127.0.0.1', 1000);
          const t0 = Date.now();
          const r = await conn.call(['SET', key, value], 5000);
          if (r === 'OK') {
            acked.set(key, value);
            if (killedAt && !firstAfterKill) firstAfterKill = Date.now() - killedAt;
            slowest = Math.max(slowest, Date.now() - t0);
          } else {
            errors++;
            await sleep(50); // TRYAGAIN or a redirect while the survivors elect
          }
        } catch {
          errors++;
          conn?.close();
          conn = undefined;
          at++;
          await sleep(50);
        }
      }
      conn?.close();
    })();

    await waitFor('50 acknowledged SETs before the kill', () => acked.size >= 50, 20_000);
    const victim = processesWith(`--id ${leader}`).filter((p) =>
      p.args.includes(path.join(env.DECREE_DATA!, 'cluster.json')),
    );
    expect(victim).toHaveLength(1);
    const ackedAtKill = acked.size;
    process.kill(victim[0]!.pid, 'SIGKILL');
    killedAt = Date.now();

    const died = await waitFor(
      `"${leader} (the leader) died"`,
      () => l.out().includes(`decree: ${leader} (the leader) died (SIGKILL)`),
      10_000,
    );
    expect(died).toBe(true);
    const elected = new RegExp(`decree: (r\\d) is the leader \\(elected [\\d.]+ s after ${leader} died\\)`);
    const next = await waitFor(
      `the new leader line (stdout: ${l.out().slice(-400)})`,
      () => elected.exec(l.out())?.[1],
      20_000,
    );
    expect(survivors).toContain(next);
    expect(l.out()).toMatch(new RegExp(`decree: restarting ${leader} in 1 s \\(restart 1\\)`));
    await waitFor(
      `"${leader} is back" (stdout: ${l.out().slice(-400)})`,
      () => l.out().includes(`decree: ${leader} is back (restart 1)`),
      30_000,
    );
    // writes go on after the failover, and while the restarted replica catches up
    const ackedAtBack = acked.size;
    await waitFor(
      '50 more acknowledged SETs after the restart',
      () => acked.size >= Math.max(ackedAtBack, ackedAtKill + 20) + 50,
      30_000,
    );
    writing = false;
    await writer;

    // every acknowledged SET, read back through the new leader (pipelined GETs on one connection)
    const keys = [...acked.keys()];
    const conn = await RespClient.connect(portOf(next!), '127.0.0.1', 2000);
    const wrong: string[] = [];
    try {
      for (let i = 0; i < keys.length; i += 200) {
        const batch = keys.slice(i, i + 200);
        const got = await Promise.all(batch.map((k) => conn.call(['GET', k], 10_000)));
        batch.forEach((k, j) => {
          if (got[j] !== acked.get(k))
            wrong.push(`${k}: ${JSON.stringify(acked.get(k))} acknowledged, read ${String(got[j])}`);
        });
      }
    } finally {
      conn.close();
    }
    expect(wrong, `${wrong.length} of ${keys.length} acknowledged SETs not read back`).toEqual([]);
    expect(keys.length).toBeGreaterThanOrEqual(100);

    // the restarted replica serves: its status names a leader, and it reads the last acknowledged SET
    const back = await waitFor(
      `${leader}'s status`,
      async () => {
        const s = await status(portOf(leader));
        return s?.leader ? s : undefined;
      },
      20_000,
      200,
    );
    expect(back.id).toBe(leader);
    const last = keys.at(-1)!;
    const read = await waitFor(
      `GET ${last} on ${leader}`,
      async () => {
        const v = await resp(portOf(leader), ['GET', last], 5000).catch((e: Error) => e);
        return v instanceof Error || v instanceof RespError ? undefined : v;
      },
      20_000,
      200,
    );
    expect(read).toBe(acked.get(last));

    // SIGINT: every replica stops gracefully, the launcher exits 0 and no process of this cluster is left
    const config = path.join(env.DECREE_DATA!, 'cluster.json');
    expect(processesWith(config)).toHaveLength(3);
    l.child.kill('SIGINT');
    expect(await exitOf(l.child, 30_000), l.out() + l.err()).toEqual({ code: 0, signal: null });
    expect(l.out()).toMatch(/decree: stopped; data kept in/);
    expect(processesWith(config)).toEqual([]);
    // the launcher's lines stay short
    for (const line of l.out().split('\n')) if (!line.includes(tmp.dir)) expect(line.length).toBeLessThanOrEqual(120);
    console.log(
      `start-local crash test: ${keys.length} acknowledged SETs read back; ${errors} failed or refused; ` +
        `first SET acknowledged ${firstAfterKill} ms after the kill; slowest acknowledged SET ${slowest} ms`,
    );
  }, 150_000);

  it('a replica that cannot start (address in use) is tried ' +
    '3 times with a back-off, then left down with the reason', async () => {
    const env = await localEnv('busy');
    // r1's peer port is taken by someone else
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(Number(env.DECREE_BASE_PORT), '127.0.0.1', r));
    try {
      const l = startLocal(env);
      await waitFor(
        `"cluster up without r1" (stdout: ${l.out().slice(-600)})`,
        () => l.out().includes('decree: cluster up without r1 (failed to start)'),
        60_000,
        100,
      );
      const out = l.out();
      expect(out).toMatch(
        /decree: r1 failed to start \(exit 1: address in use: 127\.0\.0\.1:\d+\); attempt 2 of 3 in 1 s/,
      );
      expect(out).toMatch(/decree: r1 failed to start \(exit 1: address in use: [\d.:]+\); attempt 3 of 3 in 2 s/);
      expect(out).toMatch(/decree: r1 failed to start 3 times \(exit 1: address in use: [\d.:]+\); not restarting it/);
      expect(out).not.toContain('restarting r1');
      // the other two serve
      expect(await settledIn(30_000, Number(env.DECREE_CLIENT_PORT) + 1, ['SET', 'two', 'of-three'])).toBe('OK');
      l.child.kill('SIGINT');
      expect(await exitOf(l.child, 30_000)).toEqual({ code: 0, signal: null });
      expect(processesWith(path.join(env.DECREE_DATA!, 'cluster.json'))).toEqual([]);
    } finally {
      holder.close();
    }
  }, 90_000);

  it('when no replica can start (a broken cluster.json) the launcher gives up and exits 1', async () => {
    const env = await localEnv('broken');
    mkdirSync(env.DECREE_DATA!, { recursive: true });
    writeFileSync(path.join(env.DECREE_DATA!, 'cluster.json'), JSON.stringify({ cluster: 'local', replicas: 'none' }));
    const l = startLocal(env);
    expect(await exitOf(l.child, 60_000), l.out() + l.err()).toEqual({ code: 1, signal: null });
    expect(l.out()).toMatch(/decree: r\d failed to start 3 times \(exit 1: /);
    expect(l.out()).toContain('decree: no replica is running; fix the error above and run npm start again');
    expect(l.out()).not.toContain('cluster up');
  }, 90_000);
});
