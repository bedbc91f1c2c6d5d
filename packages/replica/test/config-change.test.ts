import { describe, expect, it } from 'vitest';
import {
  type AppliedEntry,
  type LogMachine,
  type SimCluster,
  checkAgreement,
  checkValidity,
  enc,
  simCluster,
} from '@decree/testkit';
import { ConfigChangeError, type ConfigChangeResult } from '@decree/replica';

// maxLagSlots 8: the joining members must really catch up (the log is longer than that when the change runs)
const FAST = {
  elector: { electionTimeoutMinMs: 150, electionTimeoutMaxMs: 300, heartbeatMs: 40 },
  configManager: { maxLagSlots: 8 },
};

/**
 * A write load: one command per `everyMs` of virtual time at whichever replica leads, retried at the
 * next leader when refused before it was proposed. Records what was submitted and acknowledged.
 */
class Load {
  submitted = new Set<string>();
  acked = new Set<string>();
  private n = 0;
  private timer: unknown;
  constructor(
    private readonly c: SimCluster<LogMachine>,
    private readonly everyMs = 5,
  ) {}
  start(): this {
    const tick = () => {
      const leader = this.c.leader();
      if (leader) {
        const cmd = `w${this.n++}`;
        this.submitted.add(cmd);
        this.c
          .replica(leader)
          .submit(enc(cmd))
          .then(
            () => this.acked.add(cmd),
            () => {},
          );
      }
      this.timer = this.c.sched.after(this.everyMs, tick);
    };
    this.timer = this.c.sched.after(this.everyMs, tick);
    return this;
  }
  stop(): void {
    this.c.sched.cancel(this.timer);
  }
}

/** Runs virtual time until the promise settles. */
async function until<T>(c: SimCluster<LogMachine>, p: Promise<T>, timeoutMs = 60_000): Promise<T> {
  let done = false;
  let value: T | undefined;
  let error: unknown;
  p.then(
    (v) => {
      done = true;
      value = v;
    },
    (e) => {
      done = true;
      error = e;
    },
  );
  const end = c.sched.now() + timeoutMs;
  while (!done && c.sched.now() < end) {
    if (!c.sched.step()) c.sched.runFor(1);
    await Promise.resolve();
  }
  if (!done) throw new Error(`not settled within ${timeoutMs} ms (virtual)`);
  if (error) throw error;
  return value as T;
}

/** Waits until every replica in `ids` runs configuration `epoch` and has applied what the leader applied. */
async function converge(c: SimCluster<LogMachine>, ids: readonly string[], epoch: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    c.run(100);
    await c.settle();
    const leader = c.leader();
    if (!leader) continue;
    const n = c.sm(leader).applied.length;
    if (ids.every((id) => c.replica(id).getConfiguration().epoch === epoch && c.sm(id).applied.length >= n)) return;
  }
  throw new Error('the replicas did not converge');
}

function check(c: SimCluster<LogMachine>, load: Load, ids: readonly string[]): void {
  const logs = new Map<string, readonly AppliedEntry[]>(ids.map((id) => [id, c.sm(id).applied]));
  checkAgreement(logs);
  checkValidity(logs, load.submitted);
  // no acknowledged write is lost: every one is applied on every replica of the final configuration
  for (const id of ids) {
    const have = new Set(c.sm(id).commands());
    for (const a of load.acked) expect(have.has(a), `${id} lacks acknowledged ${a}`).toBe(true);
  }
  expect(load.acked.size).toBeGreaterThan(50);
  if (process.env.DEBUG_CFG)
    console.log(
      `acked ${load.acked.size} submitted ${load.submitted.size} applied ${ids.map((id) => c.sm(id).applied.length)}`,
    );
}

describe('configuration changes under a write load (specs/config-change)', () => {
  it('grows 3 -> 5: the new members catch up, then count; old and new members hear of it with the cookie', async () => {
    const c = await simCluster({ n: 5, members: ['r1', 'r2', 'r3'], seed: 71, options: FAST });
    const heard = new Map<string, string>();
    for (const id of c.ids) c.sm(id).hooks = {};
    for (const id of c.ids)
      (c.sm(id) as LogMachine & { onConfigurationChange?: unknown }).onConfigurationChange = (
        m: readonly string[],
        cookie: Uint8Array | undefined,
      ) => heard.set(id, `${m.join(',')}:${cookie ? Buffer.from(cookie).toString() : ''}`);
    const leader = c.waitForLeader();
    expect(['r1', 'r2', 'r3']).toContain(leader);
    const load = new Load(c).start();
    c.run(500);
    const res: ConfigChangeResult = await until(
      c,
      c.replica(leader).changeConfiguration(['r1', 'r2', 'r3', 'r4', 'r5'], enc('grow')),
    );
    expect(res).toMatchObject({ epoch: 2, members: ['r1', 'r2', 'r3', 'r4', 'r5'] });
    c.run(1_000);
    load.stop();
    await converge(c, c.ids, 2);
    check(c, load, c.ids);
    for (const id of c.ids) expect(heard.get(id)).toBe('r1,r2,r3,r4,r5:grow');
    // the new members vote: with two old members down the cluster still decides
    const others = ['r1', 'r2', 'r3'].filter((x) => x !== c.leader()).slice(0, 2);
    for (const id of others) await c.crash(id);
    const l2 = c.waitForLeader(5_000);
    await until(c, c.replica(l2).submit(enc('after-grow')));
    await c.stop();
  });

  it(
    'shrinks 5 -> 3 under load, removing the leader (asked at ' +
      'a follower): it steps down and the remaining members elect',
    async () => {
      const c = await simCluster({ n: 5, seed: 72, options: FAST });
      const leader = c.waitForLeader();
      const load = new Load(c).start();
      c.run(500);
      const keep = c.ids.filter((id) => id !== leader).slice(0, 3);
      const res = await until(c, c.replica(keep[0]!).changeConfiguration(keep));
      expect(res.members).toEqual(keep);
      c.run(3_000);
      expect(keep).toContain(c.leader());
      expect(c.replica(leader).isLeader()).toBe(false);
      load.stop();
      await converge(c, keep, 2);
      check(c, load, keep);
      // the removed replicas stop campaigning: nothing from them disturbs the new leader
      const l = c.leader()!;
      const elections = c.replica(l).statistics().elections;
      c.run(3_000);
      expect(c.leader()).toBe(l);
      expect(c.replica(l).statistics().elections).toBe(elections);
      await c.stop();
    },
  );

  it('replaces a failed replica: r3 crashes, {r1,r2,r4} takes over, r4 catches up by snapshot plus log', async () => {
    const c = await simCluster({
      n: 4,
      members: ['r1', 'r2', 'r3'],
      seed: 73,
      options: { ...FAST, snapshotter: { everySlots: 40, truncateMargin: 10, keep: 1 } },
    });
    c.waitForLeader();
    const load = new Load(c).start();
    c.run(2_000);
    await c.crash('r3');
    const leader = c.waitForLeader(5_000, ['r1', 'r2']);
    const res = await until(c, c.replica(leader).changeConfiguration(['r1', 'r2', 'r4']));
    expect(res.epoch).toBe(2);
    expect(c.replica('r4').statistics().snapshots.installed).toBeGreaterThan(0);
    c.run(1_000);
    load.stop();
    await converge(c, ['r1', 'r2', 'r4'], 2);
    check(c, load, ['r1', 'r2', 'r4']);
    await c.stop();
  });

  it(
    'guard rails: empty, duplicate and unchanged sets, a change ' +
      'while one is pending, no reachable majority, a follower',
    async () => {
      const c = await simCluster({ n: 5, seed: 74, options: { ...FAST, configManager: { catchupTimeoutMs: 3_000 } } });
      const leader = c.waitForLeader();
      c.run(300);
      const code = async (p: Promise<unknown>) =>
        (
          (await until(c, p).then(
            () => 'ok',
            (e) => e,
          )) as ConfigChangeError
        ).code;
      expect(await code(c.replica(leader).changeConfiguration([]))).toBe('INVALID');
      expect(await code(c.replica(leader).changeConfiguration(['r1', 'r1']))).toBe('INVALID');
      expect(await code(c.replica(leader).changeConfiguration([...c.ids].reverse()))).toBe('NO_CHANGE');
      // asked at a follower, the change goes to the leader's config-manager, whose answer comes back
      const follower = c.ids.find((id) => id !== leader)!;
      const e = (await until(c, c.replica(follower).changeConfiguration(['r1', 'r2', 'r2'])).catch(
        (x) => x,
      )) as ConfigChangeError;
      expect(e).toBeInstanceOf(ConfigChangeError);
      expect(e.code).toBe('INVALID');
      // two members down: a set of the leader and those two has no reachable majority
      const down = c.ids.filter((id) => id !== leader).slice(0, 2);
      for (const id of down) await c.crash(id);
      c.run(1_000);
      expect(await code(c.replica(leader).changeConfiguration([leader, ...down]))).toBe('UNREACHABLE');
      // a change to a set including a stranger that never answers: pending, then CATCHUP_TIMEOUT
      for (const id of down) await c.restart(id);
      c.run(1_000);
      const l = c.waitForLeader();
      const slow = c.replica(l).changeConfiguration([...c.ids.filter((x) => x !== 'r5'), 'r9']);
      c.run(50);
      expect(await code(c.replica(l).changeConfiguration(['r1', 'r2', 'r3']))).toBe('PENDING');
      expect(await code(slow)).toBe('CATCHUP_TIMEOUT');
      // the cluster kept serving throughout
      await until(c, c.replica(c.waitForLeader()).submit(enc('still-serving')));
      await c.stop();
    },
  );
});

describe('bootstrap (RSL Bootstrap)', () => {
  it(
    'replicas started with no configuration wait; bootstrap on one of them ' +
      'stores it, invites the others and returns once a leader is elected',
    async () => {
      const c = await simCluster({ n: 4, members: [], seed: 75, options: FAST });
      c.run(2_000);
      expect(c.leaders()).toEqual([]); // nobody campaigns without a configuration
      for (const id of c.ids) expect(c.replica(id).getConfiguration().epoch).toBe(0);
      const r = await until(c, c.replica('r2').bootstrap(['r1', 'r2', 'r3']));
      expect(r).toMatchObject({ result: 'ok', epoch: 1, members: ['r1', 'r2', 'r3'] });
      expect(['r1', 'r2', 'r3']).toContain(r.leader);
      for (const id of ['r1', 'r2', 'r3'])
        expect(c.replica(id).getConfiguration()).toMatchObject({ epoch: 1, members: ['r1', 'r2', 'r3'] });
      expect(c.replica('r4').getConfiguration().epoch).toBe(0); // not invited
      await until(c, c.replica(c.waitForLeader()).submit(enc('after-bootstrap')));
      // again with the same set: already bootstrapped; another set, or a set without the caller: refused
      expect((await until(c, c.replica('r1').bootstrap(['r1', 'r2', 'r3']))).result).toBe('already-bootstrapped');
      const codeOf = async (p: Promise<unknown>) =>
        (
          (await until(c, p).then(
            () => 'ok',
            (e) => e,
          )) as { code: string }
        ).code;
      expect(await codeOf(c.replica('r1').bootstrap(['r1', 'r2']))).toBe('ALREADY');
      expect(await codeOf(c.replica('r4').bootstrap(['r1', 'r2', 'r3']))).toBe('INVALID');
      expect(await codeOf(c.replica('r4').bootstrap(['r4', 'r4']))).toBe('INVALID');
      // the stored configuration survives a restart
      await c.crash('r3');
      await c.restart('r3');
      expect(c.replica('r3').getConfiguration()).toMatchObject({ epoch: 1, members: ['r1', 'r2', 'r3'] });
      await c.stop();
    },
  );

  it('a bootstrap that cannot reach a majority fails after its timeout', async () => {
    const c = await simCluster({ n: 3, members: [], seed: 76, options: FAST });
    await c.crash('r2');
    await c.crash('r3');
    const e = (await until(c, c.replica('r1').bootstrap(['r1', 'r2', 'r3'], 3_000)).catch((x) => x)) as {
      code: string;
      message: string;
    };
    expect(e.code).toBe('FAILED');
    expect(e.message).toMatch(/no leader within 3000 ms/);
    await c.stop();
  });
});
