import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { collectSnapshot } from '../src/state-machine.ts';

async function* stream(parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield p;
}

describe('collectSnapshot', () => {
  it('gathers any stream of parts into their concatenation', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 12 }), async (parts) => {
        const got = await collectSnapshot(stream(parts));
        expect(Buffer.from(got)).toEqual(Buffer.concat(parts));
      }),
      { numRuns: 200 },
    );
  });

  it('returns the range of one buffer without copying when the parts lie one after the other in it', async () => {
    const buf = new Uint8Array(100).map((_, i) => i);
    const parts = [buf.subarray(10, 20), buf.subarray(20, 20), buf.subarray(20, 55), buf.subarray(55, 60)];
    const got = await collectSnapshot(stream(parts));
    expect(got.buffer).toBe(buf.buffer);
    expect(got.byteOffset).toBe(10);
    expect(Buffer.from(got)).toEqual(Buffer.from(buf.subarray(10, 60)));
  });

  it('copies when the parts are views with a gap, out of order, or of different buffers', async () => {
    const buf = new Uint8Array(100).map((_, i) => i);
    for (const parts of [
      [buf.subarray(0, 10), buf.subarray(11, 20)],
      [buf.subarray(10, 20), buf.subarray(0, 10)],
      [buf.subarray(0, 10), new Uint8Array(buf.subarray(10, 20))],
    ]) {
      const got = await collectSnapshot(stream(parts));
      expect(got.buffer).not.toBe(buf.buffer);
      expect(Buffer.from(got)).toEqual(Buffer.concat(parts));
    }
  });
});
