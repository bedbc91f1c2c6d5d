#!/usr/bin/env node
/**
 * A bare reproduction of issue #17's point 1, without the harness: 3 writers, each sending one pipeline
 * at a time to the replica that leads (as last polled): a SET of --big-bytes, then --incrs INCRs of the
 * writer's own counter `ctr<w>`, through ioredis with every retry off. After each pipeline the counter
 * is read (linearizable GET) and compared with that writer's INCRs acknowledged + in doubt so far: a
 * larger value means INCRs were applied twice. Faults every 5 s (--fault none|pause|deafen|isolate).
 *
 *   node --conditions=source --import tsx tools/chaos/scripts/leader-pipelines.ts --fault deafen --faults 8
 *
 * Prints one line per pipeline that had errors or took over 1 s, "DOUBLE" lines, and a total; exit 1 on
 * a DOUBLE. Not part of npm test (no seed: what happens depends on timing only).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { ChaosCluster, sleep } from '../src/cluster.ts';
import { LeaderTracker } from '../src/leader.ts';
import { connectNoRetry } from '../src/redis.ts';

const pos = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${what} must be a non-negative integer`);
  return n;
};
const program = new Command('leader-pipelines')
  .option(
    '--fault <kind>',
    'none, pause, deafen or isolate (of the leader)',
    (v) => {
      if (!['none', 'pause', 'deafen', 'isolate'].includes(v))
        throw new InvalidArgumentError('--fault must be none, pause, deafen or isolate');
      return v;
    },
    'deafen',
  )
  .option('--faults <n>', 'faults, one every 5 s', pos('--faults'), 6)
  .option('--hold <ms>', 'how long a fault lasts', pos('--hold'), 1500)
  .option('--inflight-slots <n>', 'batching.maxInflightSlots', pos('--inflight-slots'), 4)
  .option('--big-bytes <n>', 'the SET value at the head of each pipeline', pos('--big-bytes'), 470_000)
  .option('--incrs <n>', 'INCRs after it', pos('--incrs'), 3000)
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s.split('\n')[0] + '\n') });
try {
  program.parse(process.argv);
} catch (e) {
  process.exit(e instanceof CommanderError && e.exitCode === 0 ? 0 : 2);
}
const o = program.opts<{
  fault: string;
  faults: number;
  hold: number;
  inflightSlots: number;
  bigBytes: number;
  incrs: number;
}>();

const dir = mkdtempSync(path.join(os.tmpdir(), 'decree-leader-pipelines-'));
const cluster = new ChaosCluster({
  dir,
  proxies: o.fault === 'deafen' || o.fault === 'isolate',
  batching: { maxInflightSlots: o.inflightSlots },
});
const tracker = new LeaderTracker(cluster, cluster.ids);
const lines: string[] = [];
const say = (l: string) => {
  lines.push(l);
  console.error(l);
};
const t = () => (performance.now() / 1000).toFixed(1);
let doubles = 0;
try {
  await cluster.prepare();
  await cluster.startAll();
  const first = await cluster.waitLeader(60_000);
  if (!first) throw new Error('no leader within 60 s');
  tracker.start();
  await tracker.poll();
  let running = true;
  const acked = [0, 0, 0, 0];
  const doubt = [0, 0, 0, 0];
  const big = Buffer.alloc(o.bigBytes, 97);
  const writer = async (w: number) => {
    while (running) {
      const target = tracker.leader ?? first;
      const r = await connectNoRetry(cluster.clientPort(target), 2000).catch(() => undefined);
      if (!r) {
        await sleep(100);
        continue;
      }
      const p = r.pipeline();
      p.set(`big${w}`, big);
      for (let i = 0; i < o.incrs; i++) p.incr(`ctr${w}`);
      const t0 = performance.now();
      const timer = setTimeout(() => r.disconnect(false), 15_000);
      const res = ((await p.exec()) ?? []) as [Error | null, unknown][];
      clearTimeout(timer);
      r.disconnect(false);
      const incr = res.slice(1);
      const vals = incr.filter(([e]) => !e).map(([, v]) => v as number);
      const errs = new Set(incr.filter(([e]) => e).map(([e]) => e!.message.slice(0, 70)));
      acked[w]! += vals.length;
      doubt[w]! += incr.length - vals.length;
      const g = await connectNoRetry(cluster.clientPort(tracker.leader ?? target), 2000).catch(() => undefined);
      const now = g ? Number(await g.get(`ctr${w}`).catch(() => NaN)) : NaN;
      g?.disconnect(false);
      const dur = performance.now() - t0;
      if (errs.size || dur > 1000)
        say(
          `t=${(t0 / 1000).toFixed(1)}s w${w} -> ${target}: ${vals.length} acknowledged ` +
            `(${vals[0] ?? '-'}..${vals.at(-1) ?? '-'}), ` +
            `${incr.length - vals.length} in doubt ${[...errs].join(' | ')}`,
        );
      if (now > acked[w]! + doubt[w]!) {
        doubles++;
        const sum = acked[w]! + doubt[w]!;
        say(`DOUBLE t=${t()}s ctr${w} = ${now} > ${acked[w]} acknowledged + ${doubt[w]} in doubt = ${sum}`);
      }
    }
  };
  const ws = [1, 2, 3].map(writer);
  for (let k = 0; k < o.faults; k++) {
    await sleep(5000);
    const l = await tracker.poll();
    if (!l || o.fault === 'none') continue;
    say(`t=${t()}s ${o.fault} ${l} for ${o.hold} ms`);
    if (o.fault === 'pause') {
      cluster.signal(l, 'SIGSTOP');
      await sleep(o.hold);
      cluster.signal(l, 'SIGCONT');
    } else {
      if (o.fault === 'deafen') cluster.deafen(l, 'refuse');
      else cluster.isolate(l, 'refuse');
      await sleep(o.hold);
      cluster.healAll();
    }
  }
  await sleep(3000);
  running = false;
  await Promise.all(ws);
  const verdict = doubles === 0 ? 'no INCR applied twice' : `${doubles} DOUBLE lines`;
  console.log(`${verdict}; acknowledged ${acked.slice(1).join('/')}, in doubt ${doubt.slice(1).join('/')}`);
} finally {
  await tracker.stop();
  await cluster.shutdown();
  if (doubles === 0) rmSync(dir, { recursive: true, force: true });
  else console.log(`run dir kept: ${dir}`);
}
process.exit(doubles === 0 ? 0 : 1);
