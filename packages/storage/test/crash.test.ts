// Crash tests with real processes: a child appends under load and prints each acknowledged id; the
// parent SIGKILLs it at a random moment, recovers the store in-process and checks that every
// acknowledged id is there and intact. 50 kills per store, both stores at once.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AcceptorStore, slotValueEquals } from '@decree/protocol';
import { FileWalStore } from '../src/wal.ts';
import { PmemStore } from '../src/pmem.ts';
import { crashValue } from './crash-values.ts';
import { tempDir } from './helpers.ts';

const CHILD = fileURLToPath(new URL('./crash-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const KILLS = 50;
const live = new Set<ChildProcessWithoutNullStreams>();
afterAll(() => {
  for (const c of live) c.kill('SIGKILL');
});

// How the child runs. By default crash-child.ts is bundled once (esbuild, the transform tsx uses)
// and started with plain `node`: 100 starts through `--import tsx` cost ~0.45 CPU-s each, which
// alone would take most of a minute on a 2-core machine. DECREE_CRASH_TSX=1 starts every child
// with `node --conditions=source --import tsx crash-child.ts` instead (same code, slower).
const BUNDLE = join(ROOT, 'node_modules', '.cache', 'decree', 'crash-child.mjs');
let childArgs: string[] = ['--conditions=source', '--import', 'tsx', CHILD];
const childEnv: NodeJS.ProcessEnv = { ...process.env };
beforeAll(async () => {
  if (process.env.DECREE_CRASH_TSX === '1') return;
  try {
    const { build } = await import('esbuild');
    mkdirSync(dirname(BUNDLE), { recursive: true });
    await build({
      entryPoints: [CHILD],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      conditions: ['source'],
      outfile: BUNDLE,
      external: ['msgpackr', '@node-rs/crc32'],
      logLevel: 'error',
    });
    childArgs = [BUNDLE];
    childEnv.DECREE_PMEM_ADDON = join(ROOT, 'native', 'pmem-log', 'build', 'Release', 'pmem_log.node');
  } catch (e) {
    console.warn(`crash test: cannot bundle the child (${(e as Error).message}); starting it with tsx`);
  }
}, 60_000);

// a small seeded PRNG: the kill moments vary per round but a failing run can be repeated
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Child {
  proc: ChildProcessWithoutNullStreams;
  acked: number[];
  ready: Promise<void>;
  firstAck: Promise<void>;
  exited: Promise<void>;
  stderr: string;
}

function startChild(kind: string, path: string): Child {
  const proc = spawn(process.execPath, [...childArgs, kind, path], { cwd: ROOT, stdio: 'pipe', env: childEnv });
  live.add(proc);
  const c: Child = { proc, acked: [], ready: null!, firstAck: null!, exited: null!, stderr: '' };
  let onReady!: () => void;
  let onAck!: () => void;
  c.ready = new Promise((r) => (onReady = r));
  c.firstAck = new Promise((r) => (onAck = r));
  let buf = '';
  proc.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) {
      if (l === 'ready') onReady();
      else if (l) {
        c.acked.push(Number(l));
        onAck();
      }
    }
  });
  proc.stderr.on('data', (d: Buffer) => (c.stderr += d.toString()));
  proc.stdin.on('error', () => {});
  c.exited = new Promise((resolve) =>
    proc.on('close', () => {
      live.delete(proc);
      // a partial last line was never a complete id: ignore it
      resolve();
    }),
  );
  proc.on('exit', () => {
    onReady();
    onAck();
  });
  return c;
}

async function crashLoop(kind: 'wal' | 'pmem', seed: number): Promise<{ acked: number; rounds: number[] }> {
  const t = tempDir(`decree-crash-${kind}-`);
  const path = kind === 'wal' ? join(t.dir, 'wal') : join(t.dir, 'log.plog');
  const open = (): AcceptorStore =>
    kind === 'wal'
      ? new FileWalStore({ dir: path, segmentBytes: 256 * 1024 })
      : new PmemStore({ path, capacity: 8 << 20 });
  const rand = rng(seed);
  const perRound: number[] = [];
  let total = 0;
  const timing = { start: 0, kill: 0, recover: 0 };
  // children that are loading while the current round runs (module loading is the slow part)
  const warm: Child[] = [startChild(kind, path)];
  try {
    for (let round = 0; round < KILLS; round++) {
      const c = warm.shift()!;
      warm.push(startChild(kind, path));
      const t0 = performance.now();
      c.proc.stdin.write(`go ${(round + 1) * 10_000_000}\n`);
      await c.firstAck;
      const t1 = performance.now();
      timing.start += t1 - t0;
      expect(c.proc.exitCode, `child ${kind} round ${round} died: ${c.stderr}`).toBe(null);
      await new Promise((r) => setTimeout(r, 20 + Math.floor(rand() * 130)));
      const t2 = performance.now();
      c.proc.kill('SIGKILL');
      await c.exited;
      const t3 = performance.now();
      timing.kill += t3 - t2;
      expect(c.proc.signalCode, `child ${kind} round ${round} exited ${c.proc.exitCode}: ${c.stderr}`).toBe('SIGKILL');
      expect(c.acked.length).toBeGreaterThan(0);

      const store = open();
      const state = await store.recover();
      await store.close();
      let missing = 0;
      let damaged = 0;
      for (const id of c.acked) {
        if (id < state.truncatedBelow) continue; // covered by a "snapshot": the child truncated below it
        const got = state.accepted.get(id);
        if (!got) missing++;
        else if (!slotValueEquals(got.value, crashValue(id)) || got.ballot.round !== 1) damaged++;
      }
      expect({ round, missing, damaged }).toEqual({ round, missing: 0, damaged: 0 });
      expect(state.truncatedBelow).toBeLessThanOrEqual(Math.max(...c.acked));
      timing.recover += performance.now() - t3;
      perRound.push(c.acked.length);
      total += c.acked.length;
    }
    if (process.env.DECREE_CRASH_VERBOSE)
      console.log(
        kind,
        'ms in go->first ack / kill->exit / recover+check:',
        Object.values(timing).map(Math.round).join(' / '),
        'acked',
        total,
      );
  } finally {
    for (const w of warm) w.proc.kill('SIGKILL');
    await Promise.all(warm.map((w) => w.exited));
    t.cleanup();
  }
  return { acked: total, rounds: perRound };
}

describe('crash safety with real processes (SIGKILL at random moments)', () => {
  it.concurrent(`FileWalStore: ${KILLS} kills, every acknowledged record recovered intact`, async () => {
    const r = await crashLoop('wal', 1234);
    expect(r.rounds.length).toBe(KILLS);
    expect(r.acked).toBeGreaterThan(KILLS);
  }, 120_000);
  it.concurrent(`PmemStore: ${KILLS} kills, every acknowledged record recovered intact`, async () => {
    const r = await crashLoop('pmem', 5678);
    expect(r.rounds.length).toBe(KILLS);
    expect(r.acked).toBeGreaterThan(KILLS);
  }, 120_000);
});
