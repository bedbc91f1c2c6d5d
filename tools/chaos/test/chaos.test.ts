/**
 * A bounded chaos run inside npm test: a real 3-process cluster behind link proxies, 6 recording
 * clients, ~25 s of faults (the first round of every kind is always completed), then heal, converge
 * and check. Generous bounds for a loaded 2-core machine; every child is SIGKILLed in afterAll.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkHistory, readHistoryFileSync, type Op } from '@decree/lincheck';
import { FAULT_KINDS, REGISTER_KEYS, killAllChildren, runChaos, formatReport, type ChaosReport } from '../src/index.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'decree-chaos-test-'));
let report: ChaosReport;
let history: Op[];

beforeAll(async () => {
  report = await runChaos({
    durationMs: 25_000,
    seed: 20261123,
    dir,
    clients: 6,
    gapMs: [800, 2000],
    holdMs: [1000, 3000],
    checkTimeoutMs: 20_000,
  });
  if (report.verdict !== 'PASS') console.error(formatReport(report));
  history = readHistoryFileSync(report.historyPath);
}, 110_000);

afterAll(async () => {
  await killAllChildren();
  rmSync(dir, { recursive: true, force: true });
});

describe('chaos run (real processes, faults, lincheck)', () => {
  it('wrote a history file with acknowledged operations of every kind', () => {
    expect(existsSync(report.historyPath)).toBe(true);
    expect(history.length).toBe(report.ops);
    const ok = history.filter((o) => o.complete !== null && o.ok !== false);
    expect(ok.length).toBeGreaterThan(50);
    for (const kind of ['get', 'set', 'incr', 'cas'] as const) expect(ok.some((o) => o.op === kind)).toBe(true);
  });

  it('injected at least one fault of each kind, each healed without error', () => {
    for (const k of FAULT_KINDS) expect(report.faultCounts[k], k).toBeGreaterThanOrEqual(1);
    expect(report.faults.filter((f) => f.error)).toEqual([]);
    expect(report.faults.every((f) => f.endClock !== undefined)).toBe(true);
  });

  it('the checker accepts the history; replicas converged to the same state', () => {
    expect(report.problems).toEqual([]);
    expect(checkHistory(history, { timeoutMs: 20_000 }).ok).toBe(true);
    expect(report.converged).toBe(true);
    expect(report.stateEqual).toBe(true);
    expect(report.verdict).toBe('PASS');
  });

  it('the same history with one final read corrupted is rejected (the check has teeth)', () => {
    const i = history.findIndex(
      (o) =>
        o.process === 'final' && o.complete !== null && REGISTER_KEYS.includes(o.key as (typeof REGISTER_KEYS)[number]),
    );
    expect(i).toBeGreaterThanOrEqual(0);
    const bad = history.map((o, j) => (j === i ? { ...o, result: 'never-written' } : o));
    expect(checkHistory(bad, { timeoutMs: 20_000 }).ok).toBe(false);
  });
});
