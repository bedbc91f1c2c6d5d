/**
 * A short soak inside npm test: a real 3-process cluster (TCP, file WAL, default election timeouts)
 * under 400-command pipelines with 300 KB values plus recorded clients, ~35 s of faults (the first
 * round — kill -9, SIGSTOP, whole-cluster restart — is always completed), then the final reads and
 * the checks. It asserts the report's invariants only (no timing thresholds). Every child is
 * SIGKILLed in afterAll; the data directories are removed, the run dir (logs/, progress.log,
 * report.json, history.jsonl) is kept on failure.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAllChildren } from '@decree/chaos';
import { formatReport, runSoak, SOAK_FAULT_KINDS, type SoakReport } from '../src/index.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'decree-soak-test-'));
let report: SoakReport;

beforeAll(async () => {
  report = await runSoak({
    durationMs: 35_000,
    seed: 20261205,
    dir,
    connections: 3,
    checkedClients: 2,
    shape: { keyspace: 2000 }, // fewer keys to read back at the end
    timing: { gapMs: [2000, 5000], killHoldMs: [500, 2000], pauseHoldMs: [1000, 3000] },
    recoverTimeoutMs: 10_000,
    healTimeoutMs: 10_000,
    finalReadTimeoutMs: 10_000,
    checkTimeoutMs: 20_000,
  });
  console.error(formatReport(report));
}, 240_000);

afterAll(async () => {
  await killAllChildren();
  if (report?.verdict === 'PASS') rmSync(dir, { recursive: true, force: true });
  else rmSync(path.join(dir, 'data'), { recursive: true, force: true });
}, 60_000);

describe('soak (real processes, pipelined big-value load, kill -9, SIGSTOP, whole-cluster restart)', () => {
  it('injected every fault kind, each carried out without a harness error', () => {
    for (const k of SOAK_FAULT_KINDS)
      expect(report.faults.filter((f) => f.kind === k).length, k).toBeGreaterThanOrEqual(1);
    expect(report.faults.filter((f) => f.error)).toEqual([]);
  });

  it('acknowledged bulk and checked writes', () => {
    expect(report.totals.okBulk).toBeGreaterThan(0);
    expect(report.totals.okChecked).toBeGreaterThan(0);
    expect(report.ledger!.ackedSets).toBeGreaterThan(0);
    expect(report.ledger!.ackedIncrs).toBeGreaterThan(0);
  });

  it('every key was read back at the end, and no acknowledged write was lost or corrupted', () => {
    expect(report.finalReadsComplete).toBe(true);
    expect(report.ledger!.unread).toBe(0);
    expect(report.ledger!.lost).toEqual([]);
    expect(report.ledger!.corrupt).toEqual([]);
  });

  it('the recorded history is linearizable', () => {
    expect(report.check?.ok, report.check?.reason).toBe(true);
  });

  it('no window after the first fault had zero successes', () => {
    expect(report.zeroWindows).toEqual([]);
  });

  it('verdict PASS', () => {
    expect(report.problems).toEqual([]);
    expect(report.verdict).toBe('PASS');
  });
});
