import { trace } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  type ReadableSpan,
  type SpanExporter,
  TraceIdRatioBasedSampler,
  ParentBasedSampler,
} from '@opentelemetry/sdk-trace-base';

/** Where spans go: 'console' (stdout), 'otlp' (OTLP/HTTP, JSON encoding) or any SpanExporter (in-memory, your own). */
export type TracingOptions = {
  /** fraction of root spans sampled (parent-based), 0..1; default 1 */
  ratio?: number;
  /** resource attributes `service.name` (default "decree") and `service.instance.id` (e.g. the replica id) */
  service?: { name?: string; instanceId?: string };
  /** called when an export fails (collector down, HTTP error); spans of that batch are dropped */
  onExportError?: (err: Error) => void;
} & (
  | { exporter: 'console' | SpanExporter }
  | {
      exporter: 'otlp';
      /**
       * OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces (the full path: nothing is
       * appended). Absent: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else $OTEL_EXPORTER_OTLP_ENDPOINT +
       * /v1/traces, else http://localhost:4318/v1/traces.
       */
      endpoint?: string;
      /** HTTP headers sent with every export (e.g. an authorization token) */
      headers?: Record<string, string>;
      /** per-request timeout, default 10 000 ms */
      timeoutMillis?: number;
    }
);

/** Checks an OTLP endpoint: an absolute http: or https: URL. Returns an error message, or undefined when fine. */
export function otlpEndpointProblem(endpoint: string): string | undefined {
  let u: URL;
  try {
    u = new URL(endpoint);
  } catch {
    return `not a URL: "${endpoint}" (e.g. http://collector:4318/v1/traces)`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `must be an http: or https: URL, got "${endpoint}"`;
  return undefined;
}

/** Forwards to `inner`; reports failed exports to `onError`. */
class ReportingExporter implements SpanExporter {
  constructor(
    private readonly inner: SpanExporter,
    private readonly onError: (err: Error) => void,
  ) {}
  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    this.inner.export(spans, (r) => {
      if (r.code !== ExportResultCode.SUCCESS) {
        try {
          this.onError(r.error ?? new Error(`export of ${spans.length} spans failed`));
        } catch {
          /* a reporting hook must not break the export pipeline */
        }
      }
      done(r);
    });
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/**
 * Application side (uses the OTel SDK; import from `@decree/telemetry/sdk`): registers a global
 * tracer provider so that instrumentBus() records. `exporter`: 'console' (spans as objects on
 * stdout), 'otlp' (OTLP/HTTP JSON to `endpoint`, with `headers`) or any SpanExporter (in-memory,
 * your own). `ratio` samples root spans (parent-based). Spans are batched (BatchSpanProcessor:
 * every 5 s or 512 spans); `forceFlush()` exports now (rejects when that export fails),
 * `shutdown()` flushes and unregisters.
 */
export function registerTracing(o: TracingOptions): { forceFlush(): Promise<void>; shutdown(): Promise<void> } {
  let exporter: SpanExporter;
  if (o.exporter === 'console') exporter = new ConsoleSpanExporter();
  else if (o.exporter === 'otlp') {
    const problem = o.endpoint === undefined ? undefined : otlpEndpointProblem(o.endpoint);
    if (problem) throw new Error(`OTLP endpoint: ${problem}`);
    exporter = new OTLPTraceExporter({
      ...(o.endpoint !== undefined ? { url: o.endpoint } : {}),
      ...(o.headers ? { headers: o.headers } : {}),
      ...(o.timeoutMillis !== undefined ? { timeoutMillis: o.timeoutMillis } : {}),
    });
  } else exporter = o.exporter;
  if (o.onExportError) exporter = new ReportingExporter(exporter, o.onExportError);
  const resource = defaultResource().merge(
    resourceFromAttributes({
      'service.name': o.service?.name ?? 'decree',
      ...(o.service?.instanceId !== undefined ? { 'service.instance.id': o.service.instanceId } : {}),
    }),
  );
  const provider = new BasicTracerProvider({
    resource,
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(o.ratio ?? 1) }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  trace.setGlobalTracerProvider(provider);
  return {
    forceFlush: () => provider.forceFlush().catch((e: unknown) => Promise.reject(oneError(e))),
    async shutdown() {
      try {
        await provider.shutdown();
      } catch (e) {
        throw oneError(e);
      } finally {
        trace.disable();
      }
    },
  };
}

/** The provider rejects with an array (one entry per span processor): one Error instead. */
function oneError(e: unknown): Error {
  if (Array.isArray(e)) {
    const errs = e.map((x) => (x instanceof Error ? x : new Error(String(x))));
    return errs.length === 1 ? errs[0]! : new AggregateError(errs, errs.map((x) => x.message).join('; '));
  }
  return e instanceof Error ? e : new Error(String(e));
}

/**
 * An XState inspection observer for `--inspect`: connects to the Stately inspector when the
 * optional `@statelyai/inspect` package is installed and reachable; otherwise (offline, not
 * installed) logs each inspection event through `log`.
 */
export async function makeInspector(
  log: (msg: string, obj: object) => void,
): Promise<{ inspect: (ev: any) => void; mode: 'stately' | 'log'; stop(): void }> {
  // offline: log actor creation and every change of a machine's state (with the event that caused it);
  // the events themselves (timer ticks, messages) are far too many to log
  const last = new Map<string, string>();
  const logEvent = (ev: any) => {
    if (ev?.type === '@xstate.snapshot') {
      // machines only: an invoked promise (a learner's copy, a snapshotter's drain) has no state value
      if (ev.snapshot?.value === undefined) return;
      const id = String(ev.actorRef?.id ?? '?');
      const v = JSON.stringify(ev.snapshot?.value ?? null);
      if (last.get(id) === v) return;
      const from = last.get(id);
      last.set(id, v);
      log('inspect: state', {
        actor: id,
        machine: ev.actorRef?.logic?.id,
        from: from ? JSON.parse(from) : undefined,
        to: ev.snapshot?.value,
        event: ev.event?.type,
      });
    } else if (ev?.type === '@xstate.actor')
      log('inspect: actor', { actor: ev.actorRef?.id, machine: ev.actorRef?.logic?.id });
  };
  try {
    const name = '@statelyai/inspect';
    const mod: any = await import(/* @vite-ignore */ name);
    const inspector = mod.createWebSocketInspector
      ? mod.createWebSocketInspector({ autoStart: true })
      : mod.createBrowserInspector?.();
    if (!inspector?.inspect) throw new Error('no inspector in @statelyai/inspect');
    const insp = inspector.inspect;
    const fn = typeof insp === 'function' ? insp : (ev: any) => insp.next?.(ev);
    return {
      inspect: (ev) => {
        try {
          fn(ev);
        } catch {
          logEvent(ev);
        }
      },
      mode: 'stately',
      stop: () => inspector.stop?.(),
    };
  } catch (e) {
    log('inspect: @statelyai/inspect unavailable; logging inspection events instead', {
      reason: String((e as Error).message ?? e),
    });
    return { inspect: logEvent, mode: 'log', stop() {} };
  }
}
