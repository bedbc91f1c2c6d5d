import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ReplicaId, Slot } from '@decree/protocol';
import { LogMachine, SimCluster, enc } from '@decree/testkit';
import { FileSnapshotStore } from '@decree/storage';
import { MemoryStore } from '@decree/storage/memory';
import { createReplica, type Replica, type ReplicaOptions } from '@decree/replica';

/** A LogMachine with the checkpoint hooks recorded. */
class Hooked extends LogMachine {
  saved: Slot[] = [];
  copied: Slot[] = [];
  refuse = false;
  tries = 0;
  request: (() => void) | undefined;
  trySnapshot(): boolean {
    this.tries++;
    return !this.refuse;
  }
  stateSaved(slot: Slot): void {
    this.saved.push(slot);
  }
  stateCopied(slot: Slot): void {
    this.copied.push(slot);
  }
  setSnapshotRequester(r: () => void): void {
    this.request = r;
  }
  override apply(cmd: Uint8Array, slot: Slot): Uint8Array | undefined {
    const r = super.apply(cmd, slot);
    if (Buffer.from(cmd).toString('latin1') === 'checkpoint') this.request!();
    return r;
  }
}

async function runUntil(c: SimCluster<Hooked>, cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = c.sched.now() + timeoutMs;
  for (;;) {
    await new Promise((r) => setImmediate(r));
    if (cond()) return true;
    if (c.sched.now() >= end) return false;
    c.run(1);
  }
}

async function load(c: SimCluster<Hooked>, prefix: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await c.submitAndWait(enc(`${prefix}${i}`), 5_000);
  await runUntil(c, () => false, 20); // let the snapshot writes finish
}

async function hooked(seed: number, snap: ReplicaOptions['snapshotter']): Promise<SimCluster<Hooked>> {
  const c = new SimCluster<Hooked>({ seed, makeStateMachine: () => new Hooked(), options: { snapshotter: snap } });
  await c.start();
  c.waitForLeader();
  return c;
}

const savedOn = (c: SimCluster<Hooked>) => c.up().map((id) => c.sm(id).saved.length);

describe('checkpoint hooks (RSL parity)', () => {
  it('pauseSnapshots stops automatic snapshots until resumeSnapshots', async () => {
    const c = await hooked(3, { everySlots: 10, truncateMargin: 2 });
    await load(c, 'a', 15);
    const before = savedOn(c);
    expect(Math.min(...before)).toBeGreaterThan(0);
    for (const id of c.up()) c.replica(id).pauseSnapshots();
    await load(c, 'b', 40);
    expect(savedOn(c)).toEqual(before);
    for (const id of c.up()) c.replica(id).resumeSnapshots();
    await load(c, 'c', 12);
    savedOn(c).forEach((n, i) => expect(n).toBeGreaterThan(before[i]!));
    // stateSaved named the snapshot slots, which advance
    const sm = c.sm(c.leader()!);
    expect(sm.saved).toEqual([...sm.saved].sort((a, b) => a - b));
    await c.stop();
  });

  it('a state machine refusing a snapshot (trySnapshot false) pauses them until resumed', async () => {
    const c = await hooked(4, { everySlots: 10, truncateMargin: 2 });
    for (const id of c.up()) c.sm(id).refuse = true;
    await load(c, 'a', 25);
    for (const id of c.up()) {
      expect(c.sm(id).tries).toBe(1); // asked once, refused, paused: not asked again
      expect(c.sm(id).saved).toEqual([]);
      expect(c.replica(id).snapshotsPaused).toBe(true);
      expect(c.replica(id).statistics().snapshots.refused).toBe(1);
    }
    for (const id of c.up()) {
      c.sm(id).refuse = false;
      c.replica(id).resumeSnapshots();
    }
    await load(c, 'b', 5);
    for (const id of c.up()) expect(c.sm(id).saved.length).toBeGreaterThan(0);
    await c.stop();
  });

  it('apply can ask for a snapshot right after its slot', async () => {
    const c = await hooked(5, { everySlots: 0, everyBytes: 0, truncateMargin: 2 });
    await load(c, 'x', 4);
    for (const id of c.up()) expect(c.sm(id).saved).toEqual([]);
    await load(c, 'checkpoint', 0);
    await c.submitAndWait(enc('checkpoint'));
    await load(c, 'y', 3);
    for (const id of c.up()) {
      const sm = c.sm(id);
      const at = sm.applied.find((a) => a.cmd === 'checkpoint')!.slot;
      expect(sm.saved).toEqual([at]);
    }
    await c.stop();
  });

  it('snapshotNow and copyStateFromReplica: a follower copies the leader state on demand (stateCopied)', async () => {
    const c = await hooked(6, { everySlots: 0, everyBytes: 0, truncateMargin: 0 });
    await load(c, 'a', 3);
    const leader = c.leader()!;
    const f: ReplicaId = c.up().find((id) => id !== leader)!;
    c.net.cutLink(leader, f); // the follower misses what follows
    await load(c, 'b', 20);
    const meta = await (async () => {
      let m: Awaited<ReturnType<Replica['snapshotNow']>>;
      void c
        .replica(leader)
        .snapshotNow()
        .then((x) => (m = x));
      await runUntil(c, () => m !== undefined, 1_000);
      return m!;
    })();
    expect(meta.slot).toBe(c.replica(leader).executedSlot());
    c.net.heal();
    const behind = c.replica(f).executedSlot();
    expect(behind).toBeLessThan(meta.slot);
    let copied: Slot | undefined;
    void c
      .replica(f)
      .copyStateFromReplica(leader)
      .then((s) => (copied = s));
    expect(await runUntil(c, () => copied !== undefined, 5_000)).toBe(true);
    expect(copied!).toBeGreaterThanOrEqual(meta.slot);
    // stateCopied runs where the state machine lives, with the learner (a message after the install)
    expect(await runUntil(c, () => c.sm(f).copied.includes(meta.slot), 1_000)).toBe(true);
    expect(c.sm(f).commands().slice(0, 23)).toEqual(c.sm(leader).commands().slice(0, 23));
    await c.stop();
  });

  it('copyStateFromReplica rejects when no peer has a snapshot', async () => {
    const c = await hooked(8, { everySlots: 0, everyBytes: 0 });
    await load(c, 'a', 3);
    let err: unknown;
    void c
      .replica(c.ids[0]!)
      .copyStateFromReplica()
      .catch((e) => (err = e));
    expect(await runUntil(c, () => err !== undefined, 5_000)).toBe(true);
    expect(String(err)).toMatch(/no peer has a snapshot/);
    expect(c.replica(c.ids[0]!).snapshotter.getSnapshot().context.fetch).toBeUndefined();
    await c.stop();
  });
});

describe('restart from the local snapshot', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  async function solo(
    dir: string,
    store: MemoryStore,
    sm: LogMachine,
    onCorrupt?: (n: string) => void,
  ): Promise<Replica> {
    const r = await createReplica({
      id: 'solo',
      configuration: { members: ['solo'] },
      storage: store,
      stateMachine: sm,
      snapshots: new FileSnapshotStore(dir, { sync: false }),
      options: {
        snapshotter: { everySlots: 10, truncateMargin: 2, keep: 2 },
        elector: { electionTimeoutMinMs: 20, electionTimeoutMaxMs: 40 },
      },
      ...(onCorrupt ? { onSnapshotCorrupt: (n: string) => onCorrupt(n) } : {}),
    });
    for (let i = 0; i < 500 && !r.isLeader(); i++) await new Promise((res) => setTimeout(res, 10));
    expect(r.isLeader()).toBe(true);
    return r;
  }

  it(
    'starts from the newest valid snapshot; a corrupt newest ' +
      'one falls back to the one before, then the log suffix',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'decree-snaprestart-'));
      dirs.push(dir);
      const store = new MemoryStore();
      const sm1 = new LogMachine();
      const r1 = await solo(dir, store, sm1);
      for (let i = 0; i < 35; i++) await r1.submit(enc(`c${i}`));
      // two or three snapshots (every 10 slots; slots applied while one is written may make the next later), two kept
      const idle = () => JSON.stringify(r1.snapshotter.getSnapshot().value) === '{"running":"idle"}';
      for (let i = 0; i < 300 && (r1.statistics().snapshots.saved < 2 || readdirSync(dir).length !== 2 || !idle()); i++)
        await new Promise((res) => setTimeout(res, 10));
      expect(r1.statistics().snapshots.saved).toBeGreaterThanOrEqual(2);
      const executed = r1.executedSlot();
      await r1.stop();
      const files = readdirSync(dir).sort();
      expect(files.length).toBe(2); // keep: 2
      // damage the newest
      const newest = join(dir, files[1]!);
      const buf = readFileSync(newest);
      buf[buf.length - 5]! ^= 0xff;
      writeFileSync(newest, buf);
      const skipped: string[] = [];
      const sm2 = new LogMachine();
      const r2 = await solo(dir, store, sm2, (n) => skipped.push(n));
      expect(skipped).toEqual([files[1]]);
      // started at the older snapshot (not slot 0), then the log suffix from its own acceptor
      expect(r2.statistics().slotsExecuted).toBeLessThan(executed);
      await r2.submit(enc('after'));
      expect(sm2.commands()).toEqual([...sm1.commands(), 'after']);
      await r2.stop();
    },
  );
});
