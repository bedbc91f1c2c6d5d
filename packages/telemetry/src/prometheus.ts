import type { IncomingMessage, ServerResponse } from 'node:http';
import { AggregationTemporality, DataPointType, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';

/**
 * A pull MetricReader for the OTel metrics SDK (`new MeterProvider({ readers: [reader] })`) whose
 * collection renders in the Prometheus text format 0.0.4. Uses the SDK, so it lives in the
 * `@decree/telemetry/prometheus` entry point (applications only).
 */
export class PrometheusReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}

  async text(): Promise<string> {
    const { resourceMetrics } = await this.collect();
    return prometheusText(resourceMetrics);
  }

  /** node:http handler for GET /metrics */
  handler(): (req: IncomingMessage, res: ServerResponse) => void {
    return (_req, res) => {
      this.text().then(
        (body) => {
          res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
          res.end(body);
        },
        (e) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`# collection failed: ${String(e)}\n`);
        },
      );
    };
  }
}

const sanitize = (n: string) => n.replace(/[^a-zA-Z0-9_:]/g, '_').replace(/^([^a-zA-Z_:])/, '_$1');
const esc = (v: unknown) => String(v).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const labels = (a: Record<string, unknown>, extra?: [string, string]) => {
  const parts = Object.entries(a).map(([k, v]) => `${sanitize(k)}="${esc(v)}"`);
  if (extra) parts.push(`${extra[0]}="${esc(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
};
const num = (v: number) => (Number.isFinite(v) ? String(v) : v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN');

/** Renders collected metrics in the Prometheus text exposition format. */
export function prometheusText(rm: ResourceMetrics): string {
  const out: string[] = [];
  for (const sm of rm.scopeMetrics) {
    for (const m of sm.metrics) {
      const name = sanitize(m.descriptor.name);
      const help = m.descriptor.description
        ? `# HELP ${name} ${m.descriptor.description.replace(/\n/g, ' ')}`
        : undefined;
      if (m.dataPointType === DataPointType.HISTOGRAM) {
        if (help) out.push(help);
        out.push(`# TYPE ${name} histogram`);
        for (const dp of m.dataPoints) {
          const h = dp.value;
          let cum = 0;
          h.buckets.boundaries.forEach((b, i) => {
            cum += h.buckets.counts[i] ?? 0;
            out.push(`${name}_bucket${labels(dp.attributes, ['le', num(b)])} ${cum}`);
          });
          out.push(`${name}_bucket${labels(dp.attributes, ['le', '+Inf'])} ${h.count}`);
          out.push(`${name}_sum${labels(dp.attributes)} ${num(h.sum ?? 0)}`);
          out.push(`${name}_count${labels(dp.attributes)} ${h.count}`);
        }
      } else if (m.dataPointType === DataPointType.SUM || m.dataPointType === DataPointType.GAUGE) {
        const counter = m.dataPointType === DataPointType.SUM && m.isMonotonic;
        if (help) out.push(help);
        out.push(`# TYPE ${name} ${counter ? 'counter' : 'gauge'}`);
        for (const dp of m.dataPoints) out.push(`${name}${labels(dp.attributes)} ${num(dp.value as number)}`);
      }
    }
  }
  return out.join('\n') + '\n';
}
