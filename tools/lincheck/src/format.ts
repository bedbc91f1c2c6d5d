import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { HistoryFormatError, OP_KINDS, type Op, type OpKind } from './types.ts';

const INTEGER = /^-?\d+$/;

/** True when `s` is a decimal integer as `incr` understands it (optional '-', digits). */
export function isIntegerString(s: string): boolean {
  return INTEGER.test(s);
}

function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/**
 * Checks one decoded operation and returns it as an `Op` holding only the known fields
 * (unknown fields are ignored). `where` prefixes error messages ("line 3", "op #3").
 * Throws `HistoryFormatError` naming the field on any violation.
 */
export function validateOp(raw: unknown, where: string, line?: number): Op {
  const fail = (msg: string): never => {
    throw new HistoryFormatError(`${where}: ${msg}`, line);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    fail(`expected a JSON object, got ${describe(raw)}`);
  const r = raw as Record<string, unknown>;

  const process = r.process;
  if (!((typeof process === 'number' && Number.isInteger(process)) || typeof process === 'string'))
    fail(`"process" must be an integer or a string, got ${describe(process)}`);
  const kind = r.op;
  if (typeof kind !== 'string' || !(OP_KINDS as readonly string[]).includes(kind))
    fail(`"op" must be one of ${OP_KINDS.join(', ')}, got ${describe(kind)}`);
  const op = kind as OpKind;
  if (typeof r.key !== 'string') fail(`"key" must be a string, got ${describe(r.key)}`);
  if (typeof r.invoke !== 'number' || !Number.isFinite(r.invoke))
    fail(`"invoke" must be a finite number (ms), got ${describe(r.invoke)}`);
  if (!('complete' in r)) fail(`"complete" is required (a number, or null when the outcome is unknown)`);
  const complete = r.complete;
  if (complete !== null && (typeof complete !== 'number' || !Number.isFinite(complete)))
    fail(`"complete" must be a finite number (ms) or null, got ${describe(complete)}`);
  if (typeof complete === 'number' && complete < (r.invoke as number))
    fail(`"complete" (${complete}) is before "invoke" (${r.invoke as number})`);
  if (r.ok !== undefined && typeof r.ok !== 'boolean')
    fail(`"ok" must be a boolean when present, got ${describe(r.ok)}`);

  // value / expected
  const value = r.value;
  if (op === 'set' || op === 'cas') {
    if (typeof value !== 'string') fail(`"value" must be a string for ${op}, got ${describe(value)}`);
  } else if (op === 'incr') {
    if (value !== undefined && (typeof value !== 'string' || !INTEGER.test(value)))
      fail(`"value" of incr is the increment, a decimal integer string, got ${describe(value)}`);
  } else if (value !== undefined) {
    fail(`"value" is not allowed on ${op}`);
  }
  const expected = r.expected;
  if (op === 'cas') {
    if (expected !== undefined && expected !== null && typeof expected !== 'string')
      fail(`"expected" of cas must be a string or null, got ${describe(expected)}`);
  } else if (expected !== undefined) {
    fail(`"expected" is only allowed on cas`);
  }

  // result
  const result = r.result;
  const hasResult = 'result' in r && result !== undefined;
  if (
    hasResult &&
    result !== null &&
    typeof result !== 'string' &&
    typeof result !== 'boolean' &&
    !(typeof result === 'number' && Number.isFinite(result))
  )
    fail(`"result" must be a string, number, boolean or null, got ${describe(result)}`);
  const completedOk = complete !== null && r.ok !== false;
  if (completedOk) {
    switch (op) {
      case 'get':
        if (!hasResult || (result !== null && typeof result !== 'string'))
          fail(`completed get needs "result": the value read (a string) or null, got ${describe(result)}`);
        break;
      case 'set':
        if (hasResult && result !== 'OK') fail(`completed set has "result" "OK" (or none), got ${describe(result)}`);
        break;
      case 'del':
        if (result !== 0 && result !== 1)
          fail(`completed del needs "result": the number removed, 0 or 1, got ${describe(result)}`);
        break;
      case 'incr':
        if (
          !(typeof result === 'number' && Number.isSafeInteger(result)) &&
          !(typeof result === 'string' && INTEGER.test(result))
        )
          fail(
            `completed incr needs "result": the new integer value (number or decimal string), got ${describe(result)}`,
          );
        break;
      case 'cas':
        if (typeof result !== 'boolean') fail(`completed cas needs "result": true or false, got ${describe(result)}`);
        break;
    }
  }

  const out: Op = {
    process: process as number | string,
    op,
    key: r.key as string,
    invoke: r.invoke as number,
    complete: complete as number | null,
  };
  if (value !== undefined) out.value = value as string;
  if (op === 'cas' && expected !== undefined) out.expected = expected as string | null;
  if (hasResult) out.result = result as Op['result'];
  if (r.ok !== undefined) out.ok = r.ok as boolean;
  return out;
}

/**
 * Parses a JSON-lines history: one operation per line; blank lines are skipped.
 * Throws `HistoryFormatError` whose message starts with "line N:" for the first bad line.
 */
export function parseHistory(text: string): Op[] {
  const ops: Op[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineText = lines[i].trim();
    if (lineText === '') continue;
    let raw: unknown;
    try {
      raw = JSON.parse(lineText);
    } catch (e) {
      throw new HistoryFormatError(`line ${i + 1}: not valid JSON (${(e as Error).message})`, i + 1);
    }
    ops.push(validateOp(raw, `line ${i + 1}`, i + 1));
  }
  return ops;
}

/** One operation as its JSON line (no newline), fields in the documented order. */
export function serializeOp(op: Op): string {
  const o: Record<string, unknown> = { process: op.process, op: op.op, key: op.key };
  if (op.value !== undefined) o.value = op.value;
  if (op.expected !== undefined) o.expected = op.expected;
  o.invoke = op.invoke;
  o.complete = op.complete;
  if (op.result !== undefined) o.result = op.result;
  if (op.ok !== undefined) o.ok = op.ok;
  return JSON.stringify(o);
}

/** A history as JSON lines (each line ends with '\n'). `parseHistory(serializeHistory(ops))` gives `ops` back. */
export function serializeHistory(ops: readonly Op[]): string {
  let s = '';
  for (const op of ops) s += serializeOp(op) + '\n';
  return s;
}

/** Reads and parses a JSON-lines history file. */
export async function readHistoryFile(path: string): Promise<Op[]> {
  return parseHistory(await readFile(path, 'utf8'));
}

/** Synchronous `readHistoryFile`. */
export function readHistoryFileSync(path: string): Op[] {
  return parseHistory(readFileSync(path, 'utf8'));
}
