/**
 * The command syntax of a protocol script: `name positional key=value key=value`. Tokens split on
 * white space outside brackets `()[]{}` and double quotes, so a value such as `batch(a,b)` or
 * `accepted=[2:1.r3:noop 3:1.r3:batch(a)]` is one token.
 */

export class ScriptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScriptError';
  }
}

const OPEN = '([{';
const CLOSE = ')]}';

/** Splits `s` on white space at bracket depth 0, outside double quotes. */
export function tokenize(s: string): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quoted) {
      cur += c;
      if (c === '\\' && i + 1 < s.length) cur += s[++i]!;
      else if (c === '"') quoted = false;
      continue;
    }
    if (c === '"') {
      quoted = true;
      cur += c;
      continue;
    }
    const o = OPEN.indexOf(c);
    if (o >= 0) stack.push(CLOSE[o]!);
    else if (CLOSE.includes(c)) {
      if (stack.pop() !== c) throw new ScriptError(`unbalanced '${c}' in: ${s}`);
    }
    if (/\s/.test(c) && stack.length === 0) {
      if (cur) out.push(cur);
      cur = '';
      continue;
    }
    cur += c;
  }
  if (quoted) throw new ScriptError(`unterminated string in: ${s}`);
  if (stack.length > 0) throw new ScriptError(`missing '${stack[stack.length - 1]}' in: ${s}`);
  if (cur) out.push(cur);
  return out;
}

/** Splits `s` on `sep` at bracket depth 0 (for the items of `(a,b)` or the parts of `2:1.r3:noop`). */
export function splitTop(s: string, sep: string, max = Infinity): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (OPEN.includes(c)) depth++;
    else if (CLOSE.includes(c)) depth--;
    else if (c === sep && depth === 0 && out.length < max - 1) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out;
}

export interface Arg {
  /** undefined for a positional argument */
  readonly key: string | undefined;
  readonly value: string;
}

/** One command of a script: its first line's number (1-based) and its text (continuation lines joined). */
export interface ScriptCommand {
  readonly name: string;
  readonly args: readonly Arg[];
  readonly line: number;
  readonly text: string;
}

const KEY = /^([A-Za-z][A-Za-z0-9_-]*)=(.*)$/s;

export function parseCommand(text: string, line: number): ScriptCommand {
  const tokens = tokenize(text);
  if (tokens.length === 0) throw new ScriptError('empty command');
  const args: Arg[] = tokens.slice(1).map((t) => {
    const m = KEY.exec(t);
    return m ? { key: m[1], value: m[2]! } : { key: undefined, value: t };
  });
  return { name: tokens[0]!, args, line, text };
}

/**
 * Reads a command's arguments, and complains about any it did not read (`done`): a typo in a
 * script fails the test instead of being ignored.
 */
export class ArgReader {
  private readonly used = new Set<number>();
  constructor(readonly cmd: ScriptCommand) {}

  has(key: string): boolean {
    return this.cmd.args.some((a) => a.key === key);
  }
  /** the raw text of `key=…`, or undefined */
  raw(key: string): string | undefined {
    const i = this.cmd.args.findIndex((a) => a.key === key);
    if (i < 0) return undefined;
    this.used.add(i);
    return this.cmd.args[i]!.value;
  }
  str(key: string, def?: string): string {
    const v = this.raw(key);
    if (v !== undefined) return v;
    if (def === undefined) throw new ScriptError(`${this.cmd.name}: missing ${key}=`);
    return def;
  }
  int(key: string, def?: number): number {
    const v = this.raw(key);
    if (v === undefined) {
      if (def === undefined) throw new ScriptError(`${this.cmd.name}: missing ${key}=`);
      return def;
    }
    return parseIntStrict(v, `${this.cmd.name} ${key}`);
  }
  num(key: string, def?: number): number {
    const v = this.raw(key);
    if (v === undefined) {
      if (def === undefined) throw new ScriptError(`${this.cmd.name}: missing ${key}=`);
      return def;
    }
    const n = Number(v);
    if (!Number.isFinite(n)) throw new ScriptError(`${this.cmd.name} ${key}: not a number: ${v}`);
    return n;
  }
  /** the positional arguments not read yet, in order (all of them are marked read) */
  positional(): string[] {
    const out: string[] = [];
    this.cmd.args.forEach((a, i) => {
      if (a.key === undefined) {
        this.used.add(i);
        out.push(a.value);
      }
    });
    return out;
  }
  /** every key=value argument not read yet, in order (all of them are marked read) */
  rest(): { key: string; value: string }[] {
    const out: { key: string; value: string }[] = [];
    this.cmd.args.forEach((a, i) => {
      if (a.key !== undefined && !this.used.has(i)) {
        this.used.add(i);
        out.push({ key: a.key, value: a.value });
      }
    });
    return out;
  }
  done(): void {
    const left = this.cmd.args.filter((_, i) => !this.used.has(i));
    if (left.length > 0) {
      const names = left.map((a) => (a.key === undefined ? a.value : `${a.key}=`)).join(' ');
      throw new ScriptError(`${this.cmd.name}: unexpected ${names}`);
    }
  }
}

export function parseIntStrict(v: string, what: string): number {
  if (!/^-?\d+$/.test(v)) throw new ScriptError(`${what}: not an integer: ${v}`);
  return Number(v);
}
