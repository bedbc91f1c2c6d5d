import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkHistory,
  HistoryFormatError,
  HistoryRecorder,
  parseHistory,
  readHistoryFile,
  readHistoryFileSync,
  serializeHistory,
} from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'lincheck-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('parseHistory', () => {
  it('parses one op per line, skipping blank lines and ignoring unknown fields', () => {
    const text = [
      '{"process":1,"op":"set","key":"k","value":"v","invoke":0,"complete":1.5,"result":"OK","latency":1.5}',
      '',
      '  {"process":"c2","op":"get","key":"k","invoke":2,"complete":null}  ',
      '{"process":3,"op":"cas","key":"k","expected":null,"value":"w","invoke":3,"complete":4,"result":false,"ok":true}',
    ].join('\n');
    expect(parseHistory(text)).toStrictEqual([
      { process: 1, op: 'set', key: 'k', value: 'v', invoke: 0, complete: 1.5, result: 'OK' },
      { process: 'c2', op: 'get', key: 'k', invoke: 2, complete: null },
      { process: 3, op: 'cas', key: 'k', expected: null, value: 'w', invoke: 3, complete: 4, result: false, ok: true },
    ]);
  });

  const bad: [string, RegExp][] = [
    ['{"process":1,"op":"get","key":"k","invoke":0,"complete":1,"result":"v"', /line 2: not valid JSON/],
    ['[1,2]', /line 2: expected a JSON object/],
    [
      '{"process":1.5,"op":"get","key":"k","invoke":0,"complete":1,"result":"v"}',
      /line 2: "process" must be an integer or a string/,
    ],
    [
      '{"process":1,"op":"put","key":"k","invoke":0,"complete":1}',
      /line 2: "op" must be one of get, set, del, incr, cas, got "put"/,
    ],
    ['{"process":1,"op":"get","key":5,"invoke":0,"complete":1,"result":"v"}', /line 2: "key" must be a string/],
    [
      '{"process":1,"op":"get","key":"k","invoke":"0","complete":1,"result":"v"}',
      /line 2: "invoke" must be a finite number/,
    ],
    ['{"process":1,"op":"get","key":"k","invoke":0,"result":"v"}', /line 2: "complete" is required/],
    [
      '{"process":1,"op":"get","key":"k","invoke":5,"complete":1,"result":"v"}',
      /line 2: "complete" \(1\) is before "invoke" \(5\)/,
    ],
    ['{"process":1,"op":"get","key":"k","invoke":0,"complete":1}', /line 2: completed get needs "result"/],
    ['{"process":1,"op":"set","key":"k","invoke":0,"complete":1}', /line 2: "value" must be a string for set/],
    [
      '{"process":1,"op":"set","key":"k","value":"v","invoke":0,"complete":1,"result":"ERR"}',
      /line 2: completed set has "result" "OK"/,
    ],
    [
      '{"process":1,"op":"del","key":"k","invoke":0,"complete":1,"result":2}',
      /line 2: completed del needs "result": the number removed, 0 or 1/,
    ],
    [
      '{"process":1,"op":"incr","key":"k","value":"x","invoke":0,"complete":1,"result":1}',
      /line 2: "value" of incr is the increment/,
    ],
    [
      '{"process":1,"op":"incr","key":"k","invoke":0,"complete":1,"result":1.5}',
      /line 2: completed incr needs "result": the new integer value/,
    ],
    [
      '{"process":1,"op":"cas","key":"k","value":"v","invoke":0,"complete":1,"result":"OK"}',
      /line 2: completed cas needs "result": true or false/,
    ],
    [
      '{"process":1,"op":"cas","key":"k","value":"v","expected":3,"invoke":0,"complete":1,"result":true}',
      /line 2: "expected" of cas must be a string or null/,
    ],
    [
      '{"process":1,"op":"get","key":"k","value":"v","invoke":0,"complete":1,"result":"v"}',
      /line 2: "value" is not allowed on get/,
    ],
    [
      '{"process":1,"op":"get","key":"k","expected":"v","invoke":0,"complete":1,"result":"v"}',
      /line 2: "expected" is only allowed on cas/,
    ],
    [
      '{"process":1,"op":"get","key":"k","invoke":0,"complete":1,"result":{"a":1}}',
      /line 2: "result" must be a string, number, boolean or null/,
    ],
    [
      '{"process":1,"op":"get","key":"k","invoke":0,"complete":1,"result":"v","ok":"yes"}',
      /line 2: "ok" must be a boolean/,
    ],
  ];
  for (const [line, message] of bad) {
    it(`rejects ${line.slice(0, 70)}`, () => {
      const text = `{"process":0,"op":"set","key":"k","value":"v","invoke":0,"complete":1}\n${line}\n`;
      let err: unknown;
      try {
        parseHistory(text);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(HistoryFormatError);
      expect((err as HistoryFormatError).message).toMatch(message);
      expect((err as HistoryFormatError).line).toBe(2);
    });
  }

  it('accepts any result on failed and pending ops', () => {
    const ops = parseHistory(
      '{"process":0,"op":"cas","key":"k","value":"v","invoke":0,"complete":1,"ok":false,"result":"ERR timeout"}\n' +
        '{"process":0,"op":"del","key":"k","invoke":0,"complete":null,"result":7}\n',
    );
    expect(ops).toHaveLength(2);
    expect(checkHistory(ops).ok).toBe(true);
  });
});

describe('files', () => {
  it('readHistoryFile and readHistoryFileSync read what serializeHistory wrote', async () => {
    const ops = parseHistory('{"process":0,"op":"incr","key":"n","value":"3","invoke":0,"complete":1,"result":3}\n');
    const path = join(dir, 'h.jsonl');
    writeFileSync(path, serializeHistory(ops));
    expect(await readHistoryFile(path)).toStrictEqual(ops);
    expect(readHistoryFileSync(path)).toStrictEqual(ops);
  });
});

describe('HistoryRecorder', () => {
  it('records invocations and outcomes with the injected clock', async () => {
    let now = 100;
    const rec = new HistoryRecorder({ clock: () => now });
    const w = rec.invoke(1, 'set', 'k', 'v');
    const r = rec.invoke(2, 'get', 'k');
    now = 105;
    rec.complete(w);
    now = 107;
    rec.complete(r, 'v');
    const c = rec.invoke(3, 'cas', 'k', 'w', 'v');
    const i = rec.invoke(4, 'incr', 'n', '2');
    rec.invoke(5, 'del', 'k');
    now = 110;
    rec.timeout(c);
    rec.fail(i, 'ERR refused');
    expect(rec.size).toBe(5);
    expect(rec.ops()).toStrictEqual([
      { process: 1, op: 'set', key: 'k', value: 'v', invoke: 100, complete: 105, result: 'OK' },
      { process: 2, op: 'get', key: 'k', invoke: 100, complete: 107, result: 'v' },
      { process: 3, op: 'cas', key: 'k', value: 'w', expected: 'v', invoke: 107, complete: null },
      { process: 4, op: 'incr', key: 'n', value: '2', invoke: 107, complete: 110, ok: false, result: 'ERR refused' },
      // never finished: written as pending
      { process: 5, op: 'del', key: 'k', invoke: 107, complete: null },
    ]);
    expect(parseHistory(rec.toJsonl())).toStrictEqual(rec.ops());
    expect(checkHistory(rec.ops()).ok).toBe(true);
    const path = join(dir, 'rec.jsonl');
    await rec.writeFile(path);
    expect(readFileSync(path, 'utf8')).toBe(rec.toJsonl());
  });

  it('refuses finishing an op twice and results of the wrong type', () => {
    const rec = new HistoryRecorder({ clock: () => 0 });
    const h = rec.invoke(1, 'get', 'k');
    expect(() => rec.complete(h, true)).toThrow(/completed get needs "result"/);
    rec.complete(h, null);
    expect(() => rec.complete(h, null)).toThrow(/already finished/);
    expect(() => rec.timeout(h)).toThrow(/already finished/);
    expect(() => rec.complete({ index: 99 }, null)).toThrow(/unknown operation handle/);
    expect(() => rec.invoke(1, 'set', 'k')).toThrow(/"value" must be a string for set/);
  });

  it('defaults to performance.now', () => {
    const rec = new HistoryRecorder();
    const t0 = performance.now();
    const h = rec.invoke(1, 'get', 'k');
    rec.complete(h, null);
    const [op] = rec.ops();
    expect(op.invoke).toBeGreaterThanOrEqual(t0);
    expect(op.complete).toBeGreaterThanOrEqual(op.invoke);
  });
});

describe('CLI', () => {
  const cli = join(import.meta.dirname, '..', 'src', 'cli.ts');
  const run = (...args: string[]) =>
    spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', cli, ...args], {
      encoding: 'utf8',
      timeout: 60_000,
      cwd: join(import.meta.dirname, '..', '..', '..'),
    });
  const good = join(dir, 'good.jsonl');
  const bad = join(dir, 'bad.jsonl');
  const broken = join(dir, 'broken.jsonl');
  writeFileSync(
    good,
    '{"process":0,"op":"set","key":"x","value":"1","invoke":0,"complete":10,"result":"OK"}\n' +
      '{"process":1,"op":"get","key":"x","invoke":5,"complete":30,"result":null}\n',
  );
  writeFileSync(
    bad,
    '{"process":0,"op":"set","key":"x","value":"1","invoke":0,"complete":10,"result":"OK"}\n' +
      '{"process":1,"op":"get","key":"x","invoke":20,"complete":30,"result":null}\n',
  );
  writeFileSync(broken, '{"process":0,"op":"set","key":"x","invoke":0,"complete":10}\n');

  it('exits 0 on a linearizable history, 1 on a violation, 2 on bad input', () => {
    const ok = run(good);
    expect(ok.stdout).toMatch(/good\.jsonl: linearizable \(2 ops, 1 keys/);
    expect(ok.status).toBe(0);
    const no = run(bad);
    expect(no.stdout).toMatch(/NOT linearizable: key "x" .*op #1 .*get\("x"\) -> null/);
    expect(no.status).toBe(1);
    const err = run(broken);
    expect(err.stderr).toMatch(/broken\.jsonl: line 1: "value" must be a string for set/);
    expect(err.status).toBe(2);
    expect(run().status).toBe(2);
    expect(run('--timeout', 'soon', good).status).toBe(2);
  });

  it('prints JSON with --json and the worst status over several files', () => {
    const out = run('--json', good, bad);
    expect(out.status).toBe(1);
    const lines = out.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ ok: true, ops: 2, checkedKeys: 1 });
    expect(lines[1]).toMatchObject({ ok: false, key: 'x', opIndex: 1 });
  });
});
