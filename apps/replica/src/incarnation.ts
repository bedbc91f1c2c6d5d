import { closeSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The incarnation shared by the role processes of one replica (roles as processes) when `--inc` is not
 * given: `<dir>/incarnation.json` holds it with the pids of the processes that use it. A process that
 * finds one of those pids alive joins that run; otherwise (the first process of a new run of the
 * replica) it starts a fresh incarnation, above the previous one and the clock. A fresh one matters:
 * the learner reports results by (incarnation, submission id), so a new run must not reuse the last.
 *
 * One host only (the pids and the file are local): roles of one replica on several hosts take `--inc`.
 */
export interface Incarnation {
  inc: number;
  /** true when this process started a new run (no live process of the replica recorded) */
  fresh: boolean;
}

const LOCK_STALE_MS = 5_000;

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes `<dir>/incarnation.lock` (created exclusively; one older than 5 s is a crashed holder's). */
function lock(path: string): () => void {
  for (let attempt = 0; ; attempt++) {
    try {
      closeSync(openSync(path, 'wx'));
      return () => unlinkSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      try {
        if (Date.now() - statSync(path).mtimeMs > LOCK_STALE_MS) unlinkSync(path);
      } catch {
        /* released meanwhile */
      }
      if (attempt > 1_000) throw new Error(`cannot take ${path} (held for too long)`);
      sleep(10);
    }
  }
}

export function deriveIncarnation(
  dir: string,
  pid = process.pid,
  isAlive: (pid: number) => boolean = alive,
): Incarnation {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'incarnation.json');
  const release = lock(join(dir, 'incarnation.lock'));
  try {
    let prev: { inc: number; pids: number[] } | undefined;
    try {
      const j = JSON.parse(readFileSync(file, 'utf8')) as { inc?: unknown; pids?: unknown };
      if (Number.isSafeInteger(j.inc) && Array.isArray(j.pids))
        prev = { inc: j.inc as number, pids: j.pids as number[] };
    } catch {
      /* none yet, or unreadable: a new run */
    }
    const live = prev ? prev.pids.filter((p) => p !== pid && isAlive(p)) : [];
    const fresh = !prev || live.length === 0;
    const inc = fresh ? Math.max(Date.now(), (prev?.inc ?? 0) + 1) : prev!.inc;
    const tmp = `${file}.${pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ inc, pids: [...live, pid] })}\n`);
    renameSync(tmp, file);
    return { inc, fresh };
  } finally {
    release();
  }
}
