/**
 * `decree status`: asks each replica's client port (authenticating when the config sets
 * kv.password), prints one row per replica, exits 1 when none answers.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI,
  Cluster,
  NODE_ARGS,
  ROOT,
  RespClient,
  RespError,
  exitOf,
  killAll,
  tempDir,
  track,
  writeClusterConfig,
} from './helpers.ts';

const tmp = tempDir('status');
let cluster: Cluster;
const PASSWORD = 'status-test-pw';

beforeAll(async () => {
  // two replicas in the config, only r1 runs: r2 shows as down
  const { configPath, replicas } = await writeClusterConfig(tmp.dir, { kv: { password: PASSWORD } }, ['r1', 'r2']);
  cluster = new Cluster(configPath, replicas);
  await cluster.start('r1').started(45_000);
}, 60_000);

afterAll(async () => {
  await killAll();
  tmp.remove();
});

async function status(): Promise<{ code: number | null; rows: Record<string, unknown>[]; stderr: string }> {
  const c = spawn(process.execPath, [...NODE_ARGS, CLI, 'status', '--config', cluster.configPath, '--json'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(c);
  let out = '';
  let err = '';
  c.stdout!.on('data', (d) => (out += d));
  c.stderr!.on('data', (d) => (err += d));
  const { code } = await exitOf(c, 40_000);
  return { code, rows: JSON.parse(out), stderr: err };
}

describe('decree status', () => {
  it('authenticates with kv.password and reports each replica up or down', async () => {
    // the client port does require the password
    const c = await RespClient.connect(cluster.port('r1'));
    try {
      const denied = await c.call(['GET', 'x']);
      expect(denied).toBeInstanceOf(RespError);
      expect((denied as RespError).message).toMatch(/^NOAUTH/);
      expect(await c.call(['AUTH', PASSWORD])).toBe('OK');
      expect(await c.call(['PING'])).toBe('PONG');
    } finally {
      c.close();
    }
    const r = await status();
    expect(r.code, r.stderr).toBe(0);
    expect(r.rows).toHaveLength(2);
    const [r1, r2] = r.rows;
    expect(r1).toMatchObject({ id: 'r1', address: `127.0.0.1:${cluster.port('r1')}`, up: true });
    expect(['leader', 'candidate', 'follower']).toContain(r1!.role);
    expect(typeof r1!.executed).toBe('number');
    expect(r2).toMatchObject({ id: 'r2', up: false });
  });

  it('exits 1 when no replica answers', async () => {
    await cluster.kill9('r1');
    const r = await status();
    expect(r.code).toBe(1);
    expect(r.rows.map((x) => x.up)).toEqual([false, false]);
  });
});
