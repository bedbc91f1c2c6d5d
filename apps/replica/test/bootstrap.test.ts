/**
 * RSL Bootstrap across processes: three `decree start` replicas with `"members": []` wait without a
 * configuration; `decree bootstrap` gives them their first one, a leader is elected and writes work;
 * a second bootstrap reports it was already done; a restarted replica keeps the stored configuration.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, Cluster, NODE_ARGS, ROOT, killAll, resp, sleep, status, tempDir, waitFor, writeClusterConfig } from './helpers.ts';

const run = promisify(execFile);
const tmp = tempDir('bootstrap');
let cluster: Cluster;
let configPath: string;
const decree = (...args: string[]) => run(process.execPath, [...NODE_ARGS, CLI, ...args], { cwd: ROOT, timeout: 90_000 });

beforeAll(async () => {
  const w = await writeClusterConfig(tmp.dir, { members: [] });
  configPath = w.configPath;
  cluster = new Cluster(configPath, w.replicas);
  await cluster.startAll();
}, 90_000);

afterAll(async () => {
  await killAll();
  tmp.remove();
});

describe('decree bootstrap', () => {
  it('replicas with no configuration elect nobody until bootstrapped; then a leader is elected, writes work, and the configuration survives a restart', async () => {
    await sleep(1_500); // several election timeouts
    for (const id of ['r1', 'r2', 'r3']) {
      const s = (await status(cluster.port(id))) as unknown as { role: string; configEpoch: number };
      expect(s.role).toBe('follower');
      expect(s.configEpoch).toBe(0);
    }
    const out = await decree('bootstrap', '--config', configPath);
    expect(out.stdout).toMatch(/^bootstrapped: configuration 1: r1,r2,r3 \(leader r[123]\)/);
    const leader = await cluster.leader(30_000);
    expect(await resp(cluster.port(leader), ['SET', 'k', 'v'])).toBe('OK');
    const again = await decree('bootstrap', '--config', configPath);
    expect(again.stdout).toMatch(/^already bootstrapped: configuration 1: r1,r2,r3/);
    const other = await decree('bootstrap', '--config', configPath, '--members', 'r1,r2').catch((e) => e);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/^decree: bootstrap refused: ALREADY already bootstrapped/);
    // a restarted replica keeps the configuration it stored
    const follower = ['r1', 'r2', 'r3'].find((x) => x !== leader)!;
    await cluster.kill9(follower);
    await cluster.start(follower).started();
    await waitFor('the restarted replica back in configuration 1', async () => {
      const s = (await status(cluster.port(follower))) as unknown as { configEpoch?: number; members?: string[] } | undefined;
      return s?.configEpoch === 1 && s.members?.length === 3;
    }, 30_000);
    expect(await resp(cluster.port(follower), ['GET', 'k'])).toBe('v');
  }, 150_000);
});
