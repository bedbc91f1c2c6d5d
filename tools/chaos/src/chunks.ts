/**
 * The chunks workload (`npm run chaos -- --workload chunks`, issue #17): pipelined chunks that span
 * several slots (300 KB SETs mixed with INCRs) sent to the leader and to followers while the leader
 * is killed, paused or cut off; recorded linearizable reads while the configuration changes; the
 * counters checked (distinct acknowledged results, final ≤ acknowledged + in doubt) and the history
 * checked by lincheck. Clients are ioredis with every retry off.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HistoryRecorder, checkHistory, type CheckResult } from '@decree/lincheck';
import {
  DEFAULT_CHUNK_SHAPE,
  bigKey,
  newChunkStats,
  runChunkWriter,
  smallKey,
  type ChunkShape,
  type ChunkStats,
} from './chunk-writer.ts';
import { ChaosCluster, sleep } from './cluster.ts';
import { CounterLedger, type CounterCheck } from './counters.ts';
import { ALL_FAULT_KINDS, runFaults, type FaultEvent, type FaultKind } from './faults.ts';
import { LeaderTracker } from './leader.ts';
import { newRecordedStats, runRecordedClient, type RecordedStats } from './recorded.ts';
import { runReconfig, type ConfigChange } from './reconfig.ts';
import { RespConnection, RespError } from './resp.ts';
import { Rng } from './rng.ts';

export const CHUNK_FAULT_KINDS: readonly FaultKind[] = ['kill9', 'pause', 'deafen', 'isolate'];

export interface ChunksOptions {
  /** how long faults and configuration changes run (ms); the first round of fault kinds always completes */
  durationMs: number;
  seed?: number;
  out?: string;
  dir?: string;
  keep?: boolean;
  log?: (line: string) => void;
  /** pipelining writers (default 3) */
  writers?: number;
  /** share of the pipelines aimed at the leader (default 0.6) */
  toLeader?: number;
  shape?: Partial<ChunkShape>;
  /** a pipeline not fully answered within this is given up, its rest in doubt (default 15,000 ms) */
  pipelineTimeoutMs?: number;
  /** recorded one-op-at-a-time clients (default 3) */
  clients?: number;
  opTimeoutMs?: number;
  /** recorded keys rotate this often (default 15,000 ms) */
  epochMs?: number;
  /** default kill9, pause, deafen, isolate */
  faultKinds?: readonly FaultKind[];
  gapMs?: [number, number];
  holdMs?: [number, number];
  /** share of the faults aimed at the leader (default 0.75) */
  leaderShare?: number;
  /** run configuration changes (default true) */
  configChanges?: boolean;
  configGapMs?: [number, number];
  configTimeoutMs?: number;
  checkTimeoutMs?: number;
  healTimeoutMs?: number;
  finalReadTimeoutMs?: number;
  /** election timeouts of the replicas (default the chaos cluster's {300, 600, 50}); null: the replicas' defaults */
  election?: { minMs: number; maxMs: number; heartbeatMs: number } | null;
  /**
   * the leader's pipeline window (`batching.maxInflightSlots`, default 4; the engine's default is 16):
   * small, so the proposer's queue fills and a chunk straddles slots in flight and slots still queued
   */
  inflightSlots?: number;
}

export interface ChunksReport {
  workload: 'chunks';
  seed: number;
  dir: string;
  historyPath: string;
  elapsedMs: number;
  writers: number;
  shape: ChunkShape;
  inflightSlots: number;
  chunks: ChunkStats;
  recorded: RecordedStats;
  /** history length (recorded ops + final reads) */
  ops: number;
  /** recorded GETs whose interval overlapped a configuration change (answered: with a reply) */
  readsDuringChanges: { total: number; answered: number };
  faults: FaultEvent[];
  faultCounts: Partial<Record<FaultKind, number>>;
  changes: ConfigChange[];
  counters: CounterCheck;
  incrs: { sent: number; acked: number; inDoubt: number };
  check: CheckResult;
  members: string[];
  converged: boolean;
  executedUpTo?: number;
  executed?: Record<string, number | undefined>;
  stateEqual: boolean;
  stateKeys: number;
  problems: string[];
  verdict: 'PASS' | 'FAIL';
}

/** MGET of `keys` through the cluster (linearizable), each batch retried at random replicas until `deadline`. */
async function readAll(
  keys: readonly string[],
  ports: () => number[],
  rng: Rng,
  deadline: number,
): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>();
  for (let i = 0; i < keys.length; i += 200) {
    const batch = keys.slice(i, i + 200);
    while (Date.now() < deadline) {
      try {
        const c = await RespConnection.connect(rng.pick(ports()), '127.0.0.1', 3000);
        try {
          const v = await c.call(['MGET', ...batch], 10_000);
          if (v instanceof RespError || !Array.isArray(v) || v.length !== batch.length) throw new Error(String(v));
          batch.forEach((k, j) => out.set(k, v[j] as string | null));
          break;
        } finally {
          c.close();
        }
      } catch {
        await sleep(300);
      }
    }
  }
  return out;
}

/** READONLY MGET of `keys` on one replica; long values are replaced by their digest. */
async function readLocalDigest(port: number, keys: readonly string[]): Promise<Map<string, string | null>> {
  const c = await RespConnection.connect(port, '127.0.0.1', 5000);
  try {
    const ro = await c.call(['READONLY'], 5000);
    if (ro instanceof RespError) throw ro;
    const out = new Map<string, string | null>();
    for (let i = 0; i < keys.length; i += 100) {
      const batch = keys.slice(i, i + 100);
      const v = await c.call(['MGET', ...batch], 10_000);
      if (!Array.isArray(v) || v.length !== batch.length) throw new Error(`MGET on port ${port}: ${String(v)}`);
      batch.forEach((k, j) => {
        const x = v[j] as string | null;
        out.set(k, x !== null && x.length > 64 ? `sha1:${createHash('sha1').update(x).digest('hex')}` : x);
      });
    }
    return out;
  } finally {
    c.close();
  }
}

export async function runChunks(o: ChunksOptions): Promise<ChunksReport> {
  const seed = (o.seed ?? Date.now()) >>> 0;
  const rng = new Rng(seed);
  const shape: ChunkShape = { ...DEFAULT_CHUNK_SHAPE, ...o.shape };
  const writers = o.writers ?? 3;
  const dir = o.dir ?? mkdtempSync(path.join(os.tmpdir(), 'decree-chaos-chunks-'));
  mkdirSync(dir, { recursive: true });
  const historyPath = path.resolve(o.out ?? path.join(dir, 'history.jsonl'));
  const runStart = Date.now();
  const say = (m: string) => o.log?.(`[chaos +${((Date.now() - runStart) / 1000).toFixed(1)}s] ${m}`);
  const problems: string[] = [];
  const ids = ['r1', 'r2', 'r3', 'r4'];
  const initial = ['r1', 'r2', 'r3'];
  const cluster = new ChaosCluster({
    dir,
    log: say,
    ids,
    members: initial,
    batching: { maxInflightSlots: o.inflightSlots ?? 4 },
    ...(o.election !== undefined ? { election: o.election } : {}),
  });
  const tracker = new LeaderTracker(cluster, initial);
  const recorder = new HistoryRecorder();
  const ledger = new CounterLedger();
  const chunks = newChunkStats();
  const recorded = newRecordedStats();
  const touched = new Set<string>();
  const template = Buffer.alloc(shape.bigBytes);
  const trng = rng.fork();
  for (let i = 0; i < template.length; i++) template[i] = 33 + Math.floor(trng.next() * 90);
  let faults: FaultEvent[] = [];
  let changes: ConfigChange[] = [];
  let load = true;
  let faulting = true;
  const stopLoad = new AbortController();
  const clients: Promise<void>[] = [];
  let ticker: NodeJS.Timeout | undefined;
  let members = initial;
  let converged = false;
  let executedUpTo: number | undefined;
  let executed: Record<string, number | undefined> | undefined;
  let stateEqual = false;
  let stateKeys = 0;
  let finals = new Map<string, string | null>();
  try {
    say(`seed ${seed}, run dir ${dir}; processes ${ids.join(',')}, members ${initial.join(',')} (r4 spare)`);
    await cluster.prepare();
    await cluster.startAll();
    const l0 = await cluster.waitLeader(60_000, () => initial);
    if (!l0) throw new Error('no leader elected within 60 s of start');
    tracker.start();
    await tracker.poll();
    say(`cluster up, leader ${l0}`);

    const ports = new Map(ids.map((id) => [id, cluster.clientPort(id)] as const));
    const isRunning = (id: string) => cluster.isRunning(id);
    const origin = performance.now();
    for (let w = 1; w <= writers; w++)
      clients.push(
        runChunkWriter({
          name: `w${w}`,
          shape,
          template,
          rng: rng.fork(),
          ports,
          tracker,
          isRunning,
          ledger,
          stats: chunks,
          pipelineTimeoutMs: o.pipelineTimeoutMs ?? 15_000,
          ...(o.toLeader !== undefined ? { toLeader: o.toLeader } : {}),
          running: () => load,
          stop: stopLoad.signal,
        }),
      );
    for (let c = 1; c <= (o.clients ?? 3); c++)
      clients.push(
        runRecordedClient({
          client: c,
          recorder,
          ledger,
          rng: rng.fork(),
          ports,
          isRunning,
          opTimeoutMs: o.opTimeoutMs ?? 2000,
          origin,
          epochMs: o.epochMs ?? 15_000,
          running: () => load,
          stop: stopLoad.signal,
          stats: recorded,
          touched,
        }),
      );
    ticker = setInterval(() => {
      const t = ledger.totals();
      say(
        `load: ${chunks.pipelines} pipelines, ${chunks.answered} answered, ${chunks.inDoubt} in doubt, ` +
          `INCRs ${t.acked}/${t.sent} acknowledged; recorded ${recorded.ok} ok ${recorded.unknown} unknown; ` +
          `leader ${tracker.leader ?? '?'} members ${tracker.members.join(',')}`,
      );
    }, 5000);
    await sleep(1000);

    const faultRng = rng.fork();
    const cfgRng = rng.fork();
    const reconfig =
      o.configChanges === false
        ? Promise.resolve([] as ConfigChange[])
        : runReconfig({
            cluster,
            tracker,
            rng: cfgRng,
            runStart,
            gapMs: o.configGapMs ?? [2000, 5000],
            timeoutMs: o.configTimeoutMs ?? 40_000,
            running: () => faulting,
            onEvent: (c, phase) =>
              say(
                phase === 'start'
                  ? `config ${c.kind}: ${c.from.join(',')} -> ${c.to.join(',')} via ${c.via}` +
                      (c.removedLeader ? ' (removes the leader)' : '')
                  : `config ${c.kind} done: ${c.result ?? `ERROR ${c.error}`}`,
              ),
          });
    try {
      faults = await runFaults({
        cluster,
        rng: faultRng,
        until: Date.now() + o.durationMs,
        runStart,
        kinds: o.faultKinds ?? CHUNK_FAULT_KINDS,
        leaderShare: o.leaderShare ?? 0.75,
        findLeader: () => tracker.poll(),
        gapMs: o.gapMs ?? [2000, 5000],
        holdMs: o.holdMs ?? [1000, 3000],
        onEvent: (e, phase) =>
          say(
            phase === 'start'
              ? `fault ${e.kind} ${e.target} (${e.detail})`
              : `healed ${e.kind} ${e.target}${e.error ? ` ERROR ${e.error}` : ''}`,
          ),
      });
    } finally {
      faulting = false;
      changes = await reconfig;
    }

    // heal: every link open, every process running and awake, a leader among the members
    cluster.healAll();
    for (const id of ids) cluster.signal(id, 'SIGCONT');
    for (const id of ids)
      if (!cluster.isRunning(id)) {
        say(`restarting ${id} (down at the end)`);
        await cluster.start(id);
      }
    await tracker.poll();
    const l1 = await cluster.waitLeader(o.healTimeoutMs ?? 60_000, () => tracker.members);
    if (!l1) problems.push(`no leader within ${(o.healTimeoutMs ?? 60_000) / 1000} s after healing`);
    await sleep(2000);
    load = false;
    stopLoad.abort();
    await Promise.all(clients);
    clearInterval(ticker);
    await tracker.poll();
    members = [...tracker.members];
    say(`load stopped; members ${members.join(',')}, leader ${tracker.leader ?? '?'}`);

    // final reads: recorded keys one GET each into the history; every counter by MGET
    const deadline = Date.now() + (o.finalReadTimeoutMs ?? 60_000);
    const memberPorts = () => members.filter((id) => cluster.isRunning(id)).map((id) => cluster.clientPort(id));
    for (const key of [...touched].sort()) {
      let done = false;
      while (!done && Date.now() < deadline) {
        const h = recorder.invoke('final', 'get', key);
        try {
          const c = await RespConnection.connect(rng.pick(memberPorts()), '127.0.0.1', 3000);
          try {
            const v = await c.call(['GET', key], 5000);
            if (v instanceof RespError || (v !== null && typeof v !== 'string')) throw new Error(String(v));
            recorder.complete(h, v);
            finals.set(key, v);
            done = true;
          } finally {
            c.close();
          }
        } catch {
          recorder.timeout(h);
          await sleep(300);
        }
      }
      if (!done) problems.push(`final read of ${key} got no answer`);
    }
    const counterKeys = ledger.keyList().filter((k) => !finals.has(k));
    const read = await readAll(counterKeys, memberPorts, rng, deadline);
    finals = new Map([...finals, ...read]);
    const unread = counterKeys.filter((k) => !finals.has(k));
    if (unread.length) problems.push(`${unread.length} counters got no final read (e.g. ${unread[0]})`);

    const conv = await cluster.waitConverged(60_000, members);
    if (conv.ok) {
      converged = true;
      executedUpTo = conv.executedUpTo;
      say(`converged: members ${members.join(',')} executed up to slot ${conv.executedUpTo}`);
    } else {
      executed = conv.executed;
      problems.push(`members did not converge within 60 s: executedUpTo ${JSON.stringify(conv.executed)}`);
    }
    const stateKeysList = [
      ...ledger.keyList(),
      ...touched,
      ...Array.from({ length: shape.bigKeys }, (_, i) => bigKey(i)),
      ...Array.from({ length: shape.keyspace }, (_, i) => smallKey(i)),
    ];
    stateKeys = stateKeysList.length;
    const states: (Map<string, string | null> | undefined)[] = [];
    for (const id of members) {
      try {
        states.push(await readLocalDigest(cluster.clientPort(id), stateKeysList));
      } catch (e) {
        problems.push(`READONLY reads on ${id} failed: ${(e as Error).message}`);
        states.push(undefined);
      }
    }
    stateEqual = states.length > 0 && states.every((s) => s !== undefined);
    if (stateEqual) {
      for (const k of stateKeysList) {
        const vs = states.map((s) => s!.get(k));
        if (vs.some((v) => v !== vs[0])) {
          stateEqual = false;
          const each = members.map((m, i) => `${m}=${JSON.stringify(vs[i])?.slice(0, 60)}`).join(' ');
          problems.push(`members hold different values of ${k}: ${each}`);
          break;
        }
      }
    }
  } catch (e) {
    problems.push(`harness: ${(e as Error).message}`);
  } finally {
    load = false;
    faulting = false;
    stopLoad.abort();
    if (ticker) clearInterval(ticker);
    cluster.healAll();
    for (const id of ids) cluster.signal(id, 'SIGCONT');
    await Promise.allSettled(clients);
    await tracker.stop();
    await cluster.shutdown();
  }

  mkdirSync(path.dirname(historyPath), { recursive: true });
  await recorder.writeFile(historyPath);
  writeFileSync(path.join(dir, 'faults.json'), JSON.stringify({ seed, faults, changes }, null, 2));
  writeFileSync(path.join(dir, 'pipelines.jsonl'), chunks.log.map((x) => JSON.stringify(x)).join('\n') + '\n');
  const ops = recorder.ops();
  say(`checking ${ops.length} ops for linearizability, ${ledger.keyList().length} counters`);
  const check = checkHistory(ops, { timeoutMs: o.checkTimeoutMs ?? 120_000 });
  if (!check.ok)
    problems.push(
      check.timedOut
        ? `linearizability check timed out on key ${check.key}`
        : `not linearizable: key ${check.key}: ${check.reason}`,
    );
  const counters = ledger.check(finals);
  for (const v of counters.violations) problems.push(`counter: ${v}`);
  const crossed = chunks.crossedCount + recorded.crossedCount;
  if (crossed > 0) problems.push(`${crossed} answers of the wrong type (meant for other requests)`);
  for (const f of faults.filter((x) => x.error))
    problems.push(`fault ${f.kind} ${f.target} at +${(f.at / 1000).toFixed(1)}s failed: ${f.error}`);
  if (faults.length === 0) problems.push('no fault was injected');
  let total = 0;
  let answered = 0;
  for (const op of ops) {
    if (op.op !== 'get' || op.process === 'final') continue;
    const end = op.complete ?? Infinity;
    if (changes.some((c) => op.invoke < (c.endClock ?? Infinity) && end > c.startClock)) {
      total++;
      if (op.complete !== null) answered++;
    }
  }
  const faultCounts: Partial<Record<FaultKind, number>> = {};
  for (const k of ALL_FAULT_KINDS) {
    const n = faults.filter((f) => f.kind === k).length;
    if (n) faultCounts[k] = n;
  }
  const verdict = problems.length === 0 && check.ok && converged && stateEqual ? 'PASS' : 'FAIL';
  if (verdict === 'PASS' && !o.keep) rmSync(path.join(dir, 'data'), { recursive: true, force: true });
  return {
    workload: 'chunks',
    seed,
    dir,
    historyPath,
    elapsedMs: Date.now() - runStart,
    writers,
    shape,
    inflightSlots: o.inflightSlots ?? 4,
    chunks,
    recorded,
    ops: ops.length,
    readsDuringChanges: { total, answered },
    faults,
    faultCounts,
    changes,
    counters,
    incrs: ledger.totals(),
    check,
    members,
    converged,
    ...(executedUpTo !== undefined ? { executedUpTo } : {}),
    ...(executed !== undefined ? { executed } : {}),
    stateEqual,
    stateKeys,
    problems,
    verdict,
  };
}

const kb = (n: number) => `${Math.round(n / 1024)} KB`;
const causes = (c: Record<string, number>) =>
  Object.entries(c)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ') || 'none';

/** The human summary printed by the CLI. */
export function formatChunksReport(r: ChunksReport): string {
  const c = r.chunks;
  const s = r.shape;
  const done = r.changes.filter((x) => x.result);
  const shared = r.counters.counters.filter((x) => x.group === 'shared');
  const own = r.counters.counters.filter((x) => x.group === 'pipeline');
  const rec = r.counters.counters.filter((x) => x.group === 'recorded');
  const converged = r.converged
    ? `yes, executedUpTo ${r.executedUpTo} on ${r.members.join(',')}`
    : `NO ${JSON.stringify(r.executed ?? {})}`;
  const lincheck = r.check.ok
    ? `linearizable (${r.check.checkedKeys} keys, ${r.ops} ops)`
    : r.check.timedOut
      ? `TIMED OUT on key ${r.check.key}`
      : `NOT LINEARIZABLE: key ${r.check.key}: ${r.check.reason}`;
  const lines = [
    `chaos chunks ${r.verdict}  seed ${r.seed}  (${(r.elapsedMs / 1000).toFixed(0)} s)`,
    `  load       ${r.writers} writers x pipelines of ${s.size[0]}-${s.size[1]} commands ` +
      `(${s.big} x ${kb(s.bigBytes)} SETs, ` +
      `${Math.round(s.incrShare * 100)}% of the rest INCRs), ioredis, no retries; maxInflightSlots ${r.inflightSlots}`,
    `  pipelines  ${c.pipelines}: to the leader ${c.byRole.leader}, to followers ${c.byRole.follower}, ` +
      `to spares/removed ${c.byRole.spare}`,
    `  commands   ${c.commands}: ${c.answered} answered, ${c.inDoubt} in doubt (${causes(c.causes)}); ` +
      `${c.bigSets} big SETs acknowledged`,
    ...Object.entries(c.samples).map(([k, v]) => `             e.g. ${k}: ${v}`),
    `  INCRs      ${r.incrs.sent} sent: ${r.incrs.acked} acknowledged, ${r.incrs.inDoubt} in doubt`,
    `  recorded   ${r.recorded.invoked} ops: ${r.recorded.ok} ok, ${r.recorded.unknown} unknown ` +
      `(${causes(r.recorded.causes)}); ${r.recorded.gets} GETs, ${r.readsDuringChanges.total} of them during a ` +
      `configuration change (${r.readsDuringChanges.answered} answered)`,
    `  config     ${r.changes.length} changes: ${done.length} done ` +
      `(${done.filter((x) => x.removedLeader).length} removed the leader), ` +
      `${r.changes.length - done.length} refused or unanswered; final members ${r.members.join(',')}`,
    ...r.changes
      .filter((x) => x.error)
      .slice(0, 5)
      .map((x) => `             +${(x.at / 1000).toFixed(1)}s ${x.kind} -> ${x.to.join(',')}: ${x.error}`),
    `  faults     ${r.faults.length}: ${Object.entries(r.faultCounts)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `  counters   key            sent  acked  in-doubt  max-acked   final  verdict`,
    ...shared.map(
      (x) =>
        `             ${x.key.padEnd(12)} ${String(x.sent).padStart(6)} ${String(x.acked).padStart(6)} ` +
        `${String(x.inDoubt).padStart(9)} ` +
        `${String(x.maxAcked).padStart(10)} ${String(x.final ?? '-').padStart(7)}  ${x.ok ? 'ok' : 'VIOLATION'}`,
    ),
    `             + ${own.length} per-pipeline counters: ${own.filter((x) => !x.ok).length} with a violation`,
    `             + ${rec.length} recorded counters (${rec.reduce((a, x) => a + x.acked, 0)} INCRs acknowledged, ` +
      `${rec.reduce((a, x) => a + x.inDoubt, 0)} in doubt): ${rec.filter((x) => !x.ok).length} with a violation`,
    `  violations ${r.counters.violations.length === 0 ? 'none' : r.counters.violations.length}`,
    ...r.counters.violations.slice(0, 30).map((v) => `             ${v}`),
    `  crossed    ${c.crossedCount + r.recorded.crossedCount} answers of the wrong type`,
    ...[...c.crossed, ...r.recorded.crossed].slice(0, 10).map((v) => `             ${v}`),
    `  reordered  ${c.reorderedCount} pipelines saw one key's INCR answers out of order`,
    ...c.reordered.slice(0, 5).map((v) => `             ${v.replace(/:\.{8,}/, (m) => `:…+${m.length - 1}`)}`),
    `  converged  ${converged}`,
    `  state      ${r.stateEqual ? `equal on every member (${r.stateKeys} keys)` : 'DIFFERENT or unread (see below)'}`,
    `  lincheck   ${lincheck}`,
    `  history    ${r.historyPath}`,
    `  run dir    ${r.dir} (logs/, faults.json${r.verdict === 'FAIL' ? ', data/' : ''})`,
  ];
  for (const p of r.problems.filter((x) => !x.startsWith('counter: '))) lines.push(`  problem    ${p}`);
  return lines.join('\n');
}
