import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ContractViolation, encodeValue } from '@decree/protocol';
import {
  KvCommands,
  KvMachine,
  KvResults,
  SCAN_SLOTS,
  dataFrame,
  decodeResult,
  globMatcher,
  parseInt64,
  scanSlot,
  type KvResult,
} from '../src/index.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const b = (s: string) => enc.encode(s);

/** A machine with a slot counter: every call applies at the next slot unless one is given. */
function machine(ttl?: number) {
  // a ttl given: sessions expire by slots alone (no time window), as the log here carries no timestamps
  const m = new KvMachine(ttl === undefined ? {} : { sessionTtlSlots: ttl, sessionTtlMs: 0 });
  let slot = 0;
  const run = (cmd: Uint8Array, at?: number): KvResult => {
    slot = at ?? slot + 1;
    const r = m.apply(cmd, slot);
    expect(r).toBeInstanceOf(Uint8Array);
    return decodeResult(r!);
  };
  return { m, run, raw: (cmd: Uint8Array, at?: number) => m.apply(cmd, (slot = at ?? slot + 1))! };
}

const str = (r: KvResult) => (r.type === 'bulk' ? dec.decode(r.value) : r.type);
const int = (n: number | bigint): KvResult => ({ type: 'int', value: n });
const err = (r: KvResult) => (r.type === 'error' ? r.message : `not an error: ${r.type}`);

describe('command semantics', () => {
  it('SET then GET; GET of a missing key is nil; SET overwrites', () => {
    const { run } = machine();
    expect(run(KvCommands.get('a'))).toEqual({ type: 'nil' });
    expect(run(KvCommands.set('a', '1'))).toEqual({ type: 'ok' });
    expect(str(run(KvCommands.get('a')))).toBe('1');
    run(KvCommands.set('a', 'two'));
    expect(str(run(KvCommands.get('a')))).toBe('two');
  });

  it('keeps binary keys and values exactly (every byte value, empty, large)', () => {
    const { m, run } = machine();
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const rev = all.slice().reverse();
    run(KvCommands.set(all, rev));
    expect(run(KvCommands.get(all))).toEqual({ type: 'bulk', value: rev });
    run(KvCommands.set('', ''));
    expect(run(KvCommands.get(''))).toEqual({ type: 'bulk', value: new Uint8Array(0) });
    const big = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 31) & 0xff);
    run(KvCommands.set('big', big));
    expect(run(KvCommands.get('big'))).toEqual({ type: 'bulk', value: big });
    // UTF-8 string keys address the same entry as their bytes
    run(KvCommands.set('clé', 'v'));
    expect(str(run(KvCommands.get(b('clé'))))).toBe('v');
    expect(m.get('clé')).toEqual(b('v'));
    expect(m.get('nope')).toBeUndefined();
  });

  it('copies values out of the command buffer (reusing it later does not change the state)', () => {
    const { run } = machine();
    const cmd = KvCommands.set('k', 'value');
    run(cmd);
    cmd.fill(0x7a);
    expect(str(run(KvCommands.get('k')))).toBe('value');
  });

  it('DEL and EXISTS count keys (EXISTS counts repeats, DEL deletes once)', () => {
    const { run } = machine();
    run(
      KvCommands.mset([
        ['a', '1'],
        ['b', '2'],
      ]),
    );
    expect(run(KvCommands.exists(['a', 'a', 'b', 'zz']))).toEqual(int(3));
    expect(run(KvCommands.del(['a', 'a', 'zz']))).toEqual(int(1));
    expect(run(KvCommands.exists('a'))).toEqual(int(0));
    expect(run(KvCommands.del('b'))).toEqual(int(1));
    expect(run(KvCommands.del('b'))).toEqual(int(0));
  });

  it('INCR adds to the integer (missing = 0), stores it as a decimal string, and refuses non-integers', () => {
    const { run } = machine();
    expect(run(KvCommands.incr('n'))).toEqual(int(1));
    expect(run(KvCommands.incr('n', 41))).toEqual(int(42));
    expect(run(KvCommands.incr('n', -50))).toEqual(int(-8));
    expect(str(run(KvCommands.get('n')))).toBe('-8');
    for (const bad of ['abc', '', '007', '-0', '+1', ' 1', '1 ', '1.5', '99999999999999999999', '-']) {
      run(KvCommands.set('x', bad));
      expect(err(run(KvCommands.incr('x')))).toBe('ERR value is not an integer or out of range');
      expect(str(run(KvCommands.get('x')))).toBe(bad); // unchanged
    }
  });

  it('INCR is 64-bit signed: bigints past 2^53, overflow is an error', () => {
    const { run } = machine();
    run(KvCommands.set('n', String(2 ** 53 - 1)));
    expect(run(KvCommands.incr('n'))).toEqual(int(2n ** 53n));
    expect(str(run(KvCommands.get('n')))).toBe('9007199254740992');
    run(KvCommands.set('n', '9223372036854775806'));
    expect(run(KvCommands.incr('n'))).toEqual(int(2n ** 63n - 1n));
    expect(err(run(KvCommands.incr('n')))).toBe('ERR increment or decrement would overflow');
    expect(str(run(KvCommands.get('n')))).toBe('9223372036854775807');
    run(KvCommands.set('m', '-9223372036854775808'));
    expect(err(run(KvCommands.incr('m', -1)))).toMatch(/overflow/);
    expect(run(KvCommands.incr('m', 2n ** 62n))).toEqual(int(-(2n ** 62n)));
    expect(run(KvCommands.incr('m', 2n ** 62n))).toEqual(int(0));
  });

  it('parseInt64 agrees with BigInt on canonical decimals', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (v) => {
        const p = parseInt64(v.toString());
        expect(p).toBeDefined();
        expect(BigInt(p!)).toBe(v);
      }),
    );
    for (const s of [
      '9007199254740993',
      '9999999999999999',
      '-9999999999999999',
      '999999999999999',
      '1000000000000000',
    ])
      expect(String(parseInt64(s))).toBe(s);
    expect(parseInt64('9223372036854775808')).toBeUndefined();
    expect(parseInt64('-9223372036854775809')).toBeUndefined();
  });

  it('MGET returns values and nils in order; MSET sets all, the last of a repeated key wins', () => {
    const { run } = machine();
    expect(
      run(
        KvCommands.mset([
          ['a', '1'],
          ['b', '2'],
          ['a', '3'],
        ]),
      ),
    ).toEqual({ type: 'ok' });
    const { raw } = machine();
    raw(
      KvCommands.mset([
        ['a', '1'],
        ['b', '2'],
        ['a', '3'],
      ]),
    );
    expect(KvResults.values(raw(KvCommands.mget(['a', 'zz', 'b'])))).toEqual([b('3'), null, b('2')]);
    expect(run(KvCommands.mget(['zz']))).toEqual({ type: 'array', items: [{ type: 'nil' }] });
  });

  it('CAS sets only when the current value matches (null = absent) and answers 1/0', () => {
    const { run } = machine();
    expect(run(KvCommands.cas('k', 'x', 'v1'))).toEqual(int(0));
    expect(run(KvCommands.get('k'))).toEqual({ type: 'nil' });
    expect(run(KvCommands.cas('k', null, 'v1'))).toEqual(int(1));
    expect(run(KvCommands.cas('k', null, 'v2'))).toEqual(int(0));
    expect(run(KvCommands.cas('k', 'v2', 'v3'))).toEqual(int(0));
    expect(run(KvCommands.cas('k', 'v1', 'v3'))).toEqual(int(1));
    expect(str(run(KvCommands.get('k')))).toBe('v3');
    expect(run(KvCommands.cas('k', '', 'v4'))).toEqual(int(0));
    run(KvCommands.set('e', ''));
    expect(run(KvCommands.cas('e', '', 'v4'))).toEqual(int(1));
  });

  it('query() serves read commands without changing the state and refuses writes', () => {
    const { m, run } = machine();
    run(KvCommands.set('a', '1'));
    const before = m.digest();
    expect(str(decodeResult(m.query(KvCommands.get('a'))))).toBe('1');
    expect(decodeResult(m.query(KvCommands.exists(['a', 'b'])))).toEqual(int(1));
    expect(err(decodeResult(m.query(KvCommands.set('a', '2'))))).toMatch(/only read commands/);
    expect(m.digest()).toBe(before);
    expect(m.stats().applied).toBe(1);
  });

  it('a slot that goes backwards is a contract violation (contracts are on in tests)', () => {
    const { m } = machine();
    m.apply(KvCommands.set('a', '1'), 5);
    m.apply(KvCommands.set('a', '1'), 5); // same slot: a batch
    expect(() => m.apply(KvCommands.set('a', '1'), 4)).toThrow(ContractViolation);
  });
});

// ---------------------------------------------------------------- DBSIZE, SCAN, TYPE, TTL

/** Redis's stringmatchlen (util.c), ported literally as the reference for globMatcher. */
function redisMatch(p: string, s: string): boolean {
  const go = (pi: number, si: number): boolean => {
    let pl = p.length - pi;
    let sl = s.length - si;
    while (pl > 0 && sl > 0) {
      const pc = p[pi]!;
      if (pc === '*') {
        while (pl > 1 && p[pi + 1] === '*') {
          pi++;
          pl--;
        }
        if (pl === 1) return true;
        while (sl > 0) {
          if (go(pi + 1, si)) return true;
          si++;
          sl--;
        }
        return false;
      } else if (pc === '?') {
        si++;
        sl--;
      } else if (pc === '[') {
        pi++;
        pl--;
        const not = pl > 0 && p[pi] === '^';
        if (not) {
          pi++;
          pl--;
        }
        let match = false;
        for (;;) {
          if (pl >= 2 && p[pi] === '\\') {
            pi++;
            pl--;
            if (p[pi] === s[si]) match = true;
          } else if (pl > 0 && p[pi] === ']') break;
          else if (pl === 0) {
            pi--;
            pl++;
            break;
          } else if (pl >= 3 && p[pi + 1] === '-') {
            let a = p.charCodeAt(pi);
            let b = p.charCodeAt(pi + 2);
            if (a > b) [a, b] = [b, a];
            const c = s.charCodeAt(si);
            pi += 2;
            pl -= 2;
            if (c >= a && c <= b) match = true;
          } else if (p[pi] === s[si]) match = true;
          pi++;
          pl--;
        }
        if (not) match = !match;
        if (!match) return false;
        si++;
        sl--;
      } else {
        if (pc === '\\' && pl >= 2) {
          pi++;
          pl--;
        }
        if (p[pi] !== s[si]) return false;
        si++;
        sl--;
      }
      pi++;
      pl--;
      if (sl === 0) {
        while (pi < p.length && p[pi] === '*') {
          pi++;
          pl--;
        }
        break;
      }
    }
    return pl === 0 && sl === 0;
  };
  return go(0, 0);
}

/** every key a full SCAN returns (with duplicates), following cursors from 0 */
function scanAll(run: (c: Uint8Array) => KvResult, count: number, match?: string): { keys: string[]; calls: number } {
  const keys: string[] = [];
  let cursor = 0;
  let calls = 0;
  do {
    const r = run(KvCommands.scan(cursor, count, match ?? null));
    calls++;
    if (r.type !== 'array') throw new Error(`SCAN answered ${r.type}`);
    const [c, page] = r.items;
    cursor = Number(str(c!));
    if (page!.type !== 'array') throw new Error('no key array');
    for (const k of page!.items) keys.push(str(k));
  } while (cursor !== 0);
  return { keys, calls };
}

describe('DBSIZE, SCAN, TYPE, TTL', () => {
  it('DBSIZE counts keys; TYPE is string or none; TTL is -1 for a key, -2 for a missing one', () => {
    const { m, run } = machine();
    expect(run(KvCommands.dbsize())).toEqual(int(0));
    run(
      KvCommands.mset([
        ['a', '1'],
        ['b', '2'],
      ]),
    );
    run(KvCommands.incr('n'));
    expect(run(KvCommands.dbsize())).toEqual(int(3));
    run(KvCommands.del(['a', 'zz']));
    expect(run(KvCommands.dbsize())).toEqual(int(2));
    expect(run(KvCommands.type('b'))).toEqual({ type: 'status', value: 'string' });
    expect(run(KvCommands.type('a'))).toEqual({ type: 'status', value: 'none' });
    expect(run(KvCommands.ttl('b'))).toEqual(int(-1));
    expect(run(KvCommands.ttl('a'))).toEqual(int(-2));
    // all are reads: query() serves them, and applying them changes nothing
    const d = m.digest();
    expect(decodeResult(m.query(KvCommands.dbsize()))).toEqual(int(2));
    expect(decodeResult(m.query(KvCommands.ttl('n')))).toEqual(int(-1));
    expect(decodeResult(m.query(KvCommands.type('n')))).toEqual({ type: 'status', value: 'string' });
    expect(decodeResult(m.query(KvCommands.scan(0, 100))).type).toBe('array');
    expect(m.digest()).toBe(d);
  });

  it('a full SCAN returns every key once, with any COUNT, and MATCH filters', () => {
    const { run } = machine();
    const all = Array.from({ length: 500 }, (_, i) => `user:${i}`);
    run(KvCommands.mset(all.map((k) => [k, 'v'] as [string, string])));
    run(
      KvCommands.mset([
        ['other', 'x'],
        ['', 'empty key'],
      ]),
    );
    for (const count of [1, 7, 100, 10_000]) {
      const { keys, calls } = scanAll(run, count);
      expect(keys.sort()).toEqual([...all, 'other', ''].sort());
      if (count >= 10_000) expect(calls).toBe(1);
    }
    expect(scanAll(run, 10, 'user:1?').keys.sort()).toEqual(Array.from({ length: 10 }, (_, i) => `user:1${i}`).sort());
    expect(scanAll(run, 10, 'oth*').keys).toEqual(['other']);
    expect(scanAll(run, 10, '*').keys).toHaveLength(502); // MATCH * filters nothing (the empty key too)
    expect(scanAll(run, 10, 'nope*').keys).toEqual([]);
    // a cursor past the space ends the scan
    expect(run(KvCommands.scan(SCAN_SLOTS + 5, 10))).toEqual({
      type: 'array',
      items: [
        { type: 'bulk', value: new TextEncoder().encode('0') },
        { type: 'array', items: [] },
      ],
    });
    expect(run(new Uint8Array([0x0a, 0, 0, 0])).type).toBe('error'); // COUNT 0
  });

  it('keys present for the whole scan are returned while others are added and deleted between pages', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 80 }),
        fc.array(fc.tuple(fc.boolean(), fc.string({ minLength: 1, maxLength: 6 })), { maxLength: 200 }),
        fc.integer({ min: 1, max: 20 }),
        (initial, changes, count) => {
          const { run } = machine();
          run(KvCommands.mset(initial.map((k) => [k, '1'] as [string, string])));
          // the keys never touched by a change are present throughout
          const touched = new Set(changes.map(([, k]) => k));
          const stable = initial.filter((k) => !touched.has(k));
          const seen = new Set<string>();
          let cursor = 0;
          let step = 0;
          do {
            const r = run(KvCommands.scan(cursor, count));
            if (r.type !== 'array') throw new Error('not an array');
            cursor = Number(str(r.items[0]!));
            for (const k of (r.items[1] as { readonly items: readonly KvResult[] }).items) seen.add(str(k));
            // a few changes between two pages
            for (let i = 0; i < 3 && step < changes.length; i++, step++) {
              const [add, k] = changes[step]!;
              run(add ? KvCommands.set(k, '2') : KvCommands.del(k));
            }
          } while (cursor !== 0);
          for (const k of stable) expect(seen.has(k)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a cursor means the same on every replica (pages agree, also after a snapshot restore)', async () => {
    const a = machine();
    const keys = Array.from({ length: 300 }, (_, i) => `k${i}`);
    a.run(KvCommands.mset(keys.map((k) => [k, 'v'] as [string, string])));
    a.run(KvCommands.scan(0, 5)); // a's index exists before the changes below; b's is built after them
    a.run(KvCommands.del(['k1', 'k2']));
    a.run(KvCommands.set('new', 'v'));
    const b = new KvMachine();
    await b.restore(await a.m.snapshotBytes());
    let cursor = 0;
    do {
      const ra = a.m.query(KvCommands.scan(cursor, 17));
      const rb = b.query(KvCommands.scan(cursor, 17));
      expect(Buffer.from(ra).equals(Buffer.from(rb))).toBe(true);
      const r = decodeResult(ra) as { readonly items: readonly KvResult[] };
      cursor = Number(str(r.items[0]!));
    } while (cursor !== 0);
    expect(scanSlot('k1')).toBe(scanSlot('k1'));
  });

  it('globMatcher agrees with Redis stringmatchlen', () => {
    const alphabet = fc.constantFrom('a', 'b', 'c', '*', '?', '[', ']', '^', '-', '\\', 'z');
    const pat = fc.array(alphabet, { maxLength: 9 }).map((a) => a.join(''));
    const subject = fc
      .array(fc.constantFrom('a', 'b', 'c', '-', ']', '[', '\\', '*', 'z'), { maxLength: 8 })
      .map((a) => a.join(''));
    fc.assert(
      fc.property(pat, subject, (p, s) => {
        expect(globMatcher(p)(s), `pattern ${JSON.stringify(p)} on ${JSON.stringify(s)}`).toBe(redisMatch(p, s));
      }),
      { numRuns: 20_000 },
    );
    const cases: [string, string, boolean][] = [
      ['h?llo', 'hello', true],
      ['h*llo', 'heeeello', true],
      ['h[ae]llo', 'hallo', true],
      ['h[^e]llo', 'hello', false],
      ['h[a-b]llo', 'hbllo', true],
      ['h[b-a]llo', 'hallo', true],
      ['h\\*llo', 'h*llo', true],
      ['h\\*llo', 'hello', false],
      ['*', '', false],
      ['', '', true],
      ['a[bc', 'ab', true],
    ];
    for (const [p, s, want] of cases) expect(globMatcher(p)(s), `${p} on ${s}`).toBe(want);
  });

  it('a pathological pattern stays fast (no backtracking blow-up)', () => {
    const p = '*a'.repeat(30) + 'b';
    const s = 'a'.repeat(5_000);
    const t = Date.now();
    expect(globMatcher(p)(s)).toBe(false);
    expect(Date.now() - t).toBeLessThan(1_000);
  });
});

// ---------------------------------------------------------------- malformed input

const everyKind = (): Uint8Array[] => [
  KvCommands.set('key', 'value'),
  KvCommands.get('key'),
  KvCommands.del(['a', 'b']),
  KvCommands.incr('n', 3),
  KvCommands.mget(['a', 'b']),
  KvCommands.mset([
    ['a', '1'],
    ['b', '2'],
  ]),
  KvCommands.exists(['a', 'b']),
  KvCommands.cas('a', '1', '2'),
  KvCommands.cas('a', null, '2'),
  KvCommands.session('client', 9, KvCommands.set('a', 'z')),
  KvCommands.dbsize(),
  KvCommands.scan(7, 10, 'a*'),
  KvCommands.scan(0, 3),
  KvCommands.type('a'),
  KvCommands.ttl('a'),
];

describe('malformed commands', () => {
  it('every strict prefix of every command is an error result with no effect', () => {
    for (const cmd of everyKind()) {
      for (let len = 0; len < cmd.length; len++) {
        const { m, run } = machine();
        run(
          KvCommands.mset([
            ['a', '1'],
            ['b', '2'],
            ['n', '5'],
          ]),
        );
        const before = m.digest();
        const r = run(cmd.slice(0, len));
        // a session prefix that holds a whole (empty) inner command is a session of a malformed command
        expect(r.type, `prefix ${len} of ${Buffer.from(cmd).toString('hex')}`).toBe('error');
        if (cmd[0] !== 0x40) expect(m.digest()).toBe(before);
      }
    }
  });

  it('gives a deterministic error for each kind of bad input', () => {
    const { run } = machine();
    expect(err(run(new Uint8Array([])))).toBe('ERR malformed command: empty');
    expect(err(run(new Uint8Array([0x99])))).toBe('ERR malformed command: unknown opcode 0x99');
    expect(err(run(new Uint8Array([0x00])))).toBe('ERR malformed command: unknown opcode 0x00');
    expect(err(run(new Uint8Array([...KvCommands.get('a'), 0])))).toBe('ERR malformed command: trailing bytes');
    expect(err(run(new Uint8Array([0x03, 0x00])))).toBe('ERR wrong number of arguments');
    expect(err(run(new Uint8Array([0x05, 0xff, 0xff, 0xff, 0x7f, 1, 0x61])))).toBe('ERR malformed command: truncated');
    expect(err(run(new Uint8Array([0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])))).toBe(
      'ERR malformed command: truncated',
    );
    expect(err(run(new Uint8Array([0x08, 1, 0x61, 2, 1, 0x62])))).toBe('ERR malformed command: bad CAS flag');
    const nested = new Uint8Array([0x40, 1, 0x63, 1, 0x40, 1, 0x63, 1, 0x02, 1, 0x61]);
    expect(err(run(nested))).toBe('ERR malformed command: nested session');
  });

  it('random bytes never throw, always give a decodable result, and the same one on two machines', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.uint8Array({ maxLength: 40 }),
            // mostly-valid commands with a few bytes flipped
            fc.tuple(fc.constantFrom(...everyKind()), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([c, i, v]) => {
              const x = c.slice();
              x[i % x.length] = v;
              return x;
            }),
          ),
          { maxLength: 30 },
        ),
        (cmds) => {
          const a = new KvMachine({ sessionTtlSlots: 5 });
          const c = new KvMachine({ sessionTtlSlots: 5 });
          cmds.forEach((cmd, i) => {
            const ra = a.apply(cmd, i + 1)!;
            const rc = c.apply(cmd, i + 1)!;
            expect(() => decodeResult(ra)).not.toThrow();
            expect(Buffer.from(ra).equals(Buffer.from(rc))).toBe(true);
          });
          expect(a.digest()).toBe(c.digest());
        },
      ),
      { numRuns: 500 },
    );
  });
});

// ---------------------------------------------------------------- sessions

describe('client sessions', () => {
  it('a retried (clientId, seq) returns the cached result and applies once', () => {
    const { m, raw } = machine();
    const cmd = KvCommands.session('c1', 1, KvCommands.incr('n'));
    const first = raw(cmd);
    const retry = raw(cmd);
    expect(decodeResult(first)).toEqual(int(1));
    expect(Buffer.from(retry).equals(Buffer.from(first))).toBe(true);
    expect(m.get('n')).toEqual(b('1'));
    expect(decodeResult(raw(KvCommands.session('c1', 2, KvCommands.incr('n'))))).toEqual(int(2));
    expect(decodeResult(raw(KvCommands.session('c1', 2, KvCommands.incr('n'))))).toEqual(int(2));
    expect(m.get('n')).toEqual(b('2'));
    expect(m.session('c1')).toMatchObject({ seq: 2 });
  });

  it('an older seq is refused, other clients are independent, a malformed inner result is cached too', () => {
    const { m, run } = machine();
    run(KvCommands.session('c1', 1, KvCommands.incr('n')));
    expect(run(KvCommands.session('c1', 5, KvCommands.incr('n')))).toEqual(int(2)); // a gap in seqs is fine
    expect(err(run(KvCommands.session('c1', 4, KvCommands.incr('n'))))).toBe(
      'ERR stale session sequence 4 (last applied 5)',
    );
    expect(run(KvCommands.session('c2', 1, KvCommands.incr('n')))).toEqual(int(3));
    expect(m.get('n')).toEqual(b('3'));
    const bad = KvCommands.session('c3', 1, new Uint8Array([0x99]));
    expect(err(run(bad))).toMatch(/unknown opcode/);
    expect(err(run(bad))).toMatch(/unknown opcode/);
    expect(m.session('c3')).toMatchObject({ seq: 1 });
  });

  it('sessions idle for more than sessionTtlSlots slots expire (by slot, on every replica alike)', () => {
    const { m, run } = machine(10);
    const cmd = KvCommands.session('c1', 1, KvCommands.incr('n'));
    run(cmd, 1);
    run(KvCommands.get('x'), 11); // idle 10 slots: still live
    expect(run(cmd, 11)).toEqual(int(1)); // deduped, and touched at 11
    expect(m.get('n')).toEqual(b('1'));
    run(KvCommands.get('x'), 22); // idle 11 slots: expired
    expect(m.session('c1')).toBeUndefined();
    // a retry of a write of the forgotten session (any seq): it may have applied already, so it is refused
    expect(err(run(KvCommands.session('c1', 2, KvCommands.incr('n')), 22))).toBe('ERR session expired');
    expect(err(run(cmd, 23))).toBe('ERR session expired');
    expect(m.get('n')).toEqual(b('1'));
    // another client id opens a new session at once, at any seq (a restarted client may continue above its last)
    expect(run(KvCommands.session('c2', 7, KvCommands.incr('n')), 24)).toEqual(int(2));
    // the forgotten id is remembered for another whole window, then let go (c2, idle now, is forgotten in turn)
    run(KvCommands.get('x'), 50);
    expect(m.stats()).toMatchObject({ sessions: 0, forgotten: 1 });
    expect(run(KvCommands.session('c1', 3, KvCommands.incr('n')), 51)).toEqual(int(3));
    expect(err(run(KvCommands.session('c2', 8, KvCommands.incr('n')), 52))).toBe('ERR session expired');
  });

  it('the window is in log time as well as slots: a session outlives any number of slots within sessionTtlMs', () => {
    const m = new KvMachine({ sessionTtlSlots: 10, sessionTtlMs: 60_000 });
    const at = (slot: number, ms: number, cmd: Uint8Array) => {
      m.beforeBatch(slot, ms);
      return decodeResult(m.apply(cmd, slot)!);
    };
    const t0 = 1_700_000_000_000;
    expect(at(1, t0, KvCommands.session('c1', 1, KvCommands.incr('n')))).toEqual(int(1));
    // 100,000 slots later but 59 s of log time: alive, the retry is answered from the session
    expect(at(100_001, t0 + 59_000, KvCommands.session('c1', 1, KvCommands.incr('n')))).toEqual(int(1));
    expect(at(100_002, t0 + 59_500, KvCommands.session('c1', 2, KvCommands.incr('n')))).toEqual(int(2));
    // a leader whose clock is behind does not move the log's time back
    at(100_003, t0, KvCommands.get('n'));
    // idle past both windows: expired; its retry is refused, never applied twice
    expect(err(at(100_020, t0 + 59_500 + 60_001, KvCommands.session('c1', 2, KvCommands.incr('n'))))).toBe(
      'ERR session expired',
    );
    expect(m.get('n')).toEqual(b('2'));
  });

  it('at most maxSessions sessions: the least recently used is forgotten first', () => {
    const m = new KvMachine({ maxSessions: 2 });
    const run = (slot: number, id: string, seq: number) =>
      decodeResult(m.apply(KvCommands.session(id, seq, KvCommands.incr(id)), slot)!);
    run(1, 'a', 1);
    run(2, 'b', 1);
    run(3, 'a', 2); // a is now the most recent
    run(4, 'c', 1); // b goes
    expect(m.stats().sessions).toBe(2);
    expect(m.session('b')).toBeUndefined();
    expect(err(run(5, 'b', 2))).toBe('ERR session expired');
    expect(run(6, 'a', 2)).toEqual(int(2)); // a retry of a's seq 2: the cached answer
  });

  it('expired sessions are swept from memory', () => {
    const { m, run } = machine(4);
    for (let i = 0; i < 50; i++) run(KvCommands.session(`client-${i}`, 1, KvCommands.get('a')), 1);
    expect(m.stats().sessions).toBe(50);
    run(KvCommands.get('a'), 3);
    expect(m.stats().sessions).toBe(50);
    run(KvCommands.get('a'), 20);
    expect(m.stats().sessions).toBe(0);
  });
});

// ---------------------------------------------------------------- determinism, snapshots

const keyArb = fc.constantFrom('a', 'b', 'c', 'n', '\u00ff', '');
const valArb = fc.oneof(fc.constantFrom('0', '1', '-7', 'x', ''), fc.uint8Array({ maxLength: 12 }));
const plainCmdArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.tuple(keyArb, valArb).map(([k, v]) => KvCommands.set(k, v)),
  keyArb.map((k) => KvCommands.get(k)),
  fc.array(keyArb, { minLength: 1, maxLength: 3 }).map((ks) => KvCommands.del(ks)),
  fc.tuple(keyArb, fc.integer({ min: -5, max: 5 })).map(([k, by]) => KvCommands.incr(k, by)),
  fc.array(keyArb, { minLength: 1, maxLength: 3 }).map((ks) => KvCommands.mget(ks)),
  fc.array(fc.tuple(keyArb, valArb), { minLength: 1, maxLength: 3 }).map((ps) => KvCommands.mset(ps)),
  fc.array(keyArb, { minLength: 1, maxLength: 3 }).map((ks) => KvCommands.exists(ks)),
  fc.tuple(keyArb, fc.option(valArb), valArb).map(([k, e, v]) => KvCommands.cas(k, e, v)),
  fc.uint8Array({ maxLength: 6 }),
);
const cmdArb = fc.oneof(
  { weight: 3, arbitrary: plainCmdArb },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom('c1', 'c2', 'c3'), fc.integer({ min: 0, max: 4 }), plainCmdArb)
      .map(([c, s, inner]) =>
        KvCommands.session(c, s, inner.length && inner[0] === 0x40 ? KvCommands.get('a') : inner),
      ),
  },
);
/** commands with their slots: several commands may share a slot (a batch); slots may jump */
const historyArb = fc
  .array(fc.tuple(cmdArb, fc.integer({ min: 0, max: 4 })), { minLength: 1, maxLength: 60 })
  .map((xs) => {
    let slot = 1;
    return xs.map(([cmd, gap]) => ({ cmd, slot: (slot += gap) }));
  });

async function chunks(bytes: Uint8Array, size: number): Promise<AsyncIterable<Uint8Array>> {
  return (async function* () {
    for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
  })();
}

describe('determinism and snapshots', () => {
  it('two machines fed the same commands give the same results and digest', () => {
    fc.assert(
      fc.property(historyArb, (h) => {
        const x = new KvMachine({ sessionTtlSlots: 6 });
        const y = new KvMachine({ sessionTtlSlots: 6 });
        for (const { cmd, slot } of h)
          expect(Buffer.from(x.apply(cmd, slot)!)).toEqual(Buffer.from(y.apply(cmd, slot)!));
        expect(x.digest()).toBe(y.digest());
      }),
      { numRuns: 300 },
    );
  });

  it('the digest tells different states apart', () => {
    const x = new KvMachine();
    const y = new KvMachine();
    x.apply(KvCommands.set('a', '1'), 1);
    y.apply(KvCommands.set('a', '2'), 1);
    expect(x.digest()).not.toBe(y.digest());
    y.apply(KvCommands.set('a', '1'), 2);
    expect(x.digest()).toBe(y.digest());
    y.apply(KvCommands.session('c', 1, KvCommands.get('a')), 3);
    expect(x.digest()).not.toBe(y.digest());
  });

  it('snapshot midway, restore into a fresh machine, continue: same results and digest', async () => {
    await fc.assert(
      fc.asyncProperty(historyArb, fc.nat(), fc.integer({ min: 1, max: 50 }), async (h, cut, chunk) => {
        const at = cut % (h.length + 1);
        const a = new KvMachine({ sessionTtlSlots: 6 });
        for (const { cmd, slot } of h.slice(0, at)) a.apply(cmd, slot);
        const bytes = await a.snapshotBytes();
        const c = new KvMachine({ sessionTtlSlots: 6 });
        await c.restore(await chunks(bytes, chunk)); // re-chunked by a "transport"
        expect(c.digest()).toBe(a.digest());
        expect(c.stats()).toEqual(a.stats());
        for (const { cmd, slot } of h.slice(at))
          expect(Buffer.from(c.apply(cmd, slot)!)).toEqual(Buffer.from(a.apply(cmd, slot)!));
        expect(c.digest()).toBe(a.digest());
      }),
      { numRuns: 200 },
    );
  });

  it('a snapshot is the state at the time of the call, not of its consumption', async () => {
    const m = new KvMachine();
    m.apply(KvCommands.set('a', '1'), 1);
    m.apply(KvCommands.session('c', 1, KvCommands.get('a')), 1);
    const digest = m.digest();
    const stream = await m.snapshot();
    m.apply(KvCommands.set('a', '2'), 2);
    m.apply(KvCommands.set('b', '2'), 2);
    m.apply(KvCommands.session('c', 2, KvCommands.get('b')), 2);
    const fresh = new KvMachine();
    await fresh.restore(stream);
    expect(fresh.digest()).toBe(digest);
    expect(fresh.get('a')).toEqual(b('1'));
    expect(fresh.get('b')).toBeUndefined();
  });

  it('a large state streams in several frames and restores', async () => {
    const m = new KvMachine();
    const value = new Uint8Array(1000).fill(7);
    for (let i = 0; i < 3000; i++) m.apply(KvCommands.set(`k${i}`, value), 1 + (i >> 6));
    for (let i = 0; i < 100; i++) m.apply(KvCommands.session(`c${i}`, 1, KvCommands.incr('n')), 100);
    const frames: Uint8Array[] = [];
    for await (const f of await m.snapshot()) frames.push(f);
    expect(frames.length).toBeGreaterThan(3); // header, data frames (3 MB), sessions, trailer
    const fresh = new KvMachine();
    await fresh.restore(frames);
    expect(fresh.digest()).toBe(m.digest());
    expect(fresh.size).toBe(3001); // k0..k2999 and n
    expect(fresh.get('n')).toEqual(b('100'));
  });
});

describe('snapshots of a large state do not block the event loop', () => {
  const large = () => {
    const m = new KvMachine();
    const value = new Uint8Array(1000).fill(7);
    for (let i = 0; i < 3000; i++) m.apply(KvCommands.set(`k${i}`, value), 1 + (i >> 6));
    return m;
  };

  it('it is copy-on-call (the learner keeps applying while the stream is read)', () => {
    expect(new KvMachine().snapshotIsCopy).toBe(true);
  });

  it('the event loop turns between two frames of the stream', async () => {
    const m = large();
    let turns = 0;
    let frames = 0;
    let framesBeforeFirstTurn = -1;
    const tick = () => {
      turns++;
      if (framesBeforeFirstTurn < 0) framesBeforeFirstTurn = frames;
    };
    setImmediate(tick);
    for await (const _ of await m.snapshot()) frames++;
    expect(frames).toBeGreaterThan(3);
    // an immediate queued before reading ran while the stream was read, not after its end
    expect(turns).toBe(1);
    expect(framesBeforeFirstTurn).toBeGreaterThan(0);
    expect(framesBeforeFirstTurn).toBeLessThan(frames);
  });

  it('a data frame written straight from the strings is the MessagePack of { d: [bin, …] }', () => {
    const lens = fc.oneof(fc.nat(20), fc.constantFrom(0, 255, 256, 65_535, 65_536, 70_000));
    const latin1 = (n: number, seed: number) =>
      String.fromCharCode(...Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff));
    fc.assert(
      fc.property(fc.array(fc.tuple(lens, lens), { maxLength: 20 }), fc.nat(3), (pairs, skip) => {
        const keys = pairs.map(([k], i) => latin1(k, i));
        const values = pairs.map(([, v], i) => latin1(v, i + 1));
        const from = Math.min(skip, keys.length);
        const body = encodeValue({
          d: keys.slice(from).flatMap((k, i) => [Buffer.from(k, 'latin1'), Buffer.from(values[from + i]!, 'latin1')]),
        });
        const got = Buffer.from(dataFrame(keys, values, from, keys.length));
        expect(got.readUInt32LE(0)).toBe(body.length);
        expect(got.subarray(4).equals(Buffer.from(body))).toBe(true);
      }),
      { numRuns: 60 },
    );
    // array headers past 15 and past 65,535 entries
    for (const n of [8, 40_000]) {
      const keys = Array.from({ length: n }, (_, i) => `k${i}`);
      const values = keys.map((k) => `v${k}`);
      const body = encodeValue({ d: keys.flatMap((k, i) => [Buffer.from(k, 'latin1'), Buffer.from(values[i]!)]) });
      expect(
        Buffer.from(dataFrame(keys, values, 0, n))
          .subarray(4)
          .equals(Buffer.from(body)),
      ).toBe(true);
    }
  });

  it('frames are small (about 256 KiB): one turn of the event loop encodes at most that much', async () => {
    const m = large(); // 3,000 values of 1,000 bytes
    const sizes: number[] = [];
    for await (const f of await m.snapshot()) sizes.push(f.length);
    expect(sizes.length).toBeGreaterThanOrEqual(12);
    for (const n of sizes) expect(n).toBeLessThan((256 << 10) + 2_000);
  });

  it('snapshotYield false reads it in one go (a deterministic simulation); a custom wait is used', async () => {
    let turned = false;
    setImmediate(() => (turned = true));
    const m = new KvMachine({ snapshotYield: false });
    const value = new Uint8Array(1000).fill(7);
    for (let i = 0; i < 3000; i++) m.apply(KvCommands.set(`k${i}`, value), 1);
    for await (const _ of await m.snapshot());
    expect(turned).toBe(false);
    let waits = 0;
    const c = new KvMachine({ snapshotYield: async () => void waits++ });
    for (let i = 0; i < 3000; i++) c.apply(KvCommands.set(`k${i}`, value), 1);
    const fresh = new KvMachine();
    await fresh.restore(await c.snapshot());
    expect(waits).toBeGreaterThanOrEqual(2);
    expect(fresh.digest()).toBe(c.digest());
  });
});

describe('applyAt: a command read in place', () => {
  it('gives the same results and state as apply, with other bytes around the command', () => {
    fc.assert(
      fc.property(historyArb, fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ maxLength: 8 }), (h, pre, post) => {
        const a = new KvMachine({ sessionTtlSlots: 6 });
        const b2 = new KvMachine({ sessionTtlSlots: 6 });
        for (const { cmd, slot } of h) {
          const buf = Buffer.concat([pre, cmd, post]);
          const ra = Buffer.from(a.apply(cmd, slot)!);
          const rb = Buffer.from(b2.applyAt(buf, pre.length, pre.length + cmd.length, slot)!);
          expect(rb).toEqual(ra);
        }
        expect(b2.digest()).toBe(a.digest());
      }),
      { numRuns: 200 },
    );
  });
});

describe('prefetchAt: a hint before a slot is applied', () => {
  it('changes nothing: the same results and state with hints for each slot (and stray ones) as without', () => {
    fc.assert(
      fc.property(historyArb, fc.array(fc.uint8Array({ maxLength: 12 }), { maxLength: 6 }), (h, junk) => {
        const a = new KvMachine({ sessionTtlSlots: 6 });
        const b2 = new KvMachine({ sessionTtlSlots: 6 });
        // hints for every command of a slot before its first apply, as the learner gives them
        for (let i = 0; i < h.length; ) {
          let j = i;
          while (j < h.length && h[j]!.slot === h[i]!.slot) j++;
          for (let k = i; k < j; k++) b2.prefetchAt(h[k]!.cmd, 0, h[k]!.cmd.length);
          for (const x of junk) b2.prefetchAt(x, 0, x.length); // damaged bytes: ignored, never thrown
          b2.prefetchAt(h[i]!.cmd, 0, h[i]!.cmd.length + 3); // a range past the end: ignored
          for (let k = i; k < j; k++) {
            const { cmd, slot } = h[k]!;
            expect(Buffer.from(b2.applyAt(cmd, 0, cmd.length, slot)!)).toEqual(Buffer.from(a.apply(cmd, slot)!));
          }
          i = j;
        }
        expect(b2.digest()).toBe(a.digest());
      }),
      { numRuns: 300 },
    );
  });
});
