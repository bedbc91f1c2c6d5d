import { loadLatestValid } from '@decree/protocol';
import { MemorySnapshotStore } from '@decree/storage/memory';
import { replayLocalLog } from './local-replay.ts';
import { persistedInitialConfiguration } from './config0.ts';
import { Replica } from './replica.ts';
import type { CreateReplicaConfig } from './types.ts';

/** Builds a replica: recovers its store, composes the roles, starts them. */
export async function createReplica(cfg: CreateReplicaConfig): Promise<Replica> {
  const recovered = await cfg.storage.recover();
  cfg = { ...cfg, configuration: await persistedInitialConfiguration(cfg, recovered) };
  const snapshots = cfg.snapshots ?? cfg.options?.makeSnapshotStore?.(cfg.id) ?? new MemorySnapshotStore();
  // the newest snapshot that verifies (a corrupt newest one falls back to the one before)
  const snap = await loadLatestValid(snapshots, (name, err) => cfg.onSnapshotCorrupt?.(name, err));
  if (snap)
    await cfg.stateMachine.restore(
      (async function* () {
        yield snap.data;
      })(),
    );
  // local recovery first: the slots the replica's own log proves chosen, before any role starts
  const replay = replayLocalLog(recovered, snap?.meta.slot ?? 0, cfg.stateMachine);
  if (replay.slots.length > 0)
    cfg.log?.('info', `replayed slots ${(snap?.meta.slot ?? 0) + 1}..${replay.upTo} from the local log`, {
      replica: cfg.id,
      ring: cfg.ring ?? 'default',
      commands: replay.commands,
      ms: Math.round(replay.ms),
    });
  const r = new Replica({ ...cfg, snapshots }, recovered, snap?.meta, replay);
  r.start();
  return r;
}
