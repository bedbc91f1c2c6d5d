/**
 * Offline replay (RSL's Replay): rebuilds a replica's KV state from its data directory — the newest
 * snapshot at or below the target slot, then the chosen values of the log after it — without
 * touching the directory, for audits and recovery. Optionally writes a snapshot at the target slot
 * into another directory (a seed for a replica that lost its disk).
 *
 * Which value of the log is the chosen one: the learner records, beside the acceptor's log, how far
 * it executed (meta `executed`) and every executed value the acceptor did not hold (`chosen`
 * records). Up to that slot a slot's chosen value is its `chosen` record, else the acceptor's
 * highest-ballot accepted value (the learner executed that very value, so it is the chosen one).
 * Beyond it, the learner's last Decide (meta `decided`) proves the values accepted at its ballot or
 * above, up to its slot: the same rule a restarting replica replays by (`replayLocalLog`).
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DECIDED_META,
  EXECUTED_META,
  type Configuration,
  type RecoveredState,
  type SlotValue,
  type SnapshotMeta,
  decodeDecidedMeta,
  decodeSlotMeta,
} from '@decree/protocol';
import { provenValue } from '@decree/replica';
import { FileSnapshotStore, FileWalStore, PmemStore } from '@decree/storage';
import { KvMachine } from '@decree/kv-machine';

export class ReplayError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReplayError';
  }
}

export interface ReplayOptions {
  /** a replica's data directory for one ring: <dataDir>/<id>/<ring> */
  dir: string;
  /** replay up to this slot (default: as far as the log proves) */
  toSlot?: number;
  /** write a snapshot of the state at toSlot into this directory */
  snapshotOut?: string;
}

export interface ReplayResult {
  /** the snapshot the replay started from (0: the empty state) */
  fromSnapshot: number;
  toSlot: number;
  slots: number;
  commands: number;
  /** KvMachine.digest() of the state at toSlot */
  digest: string;
  keys: number;
  config: Configuration;
  /** how far this directory proves the chosen log */
  provenUpTo: number;
  /** slots whose value came from the learner's `chosen` records (the acceptor did not hold them) */
  filled: number;
  snapshotWritten?: string;
}

async function recoverCopy(dir: string): Promise<RecoveredState> {
  const tmp = mkdtempSync(join(tmpdir(), 'decree-replay-'));
  try {
    if (existsSync(join(dir, 'pmem.log'))) {
      cpSync(join(dir, 'pmem.log'), join(tmp, 'pmem.log'));
      const store = new PmemStore({ path: join(tmp, 'pmem.log'), keepChosen: true });
      try {
        return await store.recover();
      } finally {
        await store.close();
      }
    }
    const segs = readdirSync(dir).filter((n) => /^wal-\d{20}\.log$/.test(n));
    if (segs.length === 0) throw new ReplayError(`${dir}: no log here (no wal-*.log segment, no pmem.log)`);
    for (const n of segs) cpSync(join(dir, n), join(tmp, n));
    const store = new FileWalStore({ dir: tmp, keepChosen: true });
    try {
      return await store.recover();
    } finally {
      await store.close();
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Replays `dir` up to `toSlot` into a fresh KvMachine; the directory is only read. */
export async function replay(o: ReplayOptions): Promise<ReplayResult> {
  if (!existsSync(o.dir) || !statSync(o.dir).isDirectory()) throw new ReplayError(`${o.dir}: no such directory`);
  const state = await recoverCopy(o.dir);
  const snaps = new FileSnapshotStore(join(o.dir, 'snapshots'));
  const metas = existsSync(join(o.dir, 'snapshots')) ? await snaps.list() : [];
  const executed = decodeSlotMeta(state.meta.get(EXECUTED_META));
  const newestSnap = metas[0]?.slot ?? 0;
  const decided = decodeDecidedMeta(state.meta.get(DECIDED_META));
  let provenUpTo = Math.max(executed, newestSnap);
  // the last durable Decide may prove more: a run of values accepted at its ballot or above
  if (decided) while (provenUpTo < decided.upTo && provenValue(state, provenUpTo + 1, executed, decided)) provenUpTo++;
  const toSlot = o.toSlot ?? provenUpTo;
  if (toSlot > provenUpTo)
    throw new ReplayError(
      `slot ${toSlot} is beyond what this log proves chosen: the replica had executed ` +
        `up to slot ${provenUpTo} (replay up to it, or use a peer's data directory)`,
    );
  // the newest snapshot at or below the target that verifies
  const sm = new KvMachine();
  let from: SnapshotMeta | undefined;
  for (const m of metas) {
    if (m.slot > toSlot) continue;
    try {
      const snap = await snaps.load(m.name);
      await sm.restore(snap.data);
      from = snap.meta;
      break;
    } catch {
      // a damaged snapshot: try the one before
    }
  }
  const start = (from?.slot ?? 0) + 1;
  if (start <= toSlot && start < state.truncatedBelow)
    throw new ReplayError(
      `slots ${start}..${state.truncatedBelow - 1} are neither in a snapshot at or ` +
        `below slot ${toSlot} nor in the log (truncated below ${state.truncatedBelow})`,
    );
  let config: Configuration = from
    ? { epoch: from.epoch ?? 1, members: [...from.members], startSlot: from.startSlot ?? from.slot + 1 }
    : configZero(state);
  let commands = 0;
  let filled = 0;
  for (let s = start; s <= toSlot; s++) {
    if (state.chosen?.has(s)) filled++;
    const v: SlotValue | undefined = provenValue(state, s, executed, decided);
    if (v === undefined)
      throw new ReplayError(`slot ${s} is missing from the log (it was executed, but its value is not here)`);
    if (v.k === 'batch') {
      for (const c of v.cmds) {
        sm.apply(c, s);
        commands++;
      }
    } else if (v.k === 'config') config = { epoch: v.epoch, members: [...v.members], startSlot: s + 1 };
  }
  const result: ReplayResult = {
    fromSnapshot: from?.slot ?? 0,
    toSlot,
    slots: Math.max(0, toSlot - start + 1),
    commands,
    digest: sm.digest(),
    keys: sm.size,
    config,
    provenUpTo,
    filled,
  };
  if (o.snapshotOut) {
    const parts: Uint8Array[] = [];
    for await (const p of await toIterable(await sm.snapshot())) parts.push(p);
    const out = new FileSnapshotStore(o.snapshotOut);
    const meta = await out.save(toSlot, config.members, Buffer.concat(parts), {
      epoch: config.epoch,
      startSlot: config.startSlot,
    });
    result.snapshotWritten = join(o.snapshotOut, meta.name);
  }
  return result;
}

function configZero(state: RecoveredState): Configuration {
  const c = state.meta.get('config0');
  if (c) {
    try {
      return JSON.parse(Buffer.from(c).toString('utf8')) as Configuration;
    } catch {
      // fall through
    }
  }
  return { epoch: 0, members: [], startSlot: 1 };
}

async function toIterable(x: Uint8Array | AsyncIterable<Uint8Array>): Promise<AsyncIterable<Uint8Array>> {
  if (x instanceof Uint8Array)
    return (async function* () {
      yield x;
    })();
  return x;
}
