import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/**
 * Test helper: a throw-away nats-server (Debian's package) on a free loopback port.
 * Import it from `@decree/transport-nats/testing`.
 */

export type NatsAuth = { readonly user: string; readonly pass: string } | { readonly token: string };

export interface StartNatsServerOptions {
  /** the port to listen on (127.0.0.1); 0 or absent: a free one */
  port?: number;
  /** require these credentials (written to a config file, as an operator would) */
  auth?: NatsAuth;
  /** how long to wait for the server to accept connections; default 15 s */
  startTimeoutMs?: number;
  /** extra command-line arguments for nats-server */
  args?: readonly string[];
}

export interface NatsServerHandle {
  /** e.g. nats://127.0.0.1:40123 */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** kills the server (SIGTERM, then SIGKILL after 5 s) and removes its temp dir; idempotent */
  stop(): Promise<void>;
}

export const NATS_SERVER_INSTALL = 'apt-get update && apt-get install -y nats-server';

/**
 * Finds nats-server: $NATS_SERVER_BIN, then PATH, then Debian's /usr/sbin (root's PATH has it,
 * other users' may not). Throws an error naming the apt-get line when there is none.
 */
export function findNatsServer(
  env: Readonly<Record<string, string | undefined>> = process.env,
  fallbacks: readonly string[] = ['/usr/sbin/nats-server', '/usr/bin/nats-server'],
): string {
  const candidates: string[] = [];
  if (env.NATS_SERVER_BIN) candidates.push(env.NATS_SERVER_BIN);
  for (const dir of (env.PATH ?? '').split(path.delimiter)) if (dir) candidates.push(path.join(dir, 'nats-server'));
  candidates.push(...fallbacks);
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      /* next */
    }
  }
  throw new Error(
    `nats-server is not installed (not on PATH nor in /usr/sbin); install it with: ${NATS_SERVER_INSTALL}`,
  );
}

/** A port that was free a moment ago on 127.0.0.1 (listen on 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // a test that forgets stop() must not leave servers behind
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

/**
 * A detached `sh` loop that kills the server and removes its dir once this process is gone, even
 * when it is SIGKILLed (as a test runner does with a worker that timed out) and no hook runs.
 */
function watchdog(serverPid: number, dir: string): ChildProcess {
  const script =
    `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; ` +
    `done; kill -9 ${serverPid} 2>/dev/null; rm -rf '${dir}'`;
  const w = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
  w.on('error', () => {}); // no sh: the exit hook still covers the usual cases
  w.unref();
  return w;
}

/**
 * Resolves once the server logged "Server is ready" and a TCP client on `port` receives an INFO
 * line naming that server's id (not some other server that holds the port); rejects after
 * `deadline` or when the process exits.
 */
async function waitUntilReady(
  port: number,
  deadline: number,
  stderr: () => string,
  exited: () => string | undefined,
): Promise<void> {
  for (;;) {
    const why = exited();
    if (why !== undefined) throw new Error(why);
    const log = stderr();
    const id = /\bID:\s+(\S+)/.exec(log)?.[1];
    if (id !== undefined && log.includes('Server is ready')) {
      const info = await new Promise<string>((resolve) => {
        const s = net.connect({ port, host: '127.0.0.1' });
        let got = '';
        const done = (v: string) => {
          clearTimeout(t);
          s.destroy();
          resolve(v);
        };
        const t = setTimeout(() => done(got), 1000);
        s.on('data', (d) => {
          got += d.toString('latin1');
          if (got.includes('\n')) done(got);
        });
        s.once('error', () => done(''));
      });
      if (info.startsWith('INFO') && info.includes(id)) return;
    }
    if (Date.now() > deadline)
      throw new Error(`nats-server did not accept connections on 127.0.0.1:${port} in time:\n${log.trim()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const confString = (s: string) => JSON.stringify(s); // nats config accepts JSON-style quoted strings

/**
 * Starts `nats-server` on 127.0.0.1 and a free port (or `port`), waits until it accepts
 * connections, and returns its URL and a stop(). Throws a clear error if the binary is missing
 * or the server exits early (its stderr is included).
 */
export async function startNatsServer(opts: StartNatsServerOptions = {}): Promise<NatsServerHandle> {
  const bin = findNatsServer();
  installExitHook();
  const fixedPort = opts.port !== undefined && opts.port !== 0;
  const attempts = fixedPort ? 1 : 3; // a picked port can be taken by someone else before we bind it
  let lastErr: unknown;
  for (let i = 0; i < attempts; i++) {
    const port = fixedPort ? opts.port! : await freePort();
    try {
      return await startOn(bin, port, opts);
    } catch (e) {
      lastErr = e;
    }
  }
  throw lastErr;
}

async function startOn(bin: string, port: number, opts: StartNatsServerOptions): Promise<NatsServerHandle> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'decree-nats-'));
  const conf = [`listen: "127.0.0.1:${port}"`];
  if (opts.auth && 'token' in opts.auth) conf.push(`authorization { token: ${confString(opts.auth.token)} }`);
  else if (opts.auth)
    conf.push(`authorization { user: ${confString(opts.auth.user)}, password: ${confString(opts.auth.pass)} }`);
  const confFile = path.join(dir, 'nats.conf');
  writeFileSync(confFile, conf.join('\n') + '\n');

  const child = spawn(bin, ['-c', confFile, ...(opts.args ?? [])], { stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(child);
  const guard = child.pid !== undefined ? watchdog(child.pid, dir) : undefined;
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    if (stderr.length < 65_536) stderr += d; // the startup lines; later ones are not needed
  });
  let exit: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exit =
        `nats-server exited (code ${code}, signal ${signal}) before ` +
        `accepting connections on port ${port}:\n${stderr.trim()}`;
      live.delete(child);
      resolve();
    });
    child.once('error', (err) => {
      exit = `cannot run ${bin}: ${err.message}`;
      live.delete(child);
      resolve();
    });
  });

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (exit === undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    guard?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await waitUntilReady(
      port,
      Date.now() + (opts.startTimeoutMs ?? 15_000),
      () => stderr,
      () => exit,
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: `nats://127.0.0.1:${port}`, port, pid: child.pid!, stop };
}
