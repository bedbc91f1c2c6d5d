import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HistoryRecorder, checkHistory, type CheckResult } from '@decree/lincheck';
import { ChaosCluster, sleep } from './cluster.ts';
import { FAULT_KINDS, runFaults, type FaultEvent, type FaultKind } from './faults.ts';
import { RespConnection, RespError } from './resp.ts';
import { Rng } from './rng.ts';
import { ALL_KEYS, newStats, runClient, type WorkloadStats } from './workload.ts';

export interface ChaosOptions {
  /** how long faults are injected (ms); the load runs a little longer (warm-up, recovery) */
  durationMs: number;
  seed?: number;
  /** where to write the history (default <run dir>/history.jsonl) */
  out?: string;
  /** run directory (default a new one under os.tmpdir()) */
  dir?: string;
  clients?: number;
  opTimeoutMs?: number;
  /** keep the data directories even when the run passes */
  keep?: boolean;
  /** bound on the linearizability search (ms) */
  checkTimeoutMs?: number;
  /** progress lines (default: none) */
  log?: (line: string) => void;
  /** fault pacing (ms ranges) */
  gapMs?: [number, number];
  holdMs?: [number, number];
}

export interface ChaosReport {
  seed: number;
  dir: string;
  historyPath: string;
  ops: number;
  stats: WorkloadStats;
  faults: FaultEvent[];
  faultCounts: Record<FaultKind, number>;
  check: CheckResult;
  converged: boolean;
  executedUpTo?: number;
  executed?: Record<string, number | undefined>;
  /** per replica: key -> value read with READONLY after convergence */
  finalStates: Record<string, Record<string, string | null>>;
  stateEqual: boolean;
  problems: string[];
  verdict: 'PASS' | 'FAIL';
  elapsedMs: number;
}

/**
 * Runs the chaos test: a 3-process cluster behind link proxies, concurrent recording clients,
 * random faults for `durationMs`, then heal, convergence and the checks. Always kills its children.
 */
export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const seed = (o.seed ?? Date.now()) >>> 0;
  const rng = new Rng(seed);
  const dir = o.dir ?? mkdtempSync(path.join(os.tmpdir(), 'decree-chaos-'));
  mkdirSync(dir, { recursive: true });
  const historyPath = path.resolve(o.out ?? path.join(dir, 'history.jsonl'));
  const runStart = Date.now();
  const say = (m: string) => o.log?.(`[chaos +${((Date.now() - runStart) / 1000).toFixed(1)}s] ${m}`);
  const problems: string[] = [];
  const cluster = new ChaosCluster({ dir, log: say });
  const recorder = new HistoryRecorder();
  const stats = newStats();
  let faults: FaultEvent[] = [];
  let load = true;
  const clients: Promise<void>[] = [];
  let converged = false;
  let executedUpTo: number | undefined;
  let executed: Record<string, number | undefined> | undefined;
  const finalStates: Record<string, Record<string, string | null>> = {};
  let stateEqual = false;
  try {
    say(`seed ${seed}, run dir ${dir}`);
    await cluster.prepare();
    await cluster.startAll();
    const l0 = await cluster.waitLeader(60_000);
    if (!l0) throw new Error('no leader elected within 60 s of start');
    say(
      `cluster up, leader ${l0}; configs ${[...cluster.configPaths.values()].map((p) => path.basename(p)).join(' ')}`,
    );

    const ports = cluster.ids.map((id) => cluster.clientPort(id));
    for (let c = 1; c <= (o.clients ?? 6); c++)
      clients.push(
        runClient({
          recorder,
          stats,
          rng: rng.fork(),
          ports,
          opTimeoutMs: o.opTimeoutMs ?? 2000,
          running: () => load,
          client: c,
        }),
      );
    await sleep(1000);

    faults = await runFaults({
      cluster,
      rng: rng.fork(),
      until: Date.now() + o.durationMs,
      runStart,
      ...(o.gapMs ? { gapMs: o.gapMs } : {}),
      ...(o.holdMs ? { holdMs: o.holdMs } : {}),
      onEvent: (e, phase) =>
        say(
          phase === 'start'
            ? `fault ${e.kind} ${e.target} (${e.detail})`
            : `healed ${e.kind} ${e.target}${e.error ? ` ERROR ${e.error}` : ''} ` +
                `[ops ${stats.invoked}, ok ${stats.ok}]`,
        ),
    });

    // heal: every link open, every replica running, one leader; the load goes on a little under no faults
    cluster.healAll();
    for (const id of cluster.ids)
      if (!cluster.isRunning(id)) {
        say(`restarting ${id} (down at the end)`);
        await cluster.start(id);
      }
    const l1 = await cluster.waitLeader(60_000);
    if (!l1) problems.push('no leader within 60 s after healing');
    await sleep(2000);
    load = false;
    await Promise.all(clients);
    say(`load stopped: ${stats.invoked} ops (${stats.ok} ok, ${stats.unknown} unknown)`);

    // final linearizable reads of every key, recorded in the history (a lost acknowledged write shows here)
    for (const key of ALL_KEYS) {
      let done = false;
      for (let attempt = 0; attempt < 10 && !done; attempt++) {
        const h = recorder.invoke('final', 'get', key);
        try {
          const c = await RespConnection.connect(cluster.clientPort(rng.pick(cluster.ids)), '127.0.0.1', 5000);
          try {
            const v = await c.call(['GET', key], 5000);
            if (v instanceof RespError || (v !== null && typeof v !== 'string')) throw new Error(String(v));
            recorder.complete(h, v);
            done = true;
          } finally {
            c.close();
          }
        } catch {
          recorder.timeout(h);
          await sleep(500);
        }
      }
      if (!done) problems.push(`final read of ${key} got no answer in 10 tries`);
    }

    const conv = await cluster.waitConverged(60_000);
    if (conv.ok) {
      converged = true;
      executedUpTo = conv.executedUpTo;
      say(`converged: every replica executed up to slot ${conv.executedUpTo}`);
    } else {
      executed = conv.executed;
      problems.push(`replicas did not converge within 60 s: executedUpTo ${JSON.stringify(conv.executed)}`);
    }
    for (const id of cluster.ids) {
      try {
        finalStates[id] = await cluster.readLocal(id, ALL_KEYS);
      } catch (e) {
        problems.push(`READONLY reads on ${id} failed: ${(e as Error).message}`);
      }
    }
    const states = cluster.ids.map((id) => finalStates[id]);
    stateEqual =
      states.every((s) => s !== undefined) && states.every((s) => JSON.stringify(s) === JSON.stringify(states[0]));
    if (!stateEqual) problems.push(`replicas hold different values: ${JSON.stringify(finalStates)}`);
  } catch (e) {
    problems.push(`harness: ${(e as Error).message}`);
  } finally {
    load = false;
    cluster.healAll();
    await Promise.allSettled(clients);
    await cluster.shutdown();
  }

  mkdirSync(path.dirname(historyPath), { recursive: true });
  await recorder.writeFile(historyPath);
  writeFileSync(path.join(dir, 'faults.json'), JSON.stringify({ seed, faults }, null, 2));
  const ops = recorder.ops();
  say(`checking ${ops.length} ops for linearizability`);
  const check = checkHistory(ops, { timeoutMs: o.checkTimeoutMs ?? 120_000 });
  if (!check.ok)
    problems.push(
      check.timedOut
        ? `linearizability check timed out on key ${check.key}`
        : `not linearizable: key ${check.key}: ${check.reason}`,
    );
  const faultCounts = Object.fromEntries(
    FAULT_KINDS.map((k) => [k, faults.filter((f) => f.kind === k).length]),
  ) as Record<FaultKind, number>;
  const failedFaults = faults.filter((f) => f.error);
  for (const f of failedFaults)
    problems.push(`fault ${f.kind} ${f.target} at +${(f.at / 1000).toFixed(1)}s failed: ${f.error}`);
  const verdict = problems.length === 0 && check.ok && converged && stateEqual ? 'PASS' : 'FAIL';
  if (verdict === 'PASS' && !o.keep) rmSync(path.join(dir, 'data'), { recursive: true, force: true });
  return {
    seed,
    dir,
    historyPath,
    ops: ops.length,
    stats,
    faults,
    faultCounts,
    check,
    converged,
    ...(executedUpTo !== undefined ? { executedUpTo } : {}),
    ...(executed !== undefined ? { executed } : {}),
    finalStates,
    stateEqual,
    problems,
    verdict,
    elapsedMs: Date.now() - runStart,
  };
}

/** The human summary printed by the CLI. */
export function formatReport(r: ChaosReport): string {
  const lines = [
    `chaos ${r.verdict}  seed ${r.seed}  (${(r.elapsedMs / 1000).toFixed(0)} s)`,
    `  ops        ${r.ops} recorded: ${r.stats.ok} ok, ${r.stats.unknown} ` +
      `unknown, ${r.stats.failed} failed (+${r.ops - r.stats.invoked} final reads)`,
    `  unknown    ${
      Object.entries(r.stats.causes)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || 'none'
    }`,
    ...Object.entries(r.stats.samples).map(([k, v]) => `             e.g. ${k}: ${v}`),
    `  faults     ${r.faults.length}: ${Object.entries(r.faultCounts)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `  converged  ` +
      (r.converged ? `yes, executedUpTo ${r.executedUpTo} on every replica` : `NO ${JSON.stringify(r.executed ?? {})}`),
    `  state      ` +
      (r.stateEqual
        ? `equal on every replica (${Object.keys(Object.values(r.finalStates)[0] ?? {}).length} keys)`
        : 'DIFFERENT (see problems)'),
    `  lincheck   ` +
      (r.check.ok
        ? `linearizable (${r.check.checkedKeys} keys)`
        : r.check.timedOut
          ? `TIMED OUT on key ${r.check.key}`
          : `NOT LINEARIZABLE: key ${r.check.key}: ${r.check.reason}`),
    `  history    ${r.historyPath}`,
    `  run dir    ${r.dir} (logs/, faults.json${r.verdict === 'FAIL' ? ', data/' : ''})`,
  ];
  for (const p of r.problems) lines.push(`  problem    ${p}`);
  return lines.join('\n');
}
