// Loaded into each replica process with `node --import` by apps/bench/src/stalls.ts (a diagnostic, not
// part of the product): the event-loop delay (perf_hooks.monitorEventLoopDelay, 10 ms timer), the loop's
// gaps over 20 ms with their wall-clock time, and the GC pauses over 5 ms (DECREE_STALL_GC_MS). SIGUSR2 writes what was
// seen since the previous SIGUSR2 to `<DECREE_STALL_PROBE>-<pid>.json` and starts afresh.
import { writeFileSync } from 'node:fs';
import { monitorEventLoopDelay, PerformanceObserver, performance } from 'node:perf_hooks';

const out = process.env.DECREE_STALL_PROBE;
if (out) {
  const RES = 10;
  const GC_MS = Number(process.env.DECREE_STALL_GC_MS ?? 5); // GC pauses listed from this long
  const h = monitorEventLoopDelay({ resolution: RES });
  h.enable();
  let gaps = [];
  let gcs = [];
  let gcCount = 0;
  let gcMs = 0;
  let last = performance.now();
  const t = setInterval(() => {
    const now = performance.now();
    const gap = now - last - RES;
    if (gap > 20) gaps.push({ at: Math.round(performance.timeOrigin + last), ms: Math.round(gap) });
    last = now;
  }, RES);
  t.unref();
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcCount++;
      gcMs += e.duration;
      if (e.duration > GC_MS)
        gcs.push({
          at: Math.round(performance.timeOrigin + e.startTime),
          ms: +e.duration.toFixed(1),
          kind: e.detail?.kind,
        });
    }
  }).observe({ entryTypes: ['gc'] });
  process.on('SIGUSR2', () => {
    const ms = (ns) => +(ns / 1e6 - RES).toFixed(2);
    const doc = {
      pid: process.pid,
      eld: { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max), samples: h.count },
      gaps,
      gcs,
      gcCount,
      gcMs: +gcMs.toFixed(1),
    };
    writeFileSync(`${out}-${process.pid}.json`, JSON.stringify(doc));
    h.reset();
    gaps = [];
    gcs = [];
    gcCount = 0;
    gcMs = 0;
  });
}
