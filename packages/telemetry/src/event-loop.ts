import type { Attributes, Meter } from '@opentelemetry/api';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

/** Event-loop delay figures (ms): how late a timer of `resolutionMs` fired. */
export interface EventLoopDelaySummary {
  p50: number;
  p99: number;
  max: number;
  /** timer intervals measured */
  samples: number;
}

export interface EventLoopDelayOptions {
  /** the interval of the sampling timer (ms, default 10): delays shorter than this can go unseen */
  resolutionMs?: number;
  /** figures cover the current window and the one before it (default 60,000 ms) */
  windowMs?: number;
}

/**
 * The event-loop delay of this thread (perf_hooks.monitorEventLoopDelay): a libuv timer fires every
 * `resolutionMs` and the time between two firings minus the interval is the delay; a blocked loop
 * (a long synchronous task, a GC pause) shows as one large delay. Figures are over the current window
 * and the previous one (60 to 120 s with the default window): each figure is the larger of the two
 * windows', an upper bound of the figure over both.
 */
export class EventLoopDelay {
  readonly resolutionMs: number;
  readonly windowMs: number;
  private readonly h: IntervalHistogram;
  private previous: EventLoopDelaySummary | undefined;
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(opts: EventLoopDelayOptions = {}) {
    this.resolutionMs = Math.max(1, Math.round(opts.resolutionMs ?? 10));
    this.windowMs = opts.windowMs ?? 60_000;
    this.h = monitorEventLoopDelay({ resolution: this.resolutionMs });
    this.h.enable();
    this.timer = setInterval(() => this.rotate(), this.windowMs);
    this.timer.unref();
  }

  /** Starts a new window (the current one becomes the previous one). */
  rotate(): void {
    this.previous = this.current();
    this.h.reset();
  }

  /** The figures of the current window alone; undefined before the first sample. */
  current(): EventLoopDelaySummary | undefined {
    if (this.h.count === 0) return undefined;
    const ms = (ns: number) => Math.max(0, Math.round(ns / 1e3 - this.resolutionMs * 1e3) / 1e3); // to the µs
    return {
      p50: ms(this.h.percentile(50)),
      p99: ms(this.h.percentile(99)),
      max: ms(this.h.max),
      samples: this.h.count,
    };
  }

  /** The figures over the current and the previous window; undefined before the first sample. */
  summary(): EventLoopDelaySummary | undefined {
    const c = this.current();
    const p = this.previous;
    if (!c || !p) return c ?? p;
    return {
      p50: Math.max(c.p50, p.p50),
      p99: Math.max(c.p99, p.p99),
      max: Math.max(c.max, p.max),
      samples: c.samples + p.samples,
    };
  }

  stop(): void {
    clearInterval(this.timer);
    this.h.disable();
  }
}

/**
 * Registers `decree_event_loop_delay_ms` (a gauge, stat="p50"|"p99"|"max") on `meter`, read from
 * `eld` at collection time. Returns a function that removes it.
 */
export function instrumentEventLoopDelay(eld: EventLoopDelay, meter: Meter, attrs: Attributes = {}): () => void {
  const gauge = meter.createObservableGauge('decree_event_loop_delay_ms', {
    description:
      `event-loop delay of the process (ms): how late a ${eld.resolutionMs} ms timer fired, ` +
      `over the last ${Math.round(eld.windowMs / 1000)} to ${Math.round((2 * eld.windowMs) / 1000)} s`,
    unit: 'ms',
  });
  const cb = (r: import('@opentelemetry/api').ObservableResult) => {
    const s = eld.summary();
    if (!s) return;
    r.observe(s.p50, { ...attrs, stat: 'p50' });
    r.observe(s.p99, { ...attrs, stat: 'p99' });
    r.observe(s.max, { ...attrs, stat: 'max' });
  };
  gauge.addCallback(cb);
  return () => gauge.removeCallback(cb);
}
