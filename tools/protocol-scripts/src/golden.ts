/**
 * Golden script files, in the spirit of etcd-io/raft's datadriven `testdata/*.txt`:
 *
 *     # a comment (any line starting with #), and blank lines, are kept as they are
 *     prepare from=r2 ballot=3.r2 fromSlot=1
 *     ----
 *     write promise 3.r2
 *
 * A case is a command (its arguments may go on over the next lines), a line `----`, and the expected
 * output up to the next blank line or the end of the file. Running a file renders it again with the
 * actual outputs: the test compares the two texts, and with `update` the file is rewritten.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { ScriptError, type ScriptCommand, parseCommand } from './syntax.ts';

export const SEPARATOR = '----';

type Block = { kind: 'text'; line: string } | { kind: 'case'; cmdLines: string[]; line: number; expected: string[] };

export function parseGolden(text: string): Block[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const blocks: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const l = lines[i]!;
    if (l.trim() === '' || l.startsWith('#')) {
      blocks.push({ kind: 'text', line: l });
      i++;
      continue;
    }
    const start = i;
    const cmdLines: string[] = [];
    const unterminated = new ScriptError(`line ${start + 1}: a command ends with a line '${SEPARATOR}'`);
    while (i < lines.length && lines[i] !== SEPARATOR) {
      if (lines[i]!.trim() === '') throw unterminated;
      cmdLines.push(lines[i]!);
      i++;
    }
    if (i >= lines.length) throw unterminated;
    i++; // the separator
    const expected: string[] = [];
    while (i < lines.length && lines[i]!.trim() !== '') expected.push(lines[i++]!);
    blocks.push({ kind: 'case', cmdLines, line: start + 1, expected });
  }
  return blocks;
}

export interface GoldenResult {
  /** the file as it is */
  readonly expected: string;
  /** the file with every case's actual output */
  readonly actual: string;
  /** the cases whose output differs (1-based line of the command) */
  readonly differing: readonly number[];
}

/**
 * Runs every case of `text` in order through `run` (one role instance for the whole file) and
 * renders the file again with the actual outputs. A command that fails to parse or run throws a
 * ScriptError naming its line.
 */
export function runGoldenText(text: string, run: (cmd: ScriptCommand) => string[], where = 'script'): GoldenResult {
  const out: string[] = [];
  const differing: number[] = [];
  for (const b of parseGolden(text)) {
    if (b.kind === 'text') {
      out.push(b.line);
      continue;
    }
    let lines: string[];
    try {
      lines = run(parseCommand(b.cmdLines.join(' '), b.line));
    } catch (e) {
      const err = new ScriptError(`${where}:${b.line}: ${b.cmdLines[0]}: ${(e as Error).message}`);
      if (!(e instanceof ScriptError)) err.stack = `${err.message}\n${(e as Error).stack ?? ''}`;
      throw err;
    }
    for (const l of lines) if (l.trim() === '') throw new ScriptError(`${where}:${b.line}: an output line is blank`);
    if (lines.join('\n') !== b.expected.join('\n')) differing.push(b.line);
    out.push(...b.cmdLines, SEPARATOR, ...lines);
  }
  return { expected: text, actual: `${out.join('\n')}\n`, differing };
}

/** Runs a golden file; with `update`, rewrites it when the actual outputs differ. */
export function runGoldenFile(path: string, run: (cmd: ScriptCommand) => string[], update = false): GoldenResult {
  const text = readFileSync(path, 'utf8');
  const r = runGoldenText(text, run, path);
  if (update && r.actual !== r.expected) writeFileSync(path, r.actual);
  return r;
}
