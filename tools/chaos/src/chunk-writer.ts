/**
 * The chunks workload's writers: pipelines of 100-400 commands (a few 300 KB SETs, INCRs, small SETs)
 * sent at once with ioredis, so that one RESP chunk the server reads is cut across several slots of up
 * to 512 KiB. Half the pipelines go to the replica that leads, half to another one (forwarded). Nothing
 * is retried: a command without an answer is in doubt.
 */
import type { Redis } from 'ioredis';
import type { CounterLedger } from './counters.ts';
import type { LeaderTracker, TargetRole } from './leader.ts';
import { causeLabel, connectNoRetry } from './redis.ts';
import type { Rng } from './rng.ts';
import { sleep } from './cluster.ts';

export interface ChunkShape {
  /** commands per pipeline: [min, max] */
  size: [number, number];
  /** big SETs per pipeline */
  big: number;
  bigBytes: number;
  bigKeys: number;
  /** share of the other commands that are INCRs */
  incrShare: number;
  /** share of the INCRs that go to the pipeline's own counter (`pc:<writer>.<n>`), the rest to shared ones */
  ownShare: number;
  /** shared counters `ctr:0..` */
  counters: number;
  /** keys of the small SETs */
  keyspace: number;
  /**
   * padding of the pipeline's own counter key (bytes): a fat INCR fills the server's 64 KB reads with
   * fewer commands, so one RESP chunk holds a few hundred INCRs of that key and a chunk applied twice
   * shows above the pipeline's own in-doubt INCRs
   */
  keyPad: number;
}

export const DEFAULT_CHUNK_SHAPE: ChunkShape = {
  size: [100, 400],
  big: 3,
  bigBytes: 300 * 1024,
  bigKeys: 16,
  incrShare: 0.6,
  ownShare: 0.7,
  counters: 4,
  keyspace: 1000,
  keyPad: 200,
};

export const sharedCounter = (i: number) => `ctr:${i}`;
export const ownCounter = (writer: string, n: number, pad = 0) =>
  `pc:${writer}.${n}${pad > 0 ? ':' + '.'.repeat(pad) : ''}`;
export const bigKey = (i: number) => `big:${i}`;
export const smallKey = (i: number) => `k:${i}`;

/** One pipeline's outcome (written to <run dir>/pipelines.jsonl). */
export interface PipelineRecord {
  writer: string;
  n: number;
  target: string;
  role: TargetRole;
  commands: number;
  /** performance.now() when sent and when the last answer (or the give-up) came */
  sent: number;
  done: number;
  answered: number;
  /** in-doubt commands by cause */
  doubt: Record<string, number>;
  /** the pipeline's own counter: INCRs sent, acknowledged, and the acknowledged results in command order */
  own: { key: string; sent: number; acked: number; results: number[] };
}

export interface ChunkStats {
  pipelines: number;
  /** every pipeline's outcome */
  log: PipelineRecord[];
  /** pipelines by the role of the replica they went to (when sent) */
  byRole: Record<TargetRole, number>;
  commands: number;
  answered: number;
  inDoubt: number;
  /** in-doubt commands by cause (TRYAGAIN, ERR, connection-lost, timeout…) */
  causes: Record<string, number>;
  samples: Record<string, string>;
  bigSets: number;
  connectFailures: number;
  /** answers of the wrong type for their command (an answer meant for another request) */
  crossed: string[];
  crossedCount: number;
  /** pipelines whose INCRs of one key were answered out of order (pipelined commands ran reordered) */
  reordered: string[];
  reorderedCount: number;
}

export function newChunkStats(): ChunkStats {
  return {
    pipelines: 0,
    log: [],
    byRole: { leader: 0, follower: 0, spare: 0 },
    commands: 0,
    answered: 0,
    inDoubt: 0,
    causes: {},
    samples: {},
    bigSets: 0,
    connectFailures: 0,
    crossed: [],
    crossedCount: 0,
    reordered: [],
    reorderedCount: 0,
  };
}

export interface ChunkWriterOptions {
  name: string;
  shape: ChunkShape;
  /** printable body of the big values, shape.bigBytes long */
  template: Buffer;
  rng: Rng;
  ports: ReadonlyMap<string, number>;
  tracker: LeaderTracker;
  /** share of the pipelines sent to the leader (default 0.6; of the rest 3/4 go to followers) */
  toLeader?: number;
  /** is this replica process up (the harness's view) */
  isRunning: (id: string) => boolean;
  ledger: CounterLedger;
  stats: ChunkStats;
  /** a pipeline not fully answered after this long is given up: its connection is closed */
  pipelineTimeoutMs: number;
  running: () => boolean;
  /** aborting closes the connection at once: what is in flight is in doubt */
  stop: AbortSignal;
}

type Cmd = { kind: 'big' | 'set'; key: string } | { kind: 'incr'; key: string };

/** One writer: a pipeline at a time, each on a fresh connection, until `running()` is false. */
export async function runChunkWriter(o: ChunkWriterOptions): Promise<void> {
  const { shape, rng, stats, ledger } = o;
  let seq = 0;
  let p = 0;
  while (o.running() && !o.stop.aborted) {
    p++;
    // the target: the leader (toLeader, 60%), else a follower (3/4 of the rest) or a replica outside the configuration
    const up = [...o.ports.keys()].filter((id) => o.isRunning(id));
    const leader = o.tracker.leader;
    const followers = up.filter((id) => id !== leader && o.tracker.members.includes(id));
    const outside = up.filter((id) => id !== leader && !o.tracker.members.includes(id));
    const x = rng.next();
    const tl = o.toLeader ?? 0.6;
    const toFollower = x < tl + (1 - tl) * 0.75 && followers.length > 0;
    const pool = x < tl && leader && up.includes(leader) ? [leader] : toFollower ? followers : outside;
    const target = pool.length ? rng.pick(pool) : up.length ? rng.pick(up) : undefined;
    if (!target) {
      await sleep(200);
      continue;
    }
    const role = o.tracker.roleOf(target);
    let r: Redis;
    try {
      r = await connectNoRetry(o.ports.get(target)!, 2000);
    } catch {
      stats.connectFailures++;
      await sleep(rng.int(100, 300));
      continue;
    }
    const onAbort = () => r.disconnect(false);
    o.stop.addEventListener('abort', onAbort, { once: true });
    try {
      const n = rng.int(o.shape.size[0], o.shape.size[1]);
      const bigAt = new Set<number>();
      while (bigAt.size < Math.min(shape.big, n)) bigAt.add(rng.int(0, n - 1));
      const own = ownCounter(o.name, p, shape.keyPad);
      const cmds: Cmd[] = [];
      const pipe = r.pipeline();
      for (let i = 0; i < n; i++) {
        if (bigAt.has(i)) {
          const key = bigKey(rng.int(0, shape.bigKeys - 1));
          const h = Buffer.from(`${key}=${o.name}.${++seq};`);
          pipe.set(key, Buffer.concat([h, o.template.subarray(0, shape.bigBytes - h.length)]));
          cmds.push({ kind: 'big', key });
        } else if (rng.next() < shape.incrShare) {
          const mine = rng.next() < shape.ownShare;
          const key = mine ? own : sharedCounter(rng.int(0, shape.counters - 1));
          pipe.incr(key);
          cmds.push({ kind: 'incr', key });
        } else {
          const key = smallKey(rng.int(0, shape.keyspace - 1));
          pipe.set(key, `${key}=${o.name}.${++seq};`);
          cmds.push({ kind: 'set', key });
        }
      }
      if (o.stop.aborted) break;
      for (const c of cmds) if (c.kind === 'incr') ledger.sent(c.key, c.key === own ? 'pipeline' : 'shared');
      stats.pipelines++;
      stats.byRole[role]++;
      stats.commands += n;
      const rec: PipelineRecord = {
        writer: o.name,
        n: p,
        target,
        role,
        commands: n,
        sent: performance.now(),
        done: 0,
        answered: 0,
        doubt: {},
        own: { key: own, sent: cmds.filter((c) => c.key === own).length, acked: 0, results: [] },
      };
      stats.log.push(rec);
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        r.disconnect(false);
      }, o.pipelineTimeoutMs);
      let results: [Error | null, unknown][];
      try {
        results = ((await pipe.exec()) ?? []) as [Error | null, unknown][];
      } catch (e) {
        // the whole pipeline failed before any answer: every command is in doubt
        results = cmds.map(() => [e as Error, null]);
      } finally {
        clearTimeout(timer);
        rec.done = performance.now();
      }
      const seen = new Map<string, number>();
      let disorder: string | undefined;
      for (let i = 0; i < n; i++) {
        const c = cmds[i]!;
        const [err, v] = results[i] ?? [new Error('no result'), null];
        const who = `${o.name}#${p}[${i}]@${target}(${role})`;
        if (err) {
          stats.inDoubt++;
          const cause = causeLabel(err, timedOut);
          stats.causes[cause] = (stats.causes[cause] ?? 0) + 1;
          stats.samples[cause] ??= (err.message ?? String(err)).slice(0, 160);
          rec.doubt[cause] = (rec.doubt[cause] ?? 0) + 1;
          if (c.kind === 'incr') ledger.doubt(c.key);
          continue;
        }
        const okType = c.kind === 'incr' ? typeof v === 'number' && Number.isSafeInteger(v) : v === 'OK';
        if (!okType) {
          // an answer that is not one of this command's: it was meant for another request
          stats.inDoubt++;
          stats.crossedCount++;
          if (stats.crossed.length < 20)
            stats.crossed.push(
              `${who}: ${c.kind === 'big' ? 'SET (big)' : c.kind.toUpperCase()} ${c.key} ` +
                `answered ${JSON.stringify(v)?.slice(0, 80)}`,
            );
          rec.doubt['wrong-type'] = (rec.doubt['wrong-type'] ?? 0) + 1;
          if (c.kind === 'incr') ledger.doubt(c.key);
          continue;
        }
        stats.answered++;
        rec.answered++;
        if (c.kind === 'big') stats.bigSets++;
        if (c.kind === 'incr') {
          const res = v as number;
          ledger.acked(c.key, res, who);
          if (c.key === own) {
            rec.own.acked++;
            rec.own.results.push(res);
          }
          const prev = seen.get(c.key);
          if (prev !== undefined && res <= prev && !disorder)
            disorder = `${who}: INCR ${c.key} answered ${res} after ${prev}`;
          seen.set(c.key, res);
        }
      }
      if (disorder) {
        stats.reorderedCount++;
        if (stats.reordered.length < 10) stats.reordered.push(disorder);
      }
    } finally {
      o.stop.removeEventListener('abort', onAbort);
      r.disconnect(false);
    }
  }
}
