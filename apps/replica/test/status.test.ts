import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { freePorts } from '@decree/chaos';
import { LocalCluster, LogMachine } from '@decree/testkit';
import type { Replica } from '@decree/replica';
import {
  type ClusterView,
  type PageUpdate,
  startStatusServer,
  type StatusDoc,
  type StatusServer,
} from '../src/status.ts';
import { waitFor } from './helpers.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const json = async <T>(url: string) => (await (await fetch(url)).json()) as T;

async function submitRetrying(cluster: LocalCluster<LogMachine>, n: number): Promise<void> {
  // a fresh leader may abort its first submissions while it recovers: retry those
  for (let i = 0; i < n; i++) {
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
}

/** The first `data:` frame of /events. */
async function firstEvent(url: string): Promise<PageUpdate> {
  const ac = new AbortController();
  const res = await fetch(`${url}events`, { signal: ac.signal });
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const reader = res.body!.getReader();
  let text = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`/events ended: ${text}`);
      text += new TextDecoder().decode(value);
      const m = /^data: (.*)$/m.exec(text);
      if (m) return JSON.parse(m[1]!) as PageUpdate;
    }
  } finally {
    ac.abort();
  }
}

describe('status server', () => {
  let cluster: LocalCluster<LogMachine> | undefined;
  let servers: StatusServer[] = [];
  afterEach(async () => {
    for (const s of servers) await s.close();
    servers = [];
    await cluster?.stop();
    cluster = undefined;
  });

  const start = async () => {
    cluster = await new LocalCluster({
      makeStateMachine: () => new LogMachine(),
      options: { tickMs: 5, elector: { electionTimeoutMinMs: 400, electionTimeoutMaxMs: 800, heartbeatMs: 40 } },
    }).start();
    const leader = await cluster.waitForLeader();
    await waitFor('every replica to know the leader', () =>
      cluster!.replicas.every((r) => r.currentLeader() === leader.id),
    );
    // each server knows the others' addresses (as node.ts gives them from the cluster config)
    const ports = await freePorts(3);
    const peers = cluster.replicas.map((r, i) => ({ id: r.id, url: `http://127.0.0.1:${ports[i]}/` }));
    servers = await Promise.all(
      cluster.replicas.map((r, i) =>
        startStatusServer({
          replicas: [r],
          port: ports[i]!,
          peers,
          transportStats: () => ({ bytesIn: 1, bytesOut: 2 }),
        }),
      ),
    );
    return cluster;
  };

  it('serves /status.json, /cluster.json, / (leader, statecharts) and /metrics for each replica', async () => {
    const c = await start();
    await submitRetrying(c, 10); // after the servers started: their latency windows see these
    const leader = await c.waitForLeader();
    for (const [i, s] of servers.entries()) {
      const me = c.replicas[i]!;
      const doc = await json<StatusDoc>(`${s.url}status.json`);
      expect(doc.id).toBe(me.id);
      expect(doc.eventLoopDelay?.max).toBeGreaterThanOrEqual(0);
      expect(doc.eventLoopDelay?.samples).toBeGreaterThan(0);
      const ring = doc.rings[0]!;
      expect(ring.leader).toBe(leader.id);
      expect(ring.isLeader).toBe(me === leader);
      expect(Object.keys(ring.states).sort()).toEqual(['acceptor', 'configManager', 'elector', 'learner', 'proposer']);
      expect(Object.keys(ring.active).sort()).toEqual([
        'acceptor',
        'config-manager',
        'elector',
        'learner',
        'proposer',
        'snapshotter',
      ]);
      expect(ring.leaderChanges.at(-1)).toMatchObject({ to: leader.id });
      expect(ring.leaderChanges.at(-1)!.at).toBeGreaterThan(Date.now() - 60_000);
      expect(ring.peers.map((p) => p.id).sort()).toEqual(c.replicas.filter((r) => r !== me).map((r) => r.id));
      if (me === leader) {
        expect(ring.states.proposer).toMatch(/^leading\./); // leading.steady, leading.recovering…
        expect(ring.active.proposer[0]).toBe('leading');
        expect(ring.active.proposer[1]).toBe(ring.states.proposer);
        expect(ring.executedUpTo).toBeGreaterThanOrEqual(10);
        expect(ring.commandsExecuted).toBeGreaterThanOrEqual(10);
        expect(ring.latency?.samples).toBeGreaterThanOrEqual(10);
        expect(ring.latency!.p99).toBeGreaterThanOrEqual(ring.latency!.p50);
        expect(ring.peers.every((p) => p.lastAcceptedSlot >= 10)).toBe(true);
      } else expect(ring.active.proposer[0]).toBe('follower');
      const html = await (await fetch(s.url)).text();
      expect(html).toContain(`data-leader="${leader.id}"`);
      expect(html).toContain('<canvas id="chart"');
      // offline: nothing from another host, no web font
      expect(html).not.toMatch(/(src|href)\s*=\s*["']?(https?:)?\/\//i);
      expect(html).not.toMatch(/@import|@font-face|url\(/);
      // a statechart per role, the leader's chip in its proposer's leading box
      for (const role of ['elector', 'proposer', 'acceptor', 'learner', 'snapshotter', 'config-manager'])
        expect(html).toContain(`<div class="chart" data-ring="default" data-role="${role}">`);
      const proposer = html.slice(html.indexOf('data-role="proposer"'), html.indexOf('data-role="acceptor"'));
      const leading = proposer.slice(proposer.indexOf('data-path="leading"'), proposer.indexOf('data-path="stopped"'));
      expect(leading).toContain(`data-member="${leader.id}"`);
      expect(proposer).toMatch(/class="st compound on( self)?" data-path="leading"/);
      const metrics = await (await fetch(`${s.url}metrics`)).text();
      expect(metrics).toMatch(/^decree_commands_executed_total\{/m);
      expect(metrics).toMatch(/^decree_event_loop_delay_ms\{.*stat="max".*\} [\d.]+$/m);
      expect(metrics).toMatch(/^decree_transport_bytes_total\{.*direction="out".*\} 2$/m);
      expect((await fetch(`${s.url}nope`)).status).toBe(404);
      expect((await fetch(s.url, { method: 'POST' })).status).toBe(405);
    }

    // the cluster from a follower: every member, the leader's view of peer health, lag
    const f = c.replicas.findIndex((r) => r !== leader);
    const view = await json<ClusterView>(`${servers[f]!.url}cluster.json`);
    const ring = view.rings[0]!;
    expect(ring.leader).toBe(leader.id);
    expect(ring.members.map((m) => m.id)).toEqual(c.replicas.map((r) => r.id));
    for (const m of ring.members) {
      expect(m.state).toBe(m.id === c.replicas[f]!.id ? 'self' : 'up');
      expect(m.role).toBe(m.id === leader.id ? 'leader' : 'follower');
      expect(m.lag).toBeGreaterThanOrEqual(0);
      if (m.id !== leader.id) expect(m).toMatchObject({ connected: true, healthFrom: leader.id });
      else expect(m.active!.proposer[0]).toBe('leading');
    }
    expect(ring.members.find((m) => m.id === leader.id)!.latency!.samples).toBeGreaterThanOrEqual(10);

    // a member whose status page is gone shows as unreachable
    const other = c.replicas.findIndex((r, i) => r !== leader && i !== f);
    await servers[other]!.close();
    servers.splice(other, 1);
    const after = await waitFor('the stopped page to be unreachable', async () => {
      const v = await json<ClusterView>(
        `${servers.find((s) => s.url.endsWith(`:${servers[0]!.address.port}/`))!.url}cluster.json`,
      );
      const gone = v.rings[0]!.members.find((m) => m.id === c.replicas[other]!.id)!;
      return gone.state === 'unreachable' ? gone : undefined;
    });
    expect(after.error).toMatch(/ECONNREFUSED|no answer/);
    expect(after.role).toBeUndefined();
  }, 30_000);

  it('/events streams the page data; a client that does not read keeps one pending snapshot at most', async () => {
    const c = await start();
    const leader = await c.waitForLeader();
    const u = await firstEvent(servers[0]!.url);
    expect(u.id).toBe(c.replicas[0]!.id);
    expect(u.leader).toBe(leader.id);
    expect(u.html.cluster).toContain('<table class="cluster"');
    const m = u.marks.find((x) => x.member === leader.id && x.role === 'proposer')!;
    expect(m.paths[0]).toBe('leading');

    // a slow client: one server sending a snapshot every 2 ms whatever changed
    const slow = await startStatusServer({
      replicas: c.replicas as Replica[],
      port: 0,
      eventsEveryMs: 2,
      eventsIdleMs: 0,
    });
    servers.push(slow);
    const sock = connect(slow.address.port, '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write('GET /events HTTP/1.1\r\nhost: x\r\n\r\n');
    sock.pause(); // never read: the kernel buffers fill, then the server must hold back
    try {
      await waitFor('the server to coalesce snapshots', () => slow.sseStats().coalesced > 10, 30_000, 50);
      let most = 0;
      for (let i = 0; i < 20; i++) {
        const st = slow.sseStats();
        expect(st.clients).toBe(1);
        expect(st.pending).toBeLessThanOrEqual(1);
        most = Math.max(most, st.bufferedBytes);
        await new Promise((r) => setTimeout(r, 25));
      }
      // the buffer holds about one high-water mark (16 KiB) and one snapshot, however long it lasts
      expect(most).toBeLessThan(256 * 1024);
    } finally {
      sock.destroy();
    }
    await waitFor('the slow client to be forgotten', () => slow.sseStats().clients === 0);
  }, 60_000);
});
