import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { KvCommands } from '@decree/kv-machine';
import {
  ENCODED_SET,
  encodedSetArgs,
  NIL_ARRAY,
  NIL_BULK,
  RespCommandParser,
  RespDecoder,
  RespErrorReply,
  RespProtocolError,
  RespWriter,
  arrayOf,
  bulkString,
  encodeCommand,
  encodeResp,
  errorReply,
  integer,
  simpleString,
  splitArgs,
  type RespValue,
} from '../src/resp.ts';

const B = (s: string) => Buffer.from(s, 'latin1');
const strs = (cmds: Buffer[][]) => cmds.map((c) => c.map((a) => a.toString('latin1')));

/** Feeds `bytes` cut at the given points (sorted offsets). */
function feedCut<T>(feed: (c: Buffer) => T[], bytes: Buffer, cuts: number[]): T[] {
  const out: T[] = [];
  let prev = 0;
  for (const c of [...cuts, bytes.length]) {
    out.push(...feed(bytes.subarray(prev, c)));
    prev = c;
  }
  return out;
}

/** Every 2-way split, then byte by byte: the result must not depend on the chunking. */
function everySplit<T>(make: () => { feed: (c: Buffer) => T[] }, bytes: Buffer): T[] {
  const whole = make().feed(bytes);
  for (let i = 0; i <= bytes.length; i++) {
    const p = make();
    expect(
      feedCut((c) => p.feed(c), bytes, [i]),
      `split at ${i}`,
    ).toEqual(whole);
  }
  const p = make();
  expect(
    feedCut(
      (c) => p.feed(c),
      bytes,
      Array.from({ length: bytes.length }, (_, i) => i),
    ),
  ).toEqual(whole);
  return whole;
}

describe('RespDecoder: every RESP2 type, split at every byte', () => {
  const cases: [string, RespValue][] = [
    ['+OK\r\n', 'OK'],
    ['+\r\n', ''],
    ['-ERR unknown command\r\n', new RespErrorReply('ERR unknown command')],
    [':0\r\n', 0],
    [':-42\r\n', -42],
    [':9223372036854775807\r\n', 2n ** 63n - 1n],
    [':-9223372036854775808\r\n', -(2n ** 63n)],
    ['$5\r\nhello\r\n', B('hello')],
    ['$0\r\n\r\n', B('')],
    ['$4\r\na\r\nb\r\n', B('a\r\nb')],
    ['$-1\r\n', null],
    ['*-1\r\n', null],
    ['*0\r\n', []],
    ['*3\r\n:1\r\n$1\r\nx\r\n+y\r\n', [1, B('x'), 'y']],
    ['*2\r\n*2\r\n:1\r\n*0\r\n$-1\r\n', [[1, []], null]],
    ['*1\r\n*1\r\n*1\r\n-E\r\n', [[[new RespErrorReply('E')]]]],
  ];
  for (const [wire, value] of cases) {
    it(JSON.stringify(wire), () => {
      const out = everySplit(() => new RespDecoder(), B(wire));
      expect(out).toEqual([value]);
      if (wire !== '*-1\r\n') expect(encodeResp(value)).toEqual(B(wire)); // null encodes as the nil bulk
    });
  }

  it('decodes a pipelined run of every type, whatever the chunking', () => {
    const wire = B(cases.map(([w]) => w).join(''));
    expect(everySplit(() => new RespDecoder(), wire)).toEqual(cases.map(([, v]) => v));
  });
});

describe('RespCommandParser', () => {
  it('parses an array of bulk strings, split at every byte', () => {
    const wire = B('*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n');
    expect(strs(everySplit(() => new RespCommandParser(), wire))).toEqual([['SET', 'key', 'va\r\nl']]);
  });

  it('parses pipelined commands, mixing arrays and inline, skipping empty ones', () => {
    const wire = B(
      '*1\r\n$4\r\nPING\r\n' +
        'PING\r\n' +
        '\r\n' +
        '*0\r\n' +
        '*-1\r\n' +
        'set a  b\n' +
        '*2\r\n$3\r\nGET\r\n$0\r\n\r\n',
    );
    expect(strs(everySplit(() => new RespCommandParser(), wire))).toEqual([
      ['PING'],
      ['PING'],
      ['set', 'a', 'b'],
      ['GET', ''],
    ]);
  });

  it('parses inline commands with quotes as redis-cli and telnet users send them', () => {
    const wire = B('SET "a key" \'it\\\'s\' "\\x41\\n\\"q\\"" foo"bar baz" \'\'\r\n');
    expect(strs(everySplit(() => new RespCommandParser(), wire))).toEqual([
      ['SET', 'a key', "it's", 'A\n"q"', 'foobar baz', ''],
    ]);
  });

  it('binary bulk strings keep every byte', () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const wire = encodeCommand(['SET', all, '']);
    const [cmd] = everySplit(() => new RespCommandParser(), wire);
    expect(cmd).toEqual([B('SET'), all, B('')]);
  });

  it('hands out arguments that later feeds do not overwrite', () => {
    const p = new RespCommandParser();
    const first = [...p.feed(B('*2\r\n$1\r\na\r\n$3\r\nxy')), ...p.feed(B('z\r\n*1\r\n$2\r\nq'))];
    const more = p.feed(B('q\r\n'));
    for (let i = 0; i < 100; i++) {
      p.feed(B('*1\r\n$5\r\nab'));
      p.feed(B('cde\r\n*1\r\n$2\r\nZ'));
      p.feed(B('Z\r\n'));
    }
    expect(strs(first)).toEqual([['a', 'xyz']]);
    expect(strs(more)).toEqual([['qq']]);
  });

  it('a large bulk fed in small chunks arrives whole', () => {
    const big = Buffer.alloc(1_000_000, 0x61);
    big[123_456] = 0x62;
    const wire = encodeCommand(['SET', 'k', big]);
    const p = new RespCommandParser();
    const out: Buffer[][] = [];
    for (let i = 0; i < wire.length; i += 1000) out.push(...p.feed(wire.subarray(i, i + 1000)));
    expect(out.length).toBe(1);
    expect(out[0]![2]!.equals(big)).toBe(true);
    expect(p.buffered).toBe(0);
  });
});

describe('protocol errors and limits', () => {
  const bad: [string, RegExp, Partial<ConstructorParameters<typeof RespCommandParser>[0]>?][] = [
    ['*abc\r\n', /invalid multibulk length/],
    ['*01\r\n', /invalid multibulk length/],
    ['*11\r\n', /invalid multibulk length/, { maxArrayElements: 10 }],
    ['*1\r\n$-1\r\n', /invalid bulk length/],
    ['*1\r\n$x\r\n', /invalid bulk length/],
    ['*1\r\n$11\r\n', /invalid bulk length/, { maxBulkLength: 10 }],
    ['*1\r\n:1\r\n', /expected '\$', got ':'/],
    ['*1\r\n$1\r\nab\r\n', /expected CRLF after a bulk string/],
    ['*1\n', /expected CRLF at the end of a line/],
    ['*' + '1'.repeat(40), /too big mbulk count string/],
    ['*1\r\n$' + '1'.repeat(40), /too big bulk count string/],
    ['x'.repeat(101), /too big inline request/, { maxInlineLength: 100 }],
    ['x'.repeat(101) + '\r\n', /too big inline request/, { maxInlineLength: 100 }],
    ['SET "abc\r\n', /unbalanced quotes/],
    ['SET "abc"def\r\n', /unbalanced quotes/],
    ["SET 'abc\r\n", /unbalanced quotes/],
  ];
  for (const [wire, re, limits] of bad) {
    it(`${JSON.stringify(wire.slice(0, 30))} -> ${re.source}`, () => {
      const p = new RespCommandParser(limits ?? {});
      let caught: unknown;
      try {
        for (const byte of B(wire)) p.feed(Buffer.from([byte]));
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(RespProtocolError);
      expect((caught as Error).message).toMatch(/^Protocol error: /);
      expect((caught as Error).message).toMatch(re);
      // the parser stays failed: a server answers the error and closes
      expect(p.failed?.message).toBe((caught as Error).message);
      expect(() => p.feed(B('*1\r\n$4\r\nPING\r\n'))).toThrow((caught as Error).message);
    });
  }

  it('never buffers more than the limits allow without a newline', () => {
    const p = new RespCommandParser({ maxInlineLength: 1000 });
    expect(() => {
      for (let i = 0; i < 100; i++) p.feed(Buffer.alloc(100, 0x61));
    }).toThrow(/too big inline request/);
    expect(p.buffered).toBeLessThanOrEqual(1100);
  });

  it('the decoder limits nesting, bulk and array sizes', () => {
    expect(() => new RespDecoder({ maxDepth: 3 }).feed(B('*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n'))).toThrow(
      /too deeply nested/,
    );
    expect(new RespDecoder({ maxDepth: 3 }).feed(B('*1\r\n*1\r\n*1\r\n:1\r\n'))).toEqual([[[[1]]]]);
    expect(() => new RespDecoder({ maxBulkLength: 3 }).feed(B('$4\r\n'))).toThrow(/invalid bulk length/);
    expect(() => new RespDecoder({ maxArrayElements: 3 }).feed(B('*4\r\n'))).toThrow(/invalid multibulk length/);
    expect(() => new RespDecoder().feed(B('?\r\n'))).toThrow(/invalid type byte '\?'/);
    expect(() => new RespDecoder().feed(B(':1.5\r\n'))).toThrow(/invalid integer/);
    expect(() => new RespDecoder().feed(B(':99999999999999999999\r\n'))).toThrow(/invalid integer/);
    expect(() => new RespDecoder({ maxInlineLength: 5 }).feed(B('+123456\r\n'))).toThrow(/too big inline reply/);
  });
});

describe('serializers', () => {
  it('write each type', () => {
    expect(simpleString('OK').toString()).toBe('+OK\r\n');
    expect(simpleString('a\r\nb').toString()).toBe('+a b\r\n');
    expect(errorReply('ERR bad\nthing').toString()).toBe('-ERR bad thing\r\n');
    expect(integer(-7).toString()).toBe(':-7\r\n');
    expect(integer(2n ** 63n - 1n).toString()).toBe(':9223372036854775807\r\n');
    expect(() => integer(1.5)).toThrow(RangeError);
    expect(bulkString('héllo').toString('latin1')).toBe('$6\r\nh\xc3\xa9llo\r\n');
    expect(bulkString(new Uint8Array([0, 255]))).toEqual(Buffer.from([0x24, 0x32, 13, 10, 0, 255, 13, 10]));
    expect(bulkString(null)).toEqual(NIL_BULK);
    expect(arrayOf([integer(1), bulkString('a')]).toString()).toBe('*2\r\n:1\r\n$1\r\na\r\n');
    expect(arrayOf(null)).toEqual(NIL_ARRAY);
    expect(encodeCommand(['GET', 'k']).toString()).toBe('*2\r\n$3\r\nGET\r\n$1\r\nk\r\n');
  });

  it('RespWriter batches replies and grows past its initial capacity', () => {
    const w = new RespWriter(8);
    w.simple('OK')
      .error('ERR x')
      .integer(3)
      .bulk('abc')
      .nil()
      .nilArray()
      .arrayHeader(2)
      .bulk(null)
      .value([1, 'two', B('3')]);
    expect(w.take().toString()).toBe(
      '+OK\r\n-ERR x\r\n:3\r\n$3\r\nabc\r\n$-1\r\n*-1\r\n*2\r\n$-1\r\n*3\r\n:1\r\n+two\r\n$1\r\n3\r\n',
    );
    expect(w.length).toBe(0);
    w.bulk(Buffer.alloc(10_000, 1));
    expect(w.take().length).toBe(10_000 + 10);
  });

  it('splitArgs matches redis-cli quoting', () => {
    expect(splitArgs(B('  a   b  '))!.map(String)).toEqual(['a', 'b']);
    expect(splitArgs(B(''))).toEqual([]);
    expect(splitArgs(B('"\\x4g"'))!.map(String)).toEqual(['x4g']);
    expect(splitArgs(B('"a"b'))).toBeUndefined();
  });
});

// ---------------------------------------------------------------- property tests

function withCuts<T>(
  bytes: Buffer,
  cuts: number[],
  make: () => { feed: (c: Buffer) => T[]; failed: RespProtocolError | undefined },
): { items: T[]; error?: unknown } {
  const p = make();
  const items: T[] = [];
  try {
    let prev = 0;
    for (const c of [...cuts, bytes.length]) {
      items.push(...p.feed(bytes.subarray(prev, c)));
      prev = c;
    }
    expect(p.failed).toBeUndefined();
    return { items };
  } catch (error) {
    expect(error).toBeInstanceOf(RespProtocolError);
    expect(p.failed?.message).toBe((error as Error).message);
    items.push(...((error as RespProtocolError).completed as T[]));
    return { items, error };
  }
}

const valueArb = fc.letrec<{ v: RespValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.string({ unit: 'grapheme-ascii' }).map((s) => s.replace(/[\r\n]/g, '')),
    fc.string({ unit: 'grapheme-ascii' }).map((s) => new RespErrorReply(s.replace(/[\r\n]/g, ''))),
    fc
      .bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })
      .map((b) => (b >= -(2n ** 53n) + 1n && b <= 2n ** 53n - 1n ? Number(b) : b)),
    fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u)),
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 4 }),
  ),
})).v;

describe('fuzz (fast-check)', () => {
  it('random bytes in random chunks: only RespProtocolError, and the chunking changes nothing', () => {
    const bytesArb = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      // bytes from the protocol's alphabet reach deeper states
      fc.array(fc.constantFrom(...B('*$:+-\r\n0123456789 "\'\\xab')), { maxLength: 200 }).map((a) => new Uint8Array(a)),
    );
    fc.assert(
      fc.property(bytesArb, fc.nat(), (u, seed) => {
        const bytes = Buffer.from(u);
        const cuts = [...new Set([seed % (bytes.length + 1), (seed * 7) % (bytes.length + 1)])].sort((a, b) => a - b);
        for (const make of [
          () => new RespCommandParser({ maxInlineLength: 64 }),
          () => new RespDecoder({ maxInlineLength: 64, maxDepth: 4 }),
        ]) {
          const whole = withCuts<unknown>(
            bytes,
            [],
            make as () => { feed: (c: Buffer) => unknown[]; failed: RespProtocolError | undefined },
          );
          const cut = withCuts<unknown>(
            bytes,
            cuts,
            make as () => { feed: (c: Buffer) => unknown[]; failed: RespProtocolError | undefined },
          );
          for (const r of [whole, cut]) if (r.error !== undefined) expect(r.error).toBeInstanceOf(RespProtocolError);
          expect(cut.error === undefined).toBe(whole.error === undefined);
          expect(cut.items).toEqual(whole.items);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('random valid commands (arrays and inline) round-trip through any chunking', () => {
    const arrayCmd = fc.array(fc.uint8Array({ maxLength: 60 }), { minLength: 1, maxLength: 6 }).map((args) => ({
      wire: encodeCommand(args),
      args: args.map((a) => Buffer.from(a)),
    }));
    const word = fc.string({ unit: fc.constantFrom(...'abcXYZ019-_:.'), minLength: 1, maxLength: 10 });
    const inlineCmd = fc
      .array(word, { minLength: 1, maxLength: 5 })
      .map((ws) => ({ wire: B(ws.join(' ') + '\r\n'), args: ws.map(B) }));
    fc.assert(
      fc.property(fc.array(fc.oneof(arrayCmd, inlineCmd), { minLength: 1, maxLength: 8 }), fc.nat(), (cmds, seed) => {
        const wire = Buffer.concat(cmds.map((c) => c.wire));
        const cuts = [...new Set(Array.from({ length: 6 }, (_, i) => (seed * (i + 3)) % (wire.length + 1)))].sort(
          (a, b) => a - b,
        );
        const r = withCuts(wire, cuts, () => new RespCommandParser());
        expect(r.error).toBeUndefined();
        expect(r.items).toEqual(cmds.map((c) => c.args));
      }),
      { numRuns: 1000 },
    );
  });

  it('random values round-trip through encodeResp and RespDecoder under any chunking', () => {
    fc.assert(
      fc.property(fc.array(valueArb, { minLength: 1, maxLength: 5 }), fc.nat(), (values, seed) => {
        const wire = Buffer.concat(values.map((v) => encodeResp(v)));
        const cuts = [...new Set(Array.from({ length: 5 }, (_, i) => (seed * (i + 2)) % (wire.length + 1)))].sort(
          (a, b) => a - b,
        );
        const r = withCuts(wire, cuts, () => new RespDecoder());
        expect(r.error).toBeUndefined();
        expect(r.items).toEqual(values);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('errors after complete commands', () => {
  it('the error carries the commands completed before it in the same chunk; later feeds throw', () => {
    const p = new RespCommandParser();
    let caught: RespProtocolError | undefined;
    try {
      p.feed(B('*1\r\n$4\r\nPING\r\nGET a\r\n*x\r\n'));
    } catch (e) {
      caught = e as RespProtocolError;
    }
    expect(caught).toBeInstanceOf(RespProtocolError);
    expect(caught!.reason).toBe('invalid multibulk length');
    expect(caught!.message).toBe('Protocol error: invalid multibulk length');
    expect(strs(caught!.completed as Buffer[][])).toEqual([['PING'], ['GET', 'a']]);
    expect(p.failed).toBeInstanceOf(RespProtocolError);
    expect(() => p.feed(B('PING\r\n'))).toThrow(RespProtocolError);
  });
});

describe('regressions', () => {
  it('a NUL byte in an inline command is part of a word (it once looped forever)', () => {
    expect(splitArgs(B('\0a b\0'))!.map((x) => x.toString('latin1'))).toEqual(['\0a', 'b\0']);
    const p = new RespCommandParser();
    expect(strs(p.feed(B('\0\xb9\xc7\xa4\n\x02\xd2y\xf3')))).toEqual([['\0\xb9\xc7\xa4']]);
  });
});

describe('chunk ownership', () => {
  it('an incomplete tail is kept in the parser own buffer: the caller may reuse its read buffer', () => {
    const p = new RespCommandParser();
    const readBuf = Buffer.alloc(64);
    const first = B('*2\r\n$3\r\nGET\r\n$5\r\nab');
    first.copy(readBuf);
    expect(p.feed(readBuf.subarray(0, first.length))).toEqual([]);
    readBuf.fill(0x21); // the socket reuses its buffer
    const second = B('cde\r\n');
    second.copy(readBuf);
    expect(strs(p.feed(readBuf.subarray(0, second.length)))).toEqual([['GET', 'abcde']]);
  });

  it('so is an unfinished command that ends exactly at a chunk boundary, and an unfinished reply array', () => {
    const p = new RespCommandParser();
    const readBuf = Buffer.alloc(64);
    const first = B('*2\r\n$3\r\nGET\r\n');
    first.copy(readBuf);
    expect(p.feed(readBuf.subarray(0, first.length))).toEqual([]);
    readBuf.fill(0x21);
    B('$1\r\nk\r\n').copy(readBuf);
    expect(strs(p.feed(readBuf.subarray(0, 7)))).toEqual([['GET', 'k']]);

    const d = new RespDecoder();
    const r1 = B('*2\r\n*1\r\n$2\r\nab\r\n');
    r1.copy(readBuf);
    expect(d.feed(readBuf.subarray(0, r1.length))).toEqual([]);
    readBuf.fill(0x21);
    B(':1\r\n').copy(readBuf);
    expect(d.feed(readBuf.subarray(0, 4))).toEqual([[[B('ab')], 1]]);
  });
});

describe('SETs encoded by the parser (issue #19 point 2)', () => {
  /** a parser's items with each encoded SET turned back into its arguments */
  const plain = (items: Buffer[][]) =>
    items.map((c) => (c[0] === ENCODED_SET ? encodedSetArgs(c[1]!) : c)).map(upperSet);
  /** the command name's case does not matter: SET in any case as "SET" */
  const upperSet = (c: Buffer[]) =>
    c.length === 3 && c[0]!.toString('latin1').toUpperCase() === 'SET' ? [B('SET'), c[1]!, c[2]!] : c;
  const setName = fc.constantFrom('SET', 'set', 'Set', 'sEt');

  it('gives the same commands as the general parser, under any chunking and with damaged bytes', () => {
    const setCmd = fc
      .tuple(setName, fc.uint8Array({ maxLength: 30 }), fc.uint8Array({ maxLength: 300 }))
      .map(([n, k, v]) => encodeCommand([B(n), k, v]));
    const otherCmd = fc
      .array(fc.uint8Array({ maxLength: 20 }), { minLength: 1, maxLength: 4 })
      .map((args) => encodeCommand(args));
    const inline = fc.constantFrom(B('SET a b\r\n'), B('PING\r\n'), B('*3\r\n$3\r\nSET\r\n$01\r\na\r\n$1\r\nb\r\n'));
    fc.assert(
      fc.property(
        fc.array(fc.oneof(setCmd, setCmd, otherCmd, inline), { minLength: 1, maxLength: 8 }),
        fc.nat(),
        fc.option(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }))),
        fc.integer({ min: 0, max: 300 }),
        (cmds, seed, damage, maxValue) => {
          const wire = Buffer.concat(cmds);
          if (damage) wire[damage[0] % wire.length] = damage[1];
          const cuts = [...new Set(Array.from({ length: 5 }, (_, i) => (seed * (i + 3)) % (wire.length + 1)))].sort(
            (a, b) => a - b,
          );
          const ref = withCuts(wire, cuts, () => new RespCommandParser({ maxBulkLength: 200 }));
          const fast = withCuts(
            wire,
            cuts,
            () => new RespCommandParser({ maxBulkLength: 200 }, { encodeSetMaxValue: maxValue }),
          );
          expect(plain(fast.items)).toEqual(ref.items.map(upperSet));
          expect((fast.error as Error | undefined)?.message).toBe((ref.error as Error | undefined)?.message);
          for (const c of fast.items) {
            if (c[0] !== ENCODED_SET) continue;
            const [, k, v] = encodedSetArgs(c[1]!);
            expect(v!.length).toBeLessThanOrEqual(maxValue);
            expect(Buffer.from(c[1]!)).toEqual(Buffer.from(KvCommands.set(k!, v!)));
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('encodes a whole pipelined SET, and leaves one over the value limit to the general path', () => {
    const p = new RespCommandParser({}, { encodeSetMaxValue: 3 });
    const out = p.feed(
      Buffer.concat([encodeCommand([B('set'), B('k'), B('abc')]), encodeCommand([B('SET'), B('k'), B('abcd')])]),
    );
    expect(out[0]![0]).toBe(ENCODED_SET);
    expect(Buffer.from(out[0]![1]!)).toEqual(Buffer.from(KvCommands.set('k', 'abc')));
    expect(strs([out[1]!])).toEqual([['SET', 'k', 'abcd']]);
  });
});
