/**
 * A graceful stop (stop() without keepStore) finishes the acceptor's queued writes before it closes
 * the store. The leader's own WAL is slow here (each write reported durable 150 ms late), so the
 * other two acceptors choose its slots first and it executes them while its own acceptor still has
 * their accepts queued behind the write in flight; before the fix, a stop dropped those and the
 * WAL lacked slots the replica had executed (apps/replica graceful.test.ts saw it on a loaded machine).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Bus, realEnv } from '@decree/bus';
import type { AcceptorStore } from '@decree/protocol';
import { FileWalStore } from '@decree/storage';
import { LogMachine, enc } from '@decree/testkit';
import { createReplica, type Replica } from '@decree/replica';

const root = mkdtempSync(join(tmpdir(), 'decree-graceful-stop-'));
const replicas: Replica[] = [];
afterAll(async () => {
  for (const r of replicas) await r.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('Replica.stop() without keepStore', () => {
  it('writes the records its acceptor took in but had not ' +
    'written: the WAL holds every slot the replica executed', async () => {
    const ids = ['r1', 'r2', 'r3'];
    const bus = new Bus(realEnv());
    const slow = new Set<string>();
    for (const id of ids) {
      const wal = new FileWalStore({ dir: join(root, id) });
      const store: AcceptorStore = {
        recover: () => wal.recover(),
        append: (records, done) => wal.append(records, slow.has(id) ? (err) => setTimeout(() => done(err), 150) : done),
        truncateBelow: (slot) => wal.truncateBelow(slot),
        close: () => wal.close(),
        stats: () => wal.stats(),
      };
      // long election timeouts: the leader must not change during the test, even on a loaded machine
      const r = await createReplica({
        id,
        configuration: { members: ids },
        storage: store,
        stateMachine: new LogMachine(),
        bus,
        options: { elector: { electionTimeoutMinMs: 2_000, electionTimeoutMaxMs: 4_000, heartbeatMs: 50 } },
      });
      replicas.push(r);
    }
    let leader: Replica | undefined;
    for (let i = 0; i < 1_000 && !(leader = replicas.find((r) => r.isLeader())); i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(leader).toBeDefined();
    await leader!.submitBatch([enc('first')]);
    slow.add(leader!.id);
    for (let i = 0; i < 5; i++) await leader!.submitBatch([enc(`c${i}`)]);
    const executed = leader!.executedSlot();
    await leader!.stop();
    const wal = new FileWalStore({ dir: join(root, leader!.id) });
    const rec = await wal.recover();
    await wal.close();
    const accepted = [...rec.accepted.keys()].sort((a, b) => a - b);
    expect(accepted.at(-1), `executed ${executed}, accepted ${accepted.join(',')}`).toBeGreaterThanOrEqual(executed);
  }, 30_000);
});
