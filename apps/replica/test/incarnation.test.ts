/**
 * deriveIncarnation: the role processes of one replica started without --inc share one incarnation
 * (the file <dataDir>/<id>/incarnation.json); a new run of the replica (no recorded process alive)
 * gets a fresh, higher one.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { deriveIncarnation } from '../src/incarnation.ts';
import { NODE_ARGS, ROOT, exitOf, tempDir } from './helpers.ts';

const tmp = tempDir('inc');
afterAll(() => tmp.remove());

describe('deriveIncarnation', () => {
  it('joins the run of a live process; starts a fresh, higher one when none is alive', () => {
    const dir = path.join(tmp.dir, 'a', 'r1');
    const alive = new Set<number>();
    const first = deriveIncarnation(dir, 101, (p) => alive.has(p));
    expect(first.fresh).toBe(true);
    expect(first.inc).toBeGreaterThanOrEqual(Date.now() - 5_000);
    alive.add(101);
    expect(deriveIncarnation(dir, 102, (p) => alive.has(p))).toEqual({ inc: first.inc, fresh: false });
    alive.add(102);
    alive.delete(101);
    // 101 died, 102 lives: still the same run
    expect(deriveIncarnation(dir, 103, (p) => alive.has(p))).toEqual({ inc: first.inc, fresh: false });
    expect(JSON.parse(readFileSync(path.join(dir, 'incarnation.json'), 'utf8')).pids).toEqual([102, 103]);
    // every process gone: a new run, whose incarnation is higher even if the clock is not
    alive.clear();
    writeFileSync(path.join(dir, 'incarnation.json'), JSON.stringify({ inc: Date.now() + 60_000, pids: [102, 103] }));
    const next = deriveIncarnation(dir, 104, (p) => alive.has(p));
    expect(next.fresh).toBe(true);
    expect(next.inc).toBe(JSON.parse(readFileSync(path.join(dir, 'incarnation.json'), 'utf8')).inc);
    expect(next.inc).toBeGreaterThan(Date.now() + 30_000);
    expect(existsSync(path.join(dir, 'incarnation.lock'))).toBe(false);
  });

  it('processes starting at the same moment agree', async () => {
    const dir = path.join(tmp.dir, 'b', 'r1');
    const src = path.join(ROOT, 'apps/replica/src/incarnation.ts');
    // each stays alive a while, so the others see it
    const code = `import { deriveIncarnation } from ${JSON.stringify(src)};
      console.log(deriveIncarnation(${JSON.stringify(dir)}).inc); setTimeout(() => {}, 1500);`;
    const procs = Array.from({ length: 5 }, () =>
      spawn(process.execPath, [...NODE_ARGS, '--input-type=module', '-e', code], {
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    );
    const outs = procs.map((p) => {
      let s = '';
      p.stdout!.on('data', (d) => (s += d));
      return () => s.trim();
    });
    await Promise.all(procs.map((p) => exitOf(p, 30_000)));
    const incs = outs.map((o) => o());
    expect(new Set(incs).size, incs.join(' ')).toBe(1);
    expect(Number(incs[0])).toBeGreaterThan(0);
  }, 40_000);
});
