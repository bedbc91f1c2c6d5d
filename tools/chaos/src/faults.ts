import type { ChaosCluster } from './cluster.ts';
import { sleep } from './cluster.ts';
import type { CutMode } from './proxy.ts';
import type { Rng } from './rng.ts';

/** the default workload's fault kinds */
export const FAULT_KINDS = ['kill9', 'sigterm', 'cut-link', 'isolate'] as const;
/**
 * every kind `runFaults` can inject. `pause`: SIGSTOP, then SIGCONT (the victim wakes up deposed);
 * `deafen`: cut every link *into* the victim (it still sends: its accepts and heartbeats arrive, the
 * answers do not; a leader's window fills, it steps down with slots accepted and commands queued)
 */
export const ALL_FAULT_KINDS = [...FAULT_KINDS, 'pause', 'deafen'] as const;
export type FaultKind = (typeof ALL_FAULT_KINDS)[number];

export interface FaultEvent {
  kind: FaultKind;
  /** the replica killed/isolated, or the link "a<->b" / "a->b" */
  target: string;
  /** e.g. "refuse", "blackhole", "exit code 0", "target was leader" */
  detail: string;
  /** ms since the start of the run (the history's clock is separate: performance.now()) */
  at: number;
  healedAt?: number;
  /** performance.now() when the fault started and ended, on the history's clock */
  startClock: number;
  endClock?: number;
  error?: string;
}

export interface FaultOptions {
  cluster: ChaosCluster;
  rng: Rng;
  /** stop starting faults after this Date.now() */
  until: number;
  /** pause before each fault, ms [min, max] */
  gapMs?: [number, number];
  /** how long a fault lasts, ms [min, max] */
  holdMs?: [number, number];
  runStart: number;
  onEvent?: (e: FaultEvent, phase: 'start' | 'end') => void;
  /** stop early (checked between faults) */
  aborted?: () => boolean;
  /** the kinds to inject (default FAULT_KINDS) */
  kinds?: readonly FaultKind[];
  /** share of kill9/sigterm/isolate/pause faults aimed at the current leader (default 0.5) */
  leaderShare?: number;
  /** who leads now (default: ask a random replica's DECREE STATUS) */
  findLeader?: () => Promise<string | undefined>;
}

/**
 * Injects one fault at a time until `until`: the first ones are a shuffled round of every kind
 * (always completed, even past `until`), the rest random. A fault is healed (the process restarted
 * with its data dir, the links restored) before the next starts, so at most one replica is ever
 * down or cut off. Half the time the victim is the current leader.
 */
export async function runFaults(o: FaultOptions): Promise<FaultEvent[]> {
  const { cluster, rng } = o;
  const [gapMin, gapMax] = o.gapMs ?? [1000, 3000];
  const [holdMin, holdMax] = o.holdMs ?? [1000, 4000];
  const events: FaultEvent[] = [];
  const kinds = o.kinds?.length ? o.kinds : FAULT_KINDS;
  const firstRound = rng.shuffle(kinds);
  const now = () => Date.now() - o.runStart;
  const findLeader =
    o.findLeader ??
    (async () => {
      const st = await cluster.status(rng.pick(cluster.ids));
      return st?.leader;
    });

  const victim = async (): Promise<{ id: string; leader: boolean }> => {
    if (rng.next() < (o.leaderShare ?? 0.5)) {
      const l = await findLeader();
      if (l && cluster.ids.includes(l)) return { id: l, leader: true };
    }
    const id = rng.pick(cluster.ids);
    return { id, leader: false };
  };

  // the first round of every kind is always completed, however short `until` is
  const more = () => !o.aborted?.() && (firstRound.length > 0 || Date.now() < o.until);
  while (more()) {
    await sleep(rng.int(gapMin, gapMax));
    if (!more()) break;
    const kind: FaultKind = firstRound.shift() ?? rng.pick(kinds);
    const hold = rng.int(holdMin, holdMax);
    const mode: CutMode = rng.next() < 0.5 ? 'refuse' : 'blackhole';
    let ev: FaultEvent;
    try {
      switch (kind) {
        case 'kill9':
        case 'sigterm': {
          const v = await victim();
          ev = {
            kind,
            target: v.id,
            detail: v.leader ? 'leader' : 'random replica',
            at: now(),
            startClock: performance.now(),
          };
          events.push(ev);
          o.onEvent?.(ev, 'start');
          const exit = await cluster.stop(v.id, kind === 'kill9' ? 'SIGKILL' : 'SIGTERM');
          ev.detail += kind === 'sigterm' ? `, exit ${exit.code ?? exit.signal}` : '';
          await sleep(hold);
          await cluster.start(v.id);
          break;
        }
        case 'pause': {
          const v = await victim();
          const detail = v.leader ? 'leader' : 'random replica';
          ev = { kind, target: v.id, detail, at: now(), startClock: performance.now() };
          events.push(ev);
          o.onEvent?.(ev, 'start');
          if (!cluster.signal(v.id, 'SIGSTOP')) ev.detail += ', not running';
          try {
            await sleep(hold);
          } finally {
            cluster.signal(v.id, 'SIGCONT');
          }
          break;
        }
        case 'cut-link': {
          const [a, b] = rng.shuffle(cluster.ids);
          const oneWay = rng.next() < 0.3;
          ev = {
            kind,
            target: oneWay ? `${a}->${b}` : `${a}<->${b}`,
            detail: mode,
            at: now(),
            startClock: performance.now(),
          };
          events.push(ev);
          o.onEvent?.(ev, 'start');
          cluster.cutLink(a!, b!, mode, oneWay);
          await sleep(hold);
          cluster.healAll();
          break;
        }
        case 'deafen':
        case 'isolate': {
          const v = await victim();
          ev = {
            kind,
            target: v.id,
            detail: `${mode}${v.leader ? ', leader' : ''}`,
            at: now(),
            startClock: performance.now(),
          };
          events.push(ev);
          o.onEvent?.(ev, 'start');
          if (kind === 'isolate') cluster.isolate(v.id, mode);
          else cluster.deafen(v.id, mode);
          await sleep(hold);
          cluster.healAll();
          break;
        }
      }
    } catch (e) {
      const last = events.at(-1);
      if (last) last.error = (e as Error).message;
      cluster.healAll();
    }
    const last = events.at(-1);
    if (last && last.endClock === undefined) {
      last.healedAt = now();
      last.endClock = performance.now();
      o.onEvent?.(last, 'end');
    }
  }
  return events;
}
