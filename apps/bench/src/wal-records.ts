import type { AcceptorStore, StoreRecord } from '@decree/protocol';

/** An accept of one command of `size` bytes at `slot` (the WAL benches' record). */
export const acceptOf = (slot: number, size: number): StoreRecord => ({
  t: 'accept',
  slot,
  ballot: { round: 1, leader: 'r1' },
  value: { k: 'batch', origin: 'r1', inc: 1, firstId: slot, cmds: [new Uint8Array(size).fill(slot & 0xff)] },
});

/** Appends one record and resolves once it is durable. */
export const appendOne = (s: AcceptorStore, r: StoreRecord): Promise<void> =>
  new Promise<void>((ok, no) => s.append([r], (e) => (e ? no(e) : ok())));
