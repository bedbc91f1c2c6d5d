import type { Ballot, ReplicaId, Slot, SlotValue } from './types.ts';

/** One durable record of an acceptor's store. */
export type StoreRecord =
  | { readonly t: 'promise'; readonly ballot: Ballot }
  | { readonly t: 'accept'; readonly slot: Slot; readonly ballot: Ballot; readonly value: SlotValue }
  | { readonly t: 'meta'; readonly key: string; readonly value: Uint8Array }
  /**
   * A value this replica's learner executed that its acceptor did not accept (it came from a peer):
   * with the `executed` meta record it lets an offline replay rebuild the chosen log
   * (`decree replay`). Not part of the acceptor's state.
   */
  | { readonly t: 'chosen'; readonly slot: Slot; readonly value: SlotValue }
  | { readonly t: 'truncate'; readonly below: Slot };

export interface StoredAccept {
  readonly ballot: Ballot;
  readonly value: SlotValue;
}

/** What an acceptor store gives back at start: its durable state. */
export interface RecoveredState {
  promised: Ballot;
  /** the accepted entry of the highest ballot per slot, for slots >= truncatedBelow */
  accepted: Map<Slot, StoredAccept>;
  truncatedBelow: Slot;
  meta: Map<string, Uint8Array>;
  /**
   * `chosen` records: executed values the acceptor did not accept (they came from peers). With the
   * `executed` and `decided` meta they let a restart replay the log locally (and `decree replay`).
   */
  chosen?: Map<Slot, SlotValue>;
}

/** The meta key of the learner's executed slot (8 bytes, little-endian): every slot up to it is chosen and known. */
export const EXECUTED_META = 'executed';
export function encodeSlotMeta(slot: Slot): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(slot), true);
  return b;
}
/**
 * The meta key of the learner's latest Decide (ballot round u64, upTo u64, leader utf-8): a value
 * accepted at a ballot >= it, at a slot <= upTo, is chosen.
 */
export const DECIDED_META = 'decided';
export function encodeDecidedMeta(d: { ballot: Ballot; upTo: Slot }): Uint8Array {
  const leader = new TextEncoder().encode(d.ballot.leader);
  const b = new Uint8Array(16 + leader.length);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(d.ballot.round), true);
  v.setBigUint64(8, BigInt(d.upTo), true);
  b.set(leader, 16);
  return b;
}
export function decodeDecidedMeta(b: Uint8Array | undefined): { ballot: Ballot; upTo: Slot } | undefined {
  if (!b || b.length < 16) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  const round = Number(v.getBigUint64(0, true));
  const upTo = Number(v.getBigUint64(8, true));
  return { ballot: { round, leader: new TextDecoder().decode(b.subarray(16)) }, upTo };
}
export function decodeSlotMeta(b: Uint8Array | undefined): Slot {
  if (!b || b.length !== 8) return 0;
  return Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true));
}

export interface StoreStats {
  appends: number;
  records: number;
  syncs: number;
  bytes: number;
  /** total milliseconds spent writing and syncing */
  writeMs: number;
  reads: number;
  readMs: number;
}

/**
 * The acceptor's durable store (the storage issue implements memory, file WAL and pmem).
 * `append` is group-committed: the store may coalesce many appends into one write and one sync,
 * and calls each `done` only once the records it was given are durable.
 */
export interface AcceptorStore {
  recover(): Promise<RecoveredState>;
  append(records: readonly StoreRecord[], done: (err: Error | null) => void): void;
  /** allows the store to drop entries below `slot` (a snapshot covers them) */
  truncateBelow(slot: Slot): void;
  close(): Promise<void>;
  stats(): StoreStats;
  /** used and total bytes, for stores of a fixed capacity (the acceptor asks for a snapshot when it runs high) */
  usage?(): StoreUsage | undefined;
}

export function emptyRecoveredState(): RecoveredState {
  return {
    promised: { round: 0, leader: '' },
    accepted: new Map(),
    truncatedBelow: 0,
    meta: new Map(),
    chosen: new Map(),
  };
}

/**
 * Whether a store error means "no room now" (disk or log full): the acceptor then holds its writes
 * and retries once a snapshot let the log be truncated, instead of failing for good.
 */
export function isStoreFullError(e: unknown): boolean {
  return e instanceof Error && e.name === 'StorageFullError';
}

/** How full a store with a fixed capacity is (the pmem log); stores without one return undefined. */
export interface StoreUsage {
  usedBytes: number;
  capacityBytes: number;
}

/** A copy of a recovered state for the store's caller (the store keeps its own). */
export function copyRecoveredState(s: RecoveredState): RecoveredState {
  return {
    promised: s.promised,
    accepted: new Map(s.accepted),
    truncatedBelow: s.truncatedBelow,
    meta: new Map(s.meta),
    ...(s.chosen ? { chosen: new Map(s.chosen) } : {}),
  };
}

export function emptyStoreStats(): StoreStats {
  return { appends: 0, records: 0, syncs: 0, bytes: 0, writeMs: 0, reads: 0, readMs: 0 };
}

/** Applies records in order to a recovered state (shared by every store's recovery). */
export function applyRecord(state: RecoveredState, r: StoreRecord): void {
  switch (r.t) {
    case 'promise':
      if (
        r.ballot.round > state.promised.round ||
        (r.ballot.round === state.promised.round && r.ballot.leader >= state.promised.leader)
      )
        state.promised = r.ballot;
      break;
    case 'accept': {
      if (r.slot < state.truncatedBelow) break;
      const cur = state.accepted.get(r.slot);
      if (
        !cur ||
        cur.ballot.round < r.ballot.round ||
        (cur.ballot.round === r.ballot.round && cur.ballot.leader <= r.ballot.leader)
      )
        state.accepted.set(r.slot, { ballot: r.ballot, value: r.value });
      break;
    }
    case 'meta':
      state.meta.set(r.key, r.value);
      break;
    case 'chosen':
      if (state.chosen && r.slot >= state.truncatedBelow) state.chosen.set(r.slot, r.value);
      break;
    case 'truncate':
      if (r.below > state.truncatedBelow) {
        state.truncatedBelow = r.below;
        for (const s of state.accepted.keys()) if (s < r.below) state.accepted.delete(s);
        if (state.chosen) for (const s of state.chosen.keys()) if (s < r.below) state.chosen.delete(s);
      }
      break;
  }
}

// ------------------------------------------------------------------ snapshot stores

/** What a stored snapshot says about itself (its header). */
export interface SnapshotMeta {
  /** the state is as of this slot (every slot <= it applied) */
  readonly slot: Slot;
  /** the configuration members at `slot` */
  readonly members: readonly ReplicaId[];
  /** the configuration's number and first slot (absent from snapshots older than configuration changes) */
  readonly epoch?: number;
  readonly startSlot?: Slot;
  /** payload bytes */
  readonly length: number;
  /** CRC32C of the payload */
  readonly crc: number;
  /** the store's name for it (a file name for the file store) */
  readonly name: string;
}

/** The configuration number and first slot stored beside the members. */
export interface SnapshotConfig {
  readonly epoch: number;
  readonly startSlot: Slot;
}

export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

export class SnapshotCorruptError extends Error {
  constructor(
    readonly snapshotName: string,
    why: string,
  ) {
    super(`snapshot ${snapshotName} is corrupt: ${why}`);
    this.name = 'SnapshotCorruptError';
  }
}

/**
 * Where a replica keeps its snapshots (the memory and file implementations are in @decree/storage).
 * `save` is atomic: after a crash a snapshot is either whole and valid or absent (or detected as
 * corrupt by `load`).
 */
export interface SnapshotStore {
  /** stores the payload as the snapshot of `slot` (with the configuration then); resolves once durable */
  save(slot: Slot, members: readonly ReplicaId[], data: Uint8Array, config?: SnapshotConfig): Promise<SnapshotMeta>;
  /** the stored snapshots, newest (highest slot) first; headers only, payloads not checked */
  list(): Promise<SnapshotMeta[]>;
  /** reads and verifies one; throws SnapshotCorruptError when its header or payload is damaged */
  load(name: string): Promise<Snapshot>;
  /** removes every snapshot but the newest `keep` */
  prune(keep: number): Promise<void>;
}

/** The newest snapshot that verifies; a corrupt one is skipped (reported through `onCorrupt`). */
export async function loadLatestValid(
  store: SnapshotStore,
  onCorrupt?: (name: string, err: Error) => void,
): Promise<Snapshot | undefined> {
  let metas: SnapshotMeta[];
  try {
    metas = await store.list();
  } catch (e) {
    onCorrupt?.('(list)', e as Error);
    return undefined;
  }
  for (const m of metas) {
    try {
      return await store.load(m.name);
    } catch (e) {
      onCorrupt?.(m.name, e as Error);
    }
  }
  return undefined;
}
