import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { Replica } from '@decree/replica';
import {
  chartOf,
  EventLoopDelay,
  instrumentEventLoopDelay,
  instrumentReplicaMetrics,
  LatencyWindow,
  type ReplicaMetrics,
} from '@decree/telemetry';
import { PrometheusReader } from '@decree/telemetry/prometheus';
import {
  clusterView,
  LeaderChanges,
  type PeerAddress,
  PeerPoller,
  ROLES,
  roleActor,
  statusDoc,
  type StatusDoc,
} from './status-doc.ts';
import { pageUpdate, type RingCharts, statusPage } from './status-page.ts';

export { statusDoc, type StatusDoc, type ClusterView, type PeerAddress } from './status-doc.ts';
export { statusPage, type PageUpdate } from './status-page.ts';

export interface StatusServerOptions {
  /** the replicas of this process (one per ring); the first is the page's main one */
  replicas: readonly Replica[];
  host?: string;
  /** 0 picks a free port */
  port: number;
  /**
   * The members of the cluster config with the base URL of their status server
   * ('http://10.0.0.2:8101/'); the cluster view fetches their /status.json. This replica may be among them.
   */
  peers?: readonly PeerAddress[];
  /** transport byte counters (TcpTransport.stats()) */
  transportStats?: () => { bytesIn: number; bytesOut: number; controlDrops?: number; bulkDrops?: number };
  log?: (level: 'warn' | 'error', msg: string, obj?: object) => void;
  /** how often /events looks for a change to send (default 200 ms) */
  eventsEveryMs?: number;
  /** /events sends at least this often even without a change (default 1000 ms: the throughput line) */
  eventsIdleMs?: number;
  /** how often the peers' status is fetched while someone watches (default 500 ms), and its timeout (600 ms) */
  peersEveryMs?: number;
  peerTimeoutMs?: number;
}

export interface SseStats {
  clients: number;
  /** bytes written to /events connections and not yet taken by the kernel, all clients */
  bufferedBytes: number;
  /** clients holding a snapshot back until their connection drains (at most one each) */
  pending: number;
  /** snapshots replaced by a newer one before a slow client could take them */
  coalesced: number;
}

export interface StatusServer {
  readonly address: { host: string; port: number };
  readonly url: string;
  /** the /events connections (to check that a slow client is bounded) */
  sseStats(): SseStats;
  close(): Promise<void>;
}

interface SseClient {
  res: ServerResponse;
  /** the connection's buffer is full: newer snapshots wait in `pending`, replacing each other */
  blocked: boolean;
  pending: string | undefined;
}

/**
 * Serves one replica process's status on node:http: `/` (the page: cluster, leader changes,
 * statecharts), `/events` (its live updates, Server-Sent Events), `/status.json` (this process),
 * `/cluster.json` (the cluster as seen from here), `/metrics` (Prometheus text, from the OTel metrics SDK).
 */
export async function startStatusServer(o: StatusServerOptions): Promise<StatusServer> {
  const reader = new PrometheusReader();
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter('@decree/replica');
  const latency = o.replicas.map(() => new LatencyWindow());
  const metrics: ReplicaMetrics[] = o.replicas.map((r, i) =>
    instrumentReplicaMetrics(r, meter, {
      latencyWindow: latency[i]!,
      ...(i === 0 && o.transportStats ? { transportStats: o.transportStats } : {}),
    }),
  );
  const eld = new EventLoopDelay();
  const offEld = instrumentEventLoopDelay(eld, meter, o.replicas[0] ? { replica: o.replicas[0].id } : {});
  const metricsHandler = reader.handler();
  const changes = o.replicas.map((r) => new LeaderChanges(r));
  const extras = { latency, leaderChanges: changes.map((c) => c.list), eventLoopDelay: eld };
  const charts: RingCharts = new Map(
    o.replicas.map((r) => [
      r.ring,
      Object.fromEntries(ROLES.map((role) => [role, chartOf(roleActor(r, role).logic)])) as Record<
        (typeof ROLES)[number],
        ReturnType<typeof chartOf>
      >,
    ]),
  );
  const self = o.replicas[0]?.id;
  const peers = (o.peers ?? []).filter((p) => p.id !== self);
  const poller = new PeerPoller(peers, o.peerTimeoutMs ?? 600);
  const doc = (): StatusDoc => statusDoc(o.replicas, extras);
  const cluster = () => clusterView(doc(), o.peers ?? [], poller.results);
  /** the last time someone asked for the cluster (page, cluster.json): peers are polled while watched */
  let watchedAt = 0;
  const watched = () => clients.size > 0 || Date.now() - watchedAt < 10_000;
  const freshPeers = async () => {
    watchedAt = Date.now();
    const oldest = Math.min(...peers.map((p) => poller.results.get(p.id)?.at ?? 0));
    if (peers.length && Date.now() - oldest > 1000) await poller.poll();
  };

  // ---------------------------------------------------------------- /events
  const clients = new Set<SseClient>();
  let coalesced = 0;
  let lastBody = '';
  let lastSentAt = 0;
  const write = (c: SseClient, frame: string) => {
    if (c.blocked) {
      if (c.pending !== undefined) coalesced++;
      c.pending = frame;
      return;
    }
    if (!c.res.write(frame)) c.blocked = true;
  };
  const publish = () => {
    if (clients.size === 0) return;
    const u = pageUpdate(doc(), cluster());
    const { time, ...rest } = u;
    const body = JSON.stringify(rest);
    if (body === lastBody && Date.now() - lastSentAt < (o.eventsIdleMs ?? 1000)) return;
    lastBody = body;
    lastSentAt = Date.now();
    const frame = `data: ${JSON.stringify({ time, ...rest })}\n\n`;
    for (const c of clients) write(c, frame);
  };
  const openEvents = (req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    const c: SseClient = { res, blocked: false, pending: undefined };
    clients.add(c);
    res.on('drain', () => {
      c.blocked = false;
      const f = c.pending;
      c.pending = undefined;
      if (f !== undefined) write(c, f);
    });
    const drop = () => clients.delete(c);
    req.on('close', drop);
    res.on('close', drop);
    res.on('error', drop);
    write(c, 'retry: 1000\n\n');
    // the first snapshot once the peers' status is at most a second old
    freshPeers()
      .then(() => {
        if (clients.has(c)) write(c, `data: ${JSON.stringify(pageUpdate(doc(), cluster()))}\n\n`);
      })
      .catch((e: unknown) => o.log?.('error', 'status events failed', { err: String(e) }));
  };

  const sampler = setInterval(() => {
    for (const c of changes) c.sample();
  }, 100);
  const ticker = setInterval(() => {
    try {
      publish();
    } catch (e) {
      o.log?.('error', 'status events failed', { err: String(e) });
    }
  }, o.eventsEveryMs ?? 200);
  const peerTimer = setInterval(() => {
    if (watched()) void poller.poll();
  }, o.peersEveryMs ?? 500);
  for (const t of [sampler, ticker, peerTimer]) t.unref();
  for (const c of changes) c.sample();

  const send = (res: ServerResponse, type: string, body: string) =>
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const fail = (e: unknown) => {
      o.log?.('error', 'status page failed', { err: String(e) });
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal error\n');
    };
    try {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
      } else if (path === '/metrics') {
        metricsHandler(req, res);
      } else if (path === '/status.json') {
        send(res, 'application/json', JSON.stringify(doc()));
      } else if (path === '/cluster.json') {
        freshPeers()
          .then(() => send(res, 'application/json', JSON.stringify(cluster())))
          .catch(fail);
      } else if (path === '/events') {
        openEvents(req, res);
      } else if (path === '/' || path === '/index.html') {
        freshPeers()
          .then(() => send(res, 'text/html; charset=utf-8', statusPage(pageUpdate(doc(), cluster()), charts)))
          .catch(fail);
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      }
    } catch (e) {
      fail(e);
    }
  });
  const host = o.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    address: { host, port },
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    sseStats: () => ({
      clients: clients.size,
      bufferedBytes: [...clients].reduce((a, c) => a + c.res.writableLength, 0),
      pending: [...clients].filter((c) => c.pending !== undefined).length,
      coalesced,
    }),
    async close() {
      for (const t of [sampler, ticker, peerTimer]) clearInterval(t);
      for (const m of metrics) m.stop();
      offEld();
      eld.stop();
      for (const c of clients) c.res.destroy();
      clients.clear();
      server.closeAllConnections?.();
      await new Promise<void>((r) => server.close(() => r()));
      await provider.shutdown();
    },
  };
}
