import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  type AcceptorStore,
  type RecoveredState,
  type StoreRecord,
  applyRecord,
  emptyRecoveredState,
} from '@decree/protocol';

export function tempDir(prefix = 'decree-storage-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function appendP(store: AcceptorStore, records: readonly StoreRecord[]): Promise<void> {
  return new Promise((resolve, reject) => store.append(records, (err) => (err ? reject(err) : resolve())));
}

export const bytes = (n: number, seed: number): Uint8Array => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (seed * 31 + i * 7) & 0xff;
  return b;
};

export const acceptRec = (slot: number, round = 1, size = 16): StoreRecord => ({
  t: 'accept',
  slot,
  ballot: { round, leader: 'r1' },
  value: { k: 'batch', origin: 'r1', inc: 1, firstId: slot, cmds: [bytes(size, slot)] },
});

/** A comparable plain form of a recovered state (Uint8Arrays as arrays, maps sorted). */
export function plain(s: RecoveredState): unknown {
  const norm = (v: unknown): unknown =>
    v instanceof Uint8Array
      ? Array.from(v)
      : Array.isArray(v)
        ? v.map(norm)
        : v && typeof v === 'object'
          ? Object.fromEntries(
              Object.entries(v)
                .filter(([, x]) => x !== undefined)
                .map(([k, x]) => [k, norm(x)]),
            )
          : v;
  return {
    promised: s.promised,
    truncatedBelow: s.truncatedBelow,
    accepted: [...s.accepted.entries()].sort((a, b) => a[0] - b[0]).map(([k, v]) => [k, norm(v)]),
    meta: [...s.meta.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([k, v]) => [k, Array.from(v)]),
  };
}

export function expected(records: readonly StoreRecord[]): RecoveredState {
  const s = emptyRecoveredState();
  for (const r of records) applyRecord(s, r);
  return s;
}

const ballotArb = fc.record({ round: fc.integer({ min: 0, max: 5 }), leader: fc.constantFrom('a', 'b', 'c') });
const valueArb = fc.oneof(
  fc.constant({ k: 'noop' as const }),
  fc.record({
    k: fc.constant('batch' as const),
    origin: fc.constantFrom('a', 'b'),
    inc: fc.nat(3),
    firstId: fc.nat(1000),
    cmds: fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 3 }),
  }),
);
export const recordArb: fc.Arbitrary<StoreRecord> = fc.oneof(
  { weight: 2, arbitrary: ballotArb.map((ballot) => ({ t: 'promise' as const, ballot })) },
  {
    weight: 6,
    arbitrary: fc.record({
      t: fc.constant('accept' as const),
      slot: fc.integer({ min: 1, max: 60 }),
      ballot: ballotArb,
      value: valueArb,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('meta' as const),
      key: fc.constantFrom('cfg', 'epoch', 'x'),
      value: fc.uint8Array({ maxLength: 20 }),
    }),
  },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 40 }).map((below) => ({ t: 'truncate' as const, below })) },
);
