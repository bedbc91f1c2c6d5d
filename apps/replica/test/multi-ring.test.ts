import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../../..');
const procs: ChildProcess[] = [];
let dir = '';
afterAll(() => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const freePort = () =>
  new Promise<number>((res) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
  });

describe('several rings per process (RSL rings)', () => {
  it('3 rings on the same 3 processes, each with its own leader, log and data, over shared connections', async () => {
    dir = mkdtempSync(join(tmpdir(), 'decree-rings-'));
    const replicas: { id: string; host: string; port: number; clientPort: number }[] = [];
    for (const id of ['r1', 'r2', 'r3'])
      replicas.push({ id, host: '127.0.0.1', port: await freePort(), clientPort: await freePort() });
    const rings = ['alpha', 'beta', 'gamma'];
    const cfg = join(dir, 'cluster.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        cluster: 'rings',
        dataDir: dir,
        rings,
        replicas,
        election: { minMs: 1000, maxMs: 2000, heartbeatMs: 100 },
      }),
    );
    const latest = new Map<
      string,
      { rings: Record<string, { leader: string | null; executed: number }>; wrote: number }
    >();
    replicas.forEach((r, i) => {
      const p = spawn(
        process.execPath,
        [
          '--conditions=source',
          '--import',
          'tsx',
          join(import.meta.dirname, 'fixtures/multi-ring-node.ts'),
          '--config',
          cfg,
          '--id',
          r.id,
          '--lead',
          rings[i]!,
        ],
        {
          cwd: root,
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      procs.push(p);
      let buf = '';
      p.stdout!.on('data', (d) => {
        buf += d.toString();
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          try {
            latest.set(r.id, JSON.parse(line));
          } catch {}
        }
      });
    });
    const done = () =>
      replicas.every((r) => {
        const s = latest.get(r.id);
        return (
          s !== undefined &&
          s.wrote >= 5 &&
          rings.every((ring, j) => s.rings[ring]?.leader === replicas[j]!.id && s.rings[ring]!.executed >= 5)
        );
      });
    const end = Date.now() + 90_000;
    while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    expect(done(), JSON.stringify([...latest])).toBe(true);
    // every process sees the same three different leaders
    for (const r of replicas)
      expect(rings.map((ring) => latest.get(r.id)!.rings[ring]!.leader)).toEqual(['r1', 'r2', 'r3']);
    // each ring keeps its own log in its own directory under the shared data dir
    for (const r of replicas) expect(readdirSync(join(dir, r.id)).sort()).toEqual(rings);
    for (const p of procs) p.kill('SIGTERM');
  }, 150_000);
});
