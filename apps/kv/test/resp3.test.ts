/**
 * RESP3 in the codec: every RESP3 type decoded whatever the chunking, the writer's RESP3 and RESP2 forms
 * of each type, and fast-check round trips (encodeResp(v, 3) then RespDecoder gives v back).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  RespAttributed,
  RespBigNumber,
  RespDecoder,
  RespDouble,
  RespErrorReply,
  RespMap,
  RespProtocolError,
  RespPush,
  RespSet,
  RespVerbatim,
  RespWriter,
  encodeResp,
  type RespValue,
} from '../src/resp.ts';

const B = (s: string) => Buffer.from(s, 'latin1');

/** decodes `bytes` cut at the given offsets; a protocol error is returned with the values before it */
function decodeCut(bytes: Buffer, cuts: number[]): { items: RespValue[]; error?: unknown } {
  const d = new RespDecoder({ maxDepth: 8 });
  const items: RespValue[] = [];
  let prev = 0;
  try {
    for (const c of [...cuts, bytes.length]) {
      items.push(...d.feed(bytes.subarray(prev, c)));
      prev = c;
    }
    return { items };
  } catch (error) {
    expect(error).toBeInstanceOf(RespProtocolError);
    items.push(...((error as RespProtocolError).completed as RespValue[]));
    return { items, error };
  }
}

const cases: [string, RespValue][] = [
  ['_\r\n', null],
  ['#t\r\n', true],
  ['#f\r\n', false],
  [',3.25\r\n', new RespDouble(3.25)],
  [',-1e+21\r\n', new RespDouble(-1e21)],
  [',.5\r\n', new RespDouble(0.5)],
  [',10\r\n', new RespDouble(10)],
  [',inf\r\n', new RespDouble(Infinity)],
  [',-inf\r\n', new RespDouble(-Infinity)],
  [',nan\r\n', new RespDouble(NaN)],
  ['(3492890328409238509324850943850943825024385\r\n', new RespBigNumber(3492890328409238509324850943850943825024385n)],
  ['(-7\r\n', new RespBigNumber(-7n)],
  ['!22\r\nSYNTAX invalid\r\nsyntax\r\n', new RespErrorReply('SYNTAX invalid\r\nsyntax')],
  ['=15\r\ntxt:Some string\r\n', new RespVerbatim('txt', B('Some string'))],
  ['=4\r\nmkd:\r\n', new RespVerbatim('mkd', B(''))],
  [
    '%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n_\r\n',
    new RespMap([
      ['first', 1],
      [B('second'), null],
    ]),
  ],
  ['%0\r\n', new RespMap([])],
  ['~3\r\n:1\r\n:2\r\n#f\r\n', new RespSet([1, 2, false])],
  ['>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n', new RespPush([B('message'), B('ch'), B('hi')])],
  ['|1\r\n+ttl\r\n:3600\r\n$1\r\nv\r\n', new RespAttributed([['ttl', 3600]], B('v'))],
  ['*2\r\n|1\r\n+a\r\n#t\r\n:1\r\n:2\r\n', [new RespAttributed([['a', true]], 1), 2]],
  [
    '%1\r\n~1\r\n,1.5\r\n*2\r\n%0\r\n_\r\n',
    new RespMap([[new RespSet([new RespDouble(1.5)]), [new RespMap([]), null]]]),
  ],
];

describe('RespDecoder: every RESP3 type, split at every byte', () => {
  for (const [wire, value] of cases) {
    it(JSON.stringify(wire.slice(0, 40)), () => {
      const bytes = B(wire);
      for (let i = 0; i <= bytes.length; i++) expect(decodeCut(bytes, [i]).items, `split at ${i}`).toEqual([value]);
      const bytewise = decodeCut(
        bytes,
        Array.from({ length: bytes.length }, (_, i) => i),
      );
      expect(bytewise.items).toEqual([value]);
      // and the writer writes it back byte for byte (the decoder's canonical forms)
      if (!wire.startsWith(',.5') && !wire.startsWith('*2\r\n|'))
        expect(encodeResp(value, 3).toString('latin1')).toBe(wire);
    });
  }

  it('a map keeps its wire order and finds values by string key', () => {
    const [m] = new RespDecoder().feed(B('%2\r\n$6\r\nserver\r\n$6\r\ndecree\r\n+proto\r\n:3\r\n'));
    expect(m).toBeInstanceOf(RespMap);
    expect((m as RespMap).get('server')).toEqual(B('decree'));
    expect((m as RespMap).get('proto')).toBe(3);
    expect((m as RespMap).get('nope')).toBeUndefined();
  });

  const bad: [string, RegExp][] = [
    ['_x\r\n', /invalid null/],
    ['#x\r\n', /invalid boolean/],
    ['#\r\n', /invalid boolean/],
    [',abc\r\n', /invalid double/],
    [',1.2.3\r\n', /invalid double/],
    ['(1.5\r\n', /invalid big number/],
    ['(\r\n', /invalid big number/],
    ['=2\r\nab\r\n', /invalid verbatim string/],
    ['=5\r\ntxt-x\r\n', /invalid verbatim string/],
    ['!-1\r\n', /invalid bulk length/],
    ['=-1\r\n', /invalid bulk length/],
    ['%-1\r\n', /invalid multibulk length/],
    ['~-1\r\n', /invalid multibulk length/],
    ['$?\r\n', /invalid bulk length/],
    ['*?\r\n', /invalid multibulk length/],
    ['%1\r\n%1\r\n%1\r\n%1\r\n%1\r\n%1\r\n%1\r\n%1\r\n%1\r\n', /too deeply nested/],
  ];
  for (const [wire, re] of bad) {
    it(`${JSON.stringify(wire.slice(0, 20))} -> ${re.source}`, () => {
      const r = decodeCut(B(wire), []);
      expect(r.error).toBeInstanceOf(RespProtocolError);
      expect((r.error as Error).message).toMatch(re);
    });
  }
});

describe('RespWriter: RESP3 types, and their RESP2 forms (as Redis sends them to a RESP2 client)', () => {
  const both = (f: (w: RespWriter) => void): [string, string] => {
    const w3 = new RespWriter(8, 3);
    const w2 = new RespWriter(8, 2);
    f(w3);
    f(w2);
    return [w3.take().toString('latin1'), w2.take().toString('latin1')];
  };
  it('null, map, set, push, double, boolean, big number, verbatim, blob error', () => {
    expect(both((w) => w.nil())).toEqual(['_\r\n', '$-1\r\n']);
    expect(both((w) => w.bulk(null))).toEqual(['_\r\n', '$-1\r\n']);
    expect(both((w) => w.nilArray())).toEqual(['_\r\n', '*-1\r\n']);
    expect(both((w) => w.mapHeader(1).bulk('k').integer(1))).toEqual([
      '%1\r\n$1\r\nk\r\n:1\r\n',
      '*2\r\n$1\r\nk\r\n:1\r\n',
    ]);
    expect(both((w) => w.setHeader(1).bulk('m'))).toEqual(['~1\r\n$1\r\nm\r\n', '*1\r\n$1\r\nm\r\n']);
    expect(both((w) => w.pushHeader(0))).toEqual(['>0\r\n', '*0\r\n']);
    expect(both((w) => w.double(1.5))).toEqual([',1.5\r\n', '$3\r\n1.5\r\n']);
    expect(both((w) => w.double(-Infinity))).toEqual([',-inf\r\n', '$4\r\n-inf\r\n']);
    expect(both((w) => w.boolean(true))).toEqual(['#t\r\n', ':1\r\n']);
    expect(both((w) => w.bigNumber(2n ** 70n))).toEqual([`(${2n ** 70n}\r\n`, `$22\r\n${2n ** 70n}\r\n`]);
    expect(both((w) => w.verbatim('txt', 'a:b'))).toEqual(['=7\r\ntxt:a:b\r\n', '$3\r\na:b\r\n']);
    expect(both((w) => w.error('ERR two\r\nlines'))).toEqual(['!14\r\nERR two\r\nlines\r\n', '-ERR two lines\r\n']);
    expect(both((w) => w.value(new RespAttributed([['a', 1]], 'x')))).toEqual(['|1\r\n+a\r\n:1\r\n+x\r\n', '+x\r\n']);
    expect(() => new RespWriter(8, 3).verbatim('text', 'x')).toThrow(RangeError);
  });
});

/** A RESP3 value as a RESP2 client receives it: what RespWriter(…, 2) writes for it, decoded. */
function downgrade(v: RespValue): RespValue {
  if (v instanceof RespMap) return v.entries.flatMap(([k, x]) => [downgrade(k), downgrade(x)]);
  if (v instanceof RespSet || v instanceof RespPush) return v.items.map(downgrade);
  if (Array.isArray(v)) return v.map(downgrade);
  if (v instanceof RespDouble) return B(new RespWriter(8, 3).double(v.value).take().toString('latin1').slice(1, -2));
  if (v instanceof RespBigNumber) return B(String(v.value));
  if (v instanceof RespVerbatim) return v.text;
  if (v instanceof RespAttributed) return downgrade(v.value);
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v instanceof RespErrorReply) return new RespErrorReply(v.message.replace(/[\r\n]+/g, ' '));
  return v;
}

const oneLine = fc.string({ unit: 'grapheme-ascii', maxLength: 20 }).map((s) => s.replace(/[\r\n]/g, ''));
const resp3Arb = fc.letrec<{ v: RespValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    oneLine,
    fc.string({ unit: 'grapheme-ascii', maxLength: 20 }).map((s) => new RespErrorReply(s)),
    fc
      .bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })
      .map((b) => (b >= -(2n ** 53n) + 1n && b <= 2n ** 53n - 1n ? Number(b) : b)),
    fc.uint8Array({ maxLength: 30 }).map((u) => Buffer.from(u)),
    fc.constant(null),
    fc.boolean(),
    fc.double().map((d) => new RespDouble(d)),
    fc.bigInt().map((b) => new RespBigNumber(b)),
    fc
      .tuple(fc.constantFrom('txt', 'mkd'), fc.uint8Array({ maxLength: 30 }))
      .map(([f, t]) => new RespVerbatim(f, Buffer.from(t))),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.array(fc.tuple(tie('v'), tie('v')), { maxLength: 3 }).map((e) => new RespMap(e)),
    fc.array(tie('v'), { maxLength: 4 }).map((i) => new RespSet(i)),
    fc.array(tie('v'), { maxLength: 4 }).map((i) => new RespPush(i)),
    fc
      .tuple(fc.array(fc.tuple(tie('v'), tie('v')), { maxLength: 2 }), tie('v'))
      .map(([a, x]) => new RespAttributed(a, x)),
  ),
})).v;

describe('fuzz (fast-check): RESP3', () => {
  it('random RESP3 values round-trip through encodeResp(v, 3) and RespDecoder under any chunking', () => {
    fc.assert(
      fc.property(fc.array(resp3Arb, { minLength: 1, maxLength: 4 }), fc.nat(), (values, seed) => {
        const wire = Buffer.concat(values.map((v) => encodeResp(v, 3)));
        const cuts = [...new Set(Array.from({ length: 5 }, (_, i) => (seed * (i + 2)) % (wire.length + 1)))].sort(
          (a, b) => a - b,
        );
        const r = decodeCut(wire, cuts);
        expect(r.error).toBeUndefined();
        expect(r.items).toEqual(values);
      }),
      { numRuns: 2000 },
    );
  });

  it('the same values written for a RESP2 client decode to their RESP2 forms', () => {
    fc.assert(
      fc.property(resp3Arb, (v) => {
        const r = decodeCut(encodeResp(v, 2), []);
        expect(r.error).toBeUndefined();
        expect(r.items).toEqual([downgrade(v)]);
      }),
      { numRuns: 1000 },
    );
  });

  it('random bytes from the RESP3 alphabet: only RespProtocolError, and the chunking changes nothing', () => {
    const alphabet = [...B('*$:+-_#,(!=%~>|\r\n0123456789tf.einaxc?')];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...alphabet), { maxLength: 120 }), fc.nat(), (a, seed) => {
        const bytes = Buffer.from(a);
        const cut = seed % (bytes.length + 1);
        const whole = decodeCut(bytes, []);
        const split = decodeCut(bytes, [cut]);
        expect(split.error === undefined).toBe(whole.error === undefined);
        expect(split.items).toEqual(whole.items);
      }),
      { numRuns: 5000 },
    );
  });
});
