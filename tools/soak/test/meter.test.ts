import { describe, expect, it } from 'vitest';
import { Rng } from '@decree/chaos';
import { DEFAULT_TIMING, planFault, SOAK_FAULT_KINDS } from '../src/faults.ts';
import { Meter, percentile, zeroWindows } from '../src/meter.ts';
import { summarizeRecovery } from '../src/report.ts';

describe('Meter', () => {
  it('counts successes per window by reply time, quiet windows included', () => {
    const m = new Meter(1000, 5000);
    m.ok(1000 + 100, 'bulk');
    m.ok(1000 + 4999, 'checked');
    m.ok(1000 + 12_000, 'bulk');
    m.error(1000 + 12_001, 'TRYAGAIN no leader');
    m.unknown(1000 + 12_002, 7, 'connection-lost');
    expect(m.windows.map((w) => w.ok)).toEqual([2, 0, 1]);
    expect(m.windows[2]).toMatchObject({ errors: 1, unknown: 7, start: 10_000, end: 15_000 });
    expect(m.errorsByCause).toEqual({ TRYAGAIN: 1, 'connection-lost': 7 });
  });

  it('a recovery ends at the first acknowledged write invoked after the fault, not at reads or older writes', () => {
    const m = new Meter(0);
    const w = m.watch(100);
    m.ok(150, 'bulk', { invoke: 90 }); // sent before the fault
    m.ok(160, 'checked'); // a read
    expect(w.recoveredAt).toBeUndefined();
    m.ok(300, 'checked', { invoke: 120 });
    expect(w.recoveredAt).toBe(300);
  });
});

describe('zero windows', () => {
  const mk = (oks: number[]) => {
    const m = new Meter(0, 5000);
    oks.forEach((n, i) => {
      for (let k = 0; k < n; k++) m.ok(i * 5000 + 1, 'bulk');
      m.touch(i * 5000 + 1);
    });
    return m.windows;
  };

  it('counts windows that end after the first fault and by the load end; held-down windows are exempt', () => {
    const ws = mk([5, 0, 3, 0, 0, 4, 0]);
    // first fault at 6 s: window 0 (0-5) is not counted; the load ended at 35 s: window 6 (30-35) counts
    const r = zeroWindows(ws, 6000, 35_000, [{ from: 15_500, to: 19_000 }]);
    expect(r.counted).toEqual([1, 2, 3, 4, 5, 6]);
    expect(r.exempt).toEqual([3]);
    expect(r.zero).toEqual([1, 4, 6]);
    expect(zeroWindows(ws, 6000, 34_999, []).counted).toEqual([1, 2, 3, 4, 5]);
    expect(zeroWindows(ws, undefined, 35_000, []).zero).toEqual([]);
  });

  it('percentile is nearest-rank', () => {
    expect(percentile([], 50)).toBeUndefined();
    expect(percentile([3, 1, 2], 50)).toBe(2);
    expect(percentile([3, 1, 2, 4], 50)).toBe(2);
    expect(percentile([3, 1, 2, 4], 100)).toBe(4);
  });
});

describe('fault plan', () => {
  it('is a function of the seed; the given kind wins; values stay in their ranges', () => {
    const a = new Rng(7);
    const b = new Rng(7);
    for (let i = 0; i < 50; i++) {
      const k = i < 3 ? SOAK_FAULT_KINDS[i] : undefined;
      const p = planFault(a, DEFAULT_TIMING, k);
      expect(planFault(b, DEFAULT_TIMING, k)).toEqual(p);
      if (k) expect(p.kind).toBe(k);
      expect(p.gapMs).toBeGreaterThanOrEqual(DEFAULT_TIMING.gapMs[0]);
      expect(p.gapMs).toBeLessThanOrEqual(DEFAULT_TIMING.gapMs[1]);
      const [lo, hi] = p.kind === 'pause' ? DEFAULT_TIMING.pauseHoldMs : DEFAULT_TIMING.killHoldMs;
      expect(p.holdMs).toBeGreaterThanOrEqual(lo);
      expect(p.holdMs).toBeLessThanOrEqual(hi);
    }
  });

  it('summarizes recovery per kind with p50, max and unrecovered', () => {
    const base = { target: 'r1', detail: '', startClock: 0 };
    const s = summarizeRecovery([
      { ...base, kind: 'kill9', at: 1, recoveryMs: 1000 },
      { ...base, kind: 'kill9', at: 2, recoveryMs: 3000 },
      { ...base, kind: 'kill9', at: 3 },
      { ...base, kind: 'restart-all', at: 4, recoveryMs: 5000, afterReadyMs: 400 },
    ]);
    expect(s.kill9).toEqual({ faults: 3, recovered: 2, unrecovered: 1, p50Ms: 1000, maxMs: 3000 });
    expect(s['restart-all']).toMatchObject({ p50Ms: 5000, afterReadyP50Ms: 400, afterReadyMaxMs: 400 });
    expect(s.pause).toBeUndefined();
  });
});
