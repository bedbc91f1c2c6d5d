/**
 * `decree start` tracing to an OTLP collector: the config file's `tracing` section and the flags
 * --trace otlp --otlp-endpoint --otlp-header --trace-ratio. The collector is a node:http server on
 * a free loopback port that records every request; three real replica processes send it their spans.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config.ts';
import { resolveTracing } from '../src/tracing.ts';
import {
  CLI,
  Cluster,
  NODE_ARGS,
  ROOT,
  ReplicaProcess,
  exitOf,
  idempotent,
  issuesOf,
  killAll,
  resp,
  tempDir,
  track,
  writeClusterConfig,
} from './helpers.ts';

const tmp = tempDir('otlp');
const received: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[] = [];
let collector: http.Server;
let endpoint: string;

beforeAll(async () => {
  collector = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}/v1/traces`;
});
afterAll(async () => {
  await killAll();
  await new Promise<void>((resolve) => collector.close(() => resolve()));
  tmp.remove();
});

const base = { replicas: [{ id: 'r1', port: 7101, clientPort: 6381 }] };

describe('config file: tracing', () => {
  it('accepts an OTLP section and defaults the ratio to 1', () => {
    const c = parseConfig({
      ...base,
      tracing: {
        exporter: 'otlp',
        endpoint: 'https://collector:4318/v1/traces',
        headers: { authorization: 'Bearer x' },
      },
    });
    expect(c.tracing).toEqual({
      exporter: 'otlp',
      ratio: 1,
      endpoint: 'https://collector:4318/v1/traces',
      headers: { authorization: 'Bearer x' },
    });
    expect(parseConfig(base).tracing).toBeUndefined();
  });

  const cases: [string, unknown, RegExp[]][] = [
    ['an unknown exporter', { exporter: 'jaeger' }, [/^c\.json: tracing\.exporter: .*"console"\|"otlp"/]],
    ['no exporter', { ratio: 0.5 }, [/^c\.json: tracing\.exporter: /]],
    ['a ratio above 1', { exporter: 'otlp', ratio: 2 }, [/^c\.json: tracing\.ratio: .*<=1/]],
    [
      'an endpoint that is not a URL',
      { exporter: 'otlp', endpoint: 'collector' },
      [/^c\.json: tracing\.endpoint: must be an http:\/\/ or https:\/\/ URL/],
    ],
    [
      'a non-http endpoint',
      { exporter: 'otlp', endpoint: 'grpc://collector:4317' },
      [/^c\.json: tracing\.endpoint: must be an http:\/\/ or https:\/\/ URL/],
    ],
    [
      'a header that is not a string',
      { exporter: 'otlp', headers: { 'x-n': 1 } },
      [/^c\.json: tracing\.headers\.x-n: .*expected string/],
    ],
    ['an unknown field', { exporter: 'otlp', url: 'http://a' }, [/^c\.json: tracing\.url: unknown field$/]],
    [
      'endpoint and headers with the console exporter',
      { exporter: 'console', endpoint: 'http://a:4318/v1/traces', headers: { a: 'b' } },
      [
        /^c\.json: tracing\.endpoint: only with exporter "otlp"$/,
        /^c\.json: tracing\.headers: only with exporter "otlp"$/,
      ],
    ],
  ];
  it.each(cases)('%s: one line naming the field', (_, tracing, want) => {
    const issues = issuesOf({ ...base, tracing });
    expect(issues).toHaveLength(want.length);
    want.forEach((re, i) => expect(issues[i]).toMatch(re));
    for (const i of issues) expect(i).not.toContain('\n');
  });
});

describe('resolveTracing (config file + flags)', () => {
  const file = parseConfig({
    ...base,
    tracing: {
      exporter: 'otlp',
      ratio: 0.25,
      endpoint: 'http://file:4318/v1/traces',
      headers: { a: 'file', b: 'file' },
    },
  }).tracing;

  it('off without a tracing section or --trace', () => {
    expect(resolveTracing(undefined, {})).toEqual({ tracing: undefined });
  });
  it('the config file alone', () => {
    expect(resolveTracing(file, {})).toEqual({
      tracing: {
        exporter: 'otlp',
        ratio: 0.25,
        endpoint: 'http://file:4318/v1/traces',
        headers: { a: 'file', b: 'file' },
      },
    });
  });
  it('flags override the file: endpoint, ratio; headers merge', () => {
    expect(
      resolveTracing(file, {
        trace: 'otlp',
        otlpEndpoint: 'https://flag/v1/traces',
        traceRatio: '0.01',
        otlpHeader: ['b=flag', 'c = x=y'],
      }),
    ).toEqual({
      tracing: {
        exporter: 'otlp',
        ratio: 0.01,
        endpoint: 'https://flag/v1/traces',
        headers: { a: 'file', b: 'flag', c: 'x=y' },
      },
    });
    expect(resolveTracing(file, { trace: 'console' })).toEqual({ tracing: { exporter: 'console', ratio: 0.25 } });
  });
  it('flags alone; the endpoint may be left to OTEL_EXPORTER_OTLP_* / the default', () => {
    expect(resolveTracing(undefined, { trace: 'otlp', otlpEndpoint: 'http://127.0.0.1:4318/v1/traces' })).toEqual({
      tracing: { exporter: 'otlp', ratio: 1, endpoint: 'http://127.0.0.1:4318/v1/traces' },
    });
    expect(resolveTracing(undefined, { trace: 'otlp' })).toEqual({ tracing: { exporter: 'otlp', ratio: 1 } });
  });
  const bad: [string, Parameters<typeof resolveTracing>[1], RegExp][] = [
    ['unknown exporter', { trace: 'zipkin' }, /^--trace: unknown exporter "zipkin" \(console, otlp\)$/],
    [
      'ratio out of range',
      { trace: 'otlp', traceRatio: '1.5' },
      /^--trace-ratio: must be a number in 0\.\.1, got "1\.5"$/,
    ],
    ['ratio not a number', { trace: 'otlp', traceRatio: 'half' }, /^--trace-ratio: /],
    [
      'endpoint not a URL',
      { trace: 'otlp', otlpEndpoint: 'localhost:4318' },
      /^--otlp-endpoint: must be an http:\/\/ or https:\/\/ URL .*got "localhost:4318"$/,
    ],
    ['endpoint without --trace', { otlpEndpoint: 'http://a/v1/traces' }, /^--otlp-endpoint: needs --trace/],
    ['ratio without --trace', { traceRatio: '0.5' }, /^--trace-ratio: needs --trace/],
    [
      'endpoint with console',
      { trace: 'console', otlpEndpoint: 'http://a/v1/traces' },
      /^--otlp-endpoint: only with --trace otlp$/,
    ],
    [
      'header without =',
      { trace: 'otlp', otlpHeader: ['authorization'] },
      /^--otlp-header: expected name=value, got "authorization"$/,
    ],
    ['header with a bad name', { trace: 'otlp', otlpHeader: ['a b=c'] }, /^--otlp-header: expected name=value/],
  ];
  it.each(bad)('%s: one line naming the flag', (_, flags, re) => {
    const r = resolveTracing(undefined, flags);
    expect('error' in r && r.error).toMatch(re);
  });
});

describe('decree start --trace otlp (real processes)', () => {
  it('a bad --otlp-endpoint: one line naming the flag, exit 1', async () => {
    const { configPath } = await writeClusterConfig(tmp.dir, {}, ['r1']);
    const c = spawn(
      process.execPath,
      [
        ...NODE_ARGS,
        CLI,
        'start',
        '--config',
        configPath,
        '--id',
        'r1',
        '--trace',
        'otlp',
        '--otlp-endpoint',
        'collector:4318',
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    track(c);
    let stderr = '';
    let stdout = '';
    c.stderr!.on('data', (d) => (stderr += d));
    c.stdout!.on('data', (d) => (stdout += d));
    const guard = setTimeout(() => c.kill('SIGKILL'), 30_000); // a flag that was not refused would start a replica
    const { code } = await exitOf(c, 40_000);
    clearTimeout(guard);
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^decree: --otlp-endpoint: must be an http:\/\/ or https:\/\/ URL/),
    ]);
    expect(stdout).toBe('');
  }, 45_000);

  it('three replicas export one joined trace to the ' +
    'collector: r1, r2 from the config file, r3 from flags', async () => {
    const dir = tempDir('otlp-cluster');
    try {
      // r1, r2: the config's tracing section; r3: the flags override
      // it (same collector, an extra header, its own ratio)
      const { configPath, replicas } = await writeClusterConfig(dir.dir, {
        tracing: { exporter: 'otlp', endpoint, headers: { authorization: 'Bearer from-config' } },
      });
      const cluster = new Cluster(configPath, replicas);
      for (const id of ['r1', 'r2', 'r3'])
        cluster.procs.set(
          id,
          new ReplicaProcess(
            id,
            configPath,
            id === 'r3'
              ? [
                  '--trace',
                  'otlp',
                  '--otlp-endpoint',
                  endpoint,
                  '--otlp-header',
                  'x-decree-test=flags',
                  '--trace-ratio',
                  '1',
                ]
              : [],
          ),
        );
      await Promise.all([...cluster.procs.values()].map((p) => p.started(45_000)));
      for (const p of cluster.procs.values())
        expect((await p.waitLog((l) => l.msg === 'tracing on')).endpoint).toBe(endpoint);
      const leader = await cluster.leader(30_000);
      // idempotent SETs, retried if leadership moves on a loaded machine
      // (an aborted submit's trace is not the one looked for below)
      for (let i = 0; i < 3; i++)
        expect(await idempotent(`SET k${i}`, () => resp(cluster.port(leader), ['SET', `k${i}`, 'v'], 10_000))).toBe(
          'OK',
        );
      await cluster.converged();
      // SIGTERM: the graceful stop flushes the batch span processor (no waiting for its 5 s timer)
      for (const p of cluster.procs.values()) p.kill('SIGTERM');
      for (const p of cluster.procs.values()) expect((await p.exited(20_000)).code).toBe(0);

      const posts = received.filter((r) => r.method === 'POST' && r.url === '/v1/traces');
      expect(posts.length).toBeGreaterThan(0);
      type Attr = { key: string; value: { stringValue?: string } };
      const str = (attrs: Attr[], k: string) => attrs.find((a) => a.key === k)?.value.stringValue;
      const spans: {
        name: string;
        traceId: string;
        replica: string | undefined;
        instance: string | undefined;
        aborted: boolean;
      }[] = [];
      const postsBy = new Map<string, (typeof posts)[number][]>();
      for (const p of posts) {
        expect(p.headers['content-type']).toMatch(/^application\/json/);
        expect(p.headers.authorization).toBe('Bearer from-config'); // r3's flags merge with the file's headers
        const body = JSON.parse(p.body) as {
          resourceSpans: {
            resource: { attributes: Attr[] };
            scopeSpans: { spans: { name: string; traceId: string; attributes: Attr[] }[] }[];
          }[];
        };
        for (const rs of body.resourceSpans) {
          const instance = str(rs.resource.attributes, 'service.instance.id');
          expect(str(rs.resource.attributes, 'service.name')).toBe('decree');
          postsBy.set(instance!, [...(postsBy.get(instance!) ?? []), p]);
          for (const ss of rs.scopeSpans)
            for (const s of ss.spans)
              spans.push({
                name: s.name,
                traceId: s.traceId,
                replica: str(s.attributes, 'decree.replica'),
                instance,
                aborted: s.attributes.some((a) => a.key === 'decree.aborted'),
              });
        }
      }
      // every process exported (service.instance.id = its replica id) and only its own replica's spans
      expect([...postsBy.keys()].sort()).toEqual(['r1', 'r2', 'r3']);
      for (const s of spans) expect(s.replica).toBe(s.instance);
      for (const [id, ps] of postsBy)
        for (const p of ps) expect(p.headers['x-decree-test']).toBe(id === 'r3' ? 'flags' : undefined);
      // one of the SETs' traces joins the spans of the three processes
      const joined = spans
        .filter((s) => s.name === 'decree.submit' && !s.aborted)
        .map((submit) => spans.filter((s) => s.traceId === submit.traceId))
        .find((inTrace) => new Set(inTrace.map((s) => s.replica)).size === 3);
      expect(
        joined,
        `spans: ${JSON.stringify(spans.map((s) => [s.name, s.replica, s.traceId.slice(0, 6)]))}`,
      ).toBeDefined();
      const names = new Set(joined!.map((s) => s.name));
      for (const n of ['decree.submit', 'decree.accept', 'decree.acceptor.accept', 'decree.chosen', 'decree.reply'])
        expect(names).toContain(n);
    } finally {
      dir.remove();
    }
  }, 120_000);
});
