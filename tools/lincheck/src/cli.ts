#!/usr/bin/env node
/**
 * lincheck CLI: checks JSON-lines key-value histories for linearizability.
 *
 *   node --conditions=source --import tsx tools/lincheck/src/cli.ts [--timeout ms] [--json] history.jsonl...
 *
 * Exit status: 0 every history is linearizable, 1 some history is not, 2 bad input, usage error or
 * a search that timed out (verdict unknown).
 */
import { parseArgs } from 'node:util';
import { checkHistory } from './checker.ts';
import { readHistoryFile } from './format.ts';
import { HistoryFormatError } from './types.ts';

const USAGE = 'usage: lincheck [--timeout <ms>] [--json] <history.jsonl>...';

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { timeout: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\nexit: 0 linearizable, 1 not linearizable, 2 bad input or timed out\n`);
    return 0;
  }
  if (positionals.length === 0) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  let timeoutMs: number | undefined;
  if (values.timeout !== undefined) {
    timeoutMs = Number(values.timeout);
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      process.stderr.write(`--timeout must be a positive number of milliseconds\n`);
      return 2;
    }
  }

  let worst = 0;
  for (const file of positionals) {
    let ops;
    try {
      ops = await readHistoryFile(file);
    } catch (e) {
      const msg = e instanceof HistoryFormatError ? e.message : (e as Error).message;
      if (values.json) process.stdout.write(JSON.stringify({ file, error: msg }) + '\n');
      else process.stderr.write(`${file}: ${msg}\n`);
      worst = Math.max(worst, 2);
      continue;
    }
    const t0 = performance.now();
    const res = checkHistory(ops, { timeoutMs });
    const ms = performance.now() - t0;
    const code = res.ok ? 0 : res.timedOut ? 2 : 1;
    worst = Math.max(worst, code);
    if (values.json) {
      process.stdout.write(
        JSON.stringify({
          file,
          ok: res.ok,
          timedOut: res.timedOut ?? false,
          key: res.key,
          opIndex: res.opIndex,
          reason: res.reason,
          ops: ops.length,
          checkedKeys: res.checkedKeys,
          ms: Math.round(ms * 10) / 10,
        }) + '\n',
      );
    } else if (res.ok) {
      process.stdout.write(`${file}: linearizable (${ops.length} ops, ${res.checkedKeys} keys, ${ms.toFixed(1)} ms)\n`);
    } else if (res.timedOut) {
      process.stdout.write(`${file}: UNKNOWN: ${res.reason}\n`);
    } else {
      process.stdout.write(`${file}: NOT linearizable: ${res.reason}\n`);
    }
  }
  return worst;
}

process.exitCode = await main(process.argv.slice(2));
