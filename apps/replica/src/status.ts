import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { Replica } from '@decree/replica';
import { instrumentReplicaMetrics, type ReplicaMetrics } from '@decree/telemetry';
import { PrometheusReader } from '@decree/telemetry/prometheus';

export interface StatusServerOptions {
  /** the replicas of this process (one per ring); the first is the page's main one */
  replicas: readonly Replica[];
  host?: string;
  /** 0 picks a free port */
  port: number;
  /** transport byte counters (TcpTransport.stats()) */
  transportStats?: () => { bytesIn: number; bytesOut: number; controlDrops?: number; bulkDrops?: number };
  log?: (level: 'warn' | 'error', msg: string, obj?: object) => void;
}

export interface StatusServer {
  readonly address: { host: string; port: number };
  readonly url: string;
  close(): Promise<void>;
}

/** What /status.json returns. */
export interface StatusDoc {
  id: string;
  time: number;
  rings: Array<{
    ring: string;
    leader: string | undefined;
    isLeader: boolean;
    role: string;
    ballot: unknown;
    promised: unknown;
    states: { elector: string; proposer: string; acceptor: string; learner: string };
    chosenUpTo: number;
    executedUpTo: number;
    logSlots: number;
    logBytes: number;
    commandsExecuted: number;
    elections: number;
    leaderships: number;
    latestSnapshotSlot: number;
    members: readonly string[];
    pendingSubmissions: number;
  }>;
}

export function statusDoc(replicas: readonly Replica[]): StatusDoc {
  return {
    id: replicas[0]?.id ?? '',
    time: Date.now(),
    rings: replicas.map((r) => {
      const s = r.status();
      const st = r.statistics();
      return {
        ring: s.ring,
        leader: s.leader,
        isLeader: r.isLeader(),
        role: s.role,
        ballot: s.ballot,
        promised: s.promised,
        states: s.states,
        chosenUpTo: s.chosenUpTo,
        executedUpTo: s.executedUpTo,
        logSlots: Math.max(0, s.chosenUpTo - st.snapshots.truncatedBelow),
        logBytes: st.log.bytes,
        commandsExecuted: st.commandsExecuted,
        elections: st.elections,
        leaderships: st.leaderships,
        latestSnapshotSlot: st.snapshots.latestSlot,
        members: s.members,
        pendingSubmissions: s.pendingSubmissions,
      };
    }),
  };
}

const esc = (v: unknown) => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const ballotText = (b: unknown) => (b && typeof b === 'object' ? Object.values(b as object).join('.') : String(b));

/** The HTML page: the current figures server-rendered (works without script), refreshed by polling /status.json. */
export function statusPage(doc: StatusDoc): string {
  const rows = doc.rings
    .map(
      (
        r,
      ) => `<tr><td>${esc(r.ring)}</td><td class="leader">${esc(r.leader ?? '—')}</td><td>${esc(r.role)}</td><td>${esc(ballotText(r.ballot))}</td>
<td>${esc(r.states.elector)}</td><td>${esc(r.states.proposer)}</td><td>${esc(r.states.acceptor)}</td><td>${esc(r.states.learner)}</td>
<td>${r.chosenUpTo}</td><td>${r.executedUpTo}</td><td>${r.logSlots}</td><td>${r.commandsExecuted}</td></tr>`,
    )
    .join('\n');
  const first = doc.rings[0];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>decree ${esc(doc.id)}</title>
<style>body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
th{background:#f4f4f4}.leader{font-weight:bold}#chart{border:1px solid #ccc;margin-top:1em}small{color:#666}</style></head>
<body>
<h1>decree replica <span id="id">${esc(doc.id)}</span></h1>
<p>Leader: <b id="leader" data-leader="${esc(first?.leader ?? '')}">${esc(first?.leader ?? 'none known')}</b>
 · this replica is <b id="role">${esc(first?.role ?? '?')}</b> · <a href="/status.json">status.json</a> · <a href="/metrics">metrics</a></p>
<table><thead><tr><th>ring</th><th>leader</th><th>role</th><th>ballot</th><th>elector</th><th>proposer</th><th>acceptor</th><th>learner</th>
<th>chosen</th><th>applied</th><th>log (slots)</th><th>commands</th></tr></thead><tbody id="rows">
${rows}
</tbody></table>
<h2>Throughput <small>(commands executed per second, all rings, last 2 minutes)</small></h2>
<canvas id="chart" width="720" height="180"></canvas>
<p><small id="tput">—</small></p>
<script>
const pts = []; let last;
const esc = (v) => String(v).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';');
const bal = (b) => b && typeof b === 'object' ? Object.values(b).join('.') : String(b);
function draw() {
  const c = document.getElementById('chart'), g = c.getContext('2d'); g.clearRect(0, 0, c.width, c.height);
  const max = Math.max(1, ...pts.map((p) => p.v)); g.strokeStyle = '#2a6'; g.lineWidth = 2; g.beginPath();
  pts.forEach((p, i) => { const x = c.width * i / 119, y = c.height - 4 - (c.height - 8) * p.v / max; i ? g.lineTo(x, y) : g.moveTo(x, y); });
  g.stroke();
  if (pts.length) { const i = pts.length - 1, p = pts[i]; g.fillStyle = '#2a6'; g.beginPath(); g.arc(c.width * i / 119, c.height - 4 - (c.height - 8) * p.v / max, 3, 0, 7); g.fill(); }
  g.fillStyle = '#666'; g.fillText(Math.round(max) + '/s', 4, 12);
}
async function poll() {
  try {
    const d = await (await fetch('/status.json')).json();
    const r0 = d.rings[0];
    document.getElementById('leader').textContent = r0 && r0.leader ? r0.leader : 'none known';
    document.getElementById('leader').dataset.leader = r0 && r0.leader ? r0.leader : '';
    document.getElementById('role').textContent = r0 ? r0.role : '?';
    document.getElementById('rows').innerHTML = d.rings.map((r) => '<tr><td>' + [esc(r.ring), '<span class="leader">' + esc(r.leader ?? '—') + '</span>', esc(r.role), esc(bal(r.ballot)),
      esc(r.states.elector), esc(r.states.proposer), esc(r.states.acceptor), esc(r.states.learner), r.chosenUpTo, r.executedUpTo, r.logSlots, r.commandsExecuted].join('</td><td>') + '</td></tr>').join('');
    const total = d.rings.reduce((a, r) => a + r.commandsExecuted, 0);
    if (last) { pts.push({ v: Math.max(0, (total - last.total) * 1000 / Math.max(1, d.time - last.time)) }); if (pts.length > 120) pts.shift(); }
    last = { total, time: d.time };
    document.getElementById('tput').textContent = pts.length ? Math.round(pts[pts.length - 1].v) + ' commands/s' : '—';
    draw();
  } catch (e) { document.getElementById('tput').textContent = 'unreachable: ' + e; }
}
poll(); setInterval(poll, 1000);
</script>
</body></html>
`;
}

/**
 * Serves one replica process's status on node:http: `/` (HTML page with a live throughput chart),
 * `/status.json`, `/metrics` (Prometheus text, from the OTel metrics SDK).
 */
export async function startStatusServer(o: StatusServerOptions): Promise<StatusServer> {
  const reader = new PrometheusReader();
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter('@decree/replica');
  const metrics: ReplicaMetrics[] = o.replicas.map((r, i) =>
    instrumentReplicaMetrics(r, meter, i === 0 && o.transportStats ? { transportStats: o.transportStats } : {}),
  );
  const metricsHandler = reader.handler();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    try {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
      } else if (path === '/metrics') {
        metricsHandler(req, res);
      } else if (path === '/status.json') {
        res
          .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
          .end(JSON.stringify(statusDoc(o.replicas)));
      } else if (path === '/' || path === '/index.html') {
        res
          .writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
          .end(statusPage(statusDoc(o.replicas)));
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      }
    } catch (e) {
      o.log?.('error', 'status page failed', { err: String(e) });
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal error\n');
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
    async close() {
      for (const m of metrics) m.stop();
      server.closeAllConnections?.();
      await new Promise<void>((r) => server.close(() => r()));
      await provider.shutdown();
    },
  };
}
