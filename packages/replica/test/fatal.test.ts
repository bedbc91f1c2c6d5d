/**
 * Issue #17 point 6: the cheap safety checks stay on in production; a violation stops the replica
 * with one clear log line and shows in its status, never silently.
 */
import { describe, expect, it } from 'vitest';
import { Bus, realEnv } from '@decree/bus';
import type { Message, SlotValue } from '@decree/protocol';
import { MemoryStore } from '@decree/storage';
import { LogMachine, enc } from '@decree/testkit';
import { createReplica } from '../src/index.ts';

const batch = (cmd: string): SlotValue => ({ k: 'batch', origin: 'r2', inc: 1, firstId: 1, cmds: [enc(cmd)] });

describe('a safety violation stops the replica', () => {
  it('two values for one chosen slot: one error line, status says why, the replica is stopped', async () => {
    const lines: { level: string; msg: string }[] = [];
    const fatals: Error[] = [];
    const bus = new Bus(realEnv());
    const r = await createReplica({
      id: 'r1',
      configuration: { members: ['r1', 'r2', 'r3'] },
      storage: new MemoryStore(),
      stateMachine: new LogMachine(),
      bus,
      log: (level, msg) => lines.push({ level, msg }),
      onFatal: (e) => fatals.push(e),
      options: { elector: { electionTimeoutMinMs: 60_000, electionTimeoutMaxMs: 120_000, heartbeatMs: 1_000 } },
    });
    const h = { ring: 'default', to: 'r1' };
    const send = (m: object) => bus.receive({ ...h, ...m } as Message);
    // slot 5 accepted here at ballot 3 as "B"; a peer says slot 5 was chosen as "A"; a Decide at ballot 3 says "B"
    send({ type: 'learn', from: 'r1', ballot: { round: 3, leader: 'r2' }, slot: 5, value: batch('B'), decidedUpTo: 0 });
    send({
      type: 'catchup-rep',
      from: 'r3',
      entries: [{ slot: 5, value: batch('A') }],
      truncatedBelow: 1,
      chosenUpTo: 5,
    });
    send({ type: 'decide', from: 'r2', ballot: { round: 3, leader: 'r2' }, upTo: 5 });
    for (let i = 0; i < 50 && !r.isStopped; i++) await new Promise((res) => setTimeout(res, 5));
    expect(r.isStopped).toBe(true);
    expect(fatals).toHaveLength(1);
    const errors = lines.filter((l) => l.level === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.msg).toMatch(/^replica r1 stops: its learner failed: .*slot 5 chosen with two different values/);
    expect(r.status().fatal).toMatch(/learner: .*slot 5 chosen with two different values/);
    await expect(r.submit(enc('x'))).rejects.toThrow(/stopped/);
  });
});
