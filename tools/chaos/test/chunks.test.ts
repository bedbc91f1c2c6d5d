/**
 * A short chunks run inside npm test (issue #17): 4 real processes (3 members and a spare), pipelined
 * chunks of 300 KB SETs and INCRs through ioredis with every retry off, sent to the leader and to
 * followers while the leader is killed, paused, deafened and isolated and the configuration changes
 * under recorded linearizable reads. Asserts the counter invariants and the lincheck verdict, no timing.
 * Every child is SIGKILLed in afterAll.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHUNK_FAULT_KINDS, formatChunksReport, killAllChildren, runChunks, type ChunksReport } from '../src/index.ts';

const SEED = 20261217;
const dir = mkdtempSync(path.join(os.tmpdir(), 'decree-chaos-chunks-test-'));
let report: ChunksReport;

beforeAll(async () => {
  report = await runChunks({
    durationMs: 40_000,
    seed: SEED,
    dir,
    writers: 3,
    clients: 3,
    gapMs: [1500, 3000],
    holdMs: [1000, 2500],
    configGapMs: [1500, 3000],
    configTimeoutMs: 20_000,
    healTimeoutMs: 30_000,
    finalReadTimeoutMs: 20_000,
    checkTimeoutMs: 20_000,
  });
  const rerun = `npm run chaos -- --workload chunks --seconds 40 --seed ${SEED}`;
  if (report.verdict !== 'PASS') console.error(`${formatChunksReport(report)}\nrerun: ${rerun}`);
}, 150_000);

afterAll(async () => {
  await killAllChildren();
  rmSync(dir, { recursive: true, force: true });
});

describe('chaos chunks: pipelined chunks across slots, counters, reads during configuration changes', () => {
  it('sent pipelines with big values and INCRs to the leader and to followers, and got answers', () => {
    expect(report.chunks.pipelines).toBeGreaterThan(0);
    expect(report.chunks.byRole.leader).toBeGreaterThan(0);
    expect(report.chunks.byRole.follower).toBeGreaterThan(0);
    expect(report.chunks.bigSets).toBeGreaterThan(0);
    expect(report.incrs.acked).toBeGreaterThan(0);
    expect(report.incrs.sent).toBe(report.incrs.acked + report.incrs.inDoubt);
  });

  it('injected every fault kind and changed the configuration under recorded reads', () => {
    for (const k of CHUNK_FAULT_KINDS) expect(report.faultCounts[k] ?? 0, k).toBeGreaterThanOrEqual(1);
    expect(report.faults.filter((f) => f.error)).toEqual([]);
    expect(report.changes.some((c) => c.result)).toBe(true);
    expect(report.recorded.gets).toBeGreaterThan(0);
    expect(report.readsDuringChanges.total).toBeGreaterThan(0);
  });

  it('counters: acknowledged INCR results distinct, final <= acknowledged + in doubt and >= the highest result', () => {
    expect(report.counters.unread).toEqual([]);
    expect(report.counters.violations).toEqual([]);
    expect(report.chunks.crossed.concat(report.recorded.crossed)).toEqual([]);
  });

  it('the recorded history (reads during configuration changes included) is linearizable; members converged', () => {
    expect(report.check.ok ? 'linearizable' : `${report.check.key}: ${report.check.reason}`).toBe('linearizable');
    expect(report.converged).toBe(true);
    expect(report.stateEqual).toBe(true);
    expect(report.problems).toEqual([]);
    expect(report.verdict).toBe('PASS');
  });
});
