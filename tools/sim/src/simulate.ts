import type { SimLinkOptions } from '@decree/bus';
import { KvCommands, decodeResult } from '@decree/kv-machine';
import { HistoryRecorder, checkHistory, type Op, type OpHandle, type OpKind } from '@decree/lincheck';
import { NotLeaderError, type RoleMachines } from '@decree/replica';
import type { ReplicaId } from '@decree/protocol';
import { MemorySnapshotStore } from '@decree/storage/memory';
import {
  SimCluster,
  checkAgreement,
  checkDurability,
  checkValidity,
  SafetyViolation,
  type AppliedEntry,
} from '@decree/testkit';
import { SimDisk } from './disk.ts';
import { checkLiveness } from './liveness.ts';
import { type EpisodeStats, ReconfigEpisodes } from './reconfig.ts';
import { RecordingKv } from './recording-machine.ts';

export interface SimParams {
  seed: number;
  /** cluster size; default from the seed (3 or 5) */
  n?: 3 | 5;
  /** simulated milliseconds of faults and load */
  durationMs?: number;
  clients?: number;
  /**
   * Role machines to run instead of the standard ones at every replica: the self-test passes the testkit's
   * `forgetfulAcceptorMachine` (a deliberately broken acceptor) to show the checks catch it.
   */
  machines?: RoleMachines;
  /** probability of a fault per client round (about every 5 simulated ms); default 0.03 */
  faultRate?: number;
  /**
   * spare replicas of the ring outside the initial configuration,
   * for configuration changes (default 1; 0 turns changes off)
   */
  spares?: number;
  /**
   * bounded liveness: once the faults stop, a leader is elected and a write commits within this many virtual ms
   * (default: none; the run only has to complete one write within 20 attempts)
   */
  livenessMs?: number;
  /** links bounded in bytes like the TCP transport's (default: unbounded links, as before) */
  links?: SimLinkOptions;
  /**
   * Share of the clients' GETs served by read-index (`Replica.readIndex()`, then a read of that replica's
   * state machine) instead of a GET through the log. Default 0: the seeds replay as before.
   */
  readIndexShare?: number;
  /** clients that only issue read-index reads, at any replica that believes it leads (default 0) */
  readers?: number;
  /**
   * Probability per client round (~5 virtual ms) of starting a reconfiguration episode when none runs
   * (`reconfig.ts`: a member crashes, the leader changes the configuration, crashes just after, the
   * member restarts from its old state). Default 0.
   */
  reconfig?: number;
}

/** The `--reads` mode of the CLI: read-index reads around frequent reconfigurations (issue #17). */
export const READS_MODE = { spares: 2, readIndexShare: 0.5, readers: 2, reconfig: 0.05 } as const;

/** Read-index reads of a run (issue #17). `reprepare`/`pendingConfig`: issued at a replica whose proposer was so. */
export interface ReadStats {
  issued: number;
  ok: number;
  failed: number;
  reprepare: { issued: number; ok: number };
  pendingConfig: { issued: number; ok: number };
}

export interface SimReport {
  seed: number;
  n: number;
  ok: boolean;
  violation?: string;
  ops: number;
  okOps: number;
  unknownOps: number;
  applied: number;
  faults: number;
  /** configuration changes asked for, and those that took effect */
  configChanges: { asked: number; applied: number; finalMembers: string[] };
  /**
   * summed over the replicas alive at the end: snapshots saved, installed from a peer, and the highest log truncation
   */
  snapshots: { saved: number; installed: number; truncatedBelow: number };
  /** read-index reads (all zero unless readIndexShare or readers is set) */
  reads: ReadStats;
  /** reconfiguration episodes (all zero unless reconfig is set) */
  episodes: EpisodeStats;
  trace: string[];
  history: Op[];
}

const KEYS = ['a', 'b', 'c', 'd'];

/**
 * One deterministic simulation: a cluster of KV replicas on virtual time, simulated network and
 * disks, clients recording a history, random faults (crash/restart with unsynced writes lost,
 * partitions, one-way link cuts, drops, duplicates, reordering and delay changes, slow and failing
 * disks, leader churn). Afterwards: agreement, validity, durability of acknowledged writes, equal
 * states at equal slots, and linearizability of the client history. Same seed, same run.
 */
/** Runs every pending promise callback (microtasks only: nothing in a simulation does real I/O). */
const drain = (): Promise<void> => new Promise((r) => setImmediate(r));

export async function simulate(p: SimParams): Promise<SimReport> {
  const seed = p.seed;
  const rngPre = (seed * 2654435761) >>> 0;
  const n = p.n ?? (rngPre % 3 === 0 ? 5 : 3);
  const durationMs = p.durationMs ?? 3_000;
  const faultRate = p.faultRate ?? 0.03;
  const spares = p.spares ?? 1;
  const ring = n + spares;
  const initial = Array.from({ length: n }, (_, i) => `r${i + 1}`);
  const disks = new Map<ReplicaId, SimDisk>();
  // snapshot stores survive crashes like the disks (a restarted replica serves what it had)
  const snapshotStores = new Map<ReplicaId, MemorySnapshotStore>();
  const snapshotStore = (id: ReplicaId): MemorySnapshotStore => {
    let s = snapshotStores.get(id);
    if (!s) snapshotStores.set(id, (s = new MemorySnapshotStore()));
    return s;
  };
  const c: SimCluster<RecordingKv> = new SimCluster<RecordingKv>({
    n: ring,
    members: initial,
    seed,
    net: {
      minDelayMs: 0.1,
      maxDelayMs: 2,
      dropRate: 0.01,
      duplicateRate: 0.01,
      serialize: seed % 4 === 0,
      ...(p.links ? { links: p.links } : {}),
    },
    options: {
      elector: { electionTimeoutMinMs: 150, electionTimeoutMaxMs: 300, heartbeatMs: 40 },
      tickMs: 10,
      // small intervals so that random runs snapshot, truncate logs and catch up by snapshot transfer
      snapshotter: {
        everySlots: 8 + (seed % 5) * 4,
        everyBytes: 0,
        truncateMargin: seed % 3,
        keep: 2,
        chunkBytes: 256,
        window: 4,
        retryMs: 40,
      },
      makeSnapshotStore: snapshotStore,
      configManager: { catchupTimeoutMs: 1_500, proposeTimeoutMs: 3_000, maxLagSlots: 32 },
      // every other seed: tiny promise pages and catch-up replies (the paths a long log takes)
      ...(seed % 2 === 0 ? { acceptor: { maxPromiseBytes: 120 }, learner: { catchupMaxBytes: 120 } } : {}),
    },
    makeStateMachine: () => new RecordingKv(),
    makeStore: (id: ReplicaId, env): SimDisk => {
      const d = new SimDisk(env, c.sched.rng.fork());
      disks.set(id, d);
      return d;
    },
    ...(p.machines ? { machines: () => p.machines } : {}),
  });
  await c.start();
  const rng = c.sched.rng.fork();
  const trace: string[] = [];
  const t = () => c.sched.now().toFixed(1);
  const down = () => c.ids.filter((id) => !c.nodes.get(id)!.replica);
  /** the newest configuration any live replica runs */
  const current = (): { epoch: number; members: string[] } => {
    let best = { epoch: 1, members: initial };
    for (const id of c.up()) {
      const g = c.replica(id).getConfiguration();
      if (g.epoch > best.epoch) best = g;
    }
    return best;
  };
  const configChanges = { asked: 0, applied: 0 };
  const history = new HistoryRecorder({ clock: () => c.sched.now() });
  const submitted = new Set<string>();
  const acked = new Set<string>();
  let faults = 0;
  /** virtual time in small steps, promise callbacks (snapshot work) run between them */
  const runDrained = async (ms: number): Promise<void> => {
    const end = c.sched.now() + ms;
    while (c.sched.now() < end) {
      await advance(Math.min(5, end - c.sched.now()));
      await drain();
    }
  };
  let valueSeq = 0;
  const clients = p.clients ?? 3;

  // ------------------------------------------------------------ read-index reads (issue #17)
  const readIndexShare = p.readIndexShare ?? 0;
  const readerCount = p.readers ?? 0;
  const reconfigRate = p.reconfig ?? 0;
  const readMode = readIndexShare > 0 || readerCount > 0 || reconfigRate > 0;
  // a stream of its own, drawn only in this mode: without it every seed replays as before
  const rrng = readMode ? rng.fork() : rng;
  const reads: ReadStats = {
    issued: 0,
    ok: 0,
    failed: 0,
    reprepare: { issued: 0, ok: 0 },
    pendingConfig: { issued: 0, ok: 0 },
  };
  /** read-index reads not answered yet: while there are any, virtual time advances one task at a time */
  let readsOut = 0;
  /**
   * A linearizable read as the KV service serves GET on the leader: `readIndex()`, then the key from
   * this replica's state machine, read in the scheduler step in which the index resolved. Any error
   * (not the leader, leadership lost, timeout, the replica restarted) is a failed read: it has no effect.
   */
  const readIndexOp = (proc: number, target: ReplicaId, key: string, done: () => void): void => {
    const node = c.nodes.get(target)!;
    const rep = node.replica!;
    const sm = node.sm;
    const snap = rep.proposer.getSnapshot();
    const ctx = snap.context;
    const inReprepare = snap.matches({ leading: { reconfiguring: 're-preparing' } });
    const inPending = ctx.pendingConfig !== undefined;
    const window = inReprepare ? 'reprepare' : inPending ? `pendingConfig ${ctx.pendingConfig!.slot}` : '';
    // the replica asks its own member list (it changes when the learner executes the config value)
    const asked = rep.getConfiguration().members.join(',');
    const proposing = ctx.members.join(',');
    reads.issued++;
    if (inReprepare) reads.reprepare.issued++;
    if (inPending) reads.pendingConfig.issued++;
    const h = history.invoke(proc, 'get', key);
    readsOut++;
    let settled = false;
    const finish = (value: string | null | undefined, index?: number): void => {
      if (settled) return;
      settled = true;
      readsOut--;
      c.sched.cancel(timeout);
      done();
      if (value === undefined) {
        reads.failed++;
        history.fail(h);
        return;
      }
      reads.ok++;
      if (inReprepare) reads.reprepare.ok++;
      if (inPending) reads.pendingConfig.ok++;
      history.complete(h, value);
      if (window)
        trace.push(
          `${t()} read-index ${target} (${window}, ballot ${ctx.ballot.round}.${ctx.ballot.leader}, ` +
            `asked ${asked}${asked === proposing ? '' : ` not the proposer's ${proposing}`}): ` +
            `get ${key} = ${value} at index ${index}, executed ${rep.executedSlot()}`,
        );
    };
    const timeout = c.sched.after(1_000, () => finish(undefined));
    rep.readIndex(1_000).then(
      (index) => {
        if (node.replica !== rep) return finish(undefined);
        const r = decodeResult(sm.kv.query(KvCommands.get(key)));
        finish(r.type === 'bulk' ? Buffer.from(r.value).toString() : r.type === 'nil' ? null : undefined, index);
      },
      () => finish(undefined),
    );
  };
  /** clients that only read (process ids after the clients'), at any replica that believes it leads */
  const readerBusy = new Array<boolean>(readerCount).fill(false);
  /** when each reader last read: in a window, at most one read per reader per virtual ms */
  const readerAt = new Array<number>(readerCount).fill(-1);
  const readerStep = (ri: number, at?: ReplicaId): void => {
    if (readerBusy[ri]) return;
    readerAt[ri] = c.sched.now();
    const target = at ?? (c.leaders().length ? rrng.pick(c.leaders()) : undefined);
    if (!target) return;
    readerBusy[ri] = true;
    readIndexOp(clients + ri, target, rrng.pick(KEYS), () => (readerBusy[ri] = false));
  };
  /** between two tasks: idle readers read at every leader that re-prepares or has a config value in flight */
  const readInWindows = (): void => {
    if (readerCount === 0) return;
    for (const id of c.up()) {
      const ps = c.replica(id).proposer.getSnapshot();
      if (!ps.matches({ leading: 'reconfiguring' })) continue;
      for (let ri = 0; ri < readerCount; ri++)
        if (!readerBusy[ri] && c.sched.now() >= readerAt[ri]! + 1) readerStep(ri, id);
    }
  };
  /**
   * Virtual time: with reads, one task at a time, and a resolved read's callback runs before the next
   * task (so it reads the state as of its index's resolution); otherwise as before.
   */
  const advance = async (ms: number): Promise<void> => {
    if (!readMode) {
      c.run(ms);
      return;
    }
    const end = c.sched.now() + ms;
    for (;;) {
      const before = c.sched.steps;
      let first = true;
      const once = () => (first ? ((first = false), false) : true);
      c.sched.runUntilCond(once, Math.max(0, end - c.sched.now()));
      if (c.sched.steps === before) break;
      if (readsOut > 0) await Promise.resolve();
      readInWindows();
      if (reconfigRate > 0) traceLeaders();
    }
  };
  /** with reads: a trace line whenever the set of replicas that believe they lead changes */
  let leadersSeen = '';
  const traceLeaders = (): void => {
    const now = c
      .leaders()
      .map((id) => {
        const ps = c.replica(id).proposer.getSnapshot();
        const x = ps.context;
        const reprepare = ps.matches({ leading: { reconfiguring: 're-preparing' } });
        const w = reprepare ? ' reprepare' : x.pendingConfig ? ` pendingConfig ${x.pendingConfig.slot}` : '';
        return `${id}@${x.ballot.round}.${x.ballot.leader} epoch ${x.config.epoch}${w}`;
      })
      .join(', ');
    if (now !== leadersSeen) trace.push(`${t()} leaders: ${now || 'none'}`);
    leadersSeen = now;
  };
  const episodes =
    reconfigRate > 0 ? new ReconfigEpisodes({ c, rng: rrng, disks, trace: (l) => trace.push(l), current }) : undefined;

  // ------------------------------------------------------------ clients
  const busy = new Array<boolean>(clients).fill(false);
  const seqs = new Array<number>(clients).fill(0);
  const clientStep = (ci: number) => {
    if (busy[ci]) return;
    let leader = rng.chance(0.9) ? c.leader() : rng.pick(c.up());
    if (!leader) return;
    // with reads: any of the replicas that believe they lead (a deposed one that does not know yet)
    if (readMode && c.leaders().length > 1 && c.leaders().includes(leader)) leader = rrng.pick(c.leaders());
    const key = rng.pick(KEYS);
    const kind = rng.int(0, 9);
    let cmd: Uint8Array;
    let h: OpHandle;
    let op: OpKind;
    if (kind < 4 && readIndexShare > 0 && rrng.chance(readIndexShare)) {
      busy[ci] = true;
      readIndexOp(ci, leader, key, () => (busy[ci] = false));
      return;
    }
    if (kind < 4) {
      op = 'get';
      cmd = KvCommands.get(key);
      h = history.invoke(ci, 'get', key);
    } else if (kind < 7) {
      const v = `v${valueSeq++}`;
      op = 'set';
      cmd = KvCommands.set(key, v);
      h = history.invoke(ci, 'set', key, v);
    } else if (kind < 9) {
      op = 'incr';
      cmd = KvCommands.incr(key, 1);
      h = history.invoke(ci, 'incr', key, '1');
    } else {
      const v = `v${valueSeq++}`;
      const exp = rng.chance(0.5) ? null : `v${Math.max(0, valueSeq - rng.int(1, 4))}`;
      op = 'cas';
      cmd = KvCommands.cas(key, exp, v);
      h = history.invoke(ci, 'cas', key, v, exp);
    }
    // a client session makes every command unique (and exactly-once under retries)
    cmd = KvCommands.session(`c${ci}`, ++seqs[ci]!, cmd);
    const tag = Buffer.from(cmd).toString('base64');
    submitted.add(tag);
    busy[ci] = true;
    let settled = false;
    const timeout = c.sched.after(1_000, () => {
      if (settled) return;
      settled = true;
      busy[ci] = false;
      history.timeout(h);
    });
    c.replica(leader)
      .submit(cmd)
      .then(
        (res: Uint8Array | undefined) => {
          if (settled) return;
          settled = true;
          c.sched.cancel(timeout);
          busy[ci] = false;
          acked.add(tag);
          const r = decodeResult(res!);
          let result: string | number | boolean | null;
          switch (r.type) {
            case 'ok':
              result = 'OK';
              break;
            case 'nil':
              result = null;
              break;
            case 'bulk':
              result = Buffer.from(r.value).toString();
              break;
            case 'int':
              result = op === 'cas' ? Number(r.value) === 1 : Number(r.value);
              break;
            default:
              result = JSON.stringify(r);
          }
          if (r.type === 'error') history.fail(h);
          else history.complete(h, result);
        },
        (err: unknown) => {
          if (settled) return;
          settled = true;
          c.sched.cancel(timeout);
          busy[ci] = false;
          if (err instanceof NotLeaderError && !err.maybeExecuted) history.fail(h);
          else history.timeout(h); // proposed before the leader was lost, or the replica stopped: unknown
        },
      );
  };

  // ------------------------------------------------------------ faults
  const fault = async () => {
    const kind = rng.int(0, spares > 0 ? 10 : 9);
    faults++;
    switch (kind) {
      case 0:
      case 1: {
        // keep a majority of the newest configuration alive (replicas outside it may crash freely)
        const cur = current().members;
        const alive = cur.filter((m) => c.nodes.get(m)!.replica);
        const victims = c.up().filter((id) => !cur.includes(id) || alive.length - 1 >= Math.floor(cur.length / 2) + 1);
        if (victims.length === 0) return;
        const l = c.leader();
        const victim = rng.chance(0.6) && l && victims.includes(l) ? l : rng.pick(victims);
        trace.push(`${t()} crash ${victim}`);
        await c.crash(victim);
        return;
      }
      case 2:
      case 3: {
        if (down().length === 0) return;
        const back = rng.pick(down());
        trace.push(`${t()} restart ${back}`);
        await c.restart(back);
        return;
      }
      case 4: {
        const shuffled = [...c.ids].sort(() => rng.next() - 0.5);
        const cut = rng.int(1, Math.max(1, ring - (Math.floor(ring / 2) + 1)));
        const groups = [shuffled.slice(0, cut), shuffled.slice(cut)];
        trace.push(`${t()} partition ${JSON.stringify(groups)}`);
        c.net.partition(groups);
        return;
      }
      case 5: {
        const a = rng.pick(c.ids);
        const b = rng.pick(c.ids.filter((x: ReplicaId) => x !== a));
        trace.push(`${t()} cut ${a}->${b}`);
        c.net.cutLink(a, b, false);
        return;
      }
      case 6:
        trace.push(`${t()} heal`);
        c.net.heal();
        return;
      case 7: {
        const drop = rng.chance(0.5) ? 0 : rng.next() * 0.2;
        const dup = rng.chance(0.5) ? 0 : rng.next() * 0.1;
        const maxDelay = 0.2 + rng.next() * 30;
        trace.push(`${t()} net drop=${drop.toFixed(2)} dup=${dup.toFixed(2)} maxDelay=${maxDelay.toFixed(1)}`);
        c.net.opts = { ...c.net.opts, dropRate: drop, duplicateRate: dup, maxDelayMs: maxDelay };
        return;
      }
      case 8: {
        const id = rng.pick(c.ids);
        const d = disks.get(id)!;
        const slow = rng.chance(0.5);
        d.opts = { ...d.opts, maxSyncMs: slow ? 5 + rng.next() * 50 : 0.5, failRate: rng.chance(0.2) ? 0.05 : 0 };
        trace.push(`${t()} disk ${id} maxSync=${d.opts.maxSyncMs.toFixed(1)} fail=${d.opts.failRate}`);
        return;
      }
      case 9: {
        const l = c.leader();
        if (l) {
          trace.push(`${t()} churn: ${l} relinquishes`);
          c.replica(l).relinquishLeadership();
        }
        return;
      }
      case 10: {
        // a configuration change: any set of 3 or more of the ring's replicas (add, remove, replace)
        const l = c.leader();
        if (!l || spares === 0) return;
        const size = rng.int(3, ring);
        const set = [...c.ids]
          .sort(() => rng.next() - 0.5)
          .slice(0, size)
          .sort();
        configChanges.asked++;
        trace.push(`${t()} config ${l}: ${set.join(',')}`);
        c.replica(l)
          .changeConfiguration(set)
          .then(
            (r) => {
              configChanges.applied++;
              trace.push(`${t()} config epoch ${r.epoch} at slot ${r.slot}: ${r.members.join(',')}`);
            },
            (e: Error & { code?: string }) => trace.push(`${t()} config refused: ${e.code ?? ''} ${e.message}`),
          );
        return;
      }
    }
  };

  // ------------------------------------------------------------ the run
  let violation: string | undefined;
  try {
    const end = c.sched.now() + durationMs;
    while (c.sched.now() < end) {
      // random faults wait while a reconfiguration episode runs its own
      if (rng.chance(faultRate) && !episodes?.active) await fault();
      if (episodes) {
        if (!episodes.active && rrng.chance(reconfigRate)) await episodes.start();
        await episodes.step();
      }
      for (let ci = 0; ci < clients; ci++) if (rng.chance(0.5)) clientStep(ci);
      for (let ri = 0; ri < readerCount; ri++) if (rrng.chance(0.5)) readerStep(ri);
      await advance(rng.int(1, 10));
      await c.settle();
      await drain(); // snapshot capture, store and restore are promise chains: let them finish
    }
    // heal and converge
    episodes?.stop();
    trace.push(`${t()} heal all`);
    c.net.heal();
    c.net.opts = { ...c.net.opts, dropRate: 0, duplicateRate: 0, maxDelayMs: 2 };
    for (const d of disks.values()) d.opts = { ...d.opts, maxSyncMs: 0.5, failRate: 0 };
    for (const id of c.up() as ReplicaId[])
      if (c.replica(id).acceptor.getSnapshot().value === 'failed') await c.crash(id);
    for (const id of down()) await c.restart(id);
    let fin = false;
    if (p.livenessMs !== undefined) {
      // bounded liveness: from the moment the faults stopped, a leader and a committed write within livenessMs
      const tag = (cmd: Uint8Array) => Buffer.from(cmd).toString('base64');
      const write = (attempt: number) => {
        const cmd = KvCommands.set(`final`, `${seed}-${attempt}`);
        submitted.add(tag(cmd));
        return cmd;
      };
      const live = await checkLiveness(c, p.livenessMs, write, (cmd) => acked.add(tag(cmd)));
      if (!live.ok) throw new SafetyViolation(live.message!);
      const after =
        `leader after ${live.leaderAfterMs!.toFixed(0)} ms, ` + `commit after ${live.commitAfterMs!.toFixed(0)} ms`;
      trace.push(`${t()} liveness: ${after}`);
      fin = true;
    } else {
      await runDrained(3_000); // outstanding client ops time out; a leader emerges
      await c.settle();
      for (let attempt = 0; attempt < 20 && !fin; attempt++) {
        const cmd = KvCommands.set(`final`, `${seed}-${attempt}`);
        submitted.add(Buffer.from(cmd).toString('base64'));
        try {
          c.waitForLeader(5_000);
          await c.submitAndWait(cmd, 2_000);
          acked.add(Buffer.from(cmd).toString('base64'));
          fin = true;
        } catch {
          await runDrained(500);
        }
      }
    }
    await runDrained(1_000);
    await c.settle();
    if (!fin) throw new SafetyViolation('liveness: no command completed after every fault was healed');
    const logs = new Map<string, readonly AppliedEntry[]>();
    for (const id of c.ids) logs.set(id, c.sm(id).applied);
    checkAgreement(logs);
    checkValidity(logs, submitted);
    // every acknowledged write is on every member of the final configuration (removed replicas stop learning)
    const finalMembers = current().members;
    checkDurability(new Map(finalMembers.map((id) => [id, c.sm(id).applied])), acked, finalMembers.length);
    // identical state machines at equal applied slots
    const digests = new Set(
      finalMembers.map((id: ReplicaId) => `${c.replica(id).executedSlot()}:${c.sm(id).kv.digest()}`),
    );
    if (digests.size !== 1) throw new SafetyViolation(`states differ: ${[...digests].join(' | ')}`);
    const lin = checkHistory(history.ops(), { timeoutMs: 10_000 });
    if (!lin.ok && !lin.timedOut) throw new SafetyViolation(`linearizability: key ${lin.key}: ${lin.reason}`);
  } catch (e) {
    violation = (e as Error).message;
    // what each replica is doing, for the replay's trace
    for (const id of c.up()) {
      const r = c.replica(id);
      const st = r.status();
      const ps = r.proposer.getSnapshot();
      const p = ps.context;
      const reprepare = ps.matches({ leading: { reconfiguring: 're-preparing' } });
      trace.push(
        `${t()} state ${id}: ${st.states.proposer}/${st.states.elector} leader=${st.leader ?? '-'} ` +
          `ballot=${p.ballot.round}.${p.ballot.leader} promised=${st.promised.round}.${st.promised.leader} ` +
          `executed=${st.executedUpTo} chosen=${st.chosenUpTo} applied=${c.sm(id).applied.length} ` +
          `config=${st.configEpoch}:${st.members.join(',')} ` +
          `truncated=${r.acceptor.getSnapshot().context.truncatedBelow} fromSlot=${p.fromSlot} ` +
          `reprepare=${reprepare} pendingConfig=${p.pendingConfig?.slot ?? '-'} ` +
          `snapshots=${r.statistics().snapshots.installed}/${r.statistics().snapshots.latestSlot} ` +
          `awaiting=${p.awaitingCatchup} promises=${[...p.promises.keys()].join(',')} ` +
          `pages=${[...p.promisePages.keys()].join(',')} ` +
          `marked=${r.acceptor.getSnapshot().context.markedUpTo} acceptor=${st.states.acceptor}`,
      );
    }
  }
  const ops = history.ops();
  const applied = Math.max(...c.ids.map((id: ReplicaId) => c.sm(id).applied.length));
  const snapshots = { saved: 0, installed: 0, truncatedBelow: 0 };
  for (const id of c.up()) {
    const st = c.replica(id).statistics().snapshots;
    snapshots.saved += st.saved;
    snapshots.installed += st.installed;
    snapshots.truncatedBelow = Math.max(snapshots.truncatedBelow, st.truncatedBelow);
  }
  await c.stop();
  return {
    seed,
    n,
    ok: violation === undefined,
    ...(violation !== undefined ? { violation } : {}),
    ops: ops.length,
    okOps: ops.filter((o) => o.complete !== null && o.ok !== false).length,
    unknownOps: ops.filter((o) => o.complete === null).length,
    applied,
    faults,
    configChanges: { ...configChanges, finalMembers: current().members },
    snapshots,
    reads,
    episodes: episodes ? { ...episodes.stats } : { started: 0, chosen: 0, leaderCrashes: 0, staleRestarts: 0 },
    trace,
    history: ops,
  };
}
