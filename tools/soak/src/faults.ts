/**
 * The soak's fault schedule: kill -9 and restart, SIGSTOP/SIGCONT pauses, whole-cluster restarts.
 * `planFault` draws a fault's parameters from the seed (the same number of draws whatever the kind,
 * so the schedule depends only on the seed); `runSoakFaults` carries them out one at a time.
 */
import type { ChaosCluster, Rng } from '@decree/chaos';
import type { HeldDown, Meter, RecoveryWatch } from './meter.ts';

export const SOAK_FAULT_KINDS = ['kill9', 'pause', 'restart-all'] as const;
export type SoakFaultKind = (typeof SOAK_FAULT_KINDS)[number];

export interface FaultPlan {
  kind: SoakFaultKind;
  /** pause before the fault (ms) */
  gapMs: number;
  /** kill9: down time before the restart; pause: time stopped (ms) */
  holdMs: number;
  /** kill9/pause: aim at the leader (else a random replica) */
  leader: boolean;
  /** the victim when not the leader (an index into the replica ids) */
  pick: number;
  /** restart-all: SIGKILL (else SIGTERM, like Ctrl-C of npm start) */
  hard: boolean;
}

export interface FaultTiming {
  gapMs: [number, number];
  killHoldMs: [number, number];
  pauseHoldMs: [number, number];
}

export const DEFAULT_TIMING: FaultTiming = { gapMs: [3000, 8000], killHoldMs: [500, 3000], pauseHoldMs: [1000, 4000] };

/** The next fault: `kind` if given (the first round), else a random one of `kinds` (default all). */
export function planFault(
  rng: Rng,
  timing: FaultTiming,
  kind?: SoakFaultKind,
  kinds: readonly SoakFaultKind[] = SOAK_FAULT_KINDS,
): FaultPlan {
  const k = rng.pick(kinds);
  const gapMs = rng.int(...timing.gapMs);
  const killHold = rng.int(...timing.killHoldMs);
  const pauseHold = rng.int(...timing.pauseHoldMs);
  const leader = rng.next() < 2 / 3;
  const pick = rng.int(0, 1 << 20);
  const hard = rng.next() < 0.5;
  const kk = kind ?? k;
  return { kind: kk, gapMs, holdMs: kk === 'pause' ? pauseHold : killHold, leader, pick, hard };
}

export interface SoakFault {
  kind: SoakFaultKind;
  /** the replica, or "all" */
  target: string;
  /** "leader", "random replica", "SIGKILL", "SIGTERM", ... */
  detail: string;
  /** ms since the load started */
  at: number;
  /** the fault undone (process restarted / SIGCONT / all three ready), ms since the load started */
  healedAt?: number;
  /** restart-all: when the last replica logged "replica started" (ms since the load started) */
  readyAt?: number;
  /** ms from the fault to the first acknowledged write invoked after it; undefined: not recovered */
  recoveryMs?: number;
  /** restart-all: ms from the last ready line to that write */
  afterReadyMs?: number;
  /** performance.now() at the fault (the history's clock) */
  startClock: number;
  error?: string;
}

export interface SoakFaultOptions {
  cluster: ChaosCluster;
  rng: Rng;
  meter: Meter;
  timing: FaultTiming;
  /** the kinds to inject (default all three) */
  kinds?: readonly SoakFaultKind[];
  /** performance.now() bound: no new fault after it (the first round is always completed) */
  until: number;
  /** ms to wait for a fault's recovery before going on */
  recoverTimeoutMs: number;
  /** replicas currently SIGSTOPped (kept for the final heal) */
  paused: Set<string>;
  heldDown: HeldDown[];
  onEvent?: (f: SoakFault, phase: 'start' | 'healed' | 'recovered' | 'unrecovered') => void;
  stopped?: () => boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Which replica leads according to a running replica; undefined if nobody knows. */
async function currentLeader(cluster: ChaosCluster): Promise<string | undefined> {
  for (const id of cluster.ids) {
    if (!cluster.isRunning(id)) continue;
    const st = await cluster.status(id, 1000);
    if (st?.leader && cluster.isRunning(st.leader)) return st.leader;
  }
  return undefined;
}

async function waitRecovery(w: RecoveryWatch, untilClock: number, stopped?: () => boolean): Promise<void> {
  while (w.recoveredAt === undefined && performance.now() < untilClock && !stopped?.()) await sleep(50);
}

/** Runs faults one at a time until `until` (the first round of every kind always completes). */
export async function runSoakFaults(o: SoakFaultOptions): Promise<SoakFault[]> {
  const { cluster, rng, meter } = o;
  const faults: SoakFault[] = [];
  const kinds = o.kinds?.length ? o.kinds : SOAK_FAULT_KINDS;
  const firstRound = rng.shuffle(kinds);
  const rel = (clock: number) => clock - meter.origin;
  const more = () => !o.stopped?.() && (firstRound.length > 0 || performance.now() < o.until);
  while (more()) {
    const plan = planFault(rng, o.timing, firstRound.shift(), kinds);
    await sleep(plan.gapMs);
    if (o.stopped?.()) break;
    const startClock = performance.now();
    const f: SoakFault = { kind: plan.kind, target: 'all', detail: '', at: rel(startClock), startClock };
    faults.push(f);
    let watch: RecoveryWatch | undefined;
    try {
      if (plan.kind === 'restart-all') {
        const sig = plan.hard ? 'SIGKILL' : 'SIGTERM';
        f.detail = sig;
        const held: HeldDown = { from: f.at, to: Infinity };
        o.heldDown.push(held);
        watch = meter.watch(performance.now());
        meter.fault(startClock, `restart-all ${sig}`);
        o.onEvent?.(f, 'start');
        const exits = await Promise.all(cluster.ids.map((id) => cluster.stop(id, sig)));
        if (!plan.hard) f.detail += `, exits ${exits.map((e) => e.code ?? e.signal).join('/')}`;
        try {
          await cluster.startAll(90_000);
        } finally {
          held.to = rel(performance.now());
        }
        f.readyAt = held.to;
      } else {
        const running = cluster.ids.filter((id) => cluster.isRunning(id) && !o.paused.has(id));
        let target = plan.leader ? await currentLeader(cluster) : undefined;
        f.detail = target ? 'leader' : plan.leader ? 'random replica (no leader known)' : 'random replica';
        target ??= running[plan.pick % running.length] ?? cluster.ids[0]!;
        f.target = target;
        const t0 = performance.now();
        f.startClock = t0;
        f.at = rel(t0);
        watch = meter.watch(t0);
        meter.fault(t0, `${plan.kind} ${target}`);
        o.onEvent?.(f, 'start');
        if (plan.kind === 'kill9') {
          await cluster.stop(target, 'SIGKILL');
          await sleep(plan.holdMs);
          await cluster.start(target, 90_000);
        } else {
          cluster.signal(target, 'SIGSTOP');
          o.paused.add(target);
          await sleep(plan.holdMs);
          cluster.signal(target, 'SIGCONT');
          o.paused.delete(target);
        }
        f.detail += `, ${plan.holdMs} ms`;
      }
      f.healedAt = rel(performance.now());
      o.onEvent?.(f, 'healed');
    } catch (e) {
      f.error = (e as Error).message.slice(0, 300);
      f.healedAt = rel(performance.now());
      o.onEvent?.(f, 'healed');
    }
    if (watch) {
      await waitRecovery(watch, f.startClock + o.recoverTimeoutMs, o.stopped);
      meter.unwatch(watch);
      if (watch.recoveredAt !== undefined) {
        f.recoveryMs = watch.recoveredAt - f.startClock;
        if (f.readyAt !== undefined) f.afterReadyMs = rel(watch.recoveredAt) - f.readyAt;
        o.onEvent?.(f, 'recovered');
      } else o.onEvent?.(f, 'unrecovered');
    }
  }
  return faults;
}
