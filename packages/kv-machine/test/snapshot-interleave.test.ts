import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KvCommands, KvMachine } from '../src/index.ts';

/**
 * A snapshot streamed while the machine goes on applying (the learner's case: KvMachine is copy-on-call):
 * every snapshot restores to exactly the state at its call, whatever was applied while its stream was read.
 * Values from a few bytes to 300 KB (a slab of their own), INCRs and DELs, and enough data to fill several
 * 4 MiB slabs, so overwrites in place, moves to new chunks, freed and reused chunks and big slabs all happen.
 */
const keyArb = fc.integer({ min: 0, max: 60 }).map((i) => `k${i}`);
const valueArb = fc.oneof(
  fc.integer({ min: 0, max: 40 }),
  fc.integer({ min: 900, max: 1100 }),
  fc.integer({ min: 70_000, max: 300_000 }),
);
const opArb = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('set' as const), k: keyArb, n: valueArb, b: fc.nat(255) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('incr' as const), k: keyArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('del' as const), k: keyArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('snap' as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('read' as const), frames: fc.integer({ min: 1, max: 4 }) }) },
);

describe('snapshots streamed while commands apply', () => {
  it('each restores to the state at its call', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 20, maxLength: 120 }), async (ops) => {
        const m = new KvMachine();
        // a base state over several slabs
        for (let i = 0; i < 40; i++) m.apply(KvCommands.set(`base${i}`, new Uint8Array(150_000).fill(i)), 1);
        for (let i = 0; i < 4000; i++) m.apply(KvCommands.set(`small${i}`, `v${i}`.padEnd(1000, 'x')), 1);
        let slot = 2;
        const streams: { it: AsyncIterator<Uint8Array>; parts: Uint8Array[]; digest: string; done: boolean }[] = [];
        const read = async (s: (typeof streams)[number], frames: number) => {
          for (let i = 0; i < frames && !s.done; i++) {
            const r = await s.it.next();
            if (r.done) s.done = true;
            else s.parts.push(new Uint8Array(r.value)); // a copy: the reader keeps what it read
          }
        };
        for (const o of ops) {
          if (o.op === 'set') m.apply(KvCommands.set(o.k, new Uint8Array(o.n).fill(o.b)), slot++);
          else if (o.op === 'incr') m.apply(KvCommands.incr(`c${o.k}`, 1), slot++);
          else if (o.op === 'del') m.apply(KvCommands.del(o.k), slot++);
          else if (o.op === 'snap') {
            const it = (await m.snapshot())[Symbol.asyncIterator]();
            streams.push({ it, parts: [], digest: m.digest(), done: false });
          } else for (const s of streams) await read(s, o.frames);
          // small overwrites all over the base state while streams are open
          m.apply(KvCommands.set(`small${(slot * 7919) % 4000}`, `w${slot}`.padEnd(1000, 'y')), slot++);
          m.apply(KvCommands.incr(`ctr${slot % 5}`, 1), slot++);
        }
        for (const s of streams) {
          await read(s, 1_000_000);
          const fresh = new KvMachine();
          await fresh.restore(s.parts);
          expect(fresh.digest()).toBe(s.digest);
        }
      }),
      { numRuns: 25 },
    );
  }, 120_000);
});
