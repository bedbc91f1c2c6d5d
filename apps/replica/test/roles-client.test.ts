/**
 * The client side of a replica in a process of its own (`decree start --role client`), in process
 * against fake roles on one bus: where a command goes (this replica's proposer, or the leader heard in
 * heartbeats or named by a refusal), and that executeEachWithRetry retries only the commands known
 * not executed, so no command is applied twice by a retry.
 */
import { describe, expect, it } from 'vitest';
import { Bus, realEnv } from '@decree/bus';
import type { Message, MessageOf } from '@decree/protocol';
import { startRoleHost, type ClientSide } from '@decree/role-host';
import { executeEachWithRetry } from '../src/node.ts';

const ring = 'default';
const cmd = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b) : undefined);

type Behaviour = 'execute' | 'refuse' | 'lose' | 'silent';

/** r1's client side, r1's proposer (fake) and r2's client side (fake), each doing what it is told. */
async function setup() {
  const env = realEnv();
  const bus = new Bus(env);
  const seen = { r1Proposer: [] as string[], r2Client: [] as string[] };
  const how = {
    r1Proposer: 'refuse' as Behaviour,
    r2Client: 'execute' as Behaviour,
    hint: undefined as string | undefined,
  };
  let slot = 0;
  bus.register(ring, 'r1', 'proposer', (m: Message) => {
    if (m.type !== 'submit') return;
    seen.r1Proposer.push(...m.items.map((i) => text(i.cmd)!));
    const ids = m.items.map((i) => i.id);
    if (how.r1Proposer === 'execute') {
      const inc = 7;
      const results = m.items.map((i) => cmd(`r1:${text(i.cmd)}`));
      bus.send({ type: 'executed', ring, from: 'r1', to: 'r1', slot: ++slot, inc, firstId: ids[0]!, results });
    } else if (how.r1Proposer === 'refuse' || how.r1Proposer === 'lose')
      bus.send({
        type: 'aborted',
        ring,
        from: 'r1',
        to: 'r1',
        ids,
        maybeChosen: how.r1Proposer === 'lose',
        ...(how.hint ? { leaderHint: how.hint } : {}),
      });
  });
  bus.register(ring, 'r2', 'client', (m: Message) => {
    if (m.type !== 'client-req') return;
    seen.r2Client.push(...m.cmds.map((c) => text(c)!));
    const head = {
      type: 'client-rep' as const,
      ring,
      from: 'r2',
      to: m.from,
      id: m.id,
      ...(m.inc ? { inc: m.inc } : {}),
    };
    if (how.r2Client === 'execute')
      bus.send({ ...head, results: m.cmds.map((c) => cmd(`r2:${text(c)}`)), slot: ++slot });
    else if (how.r2Client === 'refuse') bus.send({ ...head, error: 'NOT_LEADER', maybeExecuted: false });
  });
  const host = await startRoleHost({
    role: 'client',
    ring,
    id: 'r1',
    members: ['r1', 'r2', 'r3'],
    bus,
    env,
    inc: 7,
    client: { timeoutMs: 400 },
  });
  const client: ClientSide = host.client!;
  const heartbeat = (from: string, round: number) =>
    bus.receive({
      type: 'heartbeat',
      ring,
      from,
      to: 'r1',
      ballot: { round, leader: from },
      decidedUpTo: 0,
    } as MessageOf<'heartbeat'>);
  return { bus, client, seen, how, heartbeat, stop: () => host.stop() };
}

describe('the client side of a replica as a process', () => {
  it('submits to its own proposer while no leader is known; forwards to the leader a heartbeat names', async () => {
    const t = await setup();
    t.how.r1Proposer = 'execute';
    const a = await t.client.executeEach([cmd('a')]);
    expect(a.failed).toBeUndefined();
    expect(text(a.results[0])).toBe('r1:a');
    t.heartbeat('r2', 10);
    expect(t.client.leader()).toBe('r2');
    const b = await t.client.executeEach([cmd('b')]);
    expect(text(b.results[0])).toBe('r2:b');
    expect(t.seen).toEqual({ r1Proposer: ['a'], r2Client: ['b'] });
    // a lower ballot's heartbeat (a deposed leader's) does not replace a live higher one
    t.heartbeat('r3', 9);
    expect(t.client.leader()).toBe('r2');
    await t.stop();
  });

  it('retries a command refused before it was proposed, at the leader, once; each command executes once', async () => {
    const t = await setup();
    // r1's proposer does not lead and names nobody; the leader's heartbeat arrives a little later
    setTimeout(() => t.heartbeat('r2', 10), 150);
    const o = await executeEachWithRetry(t.client, [cmd('x'), cmd('y')], 3_000);
    expect(o.failed).toBeUndefined();
    expect(o.results.map(text)).toEqual(['r2:x', 'r2:y']);
    expect(t.seen.r2Client).toEqual(['x', 'y']);
    // refused (not executed) by r1's proposer, maybe several times before the heartbeat: never executed there
    expect(t.seen.r1Proposer.length).toBeGreaterThan(0);
    await t.stop();

    // a refusal that names the leader: straight there
    const u = await setup();
    u.how.hint = 'r2';
    const z = await executeEachWithRetry(u.client, [cmd('z')], 3_000);
    expect(z.results.map(text)).toEqual(['r2:z']);
    expect(u.seen).toEqual({ r1Proposer: ['z'], r2Client: ['z'] });
    await u.stop();
  });

  it('never retries a command that may have executed: a lost leadership, a forward without an answer', async () => {
    const t = await setup();
    t.how.r1Proposer = 'lose';
    const lost = await executeEachWithRetry(t.client, [cmd('p')], 3_000);
    expect(lost.failed).toEqual([expect.objectContaining({ index: 0, maybeExecuted: true })]);
    expect(t.seen.r1Proposer).toEqual(['p']);

    t.heartbeat('r2', 10);
    t.how.r2Client = 'silent';
    const t0 = Date.now();
    const silent = await executeEachWithRetry(t.client, [cmd('q')], 3_000);
    expect(silent.failed).toEqual([expect.objectContaining({ index: 0, maybeExecuted: true })]);
    expect(t.seen.r2Client).toEqual(['q']);
    expect(Date.now() - t0).toBeLessThan(2_000); // the forward's timeout (400 ms), no retries

    // a proposer that does not answer (its process is down): in doubt after the timeout, not retried
    t.how.r1Proposer = 'silent';
    t.how.r2Client = 'refuse'; // r2 says it does not lead and names nobody: r1's own proposer is tried next
    const none = await executeEachWithRetry(t.client, [cmd('s')], 3_000);
    expect(none.failed).toEqual([expect.objectContaining({ index: 0, maybeExecuted: true })]);
    expect(t.seen.r2Client).toEqual(['q', 's']);
    expect(t.seen.r1Proposer).toEqual(['p', 's']);
    await t.stop();
  });
});
