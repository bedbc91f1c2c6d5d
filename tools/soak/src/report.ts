/** Report types, summaries and the human-readable output of a soak run. */
import type { CheckResult } from '@decree/lincheck';
import type { BulkShape, BulkStats } from './bulk.ts';
import type { CheckedStats } from './checked.ts';
import type { SoakFault, SoakFaultKind } from './faults.ts';
import type { LedgerCheck } from './ledger.ts';
import { percentile, type HeldDown, type Window } from './meter.ts';

export interface RecoverySummary {
  faults: number;
  recovered: number;
  unrecovered: number;
  p50Ms?: number;
  maxMs?: number;
  /** restart-all: ms from the last ready line to the first write, p50 and max */
  afterReadyP50Ms?: number;
  afterReadyMaxMs?: number;
}

export interface SoakReport {
  seed: number;
  dir: string;
  historyPath: string;
  elapsedMs: number;
  /** the fault phase asked for (ms) */
  durationMs: number;
  /** ms since the load started: first fault, load end */
  firstFaultAt?: number;
  loadEndAt: number;
  shape: BulkShape;
  connections: number;
  checkedClients: number;
  windowMs: number;
  windows: Window[];
  /** window indices: counted by the zero-window rule, zero ones, exempt (held down) */
  countedWindows: number;
  zeroWindows: number[];
  exemptWindows: number[];
  heldDown: HeldDown[];
  faults: SoakFault[];
  recovery: Partial<Record<SoakFaultKind, RecoverySummary>>;
  totals: { ok: number; okBulk: number; okChecked: number; writesAcked: number; errors: number; unknown: number };
  errorsByCause: Record<string, number>;
  errorSamples: Record<string, string>;
  bulk: BulkStats;
  checked: CheckedStats & { ops: number };
  ledger?: LedgerCheck;
  lostWrites: number;
  finalReadsComplete: boolean;
  check?: Omit<CheckResult, 'witness'>;
  /** DECREE STATUS of each replica at the end (before the final reads), or an error */
  replicasAtEnd: Record<string, unknown>;
  /** per replica: warn/error log messages and their counts (most frequent first) */
  logDigest: Record<string, { msg: string; level: number; count: number }[]>;
  problems: string[];
  verdict: 'PASS' | 'FAIL';
}

export function summarizeRecovery(faults: readonly SoakFault[]): Partial<Record<SoakFaultKind, RecoverySummary>> {
  const out: Partial<Record<SoakFaultKind, RecoverySummary>> = {};
  for (const f of faults) {
    const s = (out[f.kind] ??= { faults: 0, recovered: 0, unrecovered: 0 });
    s.faults++;
    if (f.recoveryMs === undefined) s.unrecovered++;
    else s.recovered++;
  }
  for (const [kind, s] of Object.entries(out) as [SoakFaultKind, RecoverySummary][]) {
    const xs = faults.filter((f) => f.kind === kind && f.recoveryMs !== undefined).map((f) => f.recoveryMs!);
    const p50 = percentile(xs, 50);
    const max = percentile(xs, 100);
    if (p50 !== undefined) s.p50Ms = Math.round(p50);
    if (max !== undefined) s.maxMs = Math.round(max);
    const ar = faults.filter((f) => f.kind === kind && f.afterReadyMs !== undefined).map((f) => f.afterReadyMs!);
    const ap50 = percentile(ar, 50);
    const amax = percentile(ar, 100);
    if (ap50 !== undefined) s.afterReadyP50Ms = Math.round(ap50);
    if (amax !== undefined) s.afterReadyMaxMs = Math.round(amax);
  }
  return out;
}

/** At most 12 window indices, then how many more. */
const list = (xs: readonly number[]) =>
  xs.length <= 12 ? xs.join(', ') : `${xs.slice(0, 12).join(', ')}, ... (${xs.length - 12} more)`;

const sec = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)}s`);

/** One live line per window. */
export function formatWindow(w: Window): string {
  const t = `${String(Math.round(w.start / 1000)).padStart(4)}-${String(Math.round(w.end / 1000)).padEnd(4)}s`;
  const ok = `ok ${String(w.ok).padStart(6)} (bulk ${w.okBulk}, checked ${w.okChecked})`;
  const bad = `err ${w.errors}, unknown ${w.unknown}`;
  const faults = w.faults.length ? `  faults: ${w.faults.join(', ')}` : '';
  return `window ${String(w.index).padStart(3)} ${t} ${ok}  ${bad}${faults}`;
}

export function formatFault(f: SoakFault): string {
  const rec = f.recoveryMs === undefined ? 'NOT RECOVERED' : `recovered in ${sec(f.recoveryMs)}`;
  const ready = f.readyAt !== undefined ? `, ready after ${sec(f.readyAt - f.at)}` : '';
  const after = f.afterReadyMs !== undefined ? `, first write ${sec(f.afterReadyMs)} after the last ready line` : '';
  const err = f.error ? `  ERROR ${f.error}` : '';
  return `+${sec(f.at)} ${f.kind} ${f.target} (${f.detail}): ${rec}${ready}${after}${err}`;
}

/** The summary printed at the end. */
export function formatReport(r: SoakReport): string {
  const rec = Object.entries(r.recovery).map(([k, s]) => {
    const ar =
      s.afterReadyP50Ms !== undefined
        ? `; after ready p50 ${sec(s.afterReadyP50Ms)} max ${sec(s.afterReadyMaxMs)}`
        : '';
    return `${k} ${s.faults}: p50 ${sec(s.p50Ms)} max ${sec(s.maxMs)}, unrecovered ${s.unrecovered}${ar}`;
  });
  const l = r.ledger;
  const lines = [
    `soak ${r.verdict}  seed ${r.seed}  (${(r.elapsedMs / 1000).toFixed(0)} s)`,
    `  load       ${r.connections} bulk connections x ${r.shape.pipeline}-command pipelines ` +
      `(${r.shape.big} x ${Math.round(r.shape.bigBytes / 1024)} KB SETs, INCRs, 64-byte SETs), ` +
      `${r.checkedClients} checked clients`,
    `  ops ok     ${r.totals.ok} (bulk ${r.totals.okBulk}, checked ${r.totals.okChecked}); ` +
      `errors ${r.totals.errors}, unknown ${r.totals.unknown}`,
    `  causes     ${
      Object.entries(r.errorsByCause)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || 'none'
    }`,
    ...Object.entries(r.errorSamples).map(([k, v]) => `             e.g. ${k}: ${v}`),
    `  faults     ${r.faults.length}`,
    ...r.faults.map((f) => `             ${formatFault(f)}`),
    `  recovery   ${rec.join('\n             ') || 'no faults'}`,
    `  windows    ${r.windows.length} windows of ${r.windowMs / 1000} s; counted ${r.countedWindows}; ` +
      `zero: ${r.zeroWindows.length}` +
      (r.zeroWindows.length ? ` (${list(r.zeroWindows)})` : '') +
      (r.exemptWindows.length ? `; exempt, cluster held down: ${list(r.exemptWindows)}` : ''),
    l
      ? `  writes     ${l.ackedSets} SETs and ${l.ackedIncrs} INCRs acknowledged ` +
        `over ${l.setKeys} + ${l.counterKeys} keys; ` +
        (l.unread
          ? `lost: UNKNOWN for ${l.unread} unread keys (${r.lostWrites} among the read ones)`
          : `lost: ${r.lostWrites}`) +
        `; corrupt: ${l.corrupt.length}`
      : `  writes     not checked`,
    ...(l?.lost.slice(0, 5).map((x) => `             LOST ${x.key}: ${x.what}; found ${JSON.stringify(x.found)}`) ??
      []),
    ...(l?.corrupt.slice(0, 5).map((x) => `             CORRUPT ${x}`) ?? []),
    `  lincheck   ${
      !r.check
        ? 'not run'
        : r.check.ok
          ? `linearizable (${r.check.checkedKeys} keys, ${r.checked.ops} ops)`
          : r.check.timedOut
            ? `TIMED OUT on key ${r.check.key}`
            : `NOT LINEARIZABLE: key ${r.check.key}: ${r.check.reason}`
    }`,
    `  history    ${r.historyPath}`,
    `  run dir    ${r.dir} (logs/, progress.log, report.json${r.verdict === 'FAIL' ? ', data/' : ''})`,
  ];
  for (const [id, msgs] of Object.entries(r.logDigest))
    if (msgs.length)
      lines.push(
        `  log ${id}     ${msgs
          .slice(0, 4)
          .map((m) => `${m.count}x "${m.msg}"`)
          .join('; ')}`,
      );
  for (const p of r.problems) lines.push(`  problem    ${p}`);
  return lines.join('\n');
}
