/**
 * The status page's HTML: the cluster table, leader changes, commit latency, this replica's rings and
 * the statechart of every role of every ring as nested boxes, rendered here from the machines'
 * definitions (chartOf). Nothing is loaded from elsewhere: one inline style, one inline script that
 * listens to /events (Server-Sent Events) and swaps in the fragments and the state highlights.
 */
import type { Chart, ChartState } from '@decree/telemetry';
import { type ClusterView, type MemberView, ROLES, type RoleName, type StatusDoc } from './status-doc.ts';

/** The states of one member's role machine: `paths` outermost first; its chip goes in the last. */
export interface Mark {
  ring: string;
  role: RoleName;
  member: string;
  paths: string[];
  self: boolean;
}

/** What /events sends (and the page is first rendered from). */
export interface PageUpdate {
  id: string;
  time: number;
  leader: string | undefined;
  role: string;
  /** commands executed here, all rings (the throughput line) */
  commands: number;
  html: { cluster: string; changes: string; self: string };
  marks: Mark[];
}

export type RingCharts = ReadonlyMap<string, Record<RoleName, Chart>>;

const esc = (v: unknown) => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const ballotText = (b: unknown) => (b && typeof b === 'object' ? Object.values(b as object).join('.') : String(b));
const clock = (t: number) => new Date(t).toISOString().slice(11, 23);
const ms = (x: number | undefined) => (x === undefined ? '—' : x < 10 ? x.toFixed(2) : x.toFixed(1));
const opt = (x: unknown) => (x === undefined ? '—' : esc(x));

export function marksOf(view: ClusterView): Mark[] {
  const out: Mark[] = [];
  for (const r of view.rings)
    for (const m of r.members)
      if (m.active)
        for (const role of ROLES)
          out.push({ ring: r.ring, role, member: m.id, paths: m.active[role] ?? [], self: m.state === 'self' });
  return out;
}

function memberRow(m: MemberView, leader: string | undefined): string {
  const state =
    m.state === 'unreachable'
      ? `unreachable${m.error ? ` (${esc(m.error)})` : ''}${m.lastSeen ? `, last seen ${clock(m.lastSeen)}` : ''}`
      : m.state === 'unknown'
        ? `unknown${m.error ? ` (${esc(m.error)})` : ''}`
        : m.state === 'self'
          ? 'this replica'
          : 'up';
  const cells = [
    `<td class="id">${esc(m.id)}${m.id === leader ? ' ★' : ''}</td>`,
    `<td class="state">${state}</td>`,
    `<td class="role">${opt(m.role)}</td>`,
    `<td>${opt(m.executedUpTo)}</td>`,
    `<td class="lag">${opt(m.lag)}</td>`,
    `<td>${m.connected === undefined ? '—' : m.connected ? 'yes' : '<b>no</b>'}</td>`,
    `<td>${opt(m.lastAcceptedSlot)}</td>`,
    `<td class="payload">${opt(m.votePayload)}</td>`,
    `<td>${ms(m.latency?.p50)}</td>`,
    `<td>${ms(m.latency?.p99)}</td>`,
    `<td><small>${opt(m.healthFrom)}</small></td>`,
  ];
  const attrs = `data-member="${esc(m.id)}" data-state="${m.state}" data-role="${esc(m.role ?? '')}"`;
  return `<tr class="${m.state}" ${attrs}>${cells.join('')}</tr>`;
}

export function clusterHtml(view: ClusterView): string {
  return view.rings
    .map(
      (r) => `<h3>ring ${esc(r.ring)} · leader <b class="ring-leader">${esc(r.leader ?? 'none known')}</b></h3>
<table class="cluster" data-ring="${esc(r.ring)}"><thead><tr><th>member</th><th>status page</th><th>role</th>
<th>executed</th><th>lag</th><th>connected</th><th>last accepted</th><th>vote payload</th><th>p50 ms</th><th>p99 ms</th>
<th>health seen by</th></tr></thead><tbody>
${r.members.map((m) => memberRow(m, r.leader)).join('\n')}
</tbody></table>`,
    )
    .join('\n');
}

export function changesHtml(view: ClusterView): string {
  return view.rings
    .map((r) => {
      const items = [...r.leaderChanges]
        .reverse()
        .map(
          (c) =>
            `<li data-to="${esc(c.to)}"><time datetime="${new Date(c.at).toISOString()}">${clock(c.at)}</time> ` +
            `${esc(c.from ?? '(none)')} → <b>${esc(c.to)}</b></li>`,
        );
      return `<h3>ring ${esc(r.ring)}</h3><ol class="changes" data-ring="${esc(r.ring)}">${items.join('')}</ol>`;
    })
    .join('\n');
}

export function selfHtml(doc: StatusDoc): string {
  return doc.rings
    .map((r) => {
      const cells = [
        esc(r.ring),
        `<span class="leader">${esc(r.leader ?? '—')}</span>`,
        esc(r.role),
        esc(ballotText(r.ballot)),
        esc(r.states.elector),
        esc(r.states.proposer),
        esc(r.states.acceptor),
        esc(r.states.learner),
        r.chosenUpTo,
        r.executedUpTo,
        r.logSlots,
        r.commandsExecuted,
      ];
      return `<tr><td>${cells.join('</td><td>')}</td></tr>`;
    })
    .join('\n');
}

export function pageUpdate(doc: StatusDoc, view: ClusterView): PageUpdate {
  const first = doc.rings[0];
  return {
    id: doc.id,
    time: doc.time,
    leader: first?.leader,
    role: first?.role ?? '?',
    commands: doc.rings.reduce((a, r) => a + r.commandsExecuted, 0),
    html: { cluster: clusterHtml(view), changes: changesHtml(view), self: selfHtml(doc) },
    marks: marksOf(view),
  };
}

/** One statechart: nested boxes (`.st[data-path]`), the marks applied, the transitions listed under it. */
export function chartHtml(ring: string, role: RoleName, chart: Chart, marks: readonly Mark[]): string {
  const on = new Set<string>();
  const mine = new Set<string>();
  const chips = new Map<string, string[]>();
  for (const m of marks) {
    if (m.ring !== ring || m.role !== role || !m.paths.length) continue;
    for (const p of m.paths) (m.self ? mine : on).add(p);
    const last = m.paths[m.paths.length - 1]!;
    chips.set(last, [
      ...(chips.get(last) ?? []),
      `<span class="chip${m.self ? ' me' : ''}" data-member="${esc(m.member)}">${esc(m.member)}</span>`,
    ]);
  }
  const box = (s: ChartState, parent: ChartState): string => {
    const cls = ['st', s.type, on.has(s.path) || mine.has(s.path) ? 'on' : '', mine.has(s.path) ? 'self' : '']
      .filter(Boolean)
      .join(' ');
    const init = parent.initial === s.path ? '<i title="initial state">▸</i>' : '';
    const title = s.description ? ` title="${esc(s.description)}"` : '';
    const kids = s.children.length ? `<div class="kids">${s.children.map((c) => box(c, s)).join('')}</div>` : '';
    return (
      `<div class="${cls}" data-path="${esc(s.path)}"${title}>` +
      `<div class="hd">${init}<span class="nm">${esc(s.key)}</span>` +
      `<span class="chips">${(chips.get(s.path) ?? []).join('')}</span></div>${kids}</div>`
    );
  };
  const name = (p: string) => (p === '' ? '(any state)' : esc(p));
  const transitions = chart.transitions
    .map(
      (t) =>
        `<li data-from="${esc(t.from)}">${name(t.from)} → ${t.to.map(name).join(', ')} : ` +
        `<code>${esc(t.event)}</code>${t.guard ? ` [${esc(t.guard)}]` : ''}</li>`,
    )
    .join('');
  return `<div class="chart" data-ring="${esc(ring)}" data-role="${role}"><h4>${role}</h4>
<div class="root">${chart.root.children.map((c) => box(c, chart.root)).join('')}</div>
<details><summary>${chart.transitions.length} transitions</summary><ul class="tr">${transitions}</ul></details></div>`;
}

const STYLE = `body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.3em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}th{background:#f4f4f4}.leader{font-weight:bold}
#chart{border:1px solid #ccc}small{color:#666}h3{margin:.8em 0 .3em;font-size:1.05em}
tr.unreachable{color:#a00;background:#fff3f3}tr.unknown{color:#777}tr.self{background:#f3f8ff}
#live{padding:0 .4em;border-radius:3px;background:#eee}#live.ok{background:#dfd}#live.down{background:#fdd}
.charts{display:flex;flex-wrap:wrap;gap:.8em;align-items:flex-start}
.chart{border:1px solid #bbb;border-radius:6px;padding:.4em;max-width:46em}.chart h4{margin:0 0 .3em}
.root,.kids{display:flex;flex-wrap:wrap;gap:.35em;align-items:flex-start}.kids{margin:.3em 0 0 .6em}
.st{border:1px solid #999;border-radius:5px;padding:.2em .4em;background:#fff;min-width:4em}
.st.final{border-style:double;border-width:3px}.st.on{border-color:#2a6;background:#eefbf1}
.st.self{border:2px solid #174;background:#d6f5de}.hd i{color:#888;font-style:normal;margin-right:.2em}
.nm{font-weight:600}.chip{display:inline-block;margin-left:.3em;padding:0 .35em;border-radius:8px;
background:#357;color:#fff;font-size:11px}.chip.me{background:#174}
ul.tr{margin:.3em 0;padding-left:1.2em;font-size:12px}ul.tr li.live{color:#174;font-weight:600}
ol.changes{margin:.2em 0}`;

/** The page's script: /events updates; a new snapshot replaces the fragments and moves the highlights. */
const SCRIPT = `const $ = (id) => document.getElementById(id);
const pts = []; let last;
function draw() {
  const c = $('chart'), g = c.getContext('2d'); g.clearRect(0, 0, c.width, c.height);
  const max = Math.max(1, ...pts); g.strokeStyle = '#2a6'; g.lineWidth = 2; g.beginPath();
  const y = (v) => c.height - 4 - (c.height - 8) * v / max;
  pts.forEach((v, i) => { const x = c.width * i / 119; i ? g.lineTo(x, y(v)) : g.moveTo(x, y(v)); });
  g.stroke(); g.fillStyle = '#666'; g.fillText(Math.round(max) + '/s', 4, 12);
}
function mark(marks) {
  document.querySelectorAll('.st.on, .st.self').forEach((e) => e.classList.remove('on', 'self'));
  document.querySelectorAll('.chip').forEach((e) => e.remove());
  document.querySelectorAll('ul.tr li.live').forEach((e) => e.classList.remove('live'));
  for (const m of marks) {
    const sel = '.chart[data-ring="' + CSS.escape(m.ring) + '"][data-role="' + m.role + '"]';
    const chart = document.querySelector(sel); if (!chart) continue;
    let deepest;
    for (const p of m.paths) {
      const el = chart.querySelector('.st[data-path="' + CSS.escape(p) + '"]'); if (!el) continue;
      el.classList.add('on'); if (m.self) el.classList.add('self'); deepest = el;
      if (!m.self) continue;
      const from = chart.querySelectorAll('ul.tr li[data-from="' + CSS.escape(p) + '"]');
      from.forEach((li) => li.classList.add('live'));
    }
    if (!deepest) continue;
    const chip = document.createElement('span');
    chip.className = m.self ? 'chip me' : 'chip'; chip.dataset.member = m.member; chip.textContent = m.member;
    deepest.querySelector(':scope > .hd > .chips').append(chip);
  }
}
function apply(d) {
  $('leader').textContent = d.leader || 'none known'; $('leader').dataset.leader = d.leader || '';
  $('role').textContent = d.role;
  $('cluster').innerHTML = d.html.cluster; $('changes').innerHTML = d.html.changes; $('rows').innerHTML = d.html.self;
  mark(d.marks);
  if (last && d.time > last.time) {
    pts.push(Math.max(0, (d.commands - last.commands) * 1000 / (d.time - last.time)));
    if (pts.length > 120) pts.shift();
    $('tput').textContent = Math.round(pts[pts.length - 1]) + ' commands/s'; draw();
  }
  last = d;
}
const live = $('live'); let updates = 0;
const es = new EventSource('/events');
es.onopen = () => { live.textContent = 'live'; live.className = 'ok'; };
es.onerror = () => { live.textContent = 'reconnecting…'; live.className = 'down'; };
es.onmessage = (e) => {
  apply(JSON.parse(e.data)); live.textContent = 'live'; live.className = 'ok'; live.dataset.updates = ++updates;
};`;

/** The whole page, server-rendered from the same update /events sends (it reads without script). */
export function statusPage(u: PageUpdate, charts: RingCharts): string {
  const rings = [...charts.entries()]
    .map(
      ([ring, byRole]) =>
        `<h3>ring ${esc(ring)}</h3><div class="charts">` +
        `${ROLES.map((role) => chartHtml(ring, role, byRole[role], u.marks)).join('\n')}</div>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>decree ${esc(u.id)}</title>
<style>${STYLE}</style></head>
<body>
<h1>decree replica <span id="id">${esc(u.id)}</span></h1>
<p>Leader: <b id="leader" data-leader="${esc(u.leader ?? '')}">${esc(u.leader ?? 'none known')}</b>
 · this replica is <b id="role">${esc(u.role)}</b> · <span id="live">static</span>
 · <a href="/status.json">status.json</a> · <a href="/cluster.json">cluster.json</a>
 · <a href="/metrics">metrics</a></p>
<h2>Cluster <small>(as seen from ${esc(u.id)}; peer health as the leader reports it)</small></h2>
<div id="cluster">${u.html.cluster}</div>
<h2>Recent leader changes <small>(seen by ${esc(u.id)}, newest first, UTC)</small></h2>
<div id="changes">${u.html.changes}</div>
<h2>Throughput <small>(commands executed here per second, all rings, last 2 minutes)</small></h2>
<canvas id="chart" width="720" height="160"></canvas>
<p><small id="tput">—</small></p>
<h2>Statecharts <small>(each member's state: a chip in its innermost state; ${esc(u.id)}'s path in dark green;
hover a state for its description)</small></h2>
${rings}
<h2>This replica</h2>
<table><thead><tr><th>ring</th><th>leader</th><th>role</th><th>ballot</th><th>elector</th><th>proposer</th>
<th>acceptor</th><th>learner</th><th>chosen</th><th>applied</th><th>log (slots)</th><th>commands</th></tr></thead>
<tbody id="rows">
${u.html.self}
</tbody></table>
<script>
${SCRIPT}
</script>
</body></html>
`;
}
