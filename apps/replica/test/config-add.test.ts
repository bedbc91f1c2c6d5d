/**
 * Configuration changes across real processes: three `decree start` replicas run the KV service; a
 * fourth process starts outside the configuration; `decree config add r4` (the CLI) adds it through
 * the log while a client writes and catches up. Then `decree config remove` takes the leader out, and
 * with one more of the old replicas killed the cluster still writes: r4 votes.
 */
import { describe, expect, it } from 'vitest';
import { decree, idempotent, resp, startedCluster, status } from './helpers.ts';

const f = startedCluster('cfgadd', { members: ['r1', 'r2', 'r3'] }, ['r1', 'r2', 'r3', 'r4']);

describe('configuration changes of a running multi-process cluster', () => {
  it('decree config add r4: a fourth replica process joins ' +
    'through the log under writes, catches up and counts', async () => {
    const leader = await f.cluster.leader(30_000, ['r1', 'r2', 'r3']);
    const before = await decree('config', 'get', '--config', f.configPath, '--json');
    expect(JSON.parse(before.stdout)).toMatchObject({ epoch: 1, members: ['r1', 'r2', 'r3'] });
    // r4 runs, but outside the configuration: it does not vote
    expect((await status(f.cluster.port('r4')))?.role).toBe('follower');
    // a writer keeps going while the change runs
    let writes = 0;
    let stop = false;
    // each INCR goes in a client session and is retried until answered: an in-doubt attempt applies
    // once, so the count read afterwards is exactly the last answer
    const session = `config-add-${process.pid}`;
    const writer = (async () => {
      for (let seq = 1; !stop; seq++) {
        const v = await idempotent(
          `INCR counter (session seq ${seq})`,
          () => resp(f.cluster.port(leader), ['DECREE.SESSION', session, seq, 'INCR', 'counter'], 5000),
          60_000,
        );
        expect(v).toBe(seq);
        writes = v as number;
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    const add = await decree('config', 'add', 'r4', '--config', f.configPath);
    expect(add.stdout).toMatch(/^configuration 2: r1,r2,r3,r4 \(chosen at slot \d+\)/);
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await writer;
    expect(writes).toBeGreaterThan(0);
    // every replica, r4 included, reads the last acknowledged count and runs configuration 2
    await f.cluster.caughtUp(['r1', 'r2', 'r3', 'r4']);
    for (const id of ['r1', 'r2', 'r3', 'r4'])
      expect(await idempotent(`GET counter on ${id}`, () => resp(f.cluster.port(id), ['GET', 'counter']))).toBe(
        String(writes),
      );
    const after = JSON.parse((await decree('config', 'get', '--config', f.configPath, '--json')).stdout);
    expect(after).toMatchObject({ epoch: 2, members: ['r1', 'r2', 'r3', 'r4'] });
  }, 180_000);

  it('decree config remove <leader>: the leader steps down, the others elect, and writes go on', async () => {
    const leader = await f.cluster.leader(30_000);
    const out = await decree('config', 'remove', leader, '--config', f.configPath);
    expect(out.stdout).toMatch(/^configuration 3: /);
    const rest = ['r1', 'r2', 'r3', 'r4'].filter((x) => x !== leader);
    const l2 = await f.cluster.leader(30_000, rest);
    expect(l2).not.toBe(leader);
    // right after a leader change leadership may move again on a loaded machine: idempotent commands are retried
    expect(
      await idempotent(`SET after through ${l2}`, () => resp(f.cluster.port(l2), ['SET', 'after', 'removal'])),
    ).toBe('OK');
    // one more of the original replicas dies: the two left (r4 among them) are a majority of three
    const victim = rest.find((x) => x !== 'r4' && x !== l2)!;
    await f.cluster.kill9(victim);
    const l3 = await f.cluster.leader(
      30_000,
      rest.filter((x) => x !== victim),
    );
    expect(
      await idempotent(`SET r4 through ${l3}`, () => resp(f.cluster.port(l3), ['SET', 'r4', 'votes'], 10_000), 30_000),
    ).toBe('OK');
    expect(await idempotent('GET r4 through r4', () => resp(f.cluster.port('r4'), ['GET', 'r4']))).toBe('votes');
    // a bad change gets a one-line error naming the problem
    const bad = await decree('config', 'add', 'r9', '--config', f.configPath).catch((e) => e);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toBe(
      'decree: not in the cluster config: r9 (list their addresses under "replicas" first)',
    );
  }, 120_000);
});
