/**
 * The configuration a replica starts in: the initial one stored durably at the first start (or by a
 * bootstrap), a snapshot's, or the one the replayed log ends in; and the learner's retain window.
 */
import type { AcceptorStore, Configuration, SnapshotMeta } from '@decree/protocol';
import { DEFAULT_LEARNER_OPTIONS, type LearnerOptions } from '@decree/learner';
import { DEFAULT_SNAPSHOTTER_OPTIONS } from '@decree/snapshotter';
import type { CreateReplicaConfig, ReplicaOptions } from './types.ts';

const CONFIG0 = 'config0';

/**
 * The learner keeps executed slots to serve peers' catch-up. It must hold at least everything above
 * the newest snapshot (two intervals and the margin, to be safe): a peer missing a slot either gets
 * it from there or finds it under a snapshot it can install, never neither.
 */
export function retainWindow(o: ReplicaOptions | undefined): Partial<LearnerOptions> {
  const l = { ...DEFAULT_LEARNER_OPTIONS, ...o?.learner };
  const sn = { ...DEFAULT_SNAPSHOTTER_OPTIONS, ...o?.snapshotter };
  const retainSlots =
    sn.everySlots > 0 ? Math.max(l.retainSlots, 2 * sn.everySlots + sn.truncateMargin) : l.retainSlots;
  const retainBytes =
    sn.everyBytes > 0 ? Math.max(l.retainBytes, 2 * sn.everyBytes + sn.truncateMarginBytes) : l.retainBytes;
  // the snapshotter hears the learner's progress at least as often as it may take a snapshot
  const snapProgressSlots = sn.everySlots > 0 ? Math.min(l.snapProgressSlots, sn.everySlots) : l.snapProgressSlots;
  const snapProgressBytes = sn.everyBytes > 0 ? Math.min(l.snapProgressBytes, sn.everyBytes) : l.snapProgressBytes;
  // an explicit setting wins (tests shrink the window to force catch-up by snapshot)
  return { retainSlots, retainBytes, snapProgressSlots, snapProgressBytes, ...o?.learner };
}

/** The initial configuration stored in the log (first start, or a bootstrap), if readable. */
export function storedConfig0(recovered: Awaited<ReturnType<AcceptorStore['recover']>>): Configuration | undefined {
  const stored = recovered.meta.get(CONFIG0);
  if (!stored) return undefined;
  try {
    const c = JSON.parse(Buffer.from(stored).toString('utf8')) as Configuration;
    if (Number.isSafeInteger(c.epoch) && Array.isArray(c.members) && Number.isSafeInteger(c.startSlot)) return c;
  } catch {
    // unreadable: the given one
  }
  return undefined;
}

/**
 * The configuration a replica starts in: the newest snapshot's when it has one, else the initial
 * configuration (stored durably at the first start, see createReplica).
 */
export function initialConfiguration(
  given: CreateReplicaConfig['configuration'],
  snap: SnapshotMeta | undefined,
): Configuration {
  const base = asConfiguration(given);
  if (!snap || (snap.members.length === 0 && snap.epoch === undefined)) return base;
  return {
    epoch: snap.epoch ?? Math.max(1, base.epoch),
    members: [...snap.members],
    startSlot: snap.startSlot ?? snap.slot + 1,
  };
}

/**
 * The initial configuration is written to the store at the first start and read back at the next
 * ones: a config file edited later (to list the members of today) must not rewrite history.
 */
export async function persistedInitialConfiguration(
  cfg: CreateReplicaConfig,
  recovered: Awaited<ReturnType<AcceptorStore['recover']>>,
): Promise<CreateReplicaConfig['configuration']> {
  const stored = storedConfig0(recovered);
  if (stored) return stored;
  const c = asConfiguration(cfg.configuration);
  await storeConfig0(cfg.storage, c);
  return c;
}

/** A member list is epoch 1 of it from slot 1 (an empty one: no configuration yet). */
export function asConfiguration(given: CreateReplicaConfig['configuration']): Configuration {
  return 'epoch' in given
    ? { epoch: given.epoch, members: [...given.members], startSlot: given.startSlot }
    : { epoch: given.members.length ? 1 : 0, members: [...given.members], startSlot: 1 };
}

/** Stores the initial configuration durably (meta `config0`; the latest record wins at recovery). */
export function storeConfig0(store: AcceptorStore, c: Configuration): Promise<void> {
  const value = new Uint8Array(
    Buffer.from(JSON.stringify({ epoch: c.epoch, members: c.members, startSlot: c.startSlot }), 'utf8'),
  );
  return new Promise<void>((resolve, reject) =>
    store.append([{ t: 'meta', key: CONFIG0, value }], (err) => (err ? reject(err) : resolve())),
  );
}
