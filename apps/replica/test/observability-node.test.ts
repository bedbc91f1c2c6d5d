import { afterAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { registerTracing } from '@decree/telemetry/sdk';
import { parseConfig } from '../src/config.ts';
import { startNode, type RunningNode } from '../src/node.ts';
import type { StatusDoc } from '../src/status.ts';
import { freePorts, waitFor } from './helpers.ts';

// three replicas over real TCP in this process: status servers from the config, tracing through the transport's headers
describe('startNode observability over TCP', () => {
  const nodes: RunningNode[] = [];
  const exporter = new InMemorySpanExporter();
  const tracing = registerTracing({ exporter });
  afterAll(async () => {
    for (const n of nodes) await n.stop();
    await tracing.shutdown();
  });

  it('serves each replica status page and joins one trace across r1, r2, r3', async () => {
    const p = await freePorts(9);
    const cfg = parseConfig({
      storage: 'memory',
      election: { minMs: 300, maxMs: 600, heartbeatMs: 50 },
      replicas: [1, 2, 3].map((i) => ({ id: `r${i}`, port: p[i - 1], clientPort: p[i + 2], statusPort: p[i + 5] })),
    });
    const log = pino({ level: 'silent' });
    for (const id of ['r1', 'r2', 'r3']) nodes.push(await startNode(cfg, id, { log, tracing: { ratio: 1 } }));
    for (const [i, n] of nodes.entries()) expect(n.statusAddress).toEqual({ host: '127.0.0.1', port: p[i + 6] });
    const leaderOf = (n: RunningNode) => n.replicas.get('default')!.currentLeader();
    const leaderId = await waitFor('a leader known everywhere', () => {
      const l = leaderOf(nodes[0]!);
      return l &&
        nodes.every((n) => leaderOf(n) === l) &&
        nodes
          .find((n) => n.id === l)!
          .replicas.get('default')!
          .isLeader()
        ? l
        : undefined;
    });
    const leader = nodes.find((n) => n.id === leaderId)!.replicas.get('default')!;
    await waitFor('a command executed', async () => {
      try {
        await leader.submit(new TextEncoder().encode('SET'));
        return true;
      } catch {
        return false;
      }
    });
    for (const n of nodes) {
      const base = `http://127.0.0.1:${n.statusAddress!.port}`;
      const doc = (await (await fetch(`${base}/status.json`)).json()) as StatusDoc;
      expect(doc.id).toBe(n.id);
      expect(doc.rings[0]!.leader).toBe(leaderId);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      const out = /^decree_transport_bytes_total\{[^}]*direction="out"[^}]*\} (\d+)/m.exec(metrics);
      expect(Number(out?.[1])).toBeGreaterThan(0);
    }
    // some submit's trace has spans of all three replicas (an early submit may have been aborted)
    const joined = await waitFor('one trace with spans of r1, r2, r3', async () => {
      await tracing.forceFlush();
      const spans = exporter.getFinishedSpans();
      for (const submit of spans.filter((s) => s.name === 'decree.submit' && !s.attributes['decree.aborted'])) {
        const inTrace = spans.filter((s) => s.spanContext().traceId === submit.spanContext().traceId);
        const reps = [...new Set(inTrace.map((s) => String(s.attributes['decree.replica'])))].sort();
        if (reps.length === 3) return { reps, names: new Set(inTrace.map((s) => s.name)) };
      }
      return undefined;
    });
    expect(joined.reps).toEqual(['r1', 'r2', 'r3']);
    for (const n of ['decree.submit', 'decree.accept', 'decree.acceptor.accept', 'decree.chosen', 'decree.reply'])
      expect(joined.names).toContain(n);
  }, 60_000);
});
