/**
 * Configuration changes during the chunks workload, through the RESP port (`DECREE CONFIG SET id…`,
 * docs/operations.md "Membership changes"). Four processes, three members: from three members the
 * next change adds the spare (four members) or replaces one member by it; from four it removes one.
 * A third of the removals and replacements take out the leader (it steps down; the others elect).
 */
import type { ChaosCluster } from './cluster.ts';
import { sleep } from './cluster.ts';
import type { LeaderTracker } from './leader.ts';
import { connectNoRetry } from './redis.ts';
import type { Rng } from './rng.ts';

export interface ConfigChange {
  kind: 'add' | 'remove' | 'replace';
  from: string[];
  to: string[];
  /** the leader was taken out of the configuration */
  removedLeader: boolean;
  /** the replica the change was sent to */
  via: string;
  /** ms since the run started */
  at: number;
  doneAt?: number;
  /** performance.now() at the request and its answer (the history's clock) */
  startClock: number;
  endClock?: number;
  /** `epoch N at slot S`, or the error reply */
  result?: string;
  error?: string;
}

export interface ReconfigOptions {
  cluster: ChaosCluster;
  tracker: LeaderTracker;
  rng: Rng;
  runStart: number;
  /** pause before each change, ms [min, max] */
  gapMs: [number, number];
  /** one change's answer must come within this (ms) */
  timeoutMs: number;
  running: () => boolean;
  onEvent?: (c: ConfigChange, phase: 'start' | 'end') => void;
}

interface ConfigReply {
  epoch: number;
  members: string[];
  leader?: string;
  slot?: number;
}

async function ask(port: number, args: string[], timeoutMs: number): Promise<unknown> {
  const r = await connectNoRetry(port, 2000);
  const t = setTimeout(() => r.disconnect(false), timeoutMs);
  try {
    return await r.call(args[0]!, ...args.slice(1));
  } finally {
    clearTimeout(t);
    r.disconnect(false);
  }
}

/** The configuration and leader as the tracked leader (or any running replica) reports it. */
async function currentConfig(o: ReconfigOptions): Promise<ConfigReply | undefined> {
  const ids = [o.tracker.leader, ...o.rng.shuffle(o.cluster.ids)].filter((x): x is string => !!x);
  for (const id of ids) {
    if (!o.cluster.isRunning(id)) continue;
    try {
      const v = await ask(o.cluster.clientPort(id), ['DECREE', 'CONFIG'], 2000);
      const c = JSON.parse(String(v)) as ConfigReply;
      if (c.leader && c.members.includes(c.leader)) return c;
    } catch {
      // next replica
    }
  }
  return undefined;
}

/** Runs changes one at a time until `running()` is false (the change in progress completes). */
export async function runReconfig(o: ReconfigOptions): Promise<ConfigChange[]> {
  const { cluster, rng } = o;
  const changes: ConfigChange[] = [];
  while (o.running()) {
    await sleep(rng.int(...o.gapMs));
    if (!o.running()) break;
    const cur = await currentConfig(o);
    if (!cur?.leader) continue;
    const spare = cluster.ids.filter((id) => !cur.members.includes(id));
    const leader = cur.leader;
    const takeLeader = rng.next() < 1 / 3;
    const pickOut = () => (takeLeader ? leader : rng.pick(cur.members.filter((m) => m !== leader)));
    let kind: ConfigChange['kind'];
    let to: string[];
    if (cur.members.length >= 4 || spare.length === 0) {
      kind = 'remove';
      const out = pickOut();
      to = cur.members.filter((m) => m !== out);
    } else if (rng.next() < 0.5) {
      kind = 'add';
      to = [...cur.members, rng.pick(spare)];
    } else {
      kind = 'replace';
      const out = pickOut();
      to = [...cur.members.filter((m) => m !== out), rng.pick(spare)];
    }
    to.sort();
    const c: ConfigChange = {
      kind,
      from: [...cur.members],
      to,
      removedLeader: !to.includes(leader),
      via: leader,
      at: Date.now() - o.runStart,
      startClock: performance.now(),
    };
    changes.push(c);
    o.onEvent?.(c, 'start');
    // a NOT_LEADER refusal is followed (to the leader it names, or the one polled now) twice at most;
    // anything else ends this change (a change whose answer was lost is not sent again)
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const v = await ask(cluster.clientPort(c.via), ['DECREE', 'CONFIG', 'SET', ...to], o.timeoutMs);
        const r = JSON.parse(String(v)) as ConfigReply;
        c.result = `configuration ${r.epoch}: ${r.members.join(',')} (chosen at slot ${r.slot ?? '?'})`;
        c.error = undefined;
        break;
      } catch (e) {
        c.error = ((e as Error).message ?? String(e)).slice(0, 200);
        if (!/NOT_LEADER/.test(c.error) || /may still take effect/.test(c.error)) break;
        const hint = /leader=(\S+)/.exec(c.error)?.[1] ?? (await o.tracker.poll());
        if (!hint || hint === c.via || !cluster.ids.includes(hint)) break;
        c.via = hint;
      }
    }
    c.doneAt = Date.now() - o.runStart;
    c.endClock = performance.now();
    o.onEvent?.(c, 'end');
  }
  return changes;
}
