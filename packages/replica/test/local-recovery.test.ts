/**
 * Local recovery first (issue #16): a restarted replica replays what its own log proves chosen
 * before any role starts, so it does not depend on the network to get its state back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Bus, realEnv } from '@decree/bus';
import {
  DECIDED_META,
  EXECUTED_META,
  type RecoveredState,
  type SlotValue,
  emptyRecoveredState,
  encodeDecidedMeta,
  encodeSlotMeta,
} from '@decree/protocol';
import { FileWalStore } from '@decree/storage';
import { LogMachine, enc } from '@decree/testkit';
import { createReplica, replayLocalLog, type Replica } from '../src/index.ts';

const root = mkdtempSync(join(tmpdir(), 'decree-local-recovery-'));
const running: Replica[] = [];
afterAll(async () => {
  for (const r of running) await r.stop();
  rmSync(root, { recursive: true, force: true });
});

const batch = (tag: string): SlotValue => ({ k: 'batch', origin: 'r9', inc: 1, firstId: 1, cmds: [enc(tag)] });
const b = (round: number, leader = 'r1') => ({ round, leader });

describe('replayLocalLog', () => {
  const state = (): RecoveredState => {
    const s = emptyRecoveredState();
    for (let slot = 1; slot <= 8; slot++) s.accepted.set(slot, { ballot: b(2), value: batch(`a${slot}`) });
    s.accepted.set(3, { ballot: b(1), value: batch('stale3') }); // a lower ballot: not chosen by itself
    s.chosen!.set(3, batch('c3')); // the value the learner got from a peer and executed
    return s;
  };

  it('replays up to the exec-mark, taking a chosen fill over the accepted value', () => {
    const s = state();
    s.meta.set(EXECUTED_META, encodeSlotMeta(5));
    const sm = new LogMachine();
    const r = replayLocalLog(s, 0, sm);
    expect(r.upTo).toBe(5);
    expect(sm.commands()).toEqual(['a1', 'a2', 'c3', 'a4', 'a5']);
    expect(r.slots.map((x) => x.slot)).toEqual([1, 2, 3, 4, 5]);
  });

  it('goes on past the mark while the last Decide proves it: values accepted at its ballot or above', () => {
    const s = state();
    s.meta.set(EXECUTED_META, encodeSlotMeta(2));
    s.accepted.set(7, { ballot: b(1), value: batch('old7') }); // below the Decide's ballot: stops here
    s.meta.set(DECIDED_META, encodeDecidedMeta({ ballot: b(2), upTo: 8 }));
    const sm = new LogMachine();
    const r = replayLocalLog(s, 0, sm);
    expect(r.upTo).toBe(6);
    expect(sm.commands()).toEqual(['a1', 'a2', 'c3', 'a4', 'a5', 'a6']);
  });

  it('starts after the snapshot and stops at a hole', () => {
    const s = state();
    s.meta.set(EXECUTED_META, encodeSlotMeta(8));
    s.accepted.delete(6);
    const sm = new LogMachine();
    const r = replayLocalLog(s, 3, sm);
    expect(r.upTo).toBe(5);
    expect(sm.commands()).toEqual(['a4', 'a5']);
  });

  it('a configuration value in the replayed log is the configuration it starts in', () => {
    const s = state();
    s.accepted.set(4, {
      ballot: b(2),
      value: { k: 'config', epoch: 2, members: ['r1', 'r2', 'r4'], origin: 'r1', inc: 1, firstId: 9 },
    });
    s.meta.set(EXECUTED_META, encodeSlotMeta(6));
    const r = replayLocalLog(s, 0, new LogMachine());
    expect(r.config).toEqual({ epoch: 2, members: ['r1', 'r2', 'r4'], startSlot: 5 });
  });
});

describe('createReplica: local recovery first', () => {
  it('a replica restarted alone (no peer reachable) executes its own log, long values and all', async () => {
    const ids = ['r1', 'r2', 'r3'];
    const bus = new Bus(realEnv());
    const opts = { elector: { electionTimeoutMinMs: 2_000, electionTimeoutMaxMs: 4_000, heartbeatMs: 50 } };
    const first: Replica[] = [];
    for (const id of ids) {
      const r = await createReplica({
        id,
        configuration: { members: ids },
        storage: new FileWalStore({ dir: join(root, id) }),
        stateMachine: new LogMachine(),
        bus,
        options: opts,
      });
      first.push(r);
    }
    let leader: Replica | undefined;
    for (let i = 0; i < 1_000 && !(leader = first.find((r) => r.isLeader())); i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(leader).toBeDefined();
    const big = 'v'.repeat(100_000);
    for (let i = 0; i < 60; i++) await leader!.submitBatch([enc(`k${i}:${big}`), enc(`n${i}`)]);
    // every replica executed everything before the stop (so each one's exec-mark covers it)
    for (let i = 0; i < 500 && first.some((r) => r.executedSlot() < leader!.executedSlot()); i++)
      await new Promise((r) => setTimeout(r, 10));
    const executed = first.map((r) => r.executedSlot());
    expect(new Set(executed).size).toBe(1);
    for (const r of first) await r.stop();

    const follower = ids.find((id) => id !== leader!.id)!;
    const sm = new LogMachine();
    const alone = await createReplica({
      id: follower,
      configuration: { members: ids },
      storage: new FileWalStore({ dir: join(root, follower) }),
      stateMachine: sm,
      bus: new Bus(realEnv()),
      options: opts,
    });
    running.push(alone);
    // at once: no Decide, no catch-up, no leader (nobody else runs)
    expect(alone.executedSlot()).toBe(executed[0]);
    expect(alone.replayed?.upTo).toBe(executed[0]);
    const cmds = sm.commands();
    expect(cmds).toHaveLength(120);
    expect(cmds[0]).toBe(`k0:${big}`);
    expect(cmds.at(-1)).toBe('n59');
    expect(alone.currentLeader()).toBeUndefined();
  }, 60_000);
});
