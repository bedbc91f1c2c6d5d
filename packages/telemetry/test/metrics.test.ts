import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { metrics } from '@opentelemetry/api';
import { SimCluster } from '@decree/testkit';
import { instrumentReplicaMetrics, METRIC_NAMES } from '../src/index.ts';
import { PrometheusReader } from '../src/prometheus.ts';

const enc = (s: string) => new TextEncoder().encode(s);

function value(text: string, name: string, labelPart = ''): number | undefined {
  const line = text
    .split('\n')
    .find((l) => l.startsWith(name) && (l[name.length] === '{' || l[name.length] === ' ') && l.includes(labelPart));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : undefined;
}

describe('replica metrics', () => {
  it('a scrape of /metrics finds every metric with plausible values', async () => {
    const c = await new SimCluster({ n: 3, seed: 11 }).start();
    const leader = c.waitForLeader();
    const reader = new PrometheusReader();
    const provider = new MeterProvider({ readers: [reader] });
    const bytes = { bytesIn: 123, bytesOut: 456, controlDrops: 7, bulkDrops: 9 };
    const m = instrumentReplicaMetrics(c.replica(leader), provider.getMeter('decree'), { transportStats: () => bytes });
    for (let i = 0; i < 20; i++) await c.submitAndWait(enc(`k${i}`));
    // a snapshot makes the snapshot-age metrics appear
    let snap = false;
    c.replica(leader)
      .snapshotNow()
      .then(() => (snap = true));
    for (let i = 0; i < 200 && !snap; i++) {
      c.run(10);
      await c.settle();
    }
    expect(snap).toBe(true);
    await c.submitAndWait(enc('after-snapshot'));

    const server = createServer(reader.handler());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as AddressInfo;
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.headers.get('content-type')).toContain('text/plain');
      const text = await res.text();
      // the store's used and capacity bytes exist only for a store of fixed capacity (pmem); this one is in memory
      const fixedCapacityOnly = ['decree_store_used_bytes', 'decree_store_capacity_bytes'];
      for (const n of METRIC_NAMES)
        if (!fixedCapacityOnly.includes(n)) expect(text, n).toMatch(new RegExp(`^# TYPE ${n} `, 'm'));
      expect(text).not.toMatch(/^decree_store_used_bytes/m);
      expect(value(text, 'decree_messages_dropped_total', 'lane="control"')).toBe(7);
      expect(value(text, 'decree_messages_dropped_total', 'lane="bulk"')).toBe(9);
      expect(value(text, 'decree_acceptor_state', 'state="serving"')).toBe(1);
      expect(value(text, 'decree_acceptor_state', 'state="full"')).toBe(0);
      expect(value(text, 'decree_store_full_total')).toBe(0);
      expect(value(text, 'decree_commands_executed_total')).toBeGreaterThanOrEqual(21);
      expect(value(text, 'decree_commit_latency_ms_count')).toBeGreaterThanOrEqual(21);
      expect(value(text, 'decree_batch_size_count')).toBeGreaterThanOrEqual(21);
      expect(value(text, 'decree_is_leader')).toBe(1);
      expect(value(text, 'decree_leaderships_total')).toBeGreaterThanOrEqual(1);
      expect(value(text, 'decree_transport_bytes_total', 'direction="in"')).toBe(123);
      expect(value(text, 'decree_transport_bytes_total', 'direction="out"')).toBe(456);
      expect(value(text, 'decree_snapshot_age_slots')).toBeGreaterThanOrEqual(1);
      expect(text).toContain(`replica="${leader}"`);
    } finally {
      server.close();
      m.stop();
      await provider.shutdown();
      await c.stop();
    }
  });

  it('leader changes are counted, snapshot age absent without snapshots', async () => {
    const c = await new SimCluster({ n: 3, seed: 5 }).start();
    const first = c.waitForLeader();
    const follower = c.ids.find((i) => i !== first)!;
    const reader = new PrometheusReader();
    const provider = new MeterProvider({ readers: [reader] });
    const m = instrumentReplicaMetrics(c.replica(follower), provider.getMeter('decree'));
    await c.crash(first);
    c.waitForLeader(
      10_000,
      c.ids.filter((i) => i !== first),
    );
    c.run(500);
    const text = await reader.text();
    expect(m.leaderChanges).toBeGreaterThanOrEqual(1);
    expect(value(text, 'decree_leader_changes_total')).toBe(m.leaderChanges);
    expect(text).not.toMatch(/^decree_snapshot_age_slots/m);
    expect(text).not.toMatch(/^decree_transport_bytes_total/m);
    m.stop();
    await provider.shutdown();
    await c.stop();
  });

  it('with the global no-op meter nothing is collected and nothing breaks', async () => {
    const c = await new SimCluster({ n: 3, seed: 2 }).start();
    const l = c.waitForLeader();
    const m = instrumentReplicaMetrics(c.replica(l), metrics.getMeter('decree'));
    await c.submitAndWait(enc('a'));
    expect(m.leaderChanges).toBe(0);
    m.stop();
    await c.stop();
  });
});
