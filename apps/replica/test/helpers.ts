/**
 * Test helpers for real `decree start` processes: free ports, config files, spawning and killing
 * replica processes, a tiny RESP client with timeouts, DECREE STATUS polling.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect } from 'vitest';
import { ConfigError, parseConfig } from '../src/config.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { freePorts, respOnce, type RespValue } from '@decree/chaos';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const CLI = path.join(ROOT, 'apps/replica/src/cli.ts');
export const NODE_ARGS = ['--conditions=source', '--import', 'tsx'];

// ------------------------------------------------------------------ cleanup of children
const live = new Set<ChildProcess>();
const groups = new WeakSet<ChildProcess>();
let hook = false;
/**
 * Registers a child so it is SIGKILLed when this test process exits, whatever happens; with `group`
 * (a child spawned detached, so it leads its own process group) the whole group is killed.
 */
export function track(c: ChildProcess, opts: { group?: boolean } = {}): void {
  live.add(c);
  if (opts.group) groups.add(c);
  c.once('exit', () => live.delete(c));
  if (!hook) {
    hook = true;
    process.on('exit', () => {
      for (const x of live) killHard(x);
    });
  }
}
function killHard(c: ChildProcess): void {
  try {
    if (c.pid !== undefined && groups.has(c)) process.kill(-c.pid, 'SIGKILL');
    else c.kill('SIGKILL');
  } catch {
    /* gone */
  }
}
/** SIGKILLs every child still running (afterAll). */
export async function killAll(): Promise<void> {
  const cs = [...live];
  for (const c of cs) killHard(c);
  await Promise.all(cs.map((c) => exitOf(c, 10_000).catch(() => undefined)));
}

export function exitOf(
  c: ChildProcess,
  timeoutMs: number,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve({ code: c.exitCode, signal: c.signalCode });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`process ${c.pid} did not exit within ${timeoutMs} ms`)), timeoutMs);
    c.once('exit', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal });
    });
  });
}

// ------------------------------------------------------------------ ports, dirs, polling
/** n distinct ports that were free a moment ago on 127.0.0.1 */
export { freePorts };

export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), `decree-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Polls `fn` until it returns something other than undefined/false;
 * throws `what` + the last value/error after timeoutMs.
 */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  everyMs = 100,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what} (last: ` +
          `${last instanceof Error ? last.message : JSON.stringify(last)})`,
      );
    await sleep(everyMs);
  }
}

/**
 * Runs an IDEMPOTENT command (GET/MGET, a SET of a fixed value, a config read) until it is answered
 * without an error, and returns that answer. On a loaded machine leadership can move at any time (a
 * starved process misses heartbeats), so a command right after a leader change, kill or restart may
 * be answered TRYAGAIN or time out; repeating such a command cannot change what the test checks.
 * Never for INCR & co: a failed INCR is in doubt (it may have executed), see load.ts.
 * `fn` may throw or resolve to an Error (resp() returns error replies as RespError values).
 */
export function idempotent<T>(what: string, fn: () => Promise<T>, timeoutMs = 20_000): Promise<T> {
  return waitFor(
    what,
    async () => {
      const v = await fn();
      if (v instanceof Error) throw v;
      return v;
    },
    timeoutMs,
    200,
  );
}

// ------------------------------------------------------------------ RESP: the chaos harness's client
export { RespConnection as RespClient, RespError, type RespValue } from '@decree/chaos';

/** One command on a fresh connection. */
export function resp(port: number, args: (string | number)[], timeoutMs = 5000): Promise<RespValue> {
  return respOnce(port, args, timeoutMs);
}

export interface Status {
  id: string;
  role: 'leader' | 'candidate' | 'follower';
  leader: string | undefined;
  executedUpTo: number;
  chosenUpTo: number;
  ballot: { round: number; leader: string };
}

/** DECREE STATUS of the replica on `port`, or undefined when it does not answer. */
export async function status(port: number): Promise<Status | undefined> {
  try {
    const v = await resp(port, ['DECREE', 'STATUS'], 2000);
    return typeof v === 'string' ? (JSON.parse(v) as Status) : undefined;
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------------ config files
export interface ReplicaAddr {
  id: string;
  port: number;
  clientPort: number;
}

export async function writeClusterConfig(
  dir: string,
  extra: Record<string, unknown> = {},
  ids: string[] = ['r1', 'r2', 'r3'],
): Promise<{ configPath: string; replicas: ReplicaAddr[] }> {
  const ports = await freePorts(ids.length * 2);
  const replicas = ids.map((id, i) => ({ id, port: ports[2 * i]!, clientPort: ports[2 * i + 1]! }));
  const cfg = {
    cluster: `t${process.pid}`,
    dataDir: path.join(dir, 'data'),
    storage: 'wal',
    transport: 'tcp',
    election: { minMs: 800, maxMs: 1600, heartbeatMs: 100 },
    replicas: replicas.map((r) => ({ ...r, host: '127.0.0.1' })),
    ...extra,
  };
  const configPath = path.join(dir, 'cluster.json');
  writeFileSync(configPath, JSON.stringify(cfg, null, 2));
  return { configPath, replicas };
}

// ------------------------------------------------------------------ replica processes
export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** One `decree start` process; its stdout JSON lines are parsed into `logs`. */
export class ReplicaProcess {
  readonly logs: LogLine[] = [];
  stdout = '';
  stderr = '';
  readonly child: ChildProcess;
  private listeners: (() => void)[] = [];

  constructor(
    readonly id: string,
    configPath: string,
    extraArgs: string[] = [],
  ) {
    const child = spawn(
      process.execPath,
      [...NODE_ARGS, CLI, 'start', '--config', configPath, '--id', id, ...extraArgs],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, DECREE_CONTRACTS: '1' },
      },
    );
    this.child = child;
    track(child);
    let partial = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      this.stdout += d;
      partial += d;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          /* not JSON */
        }
      }
      for (const l of this.listeners) l();
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      this.stderr += d;
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the first log line (from the start) matching `pred`. */
  waitLog(pred: (l: LogLine) => boolean, timeoutMs = 30_000): Promise<LogLine> {
    return waitFor(
      `${this.id}: log line (stdout so far: ${this.stdout.slice(-500)} stderr: ${this.stderr.slice(-500)})`,
      () => {
        if (!this.running && !this.logs.some(pred))
          throw new Error(
            `${this.id} exited (${this.child.exitCode ?? this.child.signalCode}): ${this.stderr.slice(-1000)}`,
          );
        return this.logs.find(pred);
      },
      timeoutMs,
      50,
    );
  }

  /** Waits for the "replica started" line; returns the client address it printed. */
  async started(timeoutMs = 30_000): Promise<string> {
    const l = await this.waitLog((x) => x.msg === 'replica started', timeoutMs);
    return l.client as string;
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  exited(timeoutMs = 15_000) {
    return exitOf(this.child, timeoutMs);
  }
}

/** A cluster described by one config file; processes are (re)started by id. */
export class Cluster {
  readonly procs = new Map<string, ReplicaProcess>();
  constructor(
    readonly configPath: string,
    readonly replicas: ReplicaAddr[],
  ) {}

  port(id: string): number {
    return this.replicas.find((r) => r.id === id)!.clientPort;
  }

  start(id: string): ReplicaProcess {
    const old = this.procs.get(id);
    if (old?.running) throw new Error(`${id} is already running`);
    const p = new ReplicaProcess(id, this.configPath);
    this.procs.set(id, p);
    return p;
  }

  async startAll(): Promise<void> {
    const ps = this.replicas.map((r) => this.start(r.id));
    await Promise.all(ps.map((p) => p.started(45_000)));
  }

  liveIds(): string[] {
    return this.replicas.map((r) => r.id).filter((id) => this.procs.get(id)?.running);
  }

  async kill9(id: string): Promise<void> {
    const p = this.procs.get(id)!;
    p.kill('SIGKILL');
    await p.exited();
  }

  async statuses(ids = this.liveIds()): Promise<Map<string, Status | undefined>> {
    const all = await Promise.all(ids.map(async (id) => [id, await status(this.port(id))] as const));
    return new Map(all);
  }

  /** Waits until every live replica (or `ids`) names the same live leader, which says it leads. */
  async leader(timeoutMs = 30_000, ids?: string[]): Promise<string> {
    return waitFor(
      'a leader all live replicas agree on',
      async () => {
        const want = ids ?? this.liveIds();
        const st = await this.statuses(want);
        const leaders = new Set([...st.values()].map((s) => s?.leader));
        if (leaders.size !== 1) return undefined;
        const l = [...leaders][0];
        if (!l || !want.includes(l) || st.get(l)?.role !== 'leader') return undefined;
        return l;
      },
      timeoutMs,
      100,
    );
  }

  /**
   * Waits until every replica in `ids` has executed everything chosen so far: a leader is agreed on,
   * a linearizable read through it takes a slot after every earlier write (so the leader has executed
   * them all), then every replica reaches the leader's executedUpTo. Returns that slot.
   * (Equal executedUpTo alone is not enough: three freshly restarted replicas all report 0.)
   */
  async caughtUp(ids = this.liveIds(), timeoutMs = 45_000): Promise<number> {
    const target = await waitFor(
      'a linearizable read through the leader',
      async () => {
        const leader = await this.leader(timeoutMs, ids);
        const v = await resp(this.port(leader), ['GET', '__caught_up__'], 8000);
        if (v instanceof Error) return undefined;
        return (await status(this.port(leader)))?.executedUpTo;
      },
      timeoutMs,
      200,
    );
    await waitFor(
      `replicas ${ids.join(',')} to execute slot ${target}`,
      async () => [...(await this.statuses(ids)).values()].every((s) => s !== undefined && s.executedUpTo >= target),
      timeoutMs,
      100,
    );
    return target;
  }

  /** Waits until every replica in `ids` has executed the same slot (nothing is being written). */
  async converged(ids = this.liveIds(), timeoutMs = 30_000): Promise<number> {
    return waitFor(
      `replicas ${ids.join(',')} to execute the same slots`,
      async () => {
        const st = await this.statuses(ids);
        const ex = [...st.values()].map((s) => s?.executedUpTo);
        if (ex.some((e) => e === undefined)) return undefined;
        return new Set(ex).size === 1 ? ex[0] : undefined;
      },
      timeoutMs,
      100,
    );
  }

  async stopAll(): Promise<void> {
    for (const p of this.procs.values()) if (p.running) p.kill('SIGKILL');
    await Promise.all([...this.procs.values()].map((p) => p.exited().catch(() => undefined)));
  }
}

// ------------------------------------------------------------------ the decree command, a started cluster
/** Runs `decree <args>` to completion; rejects (with code, stdout, stderr) on a non-zero exit. */
export function decree(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, [...NODE_ARGS, CLI, ...args], { cwd: ROOT, timeout: 120_000 });
}

/**
 * A cluster config in a temp dir and its processes started before the file's tests (killed and
 * removed after them): `fixture.cluster`, `fixture.configPath`.
 */
export function startedCluster(
  prefix: string,
  extra: Record<string, unknown> = {},
  ids?: string[],
): { cluster: Cluster; configPath: string } {
  const tmp = tempDir(prefix);
  const fixture = {} as { cluster: Cluster; configPath: string };
  beforeAll(async () => {
    const w = await writeClusterConfig(tmp.dir, extra, ids);
    fixture.configPath = w.configPath;
    fixture.cluster = new Cluster(w.configPath, w.replicas);
    await fixture.cluster.startAll();
  }, 90_000);
  afterAll(async () => {
    await killAll();
    tmp.remove();
  });
  return fixture;
}

/** The one-line issues parseConfig reports for `raw` (none: []). */
export function issuesOf(raw: unknown): string[] {
  try {
    parseConfig(raw, 'c.json');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).issues;
  }
  return [];
}

export function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A base port such that base, base+1, base+2 are all free right now. */
export async function freeRun(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    if ((await canListen(base)) && (await canListen(base + 1)) && (await canListen(base + 2))) return base;
  }
  throw new Error('no run of 3 free ports');
}

/** A command repeated until it is answered without an error (IDEMPOTENT commands only: GET, a fixed SET). */
export async function settledWithin(timeoutMs: number, port: number, args: string[]) {
  return waitFor(
    `${args.join(' ')} on ${port}`,
    async () => {
      const v = await resp(port, args, 8000);
      return v instanceof Error ? undefined : v;
    },
    timeoutMs,
    200,
  );
}
