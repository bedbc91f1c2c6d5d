#!/usr/bin/env node
// npm start: a local 3-replica cluster of the KV service on loopback (TCP transport, file storage
// under ./data). Prints each replica's client address; Ctrl-C stops it cleanly; a second start keeps the data.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const dataDir = resolve(process.env.DECREE_DATA ?? join(process.cwd(), 'data'));
const basePort = Number(process.env.DECREE_BASE_PORT ?? 7101);
const baseClient = Number(process.env.DECREE_CLIENT_PORT ?? 6381);
const baseStatus = Number(process.env.DECREE_STATUS_PORT ?? 8101);
mkdirSync(join(dataDir, 'logs'), { recursive: true });
const configPath = join(dataDir, 'cluster.json');
if (!existsSync(configPath)) {
  const replicas = [1, 2, 3].map((i) => ({ id: `r${i}`, host: '127.0.0.1', port: basePort + i - 1, clientPort: baseClient + i - 1, statusPort: baseStatus + i - 1 }));
  writeFileSync(configPath, JSON.stringify({ cluster: 'local', dataDir, storage: 'wal', transport: 'tcp', replicas }, null, 2) + '\n');
  console.log(`decree: wrote ${configPath}`);
} else console.log(`decree: using ${configPath} (existing data is kept)`);

const children = [];
const started = new Map();
let stopping = false;
for (const id of ['r1', 'r2', 'r3']) {
  const log = createWriteStream(join(dataDir, 'logs', `${id}.log`), { flags: 'a' });
  const child = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', join(root, 'apps/replica/src/cli.ts'), 'start', '--config', configPath, '--id', id],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  let buf = '';
  child.stdout.on('data', (d) => {
    log.write(d);
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        const j = JSON.parse(line);
        if (j.msg === 'replica started') {
          started.set(id, j.client);
          console.log(`decree: ${id} ready: clients connect to ${j.client}   (redis-cli -h ${j.client.split(':')[0]} -p ${j.client.split(':')[1]})`);
          if (j.status) console.log(`decree: ${id} status page: http://${j.status}/  (status.json, metrics)`);
          else console.log(`decree: ${id} has no status page (add "statusPort" to its entry in ${configPath})`);
          if (started.size === 3) console.log(`decree: cluster up; logs in ${join(dataDir, 'logs')}; Ctrl-C stops it`);
        } else if (j.msg === 'this replica leads') console.log(`decree: ${id} is the leader`);
        else if (j.level >= 50) console.log(`decree: ${id}: ${j.msg}`);
      } catch {}
    }
  });
  child.stderr.on('data', (d) => {
    log.write(d);
    process.stderr.write(`[${id}] ${d}`);
  });
  child.on('exit', (code, sig) => {
    if (!stopping) {
      console.error(`decree: ${id} exited (${sig ?? code}); stopping the others (see ${join(dataDir, 'logs', `${id}.log`)})`);
      stop(1);
    }
  });
}

function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  console.log('decree: stopping the cluster…');
  let left = children.filter((c) => c.exitCode === null && c.signalCode === null).length;
  if (left === 0) process.exit(code);
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    c.on('exit', () => {
      if (--left === 0) {
        console.log('decree: stopped; data kept in', dataDir);
        process.exit(code);
      }
    });
    c.kill('SIGTERM');
  }
  setTimeout(() => {
    for (const c of children) c.kill('SIGKILL');
    process.exit(code || 1);
  }, 15_000).unref();
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
