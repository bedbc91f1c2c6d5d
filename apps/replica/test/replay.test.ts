/**
 * `decree replay`: three replicas with file WAL and file snapshots (snapshots every 40 slots, so logs
 * are truncated); r3 is stopped while the others go on and catches up from its peers afterwards (its
 * log then lacks values: the learner records them). Each data directory, replayed offline, gives the
 * state its replica had; replays of different replicas agree at every slot; the directories are not
 * modified; a snapshot written by the replay restores to the same state.
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { Bus, realEnv } from '@decree/bus';
import { KvCommands, KvMachine } from '@decree/kv-machine';
import { createReplica, type Replica } from '@decree/replica';
import { FileSnapshotStore, FileWalStore } from '@decree/storage';
import { ReplayError, replay } from '../src/replay.ts';
import { CLI, NODE_ARGS, ROOT } from './helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'replay-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const ids = ['r1', 'r2', 'r3'];
let base = root;
const dirOf = (id: string) => join(base, id, 'default');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function treeHash(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      const st = statSync(p);
      h.update(`${p}:${st.mtimeMs}:${st.size}\n`);
      if (st.isDirectory()) walk(p);
      else h.update(readFileSync(p));
    }
  };
  walk(dir);
  return h.digest('hex');
}

describe('decree replay', () => {
  const bus = new Bus(realEnv());
  const live = new Map<string, { r: Replica; sm: KvMachine }>();
  let snapshots = true;
  const start = async (id: string) => {
    const sm = new KvMachine();
    const r = await createReplica({
      id,
      configuration: { members: ids },
      storage: new FileWalStore({ dir: dirOf(id) }),
      snapshots: new FileSnapshotStore(join(dirOf(id), 'snapshots')),
      stateMachine: sm,
      bus,
      options: {
        elector: { electionTimeoutMinMs: 150, electionTimeoutMaxMs: 300, heartbeatMs: 40 },
        snapshotter: snapshots
          ? { everySlots: 40, truncateMargin: 5, keep: 2 }
          : { everySlots: 1_000_000, everyBytes: 0 },
        proposer: { maxBatchCmds: 4 },
      },
    });
    live.set(id, { r, sm });
  };
  const leader = async (): Promise<Replica> => {
    for (let i = 0; i < 400; i++) {
      const l = [...live.values()].find((x) => x.r.isLeader());
      if (l) return l.r;
      await sleep(10);
    }
    throw new Error('no leader');
  };
  const write = async (from: number, to: number) => {
    for (let i = from; i < to; i += 8) {
      const cmds = [];
      for (let j = i; j < Math.min(to, i + 8); j++)
        cmds.push(KvCommands.set(`k${j % 37}`, `v${j}`), KvCommands.incr('counter', 1));
      await (await leader()).submitBatch(cmds);
    }
  };
  const digests = new Map<string, { slot: number; digest: string }>();
  /**
   * Writes [0, a), stops r3, writes [a, b), restarts r3, writes [b, c); waits until every replica
   * executed everything and stayed idle long enough to write its executed mark; returns each one's
   * executed slot and state digest, and stops them all.
   */
  const scenario = async (a: number, b: number, c: number) => {
    for (const id of ids) await start(id);
    await write(0, a);
    await live.get('r3')!.r.stop();
    live.delete('r3');
    await write(a, b);
    await start('r3');
    await write(b, c);
    const target = (await leader()).executedSlot();
    for (let i = 0; i < 500 && [...live.values()].some((x) => x.r.executedSlot() < target); i++) await sleep(10);
    await sleep(400);
    const out = new Map([...live].map(([id, x]) => [id, { slot: x.r.executedSlot(), digest: x.sm.digest() }]));
    for (const x of live.values()) await x.r.stop();
    live.clear();
    return out;
  };

  it('runs a cluster whose logs are truncated below snapshots, with a replica that catches up from peers', async () => {
    for (const [id, d] of await scenario(150, 400, 450)) digests.set(id, d);
    expect(new Set([...digests.values()].map((d) => `${d.slot}:${d.digest}`)).size).toBe(1);
    expect(digests.get('r1')!.slot).toBeGreaterThan(100);
    expect(readdirSync(join(dirOf('r1'), 'snapshots')).length).toBeGreaterThan(0);
  }, 60_000);

  it('each directory replays to the state its replica had, without being modified', async () => {
    for (const id of ids) {
      const before = treeHash(dirOf(id));
      const r = await replay({ dir: dirOf(id) });
      expect(r.toSlot).toBe(digests.get(id)!.slot);
      expect(r.digest).toBe(digests.get(id)!.digest);
      expect(r.fromSnapshot).toBeGreaterThan(0); // the log is truncated: the replay starts from a snapshot
      expect(r.config).toMatchObject({ epoch: 1, members: ids });
      expect(treeHash(dirOf(id))).toBe(before);
    }
  });

  it(
    'replays of different replicas agree at an earlier slot, ' +
      'and a snapshot written there restores to the same state',
    async () => {
      const slot = digests.get('r1')!.slot - 7;
      const a = await replay({ dir: dirOf('r1'), toSlot: slot, snapshotOut: join(root, 'seed') });
      const b = await replay({ dir: dirOf('r3'), toSlot: slot });
      expect(a.digest).toBe(b.digest);
      expect(a.toSlot).toBe(slot);
      const store = new FileSnapshotStore(join(root, 'seed'));
      const [meta] = await store.list();
      const snap = await store.load(meta!.name);
      expect(snap.meta).toMatchObject({ slot, members: ids, epoch: 1 });
      const sm = new KvMachine();
      await sm.restore(snap.data);
      expect(sm.digest()).toBe(a.digest);
    },
  );

  it('refuses a slot beyond what the log proves, a directory without a log, and names the problem', async () => {
    const beyond = digests.get('r2')!.slot + 1;
    await expect(replay({ dir: dirOf('r2'), toSlot: beyond })).rejects.toThrow(ReplayError);
    await expect(replay({ dir: dirOf('r2'), toSlot: beyond })).rejects.toThrow(
      new RegExp(`executed up to slot ${beyond - 1}`),
    );
    await expect(replay({ dir: join(root, 'nope') })).rejects.toThrow(/no such directory/);
    await expect(replay({ dir: root })).rejects.toThrow(/no log here/);
  });

  it("a replica that caught up from its peers' logs (no snapshots) replays from its learner's records of the " +
    'values its acceptor missed', async () => {
    base = join(root, 'nosnap');
    snapshots = false;
    const want = (await scenario(60, 200, 220)).get('r3')!;
    const r = await replay({ dir: dirOf('r3') });
    expect(r.fromSnapshot).toBe(0);
    expect(r.filled).toBeGreaterThan(10); // the slots r3 missed while it was down
    expect({ slot: r.toSlot, digest: r.digest }).toEqual(want);
    base = root;
  }, 60_000);

  it('the decree replay command prints the replay, and a one-line error for a bad slot', async () => {
    const run = promisify(execFile);
    const slot = digests.get('r1')!.slot - 3;
    const out = await run(
      process.execPath,
      [...NODE_ARGS, CLI, 'replay', '--dir', dirOf('r1'), '--to-slot', String(slot)],
      { cwd: ROOT },
    );
    expect(out.stdout).toMatch(
      new RegExp(`^replayed slots \\d+\\.\\.${slot} \\(\\d+ commands\\) from the snapshot at slot \\d+`),
    );
    // older than every snapshot kept and below the log's truncation: a one-line refusal
    const old = await run(process.execPath, [...NODE_ARGS, CLI, 'replay', '--dir', dirOf('r1'), '--to-slot', '3'], {
      cwd: ROOT,
    }).catch((e) => e);
    expect(old.stderr).toMatch(/^decree: slots 1\.\.\d+ are neither in a snapshot at or below slot 3 nor in the log/);
    const bad = await run(
      process.execPath,
      [...NODE_ARGS, CLI, 'replay', '--dir', dirOf('r1'), '--to-slot', '999999'],
      { cwd: ROOT },
    ).catch((e) => e);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/^decree: slot 999999 is beyond what this log proves chosen/);
  }, 30_000);
});
