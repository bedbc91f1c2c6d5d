import { trace } from '@opentelemetry/api';
import { BasicTracerProvider, BatchSpanProcessor, ConsoleSpanExporter, type SpanExporter, TraceIdRatioBasedSampler, ParentBasedSampler } from '@opentelemetry/sdk-trace-base';

/**
 * Application side (uses the OTel SDK; import from `@decree/telemetry/sdk`): registers a global
 * tracer provider so that instrumentBus() records. `exporter`: 'console' (spans as objects on
 * stdout) or any SpanExporter (OTLP, Jaeger, in-memory). `ratio` samples root spans (parent-based).
 */
export function registerTracing(o: { exporter: 'console' | SpanExporter; ratio?: number }): { forceFlush(): Promise<void>; shutdown(): Promise<void> } {
  const exporter = o.exporter === 'console' ? new ConsoleSpanExporter() : o.exporter;
  const provider = new BasicTracerProvider({
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(o.ratio ?? 1) }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  trace.setGlobalTracerProvider(provider);
  return {
    forceFlush: () => provider.forceFlush(),
    async shutdown() {
      await provider.shutdown();
      trace.disable();
    },
  };
}

/**
 * An XState inspection observer for `--inspect`: connects to the Stately inspector when the
 * optional `@statelyai/inspect` package is installed and reachable; otherwise (offline, not
 * installed) logs each inspection event through `log`.
 */
export async function makeInspector(log: (msg: string, obj: object) => void): Promise<{ inspect: (ev: any) => void; mode: 'stately' | 'log'; stop(): void }> {
  // offline: log actor creation and every change of a machine's state (with the event that caused it);
  // the events themselves (timer ticks, messages) are far too many to log
  const last = new Map<string, string>();
  const logEvent = (ev: any) => {
    if (ev?.type === '@xstate.snapshot') {
      const id = String(ev.actorRef?.id ?? '?');
      const v = JSON.stringify(ev.snapshot?.value ?? null);
      if (last.get(id) === v) return;
      const from = last.get(id);
      last.set(id, v);
      log('inspect: state', { actor: id, machine: ev.actorRef?.logic?.id, from: from ? JSON.parse(from) : undefined, to: ev.snapshot?.value, event: ev.event?.type });
    } else if (ev?.type === '@xstate.actor') log('inspect: actor', { actor: ev.actorRef?.id, machine: ev.actorRef?.logic?.id });
  };
  try {
    const name = '@statelyai/inspect';
    const mod: any = await import(/* @vite-ignore */ name);
    const inspector = mod.createWebSocketInspector ? mod.createWebSocketInspector({ autoStart: true }) : mod.createBrowserInspector?.();
    if (!inspector?.inspect) throw new Error('no inspector in @statelyai/inspect');
    const insp = inspector.inspect;
    const fn = typeof insp === 'function' ? insp : (ev: any) => insp.next?.(ev);
    return { inspect: (ev) => { try { fn(ev); } catch { logEvent(ev); } }, mode: 'stately', stop: () => inspector.stop?.() };
  } catch (e) {
    log('inspect: @statelyai/inspect unavailable; logging inspection events instead', { reason: String((e as Error).message ?? e) });
    return { inspect: logEvent, mode: 'log', stop() {} };
  }
}
