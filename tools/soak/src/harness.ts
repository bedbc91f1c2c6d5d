import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChaosCluster, RespConnection, RespError, Rng, type RespValue } from '@decree/chaos';
import { HistoryRecorder, checkHistory } from '@decree/lincheck';
import { DEFAULT_SHAPE, newBulkStats, runBulkClient, type BulkShape } from './bulk.ts';
import { newCheckedStats, runCheckedClient } from './checked.ts';
import { DEFAULT_TIMING, runSoakFaults, type FaultTiming, type SoakFault, type SoakFaultKind } from './faults.ts';
import { Ledger } from './ledger.ts';
import { digestLogs, statusLine } from './logs.ts';
import { Meter, zeroWindows, type HeldDown } from './meter.ts';
import { formatFault, formatWindow, summarizeRecovery, type SoakReport } from './report.ts';
import { bigValueIntact, makeTemplate, parseValue } from './values.ts';

export interface SoakOptions {
  /** how long faults are injected (ms); the first round of every kind always completes */
  durationMs: number;
  seed?: number;
  /** run directory (default a new one under os.tmpdir()) */
  dir?: string;
  /** keep data/ even when the run passes */
  keep?: boolean;
  shape?: Partial<BulkShape>;
  /** bulk connections (default 4) */
  connections?: number;
  /** recorded one-op-at-a-time clients (default 2) */
  checkedClients?: number;
  /** bulk: no reply progress for this long gives the rest of a pipeline up (default 10,000 ms) */
  stallMs?: number;
  /** checked ops: no reply within this = unknown outcome (default 2000 ms) */
  opTimeoutMs?: number;
  /** wait this long for a fault's recovery before the next fault (default 60,000 ms) */
  recoverTimeoutMs?: number;
  timing?: Partial<FaultTiming>;
  /** fault kinds to inject (default all: kill9, pause, restart-all) */
  faultKinds?: readonly SoakFaultKind[];
  /** window length (default 5000 ms) */
  windowMs?: number;
  /** checked keys rotate this often (default 20,000 ms) */
  epochMs?: number;
  /** bound on the linearizability search (default 120,000 ms) */
  checkTimeoutMs?: number;
  /** after the faults: wait this long for a leader (default 60,000 ms) */
  healTimeoutMs?: number;
  /** load after the heal, before the final reads (default 2000 ms) */
  tailMs?: number;
  /** all final reads must be answered within this (default 120,000 ms) */
  finalReadTimeoutMs?: number;
  /** progress lines: windows, faults, status (always written to <dir>/progress.log too) */
  log?: (line: string) => void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Reads through the cluster: a connection to a random replica, replaced after any failure. */
class Reader {
  private conn: RespConnection | undefined;
  constructor(
    private readonly ports: readonly number[],
    private readonly rng: Rng,
  ) {}
  async once(args: readonly string[], timeoutMs = 10_000): Promise<RespValue> {
    try {
      this.conn ??= await RespConnection.connect(this.rng.pick(this.ports), '127.0.0.1', 3000);
      const v = await this.conn.call(args, timeoutMs);
      if (v instanceof RespError) throw v;
      return v;
    } catch (e) {
      this.conn?.close();
      this.conn = undefined;
      throw e;
    }
  }
  close(): void {
    this.conn?.close();
  }
}

/**
 * Runs the soak: a 3-process cluster (TCP, file WAL, default election timeouts), bulk pipelines and
 * checked clients, scheduled faults, then heal, final reads, the durability ledger and the
 * linearizability check. Every process it started is SIGKILLed before it returns.
 */
export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const seed = (o.seed ?? Date.now()) >>> 0;
  const rng = new Rng(seed);
  const shape: BulkShape = { ...DEFAULT_SHAPE, ...o.shape };
  const timing: FaultTiming = { ...DEFAULT_TIMING, ...o.timing };
  const windowMs = o.windowMs ?? 5000;
  const connections = o.connections ?? 4;
  const checkedClients = o.checkedClients ?? 2;
  const dir = o.dir ?? mkdtempSync(path.join(os.tmpdir(), 'decree-soak-'));
  mkdirSync(dir, { recursive: true });
  const historyPath = path.join(dir, 'history.jsonl');
  const runStart = Date.now();
  const progressPath = path.join(dir, 'progress.log');
  const say = (m: string) => {
    const line = `[soak +${((Date.now() - runStart) / 1000).toFixed(1)}s] ${m}`;
    appendFileSync(progressPath, line + '\n');
    o.log?.(line);
  };
  const problems: string[] = [];
  const cluster = new ChaosCluster({ dir, log: say, election: null, proxies: false });
  const recorder = new HistoryRecorder();
  const ledger = new Ledger();
  const template = makeTemplate(shape.bigBytes, rng.fork());
  const templateStr = template.toString('latin1');
  const bulkStats = newBulkStats();
  const checkedStats = newCheckedStats();
  const paused = new Set<string>();
  const heldDown: HeldDown[] = [];
  let meter = new Meter(performance.now(), windowMs);
  let faults: SoakFault[] = [];
  let load = true;
  const stopLoad = new AbortController();
  let faultsStopped = false;
  const clients: Promise<void>[] = [];
  let ticker: NodeJS.Timeout | undefined;
  let loadEndAt = 0;
  let firstFaultAt: number | undefined;
  const finalValues = new Map<string, string | null>();
  let finalReadsComplete = false;
  let replicasAtEnd: Record<string, unknown> = {};
  try {
    say(`seed ${seed}, run dir ${dir}`);
    await cluster.prepare();
    await cluster.startAll();
    const l0 = await cluster.waitLeader(60_000);
    if (!l0) throw new Error('no leader elected within 60 s of start');
    say(`cluster up (TCP, file WAL, default election timeouts), leader ${l0}`);

    meter = new Meter(performance.now(), windowMs);
    const m = meter;
    let printed = 0;
    let statusBusy = false;
    ticker = setInterval(() => {
      const now = performance.now();
      m.touch(now);
      while (printed < m.windows.length && m.origin + m.windows[printed]!.end <= now) {
        const w = m.windows[printed++]!;
        say(formatWindow(w));
        if (w.ok === 0 && !statusBusy) {
          statusBusy = true;
          void statusLine(cluster)
            .then((s) => say(`  status: ${s.line}`))
            .finally(() => (statusBusy = false));
        }
      }
    }, 250);

    const ports = cluster.ids.map((id) => cluster.clientPort(id));
    for (let c = 1; c <= connections; c++)
      clients.push(
        runBulkClient({
          shape,
          template,
          ports,
          rng: rng.fork(),
          ledger,
          meter: m,
          stallMs: o.stallMs ?? 10_000,
          running: () => load,
          stop: stopLoad.signal,
          name: `b${c}`,
          stats: bulkStats,
        }),
      );
    for (let c = 1; c <= checkedClients; c++)
      clients.push(
        runCheckedClient({
          recorder,
          ledger,
          meter: m,
          rng: rng.fork(),
          ports,
          opTimeoutMs: o.opTimeoutMs ?? 2000,
          origin: m.origin,
          epochMs: o.epochMs ?? 20_000,
          running: () => load,
          stop: stopLoad.signal,
          client: c,
          stats: checkedStats,
        }),
      );

    faults = await runSoakFaults({
      cluster,
      rng: rng.fork(),
      meter: m,
      timing,
      ...(o.faultKinds ? { kinds: o.faultKinds } : {}),
      until: m.origin + o.durationMs,
      recoverTimeoutMs: o.recoverTimeoutMs ?? 60_000,
      paused,
      heldDown,
      stopped: () => faultsStopped,
      onEvent: (f, phase) => {
        if (phase === 'start') say(`fault ${f.kind} ${f.target} (${f.detail})`);
        else if (phase === 'healed') say(`  healed ${f.kind} ${f.target}${f.error ? ` ERROR ${f.error}` : ''}`);
        else if (phase === 'recovered') say(`  ${formatFault(f)}`);
        else {
          say(`  ${formatFault(f)} (no acknowledged write within ${(o.recoverTimeoutMs ?? 60_000) / 1000} s)`);
          void statusLine(cluster).then((s) => say(`  status: ${s.line}`));
        }
      },
    });
    firstFaultAt = faults[0]?.at;

    // heal: nothing paused, everything running, one leader; then a little more load
    for (const id of [...paused]) cluster.signal(id, 'SIGCONT');
    paused.clear();
    for (const id of cluster.ids)
      if (!cluster.isRunning(id)) {
        say(`starting ${id} (down at the end)`);
        try {
          await cluster.start(id, 90_000);
        } catch (e) {
          problems.push(`could not restart ${id} at the end: ${(e as Error).message.slice(0, 200)}`);
        }
      }
    const l1 = await cluster.waitLeader(o.healTimeoutMs ?? 60_000);
    if (!l1) problems.push(`no leader within ${(o.healTimeoutMs ?? 60_000) / 1000} s after the faults`);
    await sleep(o.tailMs ?? 2000);
    loadEndAt = performance.now() - m.origin;
    load = false;
    stopLoad.abort(); // what is in flight now has an unknown outcome: no acknowledgement after this point
    await Promise.all(clients);
    clearInterval(ticker);
    ticker = undefined;
    say(`load stopped: ${m.totals.ok} ok, ${m.totals.errors} errors, ${m.totals.unknown} unknown`);
    const st = await statusLine(cluster);
    replicasAtEnd = st.raw;
    say(`status: ${st.line}`);

    // final reads through the cluster: every key written; the checked keys go into the history
    const reader = new Reader(ports, rng.fork());
    const deadline = Date.now() + (o.finalReadTimeoutMs ?? 120_000);
    const counterKeys = ledger.counterKeys();
    const checked = new Set([...ledger.setKeys(), ...counterKeys].filter((k) => k.startsWith('h')));
    const bulkSmall = [...ledger.setKeys(), ...counterKeys].filter((k) => !checked.has(k) && !k.startsWith('big:'));
    const bulkBig = ledger.setKeys().filter((k) => k.startsWith('big:'));
    let failures = 0;
    const retry = async (what: string, e: unknown) => {
      if (++failures <= 3 || failures % 20 === 0) say(`final read ${what} failed (${(e as Error).message}), retrying`);
      await sleep(300);
    };
    try {
      for (const key of checked) {
        for (;;) {
          if (Date.now() > deadline) throw new Error('deadline');
          const h = recorder.invoke('final', 'get', key);
          try {
            const v = await reader.once(['GET', key]);
            if (v !== null && typeof v !== 'string') throw new Error(`GET ${key}: ${JSON.stringify(v)}`);
            recorder.complete(h, v);
            finalValues.set(key, v);
            break;
          } catch (e) {
            recorder.timeout(h);
            await retry(`GET ${key}`, e);
          }
        }
      }
      for (let i = 0; i < bulkSmall.length; i += 256) {
        const chunk = bulkSmall.slice(i, i + 256);
        for (;;) {
          if (Date.now() > deadline) throw new Error('deadline');
          try {
            const v = await reader.once(['MGET', ...chunk]);
            if (!Array.isArray(v) || v.length !== chunk.length)
              throw new Error(`MGET: ${JSON.stringify(v).slice(0, 80)}`);
            chunk.forEach((k, j) => finalValues.set(k, v[j] as string | null));
            break;
          } catch (e) {
            await retry('MGET', e);
          }
        }
      }
      for (const key of bulkBig) {
        for (;;) {
          if (Date.now() > deadline) throw new Error('deadline');
          try {
            const v = await reader.once(['GET', key], 20_000);
            if (v !== null && typeof v !== 'string') throw new Error(`GET ${key}: ${JSON.stringify(v).slice(0, 80)}`);
            finalValues.set(key, v);
            break;
          } catch (e) {
            await retry(`GET ${key}`, e);
          }
        }
      }
      finalReadsComplete = true;
      say(`final reads: ${finalValues.size} keys read through the cluster`);
    } catch {
      problems.push(
        `final reads not answered within ${(o.finalReadTimeoutMs ?? 120_000) / 1000} s ` +
          `(${finalValues.size} of ${checked.size + bulkSmall.length + bulkBig.length} keys read)`,
      );
    } finally {
      reader.close();
    }
  } catch (e) {
    problems.push(`harness: ${(e as Error).message}`);
  } finally {
    faultsStopped = true;
    load = false;
    stopLoad.abort();
    if (ticker) clearInterval(ticker);
    await Promise.allSettled(clients);
    if (loadEndAt === 0) loadEndAt = performance.now() - meter.origin;
    await cluster.shutdown();
  }

  const logDigest = await digestLogs(cluster.logDir, cluster.ids);
  mkdirSync(path.dirname(historyPath), { recursive: true });
  await recorder.writeFile(historyPath);
  const ops = recorder.ops();
  say(`checking ${ops.length} recorded ops for linearizability`);
  const fullCheck = checkHistory(ops, { timeoutMs: o.checkTimeoutMs ?? 120_000 });
  const { witness: _w, ...check } = fullCheck;
  if (!check.ok && check.timedOut) problems.push(`linearizability check timed out on key ${check.key}`);
  else if (!check.ok) problems.push(`not linearizable: key ${check.key}: ${check.reason}`);
  const ledgerCheck = ledger.check(finalValues, parseValue, (key, v) =>
    key.startsWith('big:') ? bigValueIntact(v, templateStr, shape.bigBytes) : true,
  );
  const lostWrites = ledgerCheck.lost.length;
  const [lost0] = ledgerCheck.lost;
  if (lost0) problems.push(`${lostWrites} key(s) lost acknowledged writes, e.g. ${lost0.key}: ${lost0.what}`);
  if (ledgerCheck.corrupt.length)
    problems.push(`${ledgerCheck.corrupt.length} corrupt/duplicate finding(s), e.g. ${ledgerCheck.corrupt[0]}`);
  if (finalReadsComplete && ledgerCheck.unread) problems.push(`${ledgerCheck.unread} keys not read at the end`);
  const zw = zeroWindows(meter.windows, firstFaultAt, loadEndAt, heldDown);
  if (zw.zero.length) {
    const first = zw.zero.slice(0, 12).join(', ') + (zw.zero.length > 12 ? ', ...' : '');
    problems.push(`${zw.zero.length} window(s) with zero successes after the first fault: ${first}`);
  }
  if (faults.length === 0) problems.push('no fault was injected');
  for (const f of faults)
    if (f.error) problems.push(`fault ${f.kind} ${f.target} at +${(f.at / 1000).toFixed(1)}s failed: ${f.error}`);
  const verdict = problems.length === 0 ? 'PASS' : 'FAIL';
  const report: SoakReport = {
    seed,
    dir,
    historyPath,
    elapsedMs: Date.now() - runStart,
    durationMs: o.durationMs,
    ...(firstFaultAt !== undefined ? { firstFaultAt } : {}),
    loadEndAt,
    shape,
    connections,
    checkedClients,
    windowMs,
    windows: meter.windows.filter((w) => w.start < loadEndAt),
    countedWindows: zw.counted.length,
    zeroWindows: zw.zero,
    exemptWindows: zw.exempt,
    heldDown,
    faults,
    recovery: summarizeRecovery(faults),
    totals: meter.totals,
    errorsByCause: meter.errorsByCause,
    errorSamples: meter.errorSamples,
    bulk: bulkStats,
    checked: { ...checkedStats, ops: ops.length },
    ledger: ledgerCheck,
    lostWrites,
    finalReadsComplete,
    check,
    replicasAtEnd,
    logDigest,
    problems,
    verdict,
  };
  writeFileSync(path.join(dir, 'report.json'), JSON.stringify(report, null, 2));
  if (verdict === 'PASS' && !o.keep) rmSync(path.join(dir, 'data'), { recursive: true, force: true });
  return report;
}
