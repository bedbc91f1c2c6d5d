import { SimScheduler } from '@decree/bus';
import type { SlotValue, StoreRecord } from '@decree/protocol';
import { StorageFullError } from '@decree/storage';
import { describe, expect, it } from 'vitest';
import { SimDisk, recordBytes } from '../src/disk.ts';

const B = { round: 1, leader: 'r1' };
const value = (n: number): SlotValue => ({ k: 'batch', origin: 'r1', inc: 1, firstId: 0, cmds: [new Uint8Array(n)] });
const accept = (slot: number, n = 3000): StoreRecord => ({ t: 'accept', slot, ballot: B, value: value(n) });

function disk(capacityBytes: number) {
  const sched = new SimScheduler(1);
  const d = new SimDisk(sched.env(), sched.rng.fork(), { capacityBytes, name: 'r1/wal' });
  const results: (Error | null)[] = [];
  const append = (...rs: StoreRecord[]) => d.append(rs, (e) => results.push(e));
  return { sched, d, results, append };
}

describe('SimDisk capacity', () => {
  it('an append that does not fit fails with StorageFullError and writes nothing', async () => {
    const per = recordBytes(accept(1));
    const { sched, d, results, append } = disk(3 * per + 10);
    for (let s = 1; s <= 4; s++) append(accept(s));
    sched.runFor(10);
    expect(results.slice(0, 3)).toEqual([null, null, null]);
    expect(results[3]).toBeInstanceOf(StorageFullError);
    expect((results[3] as StorageFullError).name).toBe('StorageFullError');
    expect((results[3] as StorageFullError).path).toBe('r1/wal');
    expect(d.fullErrors).toBe(1);
    expect(d.usedBytes()).toBe(3 * per);
    expect([...(await d.recover()).accepted.keys()]).toEqual([1, 2, 3]);
  });

  it('truncation gives the space back: the same append then succeeds', async () => {
    const per = recordBytes(accept(1));
    const { sched, d, results, append } = disk(3 * per + 10);
    for (let s = 1; s <= 3; s++) append(accept(s));
    sched.runFor(10);
    append(accept(4));
    sched.runFor(10);
    expect(results[3]).toBeInstanceOf(StorageFullError);
    d.truncateBelow(3);
    expect(d.usedBytes()).toBe(per);
    append(accept(4));
    sched.runFor(10);
    expect(results[4]).toBeNull();
    expect([...(await d.recover()).accepted.keys()]).toEqual([3, 4]);
  });

  it('records without a slot are charged at the highest slot written and freed with it', () => {
    const { sched, d, append } = disk(1_000_000);
    append(accept(5, 100), { t: 'promise', ballot: B }, { t: 'meta', key: 'executed', value: new Uint8Array(8) });
    sched.runFor(10);
    expect(d.usedBytes()).toBe(recordBytes(accept(5, 100)) + 32 + 8 + 8 + 24);
    d.truncateBelow(5);
    expect(d.usedBytes()).toBeGreaterThan(0);
    d.truncateBelow(6);
    expect(d.usedBytes()).toBe(0);
  });

  it('a crash gives back what was not synced yet', () => {
    const { sched, d, append } = disk(1_000_000);
    append(accept(1));
    sched.runFor(10);
    const synced = d.usedBytes();
    append(accept(2));
    expect(d.usedBytes()).toBe(2 * synced);
    d.crash();
    expect(d.usedBytes()).toBe(synced);
  });

  it('without a capacity nothing is charged and nothing fails', () => {
    const { sched, d, results, append } = disk(0);
    for (let s = 1; s <= 100; s++) append(accept(s, 100_000));
    sched.runFor(100);
    expect(results.every((r) => r === null)).toBe(true);
    expect(d.usedBytes()).toBe(0);
  });
});

describe('SimDisk recovery', () => {
  it('returns the chosen fills with the accepted values (the local replay needs both)', async () => {
    const { sched, d, append } = disk(0);
    const fill: SlotValue = value(7);
    append(accept(1), { t: 'chosen', slot: 1, value: fill }, { t: 'chosen', slot: 2, value: fill });
    sched.runFor(10);
    append({ t: 'chosen', slot: 3, value: fill });
    d.crash(); // not synced: lost
    const r = await d.recover();
    expect([...r.accepted.keys()]).toEqual([1]);
    expect([...(r.chosen ?? new Map()).keys()]).toEqual([1, 2]);
    expect(r.chosen!.get(1)).toEqual(fill);
  });
});
