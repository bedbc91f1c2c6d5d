/** The refusal code on the wire: additive in the refusal's body, derived from the status for older peers. */
import { encodeValue } from '@decree/protocol';
import { describe, expect, it } from 'vitest';
import { MAGIC, STATUS_OK, STATUS_REFUSED, STATUS_VERSION, decodeWelcome, encodeWelcome } from '../src/index.ts';

/** A welcome with a hand-made body. */
const raw = (status: number, body: unknown): Buffer =>
  Buffer.concat([MAGIC, Buffer.from([2, status, 0, 0]), Buffer.from(encodeValue(body))]);

describe('welcome codec', () => {
  it('a refusal carries its code next to the error text', () => {
    const bytes = encodeWelcome({ status: STATUS_REFUSED, version: 0, ids: ['b'], error: 'why', code: 'TLS_NAME' });
    const w = decodeWelcome(bytes);
    expect(w).toMatchObject({ status: STATUS_REFUSED, error: 'why', code: 'TLS_NAME' });
  });

  it('a refusal without a code (an older peer) gets one from the status byte; an unknown code likewise', () => {
    expect(decodeWelcome(raw(STATUS_VERSION, { ids: ['b'], error: 'x' })).code).toBe('VERSION');
    expect(decodeWelcome(raw(STATUS_REFUSED, { ids: ['b'], error: 'x' })).code).toBe('REFUSED');
    expect(decodeWelcome(raw(7, { ids: ['b'], error: 'x' })).code).toBe('REFUSED');
    const future = raw(STATUS_REFUSED, { ids: ['b'], error: 'x', code: 'FROM_THE_FUTURE' });
    expect(decodeWelcome(future).code).toBe('REFUSED');
    expect(decodeWelcome(raw(STATUS_REFUSED, { ids: ['b'], error: 'x', code: 3 })).code).toBe('REFUSED');
  });

  it('an accepting welcome has no code, and writes none', () => {
    const w = decodeWelcome(raw(STATUS_OK, { ids: ['b'], code: 'AUTH' }));
    expect(w.code).toBeUndefined();
    const bytes = encodeWelcome({ status: STATUS_OK, version: 1, ids: ['b'], code: 'AUTH' });
    expect(decodeWelcome(bytes).code).toBeUndefined();
    expect(bytes.includes(Buffer.from('code'))).toBe(false);
  });
});
