/**
 * The latest latency samples in a fixed ring (at most `size`, none older than `maxAgeMs`): p50/p99
 * over a recent window for the status page. Memory is two typed arrays of `size`, whatever the load.
 */
export class LatencyWindow {
  private readonly values: Float64Array;
  private readonly times: Float64Array;
  private next = 0;
  private count = 0;

  constructor(
    readonly size = 4096,
    readonly maxAgeMs = 60_000,
    private readonly clock: () => number = Date.now,
  ) {
    this.values = new Float64Array(size);
    this.times = new Float64Array(size);
  }

  record(ms: number): void {
    this.values[this.next] = ms;
    this.times[this.next] = this.clock();
    this.next = (this.next + 1) % this.size;
    if (this.count < this.size) this.count++;
  }

  /** p50 and p99 (nearest rank) of the samples of the last maxAgeMs; undefined without any */
  quantiles(): { p50: number; p99: number; samples: number } | undefined {
    const since = this.clock() - this.maxAgeMs;
    const xs: number[] = [];
    for (let i = 0; i < this.count; i++) if (this.times[i]! >= since) xs.push(this.values[i]!);
    if (xs.length === 0) return undefined;
    xs.sort((a, b) => a - b);
    const rank = (q: number) => xs[Math.min(xs.length - 1, Math.max(0, Math.ceil(q * xs.length) - 1))]!;
    return { p50: rank(0.5), p99: rank(0.99), samples: xs.length };
  }
}
