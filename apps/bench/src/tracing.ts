/**
 * `npm run bench -- tracing`: what tracing costs the in-process engine. The same loads as the
 * engine rows (3 replicas on one bus, KV SETs: 8 clients × 1024 pipelined, and 1 client one command
 * at a time), with tracing
 *   - off (the bus not instrumented: `decree start` without --trace),
 *   - tap only (instrumentBus, no SDK registered),
 *   - on at ratio 0.01 and 1 with an exporter that counts the spans and drops them (span creation,
 *     headers and the batch span processor, no encoding),
 *   - on at ratio 0.01 and 1 with the OTLP/HTTP exporter posting JSON to a sink in a child process
 *     on loopback (what `decree start --trace otlp` does, encoding and HTTP included).
 * Tracing on is set up as `decree start --trace … --trace-ratio r` does it: registerTracing (the SDK
 * samples every root) and instrumentBus(bus, { ratio: r }) on the leader's id (the bus samples).
 * A 1-second untimed run first warms the JIT so that the first row is not the slow one. One bus is
 * shared by the three replicas, so its one tap sees every message (the leader's spans plus one
 * acceptor's).
 */
import { spawn } from 'node:child_process';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { instrumentBus } from '@decree/telemetry';
import { registerTracing } from '@decree/telemetry/sdk';
import { type Instrument, inProcessBench, inProcessLatencyBench } from './inprocess.ts';
import type { BenchRow } from './stats.ts';

/** Counts what reaches it, then hands the spans to `inner` (or drops them). */
class CountingExporter implements SpanExporter {
  spans = 0;
  failed = 0;
  constructor(private readonly inner?: SpanExporter) {}
  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    if (!this.inner) {
      this.spans += spans.length;
      return done({ code: ExportResultCode.SUCCESS });
    }
    this.inner.export(spans, (r) => {
      if (r.code === ExportResultCode.SUCCESS) this.spans += spans.length;
      else this.failed += spans.length;
      done(r);
    });
  }
  async shutdown(): Promise<void> {
    await this.inner?.shutdown();
  }
  async forceFlush(): Promise<void> {
    await this.inner?.forceFlush?.();
  }
}

/** An OTLP/HTTP sink in a child process: reads each POST and answers 200 (a collector that keeps nothing). */
async function startSink(): Promise<{ url: string; stop(): Promise<void> }> {
  const code =
    `const s=require('node:http').createServer((q,r)=>{q.resume();q.on('end',()=>{` +
    `r.writeHead(200,{'content-type':'application/json'});r.end('{}')})});` +
    `s.keepAliveTimeout=60000;s.listen(0,'127.0.0.1',()=>console.log(s.address().port))`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => reject(new Error(`OTLP sink exited (${c})`)));
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    stop: () =>
      new Promise<void>((resolve) => {
        child.removeAllListeners('exit');
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

type Mode = { label: string } & ({ kind: 'off' } | { kind: 'tap' } | { kind: 'sdk'; ratio: number; otlp: boolean });

const MODES: Mode[] = [
  { label: 'tracing off', kind: 'off' },
  { label: 'bus instrumented, no SDK', kind: 'tap' },
  { label: 'tracing 1 %, spans counted and dropped', kind: 'sdk', ratio: 0.01, otlp: false },
  { label: 'tracing 100 %, spans counted and dropped', kind: 'sdk', ratio: 1, otlp: false },
  { label: 'tracing 1 %, OTLP/HTTP to a loopback sink', kind: 'sdk', ratio: 0.01, otlp: true },
  { label: 'tracing 100 %, OTLP/HTTP to a loopback sink', kind: 'sdk', ratio: 1, otlp: true },
];

/** One run of one load under one tracing mode; the note says how many spans were exported. */
async function runMode(
  mode: Mode,
  load: 'pipelined' | 'single',
  seconds: number,
  sinkUrl: string | undefined,
): Promise<BenchRow> {
  const name = `${load === 'pipelined' ? '8 × 1024 pipelined SET' : '1 client, one SET at a time'}: ${mode.label}`;
  let counter: CountingExporter | undefined;
  let sdk: ReturnType<typeof registerTracing> | undefined;
  let instrument: Instrument | undefined;
  if (mode.kind === 'sdk') {
    counter = new CountingExporter(mode.otlp ? new OTLPTraceExporter({ url: sinkUrl! }) : undefined);
    sdk = registerTracing({ exporter: counter, ratio: 1 });
  }
  if (mode.kind !== 'off') {
    const ratio = mode.kind === 'sdk' ? mode.ratio : 1;
    instrument = (bus, leaderId) => {
      const inst = instrumentBus(bus, { replica: leaderId, ratio });
      return () => inst.stop();
    };
  }
  try {
    const row =
      load === 'pipelined'
        ? await inProcessBench({ seconds, instrument, name })
        : await inProcessLatencyBench({ seconds, instrument, name });
    if (sdk && counter) {
      await sdk.forceFlush().catch(() => undefined);
      const perSec = counter.spans / row.seconds;
      const failed = counter.failed ? `, ${counter.failed.toLocaleString('en-US')} failed` : '';
      row.note =
        `${counter.spans.toLocaleString('en-US')} spans exported ` +
        `(${Math.round(perSec).toLocaleString('en-US')}/s)${failed}`;
    } else row.note = load === 'pipelined' ? 'latency = one pipelined batch round trip' : '';
    return row;
  } finally {
    await sdk?.shutdown().catch(() => undefined);
  }
}

/** Every mode under both loads: the pipelined runs last `seconds`, the one-at-a-time runs min(seconds, 3). */
export async function tracingBench(o: { seconds?: number; log?: (s: string) => void } = {}): Promise<BenchRow[]> {
  const seconds = o.seconds ?? 5;
  const sink = await startSink();
  const rows: BenchRow[] = [];
  try {
    o.log?.('» tracing: warm-up (not reported)…');
    await inProcessBench({ seconds: 1 });
    await inProcessLatencyBench({ seconds: 1 });
    for (const load of ['pipelined', 'single'] as const)
      for (const mode of MODES) {
        o.log?.(`» tracing: ${load}, ${mode.label}…`);
        rows.push(await runMode(mode, load, load === 'pipelined' ? seconds : Math.min(seconds, 3), sink.url));
      }
  } finally {
    await sink.stop();
  }
  return rows;
}
