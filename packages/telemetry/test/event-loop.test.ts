import { describe, expect, it } from 'vitest';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { EventLoopDelay, instrumentEventLoopDelay } from '../src/index.ts';
import { PrometheusReader } from '../src/prometheus.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const busy = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};
const gauge = (text: string, stat: string): number | undefined => {
  const line = text
    .split('\n')
    .find((l) => l.startsWith('decree_event_loop_delay_ms{') && l.includes(`stat="${stat}"`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : undefined;
};

describe('event-loop delay', () => {
  it('is exported on /metrics and its max rises when the loop is blocked', async () => {
    const eld = new EventLoopDelay({ resolutionMs: 5 });
    const reader = new PrometheusReader();
    const provider = new MeterProvider({ readers: [reader] });
    const off = instrumentEventLoopDelay(eld, provider.getMeter('decree'), { replica: 'r1' });
    try {
      await sleep(50);
      const before = await reader.text();
      expect(before).toMatch(/^# TYPE decree_event_loop_delay_ms gauge$/m);
      const max0 = gauge(before, 'max')!;
      for (const stat of ['p50', 'p99', 'max']) expect(gauge(before, stat), stat).toBeGreaterThanOrEqual(0);
      expect(before).toContain('replica="r1"');

      busy(max0 + 60); // blocks the loop longer than any delay seen so far
      await sleep(20); // the timer fires late once
      const after = await reader.text();
      const max1 = gauge(after, 'max')!;
      expect(max1).toBeGreaterThan(max0);
      // the timer was due at most resolutionMs after the busy loop began
      expect(max1).toBeGreaterThanOrEqual(max0 + 60 - eld.resolutionMs);
      expect(gauge(after, 'p50')!).toBeLessThanOrEqual(max1);
      expect(gauge(after, 'p99')!).toBeLessThanOrEqual(max1);
    } finally {
      off();
      eld.stop();
      await provider.shutdown();
    }
  });

  it('keeps a stall for one more window, then forgets it', async () => {
    const eld = new EventLoopDelay({ resolutionMs: 5, windowMs: 3_600_000 });
    try {
      await sleep(20);
      busy(150);
      await sleep(20);
      const stalled = eld.summary()!.max;
      expect(stalled).toBeGreaterThanOrEqual(150 - eld.resolutionMs);
      eld.rotate();
      await sleep(20);
      expect(eld.summary()!.max).toBe(stalled); // the previous window still counts
      expect(eld.current()!.max).toBeLessThan(stalled);
      eld.rotate();
      await sleep(20);
      expect(eld.summary()!.max).toBeLessThan(stalled);
    } finally {
      eld.stop();
    }
  });
});
