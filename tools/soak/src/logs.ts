import { createReadStream, existsSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import type { ChaosCluster, ReplicaStatus } from '@decree/chaos';

/** Per replica log (pino JSON lines): warn and error messages with their counts, most frequent first. */
export async function digestLogs(
  logDir: string,
  ids: readonly string[],
): Promise<Record<string, { msg: string; level: number; count: number }[]>> {
  const out: Record<string, { msg: string; level: number; count: number }[]> = {};
  for (const id of ids) {
    const file = path.join(logDir, `${id}.log`);
    const counts = new Map<string, { msg: string; level: number; count: number }>();
    if (existsSync(file)) {
      const rl = readline.createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
      for await (const line of rl) {
        if (!line.startsWith('{') || !line.includes('"level":')) continue;
        let j: { level?: number; msg?: string };
        try {
          j = JSON.parse(line) as { level?: number; msg?: string };
        } catch {
          continue;
        }
        if ((j.level ?? 0) < 40 || !j.msg) continue;
        const c = counts.get(j.msg) ?? { msg: j.msg, level: j.level!, count: 0 };
        c.count++;
        counts.set(j.msg, c);
      }
    }
    out[id] = [...counts.values()].sort((a, b) => b.count - a.count).slice(0, 10);
  }
  return out;
}

type FullStatus = ReplicaStatus & {
  ballot?: { round: number; leader: string };
  promised?: { round: number; leader: string };
  states?: Record<string, string>;
  pendingSubmissions?: number;
};

const b = (x: { round: number; leader: string } | undefined) => (x ? `${x.round}.${x.leader || '-'}` : '-');

/** One line of every replica's DECREE STATUS (role, ballot, promised, executed/chosen, proposer state). */
export async function statusLine(cluster: ChaosCluster): Promise<{ line: string; raw: Record<string, unknown> }> {
  const raw: Record<string, unknown> = {};
  const parts: string[] = [];
  for (const id of cluster.ids) {
    if (!cluster.isRunning(id)) {
      parts.push(`${id} down`);
      raw[id] = 'down';
      continue;
    }
    const s = (await cluster.status(id, 2000)) as FullStatus | undefined;
    raw[id] = s ?? 'no answer';
    if (!s) {
      parts.push(`${id} no answer`);
      continue;
    }
    const st = s.states ? ` ${s.states.proposer}/${s.states.acceptor}/${s.states.learner}` : '';
    parts.push(
      `${id} ${s.role} leader=${s.leader ?? '-'} ballot ${b(s.ballot)} promised ${b(s.promised)} ` +
        `exec ${s.executedUpTo} chosen ${s.chosenUpTo ?? '-'} pending ${s.pendingSubmissions ?? '-'}${st}`,
    );
  }
  return { line: parts.join(' | '), raw };
}
