import { KvCommands, KvMachine } from '@decree/kv-machine';
import type { StateMachine } from '@decree/protocol';
import { LocalCluster } from '@decree/testkit';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileWalStore } from '@decree/storage';
import type { AcceptorStore } from '@decree/protocol';
import { type BenchRow, Latency, cpuSeconds } from './stats.ts';
import { StageTracker, type StageRow } from './stages.ts';

export type InProcessRow = BenchRow & { stages?: StageRow[] };

/** Stores for an in-process cluster: memory (default) or a file WAL per replica in a temporary directory. */
function storesFor(
  kind: 'memory' | 'wal' | undefined,
  sync?: 'dsync' | 'fdatasync',
): { makeStore?: (id: string) => AcceptorStore; cleanup: () => void } {
  if (kind !== 'wal') return { cleanup: () => {} };
  const dir = mkdtempSync(join(tmpdir(), 'decree-inproc-'));
  const makeStore = (id: string) => new FileWalStore({ dir: join(dir, id), ...(sync ? { sync } : {}) });
  return { makeStore, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface InProcessOptions {
  seconds?: number;
  /** concurrent pipelined clients */
  clients?: number;
  /** commands each client sends per round trip (its pipeline) */
  pipeline?: number;
  valueBytes?: number;
  maxInflightSlots?: number;
  maxBatchCmds?: number;
  /** 'noop': a state machine that does nothing (the engine's own cost); default the KV machine */
  machine?: 'kv' | 'noop';
  /**
   * called once the leader is known, before the warm-up (e.g.
   * instrumentBus); the returned function runs after the measurement
   */
  instrument?: Instrument;
  /** the row's name (default: describes the load) */
  name?: string;
  /** acceptor stores: memory (default) or a file WAL each */
  store?: 'memory' | 'wal';
  /** measure latency by stage (a bus tap; costs a little throughput) */
  stages?: boolean;
}

/** Attaches something to the cluster's (shared) bus once the leader is known; returns its undo. */
export type Instrument = (bus: LocalCluster<StateMachine>['bus'], leaderId: string) => () => void;

const OK = new Uint8Array([1]);
/** Applies nothing: isolates the engine's own cost per command. */
class NoopMachine {
  apply(): Uint8Array {
    return OK;
  }
  async snapshot(): Promise<Uint8Array> {
    return new Uint8Array(0);
  }
  async restore(): Promise<void> {}
}

/** 64-byte SET commands (key + value) for the KV state machine. */
export function makeSetCommands(n: number, valueBytes = 48): Uint8Array[] {
  const value = new Uint8Array(valueBytes).fill(0x61);
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) out.push(KvCommands.set(`key:${(i % 100_000).toString().padStart(8, '0')}`, value));
  return out;
}

/**
 * Election timeouts long enough that a loaded machine (a GC pause, other jobs on the cores) does not
 * change the leader mid-run: in one process nothing fails, so fail-over speed is not measured here.
 */

/** An in-process 3-replica cluster (one bus, memory stores) applying SETs to the KV state machine. */
export async function inProcessBench(o: InProcessOptions = {}): Promise<InProcessRow> {
  const seconds = o.seconds ?? 5;
  const clients = o.clients ?? 8;
  const pipeline = o.pipeline ?? 1024;
  const stores = storesFor(o.store);
  const cluster = await new LocalCluster({
    n: 3,
    ...(stores.makeStore ? { makeStore: stores.makeStore } : {}),
    makeStateMachine: () => (o.machine === 'noop' ? new NoopMachine() : new KvMachine()),
    options: {
      proposer: { maxInflightSlots: o.maxInflightSlots ?? 16, maxBatchCmds: o.maxBatchCmds ?? 8192 },
      learner: { retainSlots: 1024 },
    },
    steady: true,
  }).start();
  const leader = await cluster.waitForLeader();
  const undo = o.instrument?.(cluster.bus, leader.id);
  const cmds = makeSetCommands(pipeline * clients, o.valueBytes ?? 48);
  const cmdBytes = cmds[0]!.length;
  const lat = new Latency();
  let ops = 0;
  let stop = false;
  // warm-up
  await leader.submitBatch(cmds.slice(0, pipeline));
  const tracker = o.stages ? new StageTracker(leader.id).attach(cluster.bus) : undefined;
  const cpu0 = cpuSeconds();
  const t0 = performance.now();
  const client = async (c: number) => {
    const mine = cmds.slice(c * pipeline, (c + 1) * pipeline);
    while (!stop) {
      const s = performance.now();
      const b = tracker?.received(mine.length);
      await leader.submitBatch(mine);
      if (b) tracker!.replied(b);
      lat.record(performance.now() - s, mine.length);
      ops += mine.length;
    }
  };
  const timer = setTimeout(() => (stop = true), seconds * 1000);
  await Promise.all(Array.from({ length: clients }, (_, c) => client(c)));
  clearTimeout(timer);
  const secs = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds() - cpu0;
  undo?.();
  tracker?.detach();
  await cluster.stop();
  stores.cleanup();
  const where = o.store === 'wal' ? 'file WAL' : 'memory stores';
  return {
    group: 'engine',
    ...(tracker ? { stages: tracker.rows() } : {}),
    name:
      o.name ??
      (o.machine === 'noop'
        ? `in-process engine alone (no-op state machine), 3 replicas, ${where}, ${clients}×${pipeline} pipelined`
        : `in-process engine, 3 replicas, ${where}, ${cmdBytes}-byte SET, ${clients}×${pipeline} ` +
          `pipelined${tracker ? ', stage tap on' : ''}`),
    ops,
    seconds: secs,
    opsPerSec: ops / secs,
    p50ms: lat.pct(50),
    p99ms: lat.pct(99),
    p999ms: lat.pct(99.9),
    cpuSecPerMillion: (cpu / ops) * 1e6,
    note: 'latency = one pipelined batch round trip',
  };
}

/** One client, one command at a time: the latency floor of the in-process engine. */
export async function inProcessLatencyBench(
  o: {
    seconds?: number;
    instrument?: Instrument;
    name?: string;
    store?: 'memory' | 'wal';
    stages?: boolean;
    /** the WAL's sync mode (store 'wal') */
    walSync?: 'dsync' | 'fdatasync';
  } = {},
): Promise<InProcessRow> {
  const seconds = o.seconds ?? 2;
  const stores = storesFor(o.store, o.walSync);
  const cluster = await new LocalCluster({
    n: 3,
    ...(stores.makeStore ? { makeStore: stores.makeStore } : {}),
    makeStateMachine: () => new KvMachine(),
    options: { learner: { retainSlots: 1024 } },
    steady: true,
  }).start();
  const leader = await cluster.waitForLeader();
  const undo = o.instrument?.(cluster.bus, leader.id);
  const cmds = makeSetCommands(1000);
  for (let i = 0; i < 100; i++) await leader.submit(cmds[i]!); // warm-up
  const tracker = o.stages ? new StageTracker(leader.id).attach(cluster.bus) : undefined;
  const lat = new Latency();
  let ops = 0;
  const cpu0 = cpuSeconds();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    const s = performance.now();
    const b = tracker?.received(1);
    await leader.submit(cmds[ops % cmds.length]!);
    if (b) tracker!.replied(b);
    lat.record(performance.now() - s);
    ops++;
  }
  const secs = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds() - cpu0;
  undo?.();
  tracker?.detach();
  await cluster.stop();
  stores.cleanup();
  return {
    group: 'engine',
    ...(tracker ? { stages: tracker.rows() } : {}),
    name:
      o.name ??
      `in-process engine, 3 replicas, ${o.store === 'wal' ? 'file WAL' : 'memory stores'}, 1 client, no ` +
        `pipelining${tracker ? ', stage tap on' : ''}`,
    ops,
    seconds: secs,
    opsPerSec: ops / secs,
    p50ms: lat.pct(50),
    p99ms: lat.pct(99),
    p999ms: lat.pct(99.9),
    cpuSecPerMillion: (cpu / ops) * 1e6,
  };
}
