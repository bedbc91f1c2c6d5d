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

  it('gives an empty buffer for an empty stream', async () => {
    expect((await collectSnapshot(stream([]))).length).toBe(0);
  });
});
