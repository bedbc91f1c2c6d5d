import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync, type WriteStream } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LinkProxy, type CutMode } from './proxy.ts';
import { RespConnection, RespError, respOnce } from './resp.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = path.join(ROOT, 'apps/replica/src/cli.ts');
/** the V8 flags a replica process runs with (apps/replica/node-flags.json says why) */
export const REPLICA_NODE_FLAGS: readonly string[] = JSON.parse(
  readFileSync(path.join(ROOT, 'apps/replica/node-flags.json'), 'utf8'),
).flags;
const NODE_ARGS = [...REPLICA_NODE_FLAGS, '--conditions=source', '--import', 'tsx'];

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** n distinct loopback ports that were free a moment ago (held together, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const s = net.createServer();
          s.on('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

export interface ReplicaStatus {
  id: string;
  role: string;
  leader: string | undefined;
  executedUpTo: number;
  chosenUpTo?: number;
  /** the configuration this replica runs (absent on old servers) */
  members?: string[];
}

/** Every child process any ChaosCluster started: SIGKILLed on exit of the harness, whatever happens. */
const liveChildren = new Set<ChildProcess>();
let exitHook = false;
function track(c: ChildProcess): void {
  liveChildren.add(c);
  c.once('exit', () => liveChildren.delete(c));
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const x of liveChildren) x.kill('SIGKILL');
    });
  }
}

/** SIGKILLs every replica process any ChaosCluster of this process started and waits for them (test afterAll). */
export async function killAllChildren(): Promise<void> {
  const cs = [...liveChildren];
  await Promise.all(
    cs.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const t = setTimeout(resolve, 10_000);
          c.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          c.kill('SIGKILL');
        }),
    ),
  );
}

/** One replica process (one incarnation of one replica id). */
export class ReplicaProcess {
  readonly child: ChildProcess;
  private startedFlag = false;
  private startedWaiters: (() => void)[] = [];
  stderrTail = '';
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly id: string,
    configPath: string,
    log: WriteStream,
  ) {
    const child = spawn(process.execPath, [...NODE_ARGS, CLI, 'start', '--config', configPath, '--id', id], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DECREE_CONTRACTS: process.env.DECREE_CONTRACTS ?? '1' },
    });
    this.child = child;
    track(child);
    this.exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    let partial = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      log.write(d);
      if (this.startedFlag) return;
      partial += d;
      if (partial.includes('"replica started"')) {
        this.startedFlag = true;
        partial = '';
        for (const w of this.startedWaiters.splice(0)) w();
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      log.write(d);
      this.stderrTail = (this.stderrTail + d).slice(-2000);
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves once the process logged "replica started"; rejects if it exits first or on timeout. */
  started(timeoutMs: number): Promise<void> {
    if (this.startedFlag) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`${this.id} did not start within ${timeoutMs} ms: ${this.stderrTail}`)),
        timeoutMs,
      );
      this.startedWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
      void this.exit.then(({ code, signal }) => {
        clearTimeout(t);
        reject(new Error(`${this.id} exited (${code ?? signal}) before starting: ${this.stderrTail}`));
      });
    });
  }

  /** Sends `signal` and waits for the exit; SIGKILL after `graceMs` if it is still running. */
  async stop(
    signal: NodeJS.Signals,
    graceMs = 15_000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.running) return this.exit;
    this.child.kill(signal);
    const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    try {
      return await this.exit;
    } finally {
      clearTimeout(t);
    }
  }
}

export interface ChaosClusterOptions {
  /** run directory: configs, data, logs go under it */
  dir: string;
  ids?: string[];
  /** how new connections to a cut link are treated (default: refuse) */
  log?: (msg: string) => void;
  /** election timeouts in the configs (default {minMs: 300, maxMs: 600, heartbeatMs: 50});
   *  null: none, the replicas' defaults */
  election?: { minMs: number; maxMs: number; heartbeatMs: number } | null;
  /** a harness-side proxy on every replica link (default true); false: replicas dial each other (no cuts) */
  proxies?: boolean;
  /** the initial configuration (default: every id); the others start as spares outside it */
  members?: string[];
  /** the config file's `batching` section (e.g. a small maxInflightSlots, so that the proposer's queue fills) */
  batching?: { maxInflightSlots?: number; maxBatchCmds?: number };
}

interface Addr {
  id: string;
  /** real replica-to-replica listen port */
  port: number;
  clientPort: number;
}

/**
 * A 3-replica `decree` cluster of real processes with a harness-side TCP proxy on every directed
 * replica-to-replica link. Process `a` gets its own config in which every other replica `b` has
 * `port` = the proxy of link a→b, so every connection `a` dials to `b` passes through it.
 */
export class ChaosCluster {
  readonly ids: string[];
  readonly addrs = new Map<string, Addr>();
  /** key `${from}>${to}` */
  readonly proxies = new Map<string, LinkProxy>();
  readonly procs = new Map<string, ReplicaProcess>();
  readonly configPaths = new Map<string, string>();
  readonly dataDir: string;
  readonly logDir: string;
  private readonly logs = new Map<string, WriteStream>();
  private readonly say: (msg: string) => void;

  constructor(readonly o: ChaosClusterOptions) {
    this.ids = o.ids ?? ['r1', 'r2', 'r3'];
    this.dataDir = path.join(o.dir, 'data');
    this.logDir = path.join(o.dir, 'logs');
    this.say = o.log ?? (() => undefined);
  }

  /** Picks ports, starts the proxies, writes one config file per process. */
  async prepare(): Promise<void> {
    mkdirSync(this.dataDir, { recursive: true });
    mkdirSync(this.logDir, { recursive: true });
    const n = this.ids.length;
    const proxied = this.o.proxies ?? true;
    const ports = await freePorts(2 * n + (proxied ? n * (n - 1) : 0));
    let p = 0;
    for (const id of this.ids) this.addrs.set(id, { id, port: ports[p++]!, clientPort: ports[p++]! });
    if (proxied)
      for (const from of this.ids)
        for (const to of this.ids) {
          if (from === to) continue;
          const proxy = new LinkProxy(from, to, ports[p++]!, this.addrs.get(to)!.port);
          await proxy.listen();
          this.proxies.set(`${from}>${to}`, proxy);
        }
    const election = this.o.election === undefined ? { minMs: 300, maxMs: 600, heartbeatMs: 50 } : this.o.election;
    for (const self of this.ids) {
      const cfg = {
        cluster: `chaos${process.pid}`,
        dataDir: this.dataDir,
        storage: 'wal',
        transport: 'tcp',
        ...(election ? { election } : {}),
        ...(this.o.members ? { members: this.o.members } : {}),
        ...(this.o.batching ? { batching: this.o.batching } : {}),
        replicas: this.ids.map((id) => {
          const a = this.addrs.get(id)!;
          const port = id === self || !proxied ? a.port : this.proxies.get(`${self}>${id}`)!.listenPort;
          return { id, host: '127.0.0.1', port, clientPort: a.clientPort };
        }),
      };
      const file = path.join(this.o.dir, `cluster-${self}.json`);
      writeFileSync(file, JSON.stringify(cfg, null, 2));
      this.configPaths.set(self, file);
      this.logs.set(self, createWriteStream(path.join(this.logDir, `${self}.log`), { flags: 'a' }));
    }
  }

  clientPort(id: string): number {
    return this.addrs.get(id)!.clientPort;
  }

  isRunning(id: string): boolean {
    return this.procs.get(id)?.running ?? false;
  }

  /** Starts (or restarts, with the same data dir) replica `id` and waits for "replica started". */
  async start(id: string, timeoutMs = 60_000): Promise<void> {
    if (this.isRunning(id)) throw new Error(`${id} is already running`);
    this.logs.get(id)!.write(`--- harness: starting ${id} at ${new Date().toISOString()}\n`);
    // the client port of a just-killed incarnation can take a moment to be free again: retry a few times
    for (let attempt = 1; ; attempt++) {
      const p = new ReplicaProcess(id, this.configPaths.get(id)!, this.logs.get(id)!);
      this.procs.set(id, p);
      try {
        await p.started(timeoutMs);
        return;
      } catch (e) {
        await p.stop('SIGKILL');
        if (attempt >= 3 || !/address in use/i.test((e as Error).message)) throw e;
        this.say(`${id}: address in use on restart, retrying`);
        await sleep(500 * attempt);
      }
    }
  }

  async startAll(timeoutMs = 90_000): Promise<void> {
    await Promise.all(this.ids.map((id) => this.start(id, timeoutMs)));
  }

  async stop(id: string, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const p = this.procs.get(id);
    if (!p) return { code: null, signal: null };
    this.logs.get(id)!.write(`--- harness: ${signal} to ${id} at ${new Date().toISOString()}\n`);
    return p.stop(signal);
  }

  /** Sends `signal` without waiting for an exit (SIGSTOP, SIGCONT); false when `id` is not running. */
  signal(id: string, signal: NodeJS.Signals): boolean {
    const p = this.procs.get(id);
    if (!p?.running) return false;
    this.logs.get(id)!.write(`--- harness: ${signal} to ${id} at ${new Date().toISOString()}\n`);
    return p.child.kill(signal);
  }

  /** Cuts the links between a and b (both directions, or only a→b when `oneWay`). */
  cutLink(a: string, b: string, mode: CutMode, oneWay = false): void {
    this.proxies.get(`${a}>${b}`)!.cut(mode);
    if (!oneWay) this.proxies.get(`${b}>${a}`)!.cut(mode);
  }

  /** Cuts every link to and from `id`. */
  isolate(id: string, mode: CutMode): void {
    for (const p of this.proxies.values()) if (p.from === id || p.to === id) p.cut(mode);
  }

  /** Cuts every link into `id`: it still sends (accepts, heartbeats reach the others) but hears nobody. */
  deafen(id: string, mode: CutMode): void {
    for (const p of this.proxies.values()) if (p.to === id) p.cut(mode);
  }

  healAll(): void {
    for (const p of this.proxies.values()) p.restore();
  }

  async status(id: string, timeoutMs = 2000): Promise<ReplicaStatus | undefined> {
    try {
      const v = await respOnce(this.clientPort(id), ['DECREE', 'STATUS'], timeoutMs);
      return typeof v === 'string' ? (JSON.parse(v) as ReplicaStatus) : undefined;
    } catch {
      return undefined;
    }
  }

  async statuses(): Promise<Map<string, ReplicaStatus | undefined>> {
    return new Map(await Promise.all(this.ids.map(async (id) => [id, await this.status(id)] as const)));
  }

  /** A leader every replica (of `among`, default all) names, which says it leads; undefined on timeout. */
  async waitLeader(timeoutMs: number, among?: () => readonly string[]): Promise<string | undefined> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const st = await this.statuses();
      const ids = among?.() ?? this.ids;
      const leaders = new Set(ids.map((id) => st.get(id)?.leader));
      const l = [...leaders][0];
      if (leaders.size === 1 && l && st.get(l)?.role === 'leader') return l;
      await sleep(200);
    }
    return undefined;
  }

  /**
   * Waits until every replica (of `among`, default all) reports the same executedUpTo, twice in a row;
   * returns it, or the last statuses on timeout.
   */
  async waitConverged(
    timeoutMs: number,
    among?: readonly string[],
  ): Promise<{ ok: true; executedUpTo: number } | { ok: false; executed: Record<string, number | undefined> }> {
    const end = Date.now() + timeoutMs;
    let prev: number | undefined;
    let executed: Record<string, number | undefined> = {};
    while (Date.now() < end) {
      const st = await this.statuses();
      const asked = [...st].filter(([id]) => !among || among.includes(id));
      executed = Object.fromEntries(asked.map(([id, s]) => [id, s?.executedUpTo]));
      const vals = Object.values(executed);
      if (vals.every((v) => v !== undefined) && new Set(vals).size === 1) {
        if (prev === vals[0]) return { ok: true, executedUpTo: prev! };
        prev = vals[0];
      } else prev = undefined;
      await sleep(300);
    }
    return { ok: false, executed };
  }

  /** READONLY GET of each key on replica `id` (its local state). */
  async readLocal(id: string, keys: readonly string[]): Promise<Record<string, string | null>> {
    const c = await RespConnection.connect(this.clientPort(id), '127.0.0.1', 5000);
    try {
      const ro = await c.call(['READONLY'], 5000);
      if (ro instanceof RespError) throw ro;
      const out: Record<string, string | null> = {};
      for (const k of keys) {
        const v = await c.call(['GET', k], 5000);
        if (v instanceof RespError) throw v;
        out[k] = v as string | null;
      }
      return out;
    } finally {
      c.close();
    }
  }

  /** SIGKILLs every process, closes the proxies and the log files. */
  async shutdown(): Promise<void> {
    await Promise.all([...this.procs.values()].map((p) => p.stop('SIGKILL')));
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
    await Promise.all([...this.logs.values()].map((l) => new Promise<void>((r) => l.end(() => r()))));
  }
}
