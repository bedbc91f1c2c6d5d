/**
 * Stalls of the single-command path (issue #19 point 4): the 3-process cluster (TCP, file WAL) after a
 * pipelined fill (400,000 SETs over 100,000 keys, as in ab.ts), then N unpipelined SETs of one client.
 * Per run: p50 / p99 / max, syscalls and context switches per 1,000 SETs, and per replica process the
 * event-loop delay, the loop's gaps over 20 ms and the GC pauses over 5 ms (apps/bench/src/stall-probe.mjs),
 * the snapshots and WAL segments written during the run, and with --trace-gc the Mark-Compact lines.
 * Variants run interleaved, like ab.ts.
 *
 *   node --conditions=source --import tsx apps/bench/src/stalls.ts [--runs 3] [--n 10000] [--no-fill]
 *       [--trace-gc] [--timeline] [--strace] [--no-probe] [--node-flag <flag>]… [bundle] [entry=<decree.mjs>] …
 *
 * `flags=<flag>,<flag>` after a variant gives its replica processes these node flags too.
 * --timeline: the SETs come from a client here (not redis-benchmark) that notes each reply over 10 ms
 * with its wall-clock time, to line the slow requests up with the processes' gaps and GCs.
 * --strace: strace -f -c on the leader during the unpipelined run (its latency figures are then not
 * comparable: ptrace slows every syscall). --no-probe: no probe (the syscall and switch counts without it).
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { type ClusterHandle, type ClusterOptions, LOADS, parseRedisBenchmark, startProcessCluster } from './cluster.ts';

const args = process.argv.slice(2);
let runs = 3;
let n = 10_000;
let fill = true;
let traceGc = false;
let timeline = false;
let strace = false;
let probe = true;
const extraFlags: string[] = [];
const picks: [string, Partial<ClusterOptions>][] = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  if (a === '--runs') runs = Number(args[++i]);
  else if (a === '--n') n = Number(args[++i]);
  else if (a === '--no-fill') fill = false;
  else if (a === '--trace-gc') traceGc = true;
  else if (a === '--timeline') timeline = true;
  else if (a === '--strace') strace = true;
  else if (a === '--no-probe') probe = false;
  else if (a === '--node-flag') extraFlags.push(args[++i]!);
  else if (a === 'bundle') picks.push([a, {}]);
  else if (a.startsWith('entry=')) picks.push([a.slice(a.lastIndexOf('/') + 1), { entry: a.slice(6) }]);
  else if (a.startsWith('flags=') && picks.length) {
    // node flags of the variant before it (comma-separated): `entry=… flags=--max-semi-space-size=64`
    const last = picks.at(-1)!;
    last[0] += ` ${a.slice(6)}`;
    last[1].nodeFlags = a.slice(6).split(',');
  } else throw new Error(`unknown argument ${a}`);
}
if (picks.length === 0) picks.push(['bundle', {}]);
const probePath = join(import.meta.dirname, 'stall-probe.mjs');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function run(cmd: string, argv: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((res, rej) => {
    const p = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    p.on('error', rej);
    p.on('close', (code) => res({ code, out, err }));
  });
}

/** voluntary and involuntary context switches of all the threads of a process */
function ctxt(pid: number): [number, number] {
  let v = 0;
  let nv = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    const s = readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
    v += Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(s)?.[1] ?? 0);
    nv += Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(s)?.[1] ?? 0);
  }
  return [v, nv];
}

/** Unpipelined SETs from one client; latencies (ms) and the slow ones with their wall-clock time. */
async function timelineClient(port: number, count: number): Promise<{ lat: number[]; slow: [number, number][] }> {
  const sock = net.connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise<void>((r, j) => sock.once('connect', r).once('error', j));
  const val = 'x'.repeat(64);
  const lat: number[] = [];
  const slow: [number, number][] = [];
  let waiting: (() => void) | undefined;
  let buf = '';
  sock.setEncoding('latin1').on('data', (d: string) => {
    buf += d;
    if (buf.endsWith('\r\n')) {
      if (!buf.startsWith('+OK')) throw new Error(`unexpected reply ${buf}`);
      buf = '';
      waiting?.();
    }
  });
  for (let i = 0; i < count; i++) {
    const key = `key:${String(i % 100_000).padStart(12, '0')}`;
    const t0 = performance.now();
    await new Promise<void>((r) => {
      waiting = r;
      sock.write(`*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${val.length}\r\n${val}\r\n`);
    });
    const ms = performance.now() - t0;
    lat.push(ms);
    if (ms > 10) slow.push([Math.round(performance.timeOrigin + t0), +ms.toFixed(1)]);
  }
  sock.destroy();
  return { lat, slow };
}

/** Files of the data directory written since `since` (ms since the epoch): snapshots, WAL segments. */
function filesSince(dir: string, since: number): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const st = statSync(p);
        if (st.mtimeMs >= since || st.ctimeMs >= since)
          out.push(
            `${p.slice(dir.length + 1)} m+${Math.round(st.mtimeMs - since)} c+${Math.round(st.ctimeMs - since)}`,
          );
      }
    }
  };
  walk(dir);
  return out;
}

interface Result {
  p50: number;
  p99: number;
  max: number;
  rps: number;
  syscalls?: number;
  vol: number;
  invol: number;
  eldMax: number[];
}
const results = new Map<string, Result[]>();

async function oneRun(name: string, v: Partial<ClusterOptions>, r: number): Promise<void> {
  const gcLines: string[] = [];
  const stamp = `/tmp/stall-probe-${process.pid}-${r}-${name}`;
  const c: ClusterHandle = await startProcessCluster({
    transport: 'tcp',
    storage: 'wal',
    ...v,
    nodeFlags: [
      ...(probe ? ['--import', probePath] : []),
      ...(traceGc ? ['--trace-gc'] : []),
      ...extraFlags,
      ...(v.nodeFlags ?? []),
    ],
    env: probe ? { DECREE_STALL_PROBE: stamp } : {},
    onLine: (id, line) => {
      if (/Mark-Compact|Mark-sweep|Scavenge/.test(line)) gcLines.push(`${id} ${line.trim()}`);
    },
  });
  try {
    if (fill) {
      const f = await run('redis-benchmark', ['-p', String(c.leaderPort), ...LOADS.setPipelined(400_000), '-q']);
      if (f.code !== 0) throw new Error(`fill failed: ${f.err}`);
    }
    await sleep(1000);
    const pids = Object.entries(c.pids);
    const leaderPid = c.pids[c.leaderId]!;
    if (probe) for (const [, pid] of pids) process.kill(pid, 'SIGUSR2'); // probe: start afresh
    gcLines.length = 0;
    const c0 = ctxt(leaderPid);
    const st = strace
      ? spawn('strace', ['-f', '-c', '-p', String(leaderPid)], { stdio: ['ignore', 'ignore', 'pipe'] })
      : undefined;
    let straceOut = '';
    let straceTop = '';
    st?.stderr!.setEncoding('utf8').on('data', (d: string) => (straceOut += d));
    if (st) await sleep(500);
    const t0 = Date.now();
    let res: Result;
    let slow: [number, number][] = [];
    if (timeline) {
      const tl = await timelineClient(c.leaderPort, n);
      const xs = [...tl.lat].sort((a, b) => a - b);
      const q = (p: number) => +xs[Math.min(xs.length - 1, Math.ceil(p * xs.length) - 1)]!.toFixed(3);
      res = { p50: q(0.5), p99: q(0.99), max: q(1), rps: n / ((Date.now() - t0) / 1000), vol: 0, invol: 0, eldMax: [] };
      slow = tl.slow;
    } else {
      const b = await run('redis-benchmark', ['-p', String(c.leaderPort), ...LOADS.setUnpipelined(n)]);
      const [p] = parseRedisBenchmark(b.out);
      if (!p) throw new Error(`redis-benchmark: ${b.err || b.out.slice(-300)}`);
      const at = (q: number) => p.percentiles.find(([x]) => x >= q)?.[1] ?? Number.NaN;
      res = { p50: at(50), p99: at(99), max: at(100), rps: p.rps, vol: 0, invol: 0, eldMax: [] };
    }
    const c1 = ctxt(leaderPid);
    if (st) {
      st.kill('SIGINT');
      await new Promise((ok) => st.on('close', ok));
      const total = /\n[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?total/.exec(straceOut);
      if (total) res.syscalls = (Number(total[1]) / n) * 1000;
      // the main syscalls per 1,000 SETs
      const top = [...straceOut.matchAll(/^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$/gm)]
        .map((m) => [m[2]!, (Number(m[1]) / n) * 1000] as const)
        .filter(([name, per]) => name !== 'total' && per >= 100)
        .sort((a, b) => b[1] - a[1]);
      straceTop = top.map(([name, per]) => `${name} ${per.toFixed(0)}`).join(', ');
    }
    res.vol = ((c1[0] - c0[0]) / n) * 1000;
    res.invol = ((c1[1] - c0[1]) / n) * 1000;
    if (probe) for (const [, pid] of pids) process.kill(pid, 'SIGUSR2');
    await sleep(300);
    const lines: string[] = [];
    for (const [id, pid] of pids) {
      if (!probe) continue;
      try {
        const d = JSON.parse(readFileSync(`${stamp}-${pid}.json`, 'utf8')) as {
          eld: { p50: number; p99: number; max: number };
          gaps: { at: number; ms: number }[];
          gcs: { at: number; ms: number; kind: number }[];
          gcCount: number;
          gcMs: number;
        };
        res.eldMax.push(d.eld.max);
        lines.push(
          `  ${id}${id === c.leaderId ? '*' : ' '} eld p50 ${d.eld.p50} p99 ${d.eld.p99} max ${d.eld.max} | ` +
            `gc ${d.gcCount} (${d.gcMs} ms) | gaps ${d.gaps.map((g) => `+${g.at - t0}:${g.ms}`).join(' ')} | ` +
            `gc>5ms ${d.gcs.map((g) => `+${g.at - t0}:${g.ms}(k${g.kind})`).join(' ')}`,
        );
      } catch (e) {
        lines.push(`  ${id}: no probe output (${(e as Error).message})`);
      }
    }
    (results.get(name) ?? results.set(name, []).get(name)!).push(res);
    console.log(
      `${name} run ${r}: P1 ${Math.round(res.rps)}/s p50 ${res.p50} p99 ${res.p99} max ${res.max} ms | ` +
        'leader per 1k SETs: ' +
        `${res.syscalls !== undefined ? `${res.syscalls.toFixed(0)} syscalls, ` : ''}` +
        `${res.vol.toFixed(0)} vol + ${res.invol.toFixed(0)} invol ctxt switches`,
    );
    if (straceTop) console.log(`  leader syscalls per 1k SETs: ${straceTop}`);
    for (const l of lines) console.log(l);
    if (slow.length) console.log(`  slow replies (>10 ms): ${slow.map(([at, ms]) => `+${at - t0}:${ms}`).join(' ')}`);
    const files = filesSince(c.dir, t0).filter((f) => !f.endsWith('.json'));
    if (files.length) console.log(`  files written: ${files.join(', ')}`);
    for (const g of gcLines.filter((l) => /Mark-Compact|Mark-sweep/.test(l)).slice(0, 20)) console.log(`  ${g}`);
  } finally {
    await c.stop();
  }
}

for (let r = 0; r < runs; r++)
  for (const [name, v] of picks) {
    try {
      await oneRun(name, v, r);
    } catch (e) {
      console.log(`${name} run ${r} failed: ${(e as Error).message.split('\n')[0]}`);
    }
  }
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const [k, v] of results)
  console.log(
    `MEDIAN ${k}: p50 ${med(v.map((x) => x.p50))} p99 ${med(v.map((x) => x.p99))} max ${med(v.map((x) => x.max))} ` +
      `(worst ${Math.max(...v.map((x) => x.max))}) ms; per 1k SETs (leader): ` +
      `${v[0]!.syscalls !== undefined ? `${med(v.map((x) => x.syscalls!)).toFixed(0)} syscalls, ` : ''}` +
      `${med(v.map((x) => x.vol)).toFixed(0)} vol + ${med(v.map((x) => x.invol)).toFixed(0)} invol switches; ` +
      `eld max (worst process) ${v.length && v[0]!.eldMax.length ? med(v.map((x) => Math.max(...x.eldMax))) : '-'} ms`,
  );
