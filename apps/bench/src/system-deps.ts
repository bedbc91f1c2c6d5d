/**
 * The bench's own Debian packages: the servers of the baselines (tools/scripts/system-deps.json,
 * "bench": redis-server, etcd-server). Like `npm test`'s pretest, a missing one is installed with
 * apt-get when the bench runs as root (BENCH_INSTALL=0 turns that off); otherwise, or when apt-get
 * fails, the caller puts a row in the table that says the baseline was skipped, why, and what to
 * install: a baseline is never dropped without a word.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface BenchDep {
  /** the program the bench runs */
  command: string;
  /** the Debian package that has it */
  debian: string;
}

/** The "bench" list of tools/scripts/system-deps.json. */
export function benchDeps(): BenchDep[] {
  const url = new URL('../../../tools/scripts/system-deps.json', import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { bench?: BenchDep[] }).bench ?? [];
}

export function benchDep(command: string): BenchDep {
  return benchDeps().find((d) => d.command === command) ?? { command, debian: command };
}

/** Whether `command --version` runs. */
export function haveCommand(command: string): boolean {
  return spawnSync(command, ['--version'], { stdio: 'ignore' }).status === 0;
}

export type DepCheck = { ok: true; installed: boolean } | { ok: false; reason: string };

export interface EnsureOptions {
  /** install with apt-get when missing (default: running as root and BENCH_INSTALL is not 0) */
  install?: boolean;
  log?: (s: string) => void;
  /** for tests */
  have?: (command: string) => boolean;
  aptGet?: (args: string[]) => { ok: boolean; output: string };
}

let updated = false;
function runAptGet(args: string[]): { ok: boolean; output: string } {
  const r = spawnSync('apt-get', args, {
    encoding: 'utf8',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    timeout: 600_000,
  });
  return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}` };
}

export function installWanted(): boolean {
  return process.getuid?.() === 0 && process.env.BENCH_INSTALL !== '0';
}

/**
 * The command of `dep` is there, or was just installed; or why not, in the words of the skip row:
 * "redis-server not installed (apt-get install redis-server)".
 */
export function ensureCommand(dep: BenchDep, o: EnsureOptions = {}): DepCheck {
  const have = o.have ?? haveCommand;
  if (have(dep.command)) return { ok: true, installed: false };
  const hint = `apt-get install ${dep.debian}`;
  if (!(o.install ?? installWanted())) return { ok: false, reason: `${dep.command} not installed (${hint})` };
  const apt = o.aptGet ?? runAptGet;
  o.log?.(`» ${dep.command} not found: installing Debian's ${dep.debian} with apt-get (BENCH_INSTALL=0 skips this)`);
  if (!o.aptGet && !updated) {
    updated = true;
    apt(['update', '-q']);
  }
  const r = apt(['install', '-y', '-q', '--no-install-recommends', dep.debian]);
  const last = r.output.trim().split('\n').at(-1)?.trim() ?? '';
  if (!r.ok || !have(dep.command)) {
    const why = last ? `: ${last.replace(/^E: /, '').slice(0, 80)}` : '';
    return { ok: false, reason: `${dep.command} not installed (${hint} failed${why})` };
  }
  return { ok: true, installed: true };
}
