import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster, LogMachine } from '@decree/testkit';
import { startStatusServer, type StatusDoc, type StatusServer } from '../src/status.ts';

const enc = (s: string) => new TextEncoder().encode(s);

describe('status server', () => {
  let cluster: LocalCluster<LogMachine> | undefined;
  let servers: StatusServer[] = [];
  afterEach(async () => {
    for (const s of servers) await s.close();
    servers = [];
    await cluster?.stop();
    cluster = undefined;
  });

  it('serves /status.json, / (with the leader) and /metrics for each replica', async () => {
    cluster = await new LocalCluster({
      makeStateMachine: () => new LogMachine(),
      options: { tickMs: 5, elector: { electionTimeoutMinMs: 400, electionTimeoutMaxMs: 800, heartbeatMs: 40 } },
    }).start();
    // a fresh leader may abort its first submissions while it recovers: retry those
    for (let i = 0; i < 10; i++) {
      for (let attempt = 0; ; attempt++) {
        try {
          await (await cluster.waitForLeader()).submit(enc(`c${i}`));
          break;
        } catch (e) {
          if (attempt > 50) throw e;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
    const leader = await cluster.waitForLeader();
    servers = await Promise.all(
      cluster.replicas.map((r) =>
        startStatusServer({ replicas: [r], port: 0, transportStats: () => ({ bytesIn: 1, bytesOut: 2 }) }),
      ),
    );
    for (const [i, s] of servers.entries()) {
      const me = cluster.replicas[i]!;
      const doc = (await (await fetch(`${s.url}status.json`)).json()) as StatusDoc;
      expect(doc.id).toBe(me.id);
      expect(doc.rings[0]!.leader).toBe(leader.id);
      expect(doc.rings[0]!.isLeader).toBe(me === leader);
      expect(Object.keys(doc.rings[0]!.states).sort()).toEqual([
        'acceptor',
        'configManager',
        'elector',
        'learner',
        'proposer',
      ]);
      if (me === leader) {
        expect(doc.rings[0]!.states.proposer).toMatch(/^leading\./); // leading.steady, leading.recovering…
        expect(doc.rings[0]!.executedUpTo).toBeGreaterThanOrEqual(10);
        expect(doc.rings[0]!.commandsExecuted).toBeGreaterThanOrEqual(10);
      }
      const html = await (await fetch(s.url)).text();
      expect(html).toContain(`data-leader="${leader.id}"`);
      expect(html).toContain('<canvas id="chart"');
      const metrics = await (await fetch(`${s.url}metrics`)).text();
      expect(metrics).toMatch(/^decree_commands_executed_total\{/m);
      expect(metrics).toMatch(/^decree_transport_bytes_total\{.*direction="out".*\} 2$/m);
      expect((await fetch(`${s.url}nope`)).status).toBe(404);
      expect((await fetch(s.url, { method: 'POST' })).status).toBe(405);
    }
  }, 30_000);
});
