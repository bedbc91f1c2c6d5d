#!/usr/bin/env node
// npm start: a local 3-replica cluster of the KV service on loopback (TCP transport, file storage
// under ./data). Prints each replica's client address; a second start keeps the data.
//
// A replica that dies (kill -9, a crash) does not take the others down: the launcher says which one
// died and, once the survivors have elected one, who leads now; it restarts the dead replica after a
// back-off (1 s, doubling while it keeps dying within 10 s of its start, at most 30 s). A replica
// that fails before it started (exit code 1 or 2: a config or usage error, an address in use) is
// tried 3 times in all, then left down with the reason. Ctrl-C (SIGINT) or SIGTERM stops every
// replica gracefully and exits 0. DECREE_DATA, DECREE_BASE_PORT, DECREE_CLIENT_PORT and
// DECREE_STATUS_PORT move the data directory and the three runs of ports.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const dataDir = resolve(process.env.DECREE_DATA ?? join(process.cwd(), 'data'));
const basePort = Number(process.env.DECREE_BASE_PORT ?? 7101);
const baseClient = Number(process.env.DECREE_CLIENT_PORT ?? 6381);
const baseStatus = Number(process.env.DECREE_STATUS_PORT ?? 8101);
const IDS = ['r1', 'r2', 'r3'];
/** the V8 flags a replica process runs with (apps/replica/node-flags.json says why) */
const { flags: NODE_FLAGS } = JSON.parse(readFileSync(join(root, 'apps/replica/node-flags.json'), 'utf8'));
/** the first back-off before a restart, its cap, and what counts as dying quickly */
const BACKOFF_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
const QUICK_MS = 10_000;
/** attempts in all for a replica that keeps failing before it started */
const START_ATTEMPTS = 3;

mkdirSync(join(dataDir, 'logs'), { recursive: true });
const configPath = join(dataDir, 'cluster.json');
if (!existsSync(configPath)) {
  const replicas = IDS.map((id, i) => ({
    id,
    host: '127.0.0.1',
    port: basePort + i,
    clientPort: baseClient + i,
    statusPort: baseStatus + i,
  }));
  const cfg = { cluster: 'local', dataDir, storage: 'wal', transport: 'tcp', replicas };
  writeFileSync(configPath, `${JSON.stringify(cfg, null, 2)}\n`);
  console.log(`decree: wrote ${configPath}`);
} else console.log(`decree: using ${configPath} (existing data is kept)`);

const say = (s) => console.log(`decree: ${s}`);
/** at most n characters */
const cut = (s, n) => (s.length <= n ? s : `${s.slice(0, n - 1)}…`);
const secs = (ms) => `${ms % 1000 === 0 ? ms / 1000 : (ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
const list = (ids) => (ids.length <= 1 ? (ids[0] ?? 'none') : `${ids.slice(0, -1).join(', ')} and ${ids.at(-1)}`);

/**
 * One slot per replica id: its current process (if any), when that started, whether it reached
 * "replica started", its restart count and back-off, and a pending restart timer.
 */
const slots = new Map(
  IDS.map((id) => [
    id,
    {
      id,
      child: undefined,
      spawnedAt: 0,
      started: false,
      everStarted: false,
      restarts: 0,
      quickDeaths: 0,
      startFailures: 0,
      gaveUp: false,
      timer: undefined,
      lastErr: '',
      log: createWriteStream(join(dataDir, 'logs', `${id}.log`), { flags: 'a' }),
    },
  ]),
);
/** the replica that last said "this replica leads", undefined while none is known */
let leader;
/** the replica whose death left the cluster without a known leader, and when */
let lostLeader;
let firstUp = false;
let stopping = false;

const running = () =>
  [...slots.values()].filter((s) => s.child && s.child.exitCode === null && s.child.signalCode === null);

function onLine(s, line) {
  let j;
  try {
    j = JSON.parse(line);
  } catch {
    return;
  }
  if (j.msg === 'replica started') {
    s.started = true;
    const [host, port] = String(j.client).split(':');
    if (s.everStarted) {
      say(`${s.id} is back (restart ${s.restarts}): clients connect to ${j.client}`);
    } else {
      s.everStarted = true;
      say(`${s.id} ready: clients connect to ${j.client}   (redis-cli -h ${host} -p ${port})`);
      if (j.status) say(`${s.id} status page: http://${j.status}/  (status.json, metrics)`);
      else say(`${s.id} has no status page (add "statusPort" to its entry in ${configPath})`);
      clusterUp();
    }
  } else if (j.msg === 'this replica leads') {
    if (lostLeader) {
      say(`${s.id} is the leader (elected ${secs(Date.now() - lostLeader.at)} after ${lostLeader.id} died)`);
      lostLeader = undefined;
    } else if (leader !== s.id) say(`${s.id} is the leader`);
    leader = s.id;
  } else if (j.level >= 50) say(`${s.id}: ${j.msg}`);
}

/** "cluster up" once every replica has started, or failed to start for good. */
function clusterUp() {
  const all = [...slots.values()];
  if (firstUp || !all.every((x) => x.everStarted || x.gaveUp) || !all.some((x) => x.everStarted)) return;
  firstUp = true;
  const down = all.filter((x) => x.gaveUp).map((x) => x.id);
  const without = down.length ? ` without ${list(down)} (failed to start)` : '';
  say(`cluster up${without}; logs in ${join(dataDir, 'logs')}; Ctrl-C stops it`);
}

function spawnReplica(s) {
  s.timer = undefined;
  s.started = false;
  s.lastErr = '';
  s.spawnedAt = Date.now();
  const args = [...NODE_FLAGS, '--conditions=source', '--import', 'tsx', join(root, 'apps/replica/src/cli.ts')];
  const child = spawn(process.execPath, [...args, 'start', '--config', configPath, '--id', s.id], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  s.child = child;
  let out = '';
  child.stdout.on('data', (d) => {
    s.log.write(d);
    out += d.toString();
    let nl;
    while ((nl = out.indexOf('\n')) >= 0) {
      onLine(s, out.slice(0, nl));
      out = out.slice(nl + 1);
    }
  });
  let err = '';
  child.stderr.on('data', (d) => {
    s.log.write(d);
    err += d.toString();
    let nl;
    while ((nl = err.indexOf('\n')) >= 0) {
      const line = err.slice(0, nl);
      err = err.slice(nl + 1);
      if (line.trim()) s.lastErr = line.trim();
      process.stderr.write(`[${s.id}] ${line}\n`);
    }
  });
  child.on('exit', (code, signal) => {
    // Ctrl-C in a terminal signals the replicas too: give the launcher's own SIGINT handler a moment
    setTimeout(() => {
      if (!stopping && s.child === child) died(s, code, signal);
    }, 200);
  });
}

function died(s, code, signal) {
  const how = signal ?? `exit ${code}`;
  const upMs = Date.now() - s.spawnedAt;
  const others = IDS.filter((id) => id !== s.id && running().some((r) => r.id === id));
  s.child = undefined;
  if (!s.started && (code === 1 || code === 2)) {
    // a config or usage error, an address in use, storage that cannot open: retrying at once would only loop
    s.startFailures++;
    const why = s.lastErr.replace(/^decree: /, '').replaceAll(`${dataDir}/`, '') || `see logs/${s.id}.log`;
    if (s.startFailures >= START_ATTEMPTS) {
      s.gaveUp = true;
      say(`${s.id} failed to start ${s.startFailures} times (${how}: ${cut(why, 60)}); not restarting it`);
      clusterUp();
      // none left: no process (nor one whose exit is still to be handled) and no restart pending
      if (![...slots.values()].some((x) => x.child || x.timer)) {
        say('no replica is running; fix the error above and run npm start again');
        stop(1);
      }
      return;
    }
    const delay = BACKOFF_MS * 2 ** (s.startFailures - 1);
    say(
      `${s.id} failed to start (${how}: ${cut(why, 60)}); attempt ` +
        `${s.startFailures + 1} of ${START_ATTEMPTS} in ${secs(delay)}`,
    );
    s.restarts++;
    s.timer = setTimeout(() => spawnReplica(s), delay);
    return;
  }
  s.startFailures = 0;
  const wasLeader = leader === s.id;
  if (wasLeader) {
    leader = undefined;
    lostLeader = { id: s.id, at: Date.now() };
  }
  const role = wasLeader ? ' (the leader)' : '';
  const rest = others.length === 0 ? 'no other replica is running' : `${list(others)} keep serving`;
  const elect = wasLeader && others.length >= 2 ? ' and elect a leader' : '';
  say(`${s.id}${role} died (${how}) after ${secs(upMs)}; ${rest}${elect}`);
  s.quickDeaths = upMs < QUICK_MS ? s.quickDeaths + 1 : 0;
  const delay = Math.min(BACKOFF_MS * 2 ** Math.max(0, s.quickDeaths - 1), BACKOFF_MAX_MS);
  s.restarts++;
  const quick = s.quickDeaths > 1 ? `; ${s.quickDeaths} deaths in a row within ${secs(QUICK_MS)} of a start` : '';
  say(`restarting ${s.id} in ${secs(delay)} (restart ${s.restarts}${quick})`);
  s.timer = setTimeout(() => spawnReplica(s), delay);
}

function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  say('stopping the cluster…');
  for (const s of slots.values()) {
    if (s.timer) clearTimeout(s.timer);
    s.timer = undefined;
  }
  const live = running().map((s) => s.child);
  // 'close': the process has exited and its output has been read (into the log files)
  const closed = live.map((c) => new Promise((r) => c.once('close', r)));
  for (const c of live) c.kill('SIGTERM');
  setTimeout(() => {
    for (const c of live) c.kill('SIGKILL');
    say('a replica did not stop within 15 s; killed');
    process.exit(code || 1);
  }, 15_000).unref();
  Promise.all(closed)
    .then(() => Promise.all([...slots.values()].map((s) => new Promise((r) => s.log.end(r)))))
    .then(() => {
      say(`stopped; data kept in ${dataDir}`);
      process.exit(code);
    });
}

process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
for (const s of slots.values()) spawnReplica(s);
