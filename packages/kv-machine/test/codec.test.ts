import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  KvCommands,
  KvCommandError,
  KvDecodeError,
  KvResults,
  Op,
  commandOp,
  decodeResult,
  encodeResult,
  isReadOnly,
  readI64,
  varintSize,
  writeI64,
  writeVarint,
  type KvResult,
} from '../src/index.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('varints and int64', () => {
  it('round-trips varints up to 2^53-1 with the documented size', () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (n) => {
        const b = new Uint8Array(10);
        const end = writeVarint(b, 0, n);
        expect(end).toBe(varintSize(n));
        let v = 0;
        let mul = 1;
        for (let i = 0; i < end; i++) {
          v += (b[i]! & 0x7f) * mul;
          mul *= 128;
        }
        expect(v).toBe(n);
      }),
    );
    expect(varintSize(127)).toBe(1);
    expect(varintSize(128)).toBe(2);
  });

  it('round-trips int64 (safe numbers as numbers, the rest as bigints)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (v) => {
        const b = new Uint8Array(8);
        writeI64(b, 0, v);
        expect(Buffer.from(b).readBigInt64LE(0)).toBe(v);
        const back = readI64(b, 0);
        expect(BigInt(back)).toBe(v);
        expect(typeof back).toBe(v >= -(2n ** 53n) && v < 2n ** 53n ? 'number' : 'bigint');
      }),
    );
    fc.assert(
      fc.property(fc.maxSafeInteger(), (v) => {
        const b = new Uint8Array(8);
        writeI64(b, 0, v);
        expect(readI64(b, 0)).toBe(v);
      }),
    );
  });
});

describe('command encoders (the README table)', () => {
  it('encodes each command as documented', () => {
    expect(hex(KvCommands.set('k', 'vv'))).toBe('01016b027676');
    expect(hex(KvCommands.get('k'))).toBe('02016b');
    expect(hex(KvCommands.del(['a', 'b']))).toBe('0302016101 62'.replace(' ', ''));
    expect(hex(KvCommands.del('a'))).toBe('03010161');
    expect(hex(KvCommands.incr('k', -2))).toBe('04016bfeffffffffffffff');
    expect(hex(KvCommands.incr('k'))).toBe('04016b0100000000000000');
    expect(hex(KvCommands.mget(['a']))).toBe('05010161');
    expect(hex(KvCommands.mset([['a', 'x']]))).toBe('0601016101 78'.replace(' ', ''));
    expect(hex(KvCommands.exists(['a']))).toBe('07010161');
    expect(hex(KvCommands.cas('k', null, 'v'))).toBe('08016b000176');
    expect(hex(KvCommands.cas('k', 'e', 'v'))).toBe('08016b0101650176');
    expect(hex(KvCommands.session('c', 300, KvCommands.get('k')))).toBe('400163ac0202016b');
    expect(hex(KvCommands.dbsize())).toBe('09');
    expect(hex(KvCommands.scan(0, 10))).toBe('0a000a00');
    expect(hex(KvCommands.scan(300, 1, 'a*'))).toBe('0aac02010102612a');
    expect(hex(KvCommands.type('k'))).toBe('0b016b');
    expect(hex(KvCommands.ttl('k'))).toBe('0c016b');
  });

  it('encodes strings as UTF-8 and bytes as they are; lengths >= 128 take a 2-byte varint', () => {
    expect(hex(KvCommands.get('é'))).toBe('0202c3a9');
    expect(hex(KvCommands.get(new Uint8Array([0, 255])))).toBe('020200ff');
    const big = KvCommands.set('k', new Uint8Array(200));
    expect(big.length).toBe(1 + 2 + 2 + 200);
    expect(hex(big.subarray(0, 5))).toBe('01016bc801');
  });

  it('rejects what it cannot encode', () => {
    expect(() => KvCommands.del([])).toThrow(RangeError);
    expect(() => KvCommands.mget([])).toThrow(RangeError);
    expect(() => KvCommands.mset([])).toThrow(RangeError);
    expect(() => KvCommands.incr('k', 1.5)).toThrow(RangeError);
    expect(() => KvCommands.incr('k', 2n ** 63n)).toThrow(RangeError);
    expect(() => KvCommands.session('c', -1, KvCommands.get('k'))).toThrow(RangeError);
    expect(() => KvCommands.session('c', 1, KvCommands.session('c', 1, KvCommands.get('k')))).toThrow(RangeError);
    expect(() => KvCommands.scan(-1, 10)).toThrow(RangeError);
    expect(() => KvCommands.scan(0, 0)).toThrow(RangeError);
  });

  it('names the opcode, through a session wrapper too', () => {
    expect(commandOp(KvCommands.set('a', 'b'))).toBe(Op.SET);
    expect(commandOp(KvCommands.session('client', 7, KvCommands.mget(['a'])))).toBe(Op.MGET);
    expect(commandOp(new Uint8Array([0x99]))).toBeUndefined();
    expect(commandOp(new Uint8Array([Op.SESSION, 5]))).toBeUndefined();
    expect(isReadOnly(KvCommands.get('a'))).toBe(true);
    expect(isReadOnly(KvCommands.set('a', 'b'))).toBe(false);
    for (const c of [KvCommands.dbsize(), KvCommands.scan(0, 1), KvCommands.type('a'), KvCommands.ttl('a')]) {
      expect(isReadOnly(c)).toBe(true);
      expect(commandOp(c)).toBe(c[0]);
    }
  });
});

const resultArb = fc.letrec<{ leaf: KvResult; node: KvResult }>((tie) => ({
  leaf: fc.oneof(
    fc.constant<KvResult>({ type: 'ok' }),
    fc.constant<KvResult>({ type: 'nil' }),
    fc.uint8Array({ maxLength: 300 }).map((value): KvResult => ({ type: 'bulk', value })),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(
      (v): KvResult => ({
        type: 'int',
        value: v >= -(2n ** 53n) && v < 2n ** 53n ? Number(v) : v,
      }),
    ),
    fc.string().map((message): KvResult => ({ type: 'error', message })),
    fc.string().map((value): KvResult => ({ type: 'status', value })),
  ),
  node: fc.oneof(
    { depthSize: 'small' },
    tie('leaf'),
    fc.array(tie('node'), { maxLength: 5 }).map((items): KvResult => ({ type: 'array', items })),
  ),
})).node;

describe('results', () => {
  it('round-trips every result type', () => {
    fc.assert(
      fc.property(resultArb, (r) => {
        const back = decodeResult(encodeResult(r));
        expect(back).toEqual(r);
      }),
    );
  });

  it('throws only KvDecodeError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        try {
          decodeResult(b);
        } catch (e) {
          expect(e).toBeInstanceOf(KvDecodeError);
        }
      }),
      { numRuns: 2000 },
    );
    expect(() => decodeResult(new Uint8Array([]))).toThrow(KvDecodeError);
    expect(() => decodeResult(new Uint8Array([1, 1]))).toThrow(/trailing/);
    expect(() => decodeResult(new Uint8Array([0x99]))).toThrow(/unknown result tag/);
  });

  it('typed decoders return plain values and surface error results', () => {
    expect(KvResults.ok(encodeResult({ type: 'ok' }))).toBe('OK');
    expect(KvResults.value(encodeResult({ type: 'nil' }))).toBeNull();
    expect(KvResults.value(encodeResult({ type: 'bulk', value: new Uint8Array([7]) }))).toEqual(new Uint8Array([7]));
    expect(KvResults.int(encodeResult({ type: 'int', value: -5 }))).toBe(-5);
    expect(
      KvResults.values(
        encodeResult({ type: 'array', items: [{ type: 'nil' }, { type: 'bulk', value: new Uint8Array([1]) }] }),
      ),
    ).toEqual([null, new Uint8Array([1])]);
    expect(() => KvResults.int(encodeResult({ type: 'error', message: 'ERR boom' }))).toThrow(KvCommandError);
    expect(() => KvResults.int(encodeResult({ type: 'ok' }))).toThrow(KvDecodeError);
  });
});
