#!/usr/bin/env node
// npm run start:roles: a local 3-replica KV cluster with every role of every replica in a process of
// its own, over a local nats-server: 3 replicas × 7 processes (acceptor, learner, snapshotter,
// config-manager, proposer, elector, and the client side, which serves redis-cli on the replica's
// clientPort), 21 processes. File storage under ./data-roles; a second start keeps the data.
// Prints each replica's client address; Ctrl-C (SIGINT) or SIGTERM stops every process gracefully,
// then the nats-server, and exits 0. If a process dies, the others are stopped and the exit code is 1.
//
// The processes run the esbuild bundle of the decree command (tools/scripts/build-replica.mjs, rebuilt
// at every start: about 0.3 s), which loads much faster than tsx on a small machine.
// DECREE_DATA moves the data directory; DECREE_BASE_PORT (7201), DECREE_CLIENT_PORT (6391) and
// DECREE_NATS_PORT (4222) the ports of a new config.
import { spawn } from 'node:child_process';
import { accessSync, constants, createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** the V8 flags a replica process runs with (apps/replica/node-flags.json says why) */
const { flags: NODE_FLAGS } = JSON.parse(readFileSync(join(root, 'apps/replica/node-flags.json'), 'utf8'));
const dataDir = resolve(process.env.DECREE_DATA ?? join(process.cwd(), 'data-roles'));
const basePort = Number(process.env.DECREE_BASE_PORT ?? 7201);
const baseClient = Number(process.env.DECREE_CLIENT_PORT ?? 6391);
const natsPortWanted = Number(process.env.DECREE_NATS_PORT ?? 4222);
const IDS = ['r1', 'r2', 'r3'];
/** the electors start last, once every other process is up: the first election then finds everyone */
const FIRST_WAVE = ['acceptor', 'learner', 'snapshotter', 'config-manager', 'proposer', 'client'];
const ROLES = [...FIRST_WAVE, 'elector'];
const INSTALL = 'apt-get update && apt-get install -y nats-server';

let stopping = false;
const say = (s) => console.log(`decree: ${s}`);
const die = (s) => {
  console.error(`decree: ${s}`);
  process.exit(1);
};

/** nats-server: $NATS_SERVER_BIN, then PATH, then Debian's /usr/sbin (not on every user's PATH). */
function findNatsServer() {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  const candidates = [process.env.NATS_SERVER_BIN, ...dirs.map((d) => join(d, 'nats-server')), '/usr/sbin/nats-server'];
  for (const c of candidates) {
    if (!c) continue;
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      /* next */
    }
  }
  return undefined;
}

const natsBin = findNatsServer();
if (!natsBin) die(`nats-server is not installed (the roles talk over NATS); install it with: ${INSTALL}`);

mkdirSync(join(dataDir, 'logs'), { recursive: true });
const configPath = join(dataDir, 'cluster.json');
if (!existsSync(configPath)) {
  const replicas = IDS.map((id, i) => ({ id, host: '127.0.0.1', port: basePort + i, clientPort: baseClient + i }));
  const cfg = {
    cluster: 'local-roles',
    dataDir,
    storage: 'wal',
    transport: 'nats',
    nats: { servers: [`nats://127.0.0.1:${natsPortWanted}`] },
    replicas,
  };
  writeFileSync(configPath, `${JSON.stringify(cfg, null, 2)}\n`);
  say(`wrote ${configPath}`);
} else say(`using ${configPath} (existing data is kept)`);

let cfg;
try {
  cfg = JSON.parse(readFileSync(configPath, 'utf8'));
} catch (e) {
  die(`${configPath}: ${e.message}`);
}
if (cfg.transport !== 'nats' || !cfg.nats?.servers?.length)
  die(`${configPath}: roles as processes need transport "nats"`);
const natsUrl = new URL(cfg.nats.servers[0]);
const natsPort = Number(natsUrl.port || 4222);
if (!['127.0.0.1', 'localhost'].includes(natsUrl.hostname))
  die(`${configPath}: nats.servers[0] is ${natsUrl.href}; this script starts a local nats-server (127.0.0.1)`);

/** Whether something accepts connections on 127.0.0.1:port. */
const listening = (port) =>
  new Promise((res) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });

if (await listening(natsPort))
  die(
    `127.0.0.1:${natsPort} is in use (another nats-server?); stop it, or remove ${configPath} and set DECREE_NATS_PORT`,
  );

// ---------------------------------------------------------------- nats-server
const natsLog = createWriteStream(join(dataDir, 'logs', 'nats-server.log'), { flags: 'a' });
// its own process group: Ctrl-C in the terminal reaches the role processes, which then stop with the
// server still up; the server is stopped last
const nats = spawn(natsBin, ['-a', '127.0.0.1', '-p', String(natsPort)], {
  stdio: ['ignore', 'pipe', 'pipe'],
  detached: true,
});
nats.stdout.pipe(natsLog);
nats.stderr.pipe(natsLog);
// if this script is SIGKILLed, a watchdog still stops the server
const watchdog = spawn(
  'sh',
  ['-c', `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; kill ${nats.pid} 2>/dev/null`],
  {
    stdio: 'ignore',
    detached: true,
  },
);
watchdog.on('error', () => {});
watchdog.unref();
let natsExited = false;
nats.on('exit', (code, sig) => {
  natsExited = true;
  if (!stopping) {
    console.error(`decree: nats-server exited (${sig ?? code}); see ${join(dataDir, 'logs', 'nats-server.log')}`);
    stop(1);
  }
});
const natsDeadline = Date.now() + 10_000;
while (!(await listening(natsPort))) {
  if (natsExited) die(`nats-server did not start; see ${join(dataDir, 'logs', 'nats-server.log')}`);
  if (Date.now() > natsDeadline) die(`nats-server did not listen on 127.0.0.1:${natsPort} within 10 s`);
  await new Promise((r) => setTimeout(r, 50));
}
say(`nats-server on nats://127.0.0.1:${natsPort}`);

// ---------------------------------------------------------------- the role processes
const { buildReplica } = await import('./build-replica.mjs');
let bundle;
try {
  bundle = await buildReplica({ quiet: true });
} catch (e) {
  nats.kill('SIGTERM');
  die(`cannot build the decree bundle: ${e.message}`);
}
// one incarnation per start, shared by the processes of a replica (decree start --role … --inc)
const inc = String(Date.now());
const children = [];
const started = new Map(IDS.map((id) => [id, new Set()]));
const clients = new Map();
let leader;

function onLine(id, role, line) {
  let j;
  try {
    j = JSON.parse(line);
  } catch {
    return;
  }
  if (j.msg === 'role started') {
    if (j.client) clients.set(id, j.client);
    const s = started.get(id);
    s.add(role);
    if (s.size === ROLES.length) {
      const [host, port] = String(clients.get(id)).split(':');
      say(`${id} ready (7 processes): clients connect to ${clients.get(id)}   (redis-cli -h ${host} -p ${port})`);
      if (IDS.every((r) => started.get(r).size === ROLES.length))
        say(`cluster up: ${children.length} processes; logs in ${join(dataDir, 'logs')}; Ctrl-C stops it`);
    } else if (FIRST_WAVE.every((r) => IDS.every((x) => started.get(x).has(r))) && !electorsSpawned) spawnElectors();
  } else if (role === 'proposer' && j.msg === 'state' && j.state === 'leading' && leader !== id) {
    leader = id;
    say(`${id} is the leader`);
  } else if (j.level >= 50) say(`${id} ${role}: ${j.msg}`);
}

function spawnRole(id, role) {
  const log = createWriteStream(join(dataDir, 'logs', `${id}-${role}.log`), { flags: 'a' });
  const args = [...NODE_FLAGS, bundle, 'start', '--role', role, '--config', configPath, '--id', id, '--inc', inc];
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let buf = '';
  child.stdout.on('data', (d) => {
    log.write(d);
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      onLine(id, role, buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  child.stderr.on('data', (d) => {
    log.write(d);
    process.stderr.write(`[${id} ${role}] ${d}`);
  });
  child.on('exit', (code, sig) => {
    if (!stopping) {
      console.error(
        `decree: ${id} ${role} exited (${sig ?? code}); stopping the others ` +
          `(see ${join(dataDir, 'logs', `${id}-${role}.log`)})`,
      );
      stop(1);
    }
  });
}

let electorsSpawned = false;
function spawnElectors() {
  electorsSpawned = true;
  for (const id of IDS) spawnRole(id, 'elector');
}

say(
  `starting ${IDS.length} replicas × ${ROLES.length} processes (${ROLES.join(', ')}) ` +
    `from ${bundle.slice(root.length + 1)}`,
);
for (const id of IDS) for (const role of FIRST_WAVE) spawnRole(id, role);

function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  say('stopping the cluster…');
  const stopNats = () => {
    if (natsExited) {
      say(`stopped; data kept in ${dataDir}`);
      process.exit(code);
    }
    nats.once('exit', () => {
      say(`stopped; data kept in ${dataDir}`);
      process.exit(code);
    });
    nats.kill('SIGTERM');
  };
  const live = children.filter((c) => c.exitCode === null && c.signalCode === null);
  let left = live.length;
  if (left === 0) stopNats();
  for (const c of live) {
    c.once('exit', () => {
      if (--left === 0) stopNats();
    });
    c.kill('SIGTERM');
  }
  setTimeout(() => {
    for (const c of children) c.kill('SIGKILL');
    nats.kill('SIGKILL');
    process.exit(code || 1);
  }, 15_000).unref();
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
