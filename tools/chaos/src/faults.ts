import type { ChaosCluster } from './cluster.ts';
import { sleep } from './cluster.ts';
import type { CutMode } from './proxy.ts';
import type { Rng } from './rng.ts';

export const FAULT_KINDS = ['kill9', 'sigterm', 'cut-link', 'isolate'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

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
}

/**
 * Injects one fault at a time until `until`: the first ones are a shuffled round of every kind
 * (always completed, even past `until`), the rest random. A fault is healed (the process restarted with its data dir, the links restored)
 * before the next starts, so at most one replica is ever down or cut off. Half the time the victim
 * is the current leader.
 */
export async function runFaults(o: FaultOptions): Promise<FaultEvent[]> {
  const { cluster, rng } = o;
  const [gapMin, gapMax] = o.gapMs ?? [1000, 3000];
  const [holdMin, holdMax] = o.holdMs ?? [1000, 4000];
  const events: FaultEvent[] = [];
  const firstRound = rng.shuffle(FAULT_KINDS);
  const now = () => Date.now() - o.runStart;

  const victim = async (): Promise<{ id: string; leader: boolean }> => {
    if (rng.next() < 0.5) {
      const st = await cluster.status(rng.pick(cluster.ids));
      if (st?.leader && cluster.ids.includes(st.leader)) return { id: st.leader, leader: true };
    }
    const id = rng.pick(cluster.ids);
    return { id, leader: false };
  };

  // the first round of every kind is always completed, however short `until` is
  const more = () => !o.aborted?.() && (firstRound.length > 0 || Date.now() < o.until);
  while (more()) {
    await sleep(rng.int(gapMin, gapMax));
    if (!more()) break;
    const kind: FaultKind = firstRound.shift() ?? rng.pick(FAULT_KINDS);
    const hold = rng.int(holdMin, holdMax);
    const mode: CutMode = rng.next() < 0.5 ? 'refuse' : 'blackhole';
    let ev: FaultEvent;
    try {
      switch (kind) {
        case 'kill9':
        case 'sigterm': {
          const v = await victim();
          ev = { kind, target: v.id, detail: v.leader ? 'leader' : 'random replica', at: now(), startClock: performance.now() };
          events.push(ev);
          o.onEvent?.(ev, 'start');
          const exit = await cluster.stop(v.id, kind === 'kill9' ? 'SIGKILL' : 'SIGTERM');
          ev.detail += kind === 'sigterm' ? `, exit ${exit.code ?? exit.signal}` : '';
          await sleep(hold);
          await cluster.start(v.id);
          break;
        }
        case 'cut-link': {
          const [a, b] = rng.shuffle(cluster.ids);
          const oneWay = rng.next() < 0.3;
          ev = { kind, target: oneWay ? `${a}->${b}` : `${a}<->${b}`, detail: mode, at: now(), startClock: performance.now() };
          events.push(ev);
          o.onEvent?.(ev, 'start');
          cluster.cutLink(a!, b!, mode, oneWay);
          await sleep(hold);
          cluster.healAll();
          break;
        }
        case 'isolate': {
          const v = await victim();
          ev = { kind, target: v.id, detail: `${mode}${v.leader ? ', leader' : ''}`, at: now(), startClock: performance.now() };
          events.push(ev);
          o.onEvent?.(ev, 'start');
          cluster.isolate(v.id, mode);
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
