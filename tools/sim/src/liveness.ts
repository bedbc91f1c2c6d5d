import type { ReplicaId, StateMachine } from '@decree/protocol';
import type { SimCluster } from '@decree/testkit';

/** Runs every pending promise callback (microtasks only: nothing in a simulation does real I/O). */
export const drain = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Virtual time in small steps; promise callbacks (snapshot work, submissions) run between them. */
export async function runDrained<SM extends StateMachine>(c: SimCluster<SM>, ms: number, stepMs = 5): Promise<void> {
  const end = c.sched.now() + ms;
  while (c.sched.now() < end) {
    c.run(Math.min(stepMs, end - c.sched.now()));
    await drain();
  }
}

/** One line per live replica: its roles' states, ballot, promised and highest rounds, log and drops. */
export function replicaStates<SM extends StateMachine>(c: SimCluster<SM>): string[] {
  const lines: string[] = [];
  for (const id of c.ids) {
    const node = c.nodes.get(id)!;
    if (!node.replica) {
      lines.push(`${id}: down`);
      continue;
    }
    const r = node.replica;
    const st = r.status();
    const p = r.proposer.getSnapshot().context;
    const a = r.acceptor.getSnapshot().context;
    const pages = [...p.promisePages]
      .map(([from, pp]) => `${from}:${pp.entries.length} entries, next ${pp.next}`)
      .join(',');
    lines.push(
      `${id}: proposer=${st.states.proposer} elector=${st.states.elector} acceptor=${st.states.acceptor} ` +
        `ballot=${p.ballot.round}.${p.ballot.leader} promised=${st.promised.round}.${st.promised.leader} ` +
        `maxRound=${p.maxRound} executed=${st.executedUpTo} fromSlot=${p.fromSlot} ` +
        `log=${a.accepted.size} slots above ${a.truncatedBelow} promises=${p.promises.size}/${p.quorum} ` +
        `pages=${pages || '-'} ` +
        `awaiting=${p.awaitingCatchup}`,
    );
  }
  return lines;
}

/** The bounded links' drop counters, in one line. */
export function linkSummary<SM extends StateMachine>(c: SimCluster<SM>): string {
  const s = c.net.linkStats();
  if (!s) return `links unbounded (dropped ${c.net.droppedCount})`;
  const types = Object.entries(s.fullByType)
    .sort((x, y) => y[1] - x[1])
    .map(([t, n]) => `${t} ${n}`)
    .join(', ');
  const mb = (b: number) => (b / 1e6).toFixed(1);
  const lanes = s.lanes.map((l) => `${l.name}: sent ${l.sent} (${mb(l.sentBytes)} MB), full ${l.dropsFull}`);
  const drops = `drops full=${s.drops.full}${types ? ` (${types})` : ''} down=${s.drops.down} loss=${s.drops.loss}`;
  return `links: ${drops}; ${lanes.join('; ')}`;
}

export interface LivenessResult {
  ok: boolean;
  /** virtual ms from the start of the check to the first leader, and to the first committed write */
  leaderAfterMs?: number;
  commitAfterMs?: number;
  /** the violation, when not ok */
  message?: string;
}

/**
 * Liveness once the faults stopped: within `boundMs` of virtual time a leader is elected and a write
 * (a fresh command each attempt, from `write`) commits. Runs the cluster meanwhile.
 */
export async function checkLiveness<SM extends StateMachine>(
  c: SimCluster<SM>,
  boundMs: number,
  write: (attempt: number) => Uint8Array,
  onAck?: (cmd: Uint8Array) => void,
): Promise<LivenessResult> {
  const t0 = c.sched.now();
  const end = t0 + boundMs;
  const rounds0 = new Map(c.up().map((id) => [id, c.replica(id).status().promised.round]));
  let leaderAt: number | undefined;
  let committedAt: number | undefined;
  let inFlight = false;
  let attempt = 0;
  while (c.sched.now() < end && committedAt === undefined) {
    const l = c.leader();
    if (l !== undefined && leaderAt === undefined) leaderAt = c.sched.now();
    if (l !== undefined && !inFlight) {
      inFlight = true;
      const cmd = write(attempt++);
      const at: ReplicaId = l;
      c.replica(at)
        .submit(cmd)
        .then(
          () => {
            committedAt ??= c.sched.now();
            onAck?.(cmd);
            inFlight = false;
          },
          () => {
            inFlight = false;
          },
        );
    }
    c.run(Math.min(5, end - c.sched.now()));
    await drain();
  }
  if (committedAt !== undefined)
    return { ok: true, leaderAfterMs: (leaderAt ?? committedAt) - t0, commitAfterMs: committedAt - t0 };
  const rounds = c
    .up()
    .map((id) => `${id} ${rounds0.get(id) ?? '?'}->${c.replica(id).status().promised.round}`)
    .join(', ');
  const head =
    leaderAt === undefined
      ? `no leader after faults stopped: none within ${boundMs} ms (virtual) from t=${t0.toFixed(0)}`
      : `no write committed after faults stopped: a leader since t=${leaderAt.toFixed(0)}, ` +
        `no commit within ${boundMs} ms (virtual) from t=${t0.toFixed(0)}`;
  return {
    ok: false,
    ...(leaderAt !== undefined ? { leaderAfterMs: leaderAt - t0 } : {}),
    message: `${head}; promised rounds ${rounds}\n  ${replicaStates(c).join('\n  ')}\n  ${linkSummary(c)}`,
  };
}
