/**
 * The bulk load: redis-benchmark-style pipelines, counted (windows, recovery) and entered in the
 * durability ledger, but not in the linearizability history.
 */
import { RespError, type RespValue, type Rng } from '@decree/chaos';
import type { Ledger, SetEntry } from './ledger.ts';
import type { Meter } from './meter.ts';
import { encodeCommand, PipelineConnection } from './pipeline.ts';
import { smallValue, valueHeader } from './values.ts';

export interface BulkShape {
  /** commands per pipeline */
  pipeline: number;
  /** big SETs per pipeline */
  big: number;
  bigBytes: number;
  bigKeys: number;
  /** keys of the 64-byte SETs */
  keyspace: number;
  counters: number;
  /** share of the non-big commands that are INCRs */
  incrShare: number;
}

export const DEFAULT_SHAPE: BulkShape = {
  pipeline: 400,
  big: 3,
  bigBytes: 300 * 1024,
  bigKeys: 32,
  keyspace: 10_000,
  counters: 16,
  incrShare: 0.25,
};

export const bigKey = (i: number) => `big:${i}`;
export const smallKey = (i: number) => `k:${i}`;
export const counterKey = (i: number) => `cnt:${i}`;

export interface BulkOptions {
  shape: BulkShape;
  /** the big values' body (printable ASCII, shape.bigBytes long) */
  template: Buffer;
  ports: readonly number[];
  rng: Rng;
  ledger: Ledger;
  meter: Meter;
  /** no reply progress for this long: the rest of the pipeline is given up (unknown outcome) */
  stallMs: number;
  running: () => boolean;
  /** aborting closes the connection at once: the pipeline in flight gets an unknown outcome */
  stop?: AbortSignal;
  /** writer name in value ids, e.g. "b1" */
  name: string;
  /** pipelines sent, replies by kind */
  stats: BulkStats;
}

export interface BulkStats {
  pipelines: number;
  sent: number;
  ok: number;
  errors: number;
  unknown: number;
  connects: number;
  connectFailures: number;
}

export function newBulkStats(): BulkStats {
  return { pipelines: 0, sent: 0, ok: 0, errors: 0, unknown: 0, connects: 0, connectFailures: 0 };
}

type Cmd = { kind: 'set'; entry: SetEntry } | { kind: 'incr'; key: string };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * One bulk connection: pipelines until `running()` is false. A pipeline with an error reply or a
 * broken connection ends the connection; the next goes to a random replica. Nothing is retried.
 */
export async function runBulkClient(o: BulkOptions): Promise<void> {
  const { shape, rng, ledger, meter, stats } = o;
  let conn: PipelineConnection | undefined;
  let seq = 0;
  o.stop?.addEventListener('abort', () => conn?.close(), { once: true });
  while (o.running() && !o.stop?.aborted) {
    if (!conn || conn.closed) {
      try {
        conn = await PipelineConnection.connect(rng.pick(o.ports), '127.0.0.1', 2000);
        stats.connects++;
      } catch {
        conn = undefined;
        stats.connectFailures++;
        await sleep(rng.int(100, 300));
        continue;
      }
    }
    const n = shape.pipeline;
    const bigAt = new Set<number>();
    while (bigAt.size < Math.min(shape.big, n)) bigAt.add(rng.int(0, n - 1));
    const parts: Buffer[] = [];
    const cmds: Cmd[] = [];
    const invoke = performance.now();
    for (let i = 0; i < n; i++) {
      if (bigAt.has(i)) {
        const key = bigKey(rng.int(0, shape.bigKeys - 1));
        const id = `${o.name}.${++seq}`;
        const h = Buffer.from(valueHeader(key, id));
        encodeCommand(['SET', key, Buffer.concat([h, o.template.subarray(0, shape.bigBytes - h.length)])], parts);
        cmds.push({ kind: 'set', entry: ledger.setInvoked(key, id, invoke) });
      } else if (rng.next() < shape.incrShare) {
        const key = counterKey(rng.int(0, shape.counters - 1));
        encodeCommand(['INCR', key], parts);
        ledger.incrInvoked(key);
        cmds.push({ kind: 'incr', key });
      } else {
        const key = smallKey(rng.int(0, shape.keyspace - 1));
        const id = `${o.name}.${++seq}`;
        encodeCommand(['SET', key, smallValue(key, id)], parts);
        cmds.push({ kind: 'set', entry: ledger.setInvoked(key, id, invoke) });
      }
    }
    stats.pipelines++;
    stats.sent += n;
    let errors = 0;
    const onReply = (i: number, v: RespValue) => {
      const t = performance.now();
      const c = cmds[i]!;
      if (v instanceof RespError) {
        errors++;
        stats.errors++;
        meter.error(t, v.message);
        if (c.kind === 'set') ledger.setUnknown(c.entry);
        return;
      }
      if (c.kind === 'set' && v === 'OK') ledger.setAcked(c.entry, t);
      else if (c.kind === 'incr' && typeof v === 'number' && Number.isSafeInteger(v)) ledger.incrAcked(c.key, v);
      else {
        // an answer that is not one of this command's: count it as an error, its outcome unknown
        errors++;
        stats.errors++;
        meter.error(t, `unexpected-reply ${JSON.stringify(v).slice(0, 100)}`);
        if (c.kind === 'set') ledger.setUnknown(c.entry);
        return;
      }
      stats.ok++;
      meter.ok(t, 'bulk', { invoke });
    };
    const r = await conn.send(Buffer.concat(parts), n, o.stallMs, onReply);
    if (r.broken) {
      const left = n - r.replies.length;
      stats.unknown += left;
      meter.unknown(performance.now(), left, r.broken);
      for (let i = r.replies.length; i < n; i++) {
        const c = cmds[i]!;
        if (c.kind === 'set') ledger.setUnknown(c.entry);
      }
    }
    if (r.broken || errors > 0) {
      conn.close();
      conn = undefined;
      await sleep(rng.int(100, 300));
    }
  }
  conn?.close();
}
