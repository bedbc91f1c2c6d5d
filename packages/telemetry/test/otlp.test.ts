import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Bus } from '@decree/bus';
import { SimCluster } from '@decree/testkit';
import { instrumentBus } from '../src/index.ts';
import { otlpEndpointProblem, registerTracing } from '../src/sdk.ts';

/** What a tiny OTLP/HTTP collector on a loopback port received. */
interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** OTLP/JSON: ExportTraceServiceRequest, the parts the test reads */
interface OtlpAttr {
  key: string;
  value: { stringValue?: string; intValue?: number | string };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: OtlpAttr[];
}
interface OtlpBody {
  resourceSpans: { resource: { attributes: OtlpAttr[] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
}

const attr = (attrs: OtlpAttr[], key: string) => attrs.find((a) => a.key === key)?.value.stringValue;

describe('registerTracing with the OTLP/HTTP exporter', () => {
  const received: Received[] = [];
  let status = 200;
  let server: http.Server;
  let endpoint: string;
  let shutdown: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        });
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(status === 200 ? '{}' : '{"code":3,"message":"rejected by the test collector"}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve)); // port 0: a free loopback port
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  afterEach(async () => {
    await shutdown?.();
    shutdown = undefined;
    received.length = 0;
    status = 200;
  });

  /** a 3-replica SimCluster, every bus instrumented with the global (registered) tracer; one command */
  async function runOneCommand(seed: number): Promise<string> {
    const c = await new SimCluster({ n: 3, seed }).start();
    for (const id of c.ids) instrumentBus((c.nodes.get(id) as unknown as { bus: Bus }).bus, { replica: id });
    const leader = c.waitForLeader();
    await c.submitAndWait(new TextEncoder().encode('x=1'));
    c.run(200); // followers apply
    await c.stop();
    return leader;
  }

  it('POSTs the spans of r1, r2, r3 as OTLP JSON to the configured endpoint, with the configured headers', async () => {
    const t = registerTracing({
      exporter: 'otlp',
      endpoint,
      headers: { authorization: 'Bearer test-token' },
      service: { instanceId: 'sim' },
    });
    shutdown = () => t.shutdown();
    const leader = await runOneCommand(11);
    await t.forceFlush(); // the batch processor exports now

    const posts = received.filter((r) => r.method === 'POST' && r.url === '/v1/traces');
    expect(posts.length).toBeGreaterThan(0);
    expect(received.length).toBe(posts.length); // nothing else was requested
    for (const p of posts) {
      expect(p.headers['content-type']).toMatch(/^application\/json/);
      expect(p.headers.authorization).toBe('Bearer test-token');
    }
    const bodies = posts.map((p) => JSON.parse(p.body) as OtlpBody);
    for (const b of bodies)
      for (const rs of b.resourceSpans) {
        expect(attr(rs.resource.attributes, 'service.name')).toBe('decree');
        expect(attr(rs.resource.attributes, 'service.instance.id')).toBe('sim');
      }
    const spans = bodies.flatMap((b) => b.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)));
    const submits = spans.filter((s) => s.name === 'decree.submit');
    expect(submits).toHaveLength(1);
    const traceId = submits[0]!.traceId;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/); // OTLP/JSON: hex ids
    const inTrace = spans.filter((s) => s.traceId === traceId);
    const byReplica = new Map<string, Set<string>>();
    for (const s of inTrace) {
      const rep = attr(s.attributes, 'decree.replica')!;
      if (!byReplica.has(rep)) byReplica.set(rep, new Set());
      byReplica.get(rep)!.add(s.name);
    }
    expect([...byReplica.keys()].sort()).toEqual(['r1', 'r2', 'r3']);
    for (const n of ['decree.submit', 'decree.accept', 'decree.apply', 'decree.reply'])
      expect(byReplica.get(leader)).toContain(n);
    for (const f of ['r1', 'r2', 'r3'].filter((i) => i !== leader)) {
      expect(byReplica.get(f)).toContain('decree.acceptor.accept');
      expect(byReplica.get(f)).toContain('decree.learner.apply');
    }
    // parent links survive the encoding: a follower's acceptor span is a child of the leader's accept span
    const acceptIds = new Set(inTrace.filter((s) => s.name === 'decree.accept').map((s) => s.spanId));
    const followerAccept = inTrace.find(
      (s) => s.name === 'decree.acceptor.accept' && attr(s.attributes, 'decree.replica') !== leader,
    )!;
    expect(acceptIds.has(followerAccept.parentSpanId!)).toBe(true);
  });

  it('ratio 0: nothing is sent', async () => {
    const t = registerTracing({ exporter: 'otlp', endpoint, ratio: 0 });
    shutdown = () => t.shutdown();
    await runOneCommand(12);
    await t.forceFlush();
    expect(received).toHaveLength(0);
  });

  it('a collector that rejects the export: onExportError is called', async () => {
    status = 400; // not retryable: the exporter gives up at once
    const errors: Error[] = [];
    const t = registerTracing({ exporter: 'otlp', endpoint, onExportError: (e) => errors.push(e) });
    shutdown = () => t.shutdown();
    await runOneCommand(13);
    await expect(t.forceFlush()).rejects.toThrow(/^Bad Request$/); // a flush reports the failed export too
    expect(received.length).toBeGreaterThan(0);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]!.message).toMatch(/Bad Request/);
  });

  it('rejects an endpoint that is not an http(s) URL', () => {
    expect(otlpEndpointProblem('http://collector:4318/v1/traces')).toBeUndefined();
    expect(otlpEndpointProblem('https://collector/v1/traces')).toBeUndefined();
    expect(otlpEndpointProblem('collector:4318')).toMatch(/http: or https:/); // parses as scheme "collector:"
    expect(otlpEndpointProblem('not a url')).toMatch(/not a URL/);
    expect(() => registerTracing({ exporter: 'otlp', endpoint: 'ftp://x/v1/traces' })).toThrow(
      /^OTLP endpoint: must be an http: or https: URL/,
    );
  });
});
