import { type SimLinkOptions, type SimLinkStats, TCP_QUEUE_BYTES, TCP_QUEUE_MESSAGES, twoLanes } from '@decree/bus';
import { KvCommands } from '@decree/kv-machine';
import type { ReplicaId } from '@decree/protocol';
import { MemorySnapshotStore } from '@decree/storage/memory';
import {
  SimCluster,
  SafetyViolation,
  checkAgreement,
  checkDurability,
  checkValidity,
  type AppliedEntry,
} from '@decree/testkit';
import { SimDisk } from './disk.ts';
import { checkLiveness, drain, linkSummary, replicaStates, runDrained } from './liveness.ts';
import { RecordingKv, fingerprint } from './recording-machine.ts';

export interface ScaleParams {
  seed: number;
  /** cluster size (default 3) */
  n?: 3 | 5;
  /**
   * bytes of a large value (default 100 KiB): three in four large SETs carry this many, one in four
   * twice as many; every large SET of one size shares one buffer
   */
  valueBytes?: number;
  /** slots to execute under load before the last whole-cluster restart (default 2000) */
  slots?: number;
  /** pipelined clients (default 4) and commands each keeps in flight (default 16): every other one a large SET */
  clients?: number;
  pipeline?: number;
  /** whole-cluster restarts, spread over the load; the last one after it (default 1) */
  restarts?: number;
  /** capacity of each replica's disk in bytes (default 0: unlimited) */
  diskBytes?: number;
  /** per-lane bounds of each directed link (default: the TCP transport's 8 MiB and 16384 messages) */
  linkBytes?: number;
  linkMessages?: number;
  /** bytes per virtual ms on each directed link (default 125000: 1 Gbit/s) */
  bandwidth?: number;
  /** 2 (default): control ahead of bulk, as the TCP transport (`controlOrBulk`); 1: one lane, as before issue #16 */
  lanes?: 1 | 2;
  /** after a whole-cluster restart a leader must be elected and a write commit within this (default 10000) */
  livenessMs?: number;
  /** probability per ~5 ms of load of crashing a minority member or restarting one (default 0) */
  faultRate?: number;
  /** virtual ms the load may take at most (default 120000) */
  maxLoadMs?: number;
}

export interface ScaleReport {
  seed: number;
  n: number;
  ok: boolean;
  violation?: string;
  /** the highest executed slot before the last whole-cluster restart, and at the end */
  loadSlots: number;
  slots: number;
  /** acknowledged commands (large, small) and the large values' bytes */
  acked: { large: number; small: number; largeBytes: number };
  restarts: number;
  faults: number;
  /** after each whole-cluster restart: virtual ms to a leader and to a committed write */
  recoveries: { leaderAfterMs?: number; commitAfterMs?: number }[];
  links: SimLinkStats | undefined;
  disk: { maxUsedBytes: number; fullErrors: number };
  virtualMs: number;
  trace: string[];
}

/** One encoded SET of `size` bytes per size (never copied: every slot value references it). */
const largeCommands = new Map<number, Uint8Array>();
export function largeSet(size: number): Uint8Array {
  let c = largeCommands.get(size);
  if (!c) largeCommands.set(size, (c = KvCommands.set('large', new Uint8Array(size).fill(0x61))));
  return c;
}

/**
 * The simulator at scale (issue #16): a cluster on links bounded in bytes like the TCP transport's,
 * pipelined clients sending large values, thousands of slots, whole-cluster restarts with every disk
 * and snapshot store as it was, optionally full disks. After each whole-cluster restart: liveness (a
 * leader and a committed write within `livenessMs`). At the end: agreement, validity, durability.
 */
export async function simulateScale(p: ScaleParams): Promise<ScaleReport> {
  const seed = p.seed;
  const n = p.n ?? 3;
  const valueBytes = p.valueBytes ?? 100 << 10;
  const targetSlots = p.slots ?? 2000;
  const clients = p.clients ?? 4;
  const pipeline = p.pipeline ?? 16;
  const restarts = p.restarts ?? 1;
  const livenessMs = p.livenessMs ?? 10_000;
  const faultRate = p.faultRate ?? 0;
  const maxLoadMs = p.maxLoadMs ?? 120_000;
  const bounds = { maxBytes: p.linkBytes ?? TCP_QUEUE_BYTES, maxMessages: p.linkMessages ?? TCP_QUEUE_MESSAGES };
  const links: SimLinkOptions = {
    bandwidthBytesPerMs: p.bandwidth ?? 125_000,
    ...(p.lanes === 1 ? { lanes: [{ name: 'default', ...bounds }] } : twoLanes({ control: bounds, bulk: bounds })),
  };
  const largeSizes = [valueBytes, valueBytes, valueBytes, 2 * valueBytes];
  const largeTags = new Set(largeSizes.map((b) => fingerprint(largeSet(b))));
  const disks = new Map<ReplicaId, SimDisk>();
  const snapshotStores = new Map<ReplicaId, MemorySnapshotStore>();
  const c: SimCluster<RecordingKv> = new SimCluster<RecordingKv>({
    n,
    seed,
    net: { minDelayMs: 0.05, maxDelayMs: 0.5, links },
    // production defaults (elector 500-1000 ms, snapshots every 64 MiB, 512 KiB promise pages), except
    // the tick, which SimCluster sets to 10 ms
    options: {
      makeSnapshotStore: (id) => {
        let s = snapshotStores.get(id);
        if (!s) snapshotStores.set(id, (s = new MemorySnapshotStore()));
        return s;
      },
    },
    makeStateMachine: () => new RecordingKv({ fingerprintOver: 1024 }),
    makeStore: (id: ReplicaId, env): SimDisk => {
      const d = new SimDisk(env, c.sched.rng.fork(), { capacityBytes: p.diskBytes ?? 0, name: `${id}/sim-disk` });
      disks.set(id, d);
      return d;
    },
  });
  const rng = c.sched.rng.fork();
  const trace: string[] = [];
  const t = () => c.sched.now().toFixed(0);
  const submittedSmall = new Set<string>();
  const ackedSmall = new Set<string>();
  const acked = { large: 0, small: 0, largeBytes: 0 };
  const recoveries: ScaleReport['recoveries'] = [];
  let faults = 0;
  let restartsDone = 0;
  let loadSlots = 0;
  let maxUsedBytes = 0;
  let violation: string | undefined;
  const executed = () => Math.max(0, ...c.up().map((id) => c.replica(id).executedSlot()));
  const tagOf = (cmd: Uint8Array) => Buffer.from(cmd).toString('base64');
  let liveSeq = 0;
  const liveWrite = () => {
    const cmd = KvCommands.set('live', `${seed}-${liveSeq++}`);
    submittedSmall.add(tagOf(cmd));
    return cmd;
  };
  const onLiveAck = (cmd: Uint8Array) => ackedSmall.add(tagOf(cmd));

  // ------------------------------------------------------------ clients
  const inflight = new Array<number>(clients).fill(0);
  const seqs = new Array<number>(clients).fill(0);
  const topUp = (ci: number) => {
    while (inflight[ci]! < pipeline) {
      const l = c.leader();
      if (!l) return;
      const seq = seqs[ci]!++;
      const isLarge = seq % 2 === 0;
      const bytes = isLarge ? rng.pick(largeSizes) : 0;
      const cmd = isLarge ? largeSet(bytes) : KvCommands.set(`k${ci}`, String(seq));
      const tag = isLarge ? '' : tagOf(cmd);
      if (!isLarge) submittedSmall.add(tag);
      inflight[ci]!++;
      let settled = false;
      const timer = c.sched.after(5_000, () => {
        if (settled) return;
        settled = true;
        inflight[ci]!--;
      });
      c.replica(l)
        .submit(cmd)
        .then(
          () => {
            if (isLarge) {
              acked.large++;
              acked.largeBytes += bytes;
            } else {
              acked.small++;
              ackedSmall.add(tag);
            }
            if (settled) return;
            settled = true;
            c.sched.cancel(timer);
            inflight[ci]!--;
          },
          () => {
            if (settled) return;
            settled = true;
            c.sched.cancel(timer);
            inflight[ci]!--;
          },
        );
    }
  };

  const minorityFault = async () => {
    faults++;
    const down = c.ids.filter((id) => !c.nodes.get(id)!.replica);
    if (down.length > 0 && (rng.chance(0.5) || down.length >= Math.floor((n - 1) / 2))) {
      const back = rng.pick(down);
      trace.push(`${t()} restart ${back} (executed ${executed()})`);
      await c.restart(back);
      return;
    }
    const l = c.leader();
    const victim = l && rng.chance(0.6) ? l : rng.pick(c.up());
    trace.push(`${t()} crash ${victim}${victim === l ? ' (the leader)' : ''} (executed ${executed()})`);
    await c.crash(victim);
  };

  const diskSummary = () => {
    if (!p.diskBytes) return '';
    const mb = (b: number) => (b / 1e6).toFixed(1);
    const each = [...disks].map(([id, d]) => `${id} ${mb(d.usedBytes())} MB, ${d.fullErrors} appends refused`);
    return `\n  disks of ${mb(p.diskBytes)} MB: ${each.join('; ')}`;
  };

  const restartAll = async () => {
    restartsDone++;
    loadSlots = executed();
    const logs = c.up().map((id) => `${id} executed ${c.replica(id).executedSlot()}`);
    trace.push(`${t()} whole-cluster restart ${restartsDone}/${restarts}: ${logs.join(', ')}`);
    for (const id of c.ids) await c.crash(id);
    c.run(100);
    await drain();
    for (const id of c.ids) await c.restart(id);
    await drain();
  };

  try {
    await c.start();
    // the first leader (a fresh cluster): the same bound as after a restart
    const first = await checkLiveness(c, livenessMs, liveWrite, onLiveAck);
    if (!first.ok) throw new SafetyViolation(first.message!);
    trace.push(`${t()} first leader after ${first.leaderAfterMs!.toFixed(0)} ms`);
    const loadEnd = c.sched.now() + maxLoadMs;
    for (let r = 1; r <= restarts; r++) {
      const goal = Math.round((targetSlots * r) / restarts);
      let progress = { slot: executed(), at: c.sched.now() };
      while (executed() < goal && c.sched.now() < loadEnd) {
        if (faultRate > 0 && rng.chance(faultRate)) {
          await minorityFault();
          progress = { slot: executed(), at: c.sched.now() };
        }
        if (executed() > progress.slot) progress = { slot: executed(), at: c.sched.now() };
        else if (c.sched.now() - progress.at > livenessMs) {
          // no fault for livenessMs and nothing executed: the load itself wedged the cluster
          throw new SafetyViolation(
            `no write committed under load: executed stuck at slot ${progress.slot} for ${livenessMs} ms (virtual) ` +
              `with no fault since t=${progress.at.toFixed(0)}\n  ${replicaStates(c).join('\n  ')}` +
              `\n  ${linkSummary(c)}${diskSummary()}`,
          );
        }
        for (let ci = 0; ci < clients; ci++) topUp(ci);
        c.run(rng.int(1, 5));
        await drain();
        for (const d of disks.values()) maxUsedBytes = Math.max(maxUsedBytes, d.usedBytes());
      }
      trace.push(
        `${t()} load: executed ${executed()} slots, acked ${acked.large} large ` +
          `(${(acked.largeBytes / 1e6).toFixed(0)} MB) and ${acked.small} small commands`,
      );
      if (executed() < goal) {
        trace.push(`${t()} load stopped at the ${maxLoadMs} ms cap short of slot ${goal}`);
        trace.push(...replicaStates(c).map((l) => `${t()} ${l}`));
      }
      await restartAll();
      const live = await checkLiveness(c, livenessMs, liveWrite, onLiveAck);
      recoveries.push({
        ...(live.leaderAfterMs !== undefined ? { leaderAfterMs: live.leaderAfterMs } : {}),
        ...(live.commitAfterMs !== undefined ? { commitAfterMs: live.commitAfterMs } : {}),
      });
      if (!live.ok) throw new SafetyViolation(live.message! + diskSummary());
      trace.push(
        `${t()} after restart ${r}: leader after ${live.leaderAfterMs!.toFixed(0)} ms, ` +
          `a write committed after ${live.commitAfterMs!.toFixed(0)} ms`,
      );
    }
    // converge, then check what was applied
    await runDrained(c, 2_000);
    const logs = new Map<string, readonly AppliedEntry[]>();
    for (const id of c.ids) logs.set(id, c.sm(id).applied);
    checkAgreement(logs);
    const small = new Map<string, readonly AppliedEntry[]>();
    for (const [id, l] of logs) {
      const odd = l.find((e) => e.cmd.startsWith('#') && !largeTags.has(e.cmd));
      if (odd) throw new SafetyViolation(`validity: ${id} applied ${odd.cmd} at slot ${odd.slot}, not the value sent`);
      small.set(
        id,
        l.filter((e) => !e.cmd.startsWith('#')),
      );
    }
    checkValidity(small, submittedSmall);
    checkDurability(small, ackedSmall, Math.floor(n / 2) + 1);
  } catch (e) {
    violation = (e as Error).message;
    if (!(e instanceof SafetyViolation)) trace.push(...replicaStates(c).map((l) => `${t()} ${l}`));
  }
  trace.push(`${t()} ${linkSummary(c)}`);
  const report: ScaleReport = {
    seed,
    n,
    ok: violation === undefined,
    ...(violation !== undefined ? { violation } : {}),
    loadSlots,
    slots: executed(),
    acked,
    restarts: restartsDone,
    faults,
    recoveries,
    links: c.net.linkStats(),
    disk: { maxUsedBytes, fullErrors: [...disks.values()].reduce((s, d) => s + d.fullErrors, 0) },
    virtualMs: c.sched.now(),
    trace,
  };
  await c.stop();
  return report;
}
