/**
 * Unit tests of the snapshotter role alone: its messages in (from the learner, the acceptor and
 * peers), its messages and store writes out. The cluster-level behaviour (catch-up by snapshot,
 * restarts from one) is tested in packages/replica/test/snapshot*.
 */
import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import type { Configuration, Message, MessageOf, ReplicaId, SnapshotMeta, SnapshotStore } from '@decree/protocol';
import { MemorySnapshotStore } from '@decree/storage/memory';
import { crc32cOf, snapshotterMachine, type SnapshotterOptions } from '../src/index.ts';

const RING = 'ring';
const SELF: ReplicaId = 'r1';
const CONFIG: Configuration = { epoch: 1, members: ['r1', 'r2', 'r3'], startSlot: 1 };
const hdr = (from: ReplicaId = SELF) => ({ ring: RING, from, to: SELF });

/** A snapshot store whose saves wait until the test lets them finish. */
class GatedStore extends MemorySnapshotStore {
  gates: (() => void)[] = [];
  override async save(...args: Parameters<SnapshotStore['save']>): Promise<SnapshotMeta> {
    await new Promise<void>((resolve) => this.gates.push(resolve));
    return super.save(...args);
  }
}

function start(store: SnapshotStore, options: Partial<SnapshotterOptions> = {}, self: ReplicaId = SELF) {
  const sent: Message[] = [];
  let now = 0;
  const actor = createActor(snapshotterMachine, {
    input: {
      ring: RING,
      self,
      configuration: CONFIG,
      peers: ['r1', 'r2', 'r3'],
      store,
      send: (m: Message) => sent.push(m),
      now: () => now,
      options: { everySlots: 100, everyBytes: 0, truncateMargin: 10, ...options },
    },
  });
  actor.start();
  const of = <T extends Message['type']>(type: T) => sent.filter((m) => m.type === type) as MessageOf<T>[];
  const executed = (slot: number, bytes = slot * 10) =>
    actor.send({ type: 'snap-executed', ...hdr(), slot, bytes, requested: false });
  const data = (seq: number, slot: number, bytes: Uint8Array) =>
    actor.send({ type: 'snap-data', ...hdr(), seq, slot, data: bytes, config: CONFIG });
  const advance = (ms: number) => {
    now += ms;
  };
  return { actor, sent, of, executed, data, advance };
}

const settle = () => new Promise((r) => setTimeout(r, 5));
const state = (a: { getSnapshot(): { value: unknown } }) => JSON.stringify(a.getSnapshot().value);

describe('snapshotter', () => {
  it('asks the learner for a copy once everySlots were executed, stores it, then lets the log go', async () => {
    const store = new MemorySnapshotStore();
    const s = start(store);
    s.executed(99);
    expect(s.of('snap-take')).toHaveLength(0);
    s.executed(100);
    const takes = s.of('snap-take');
    expect(takes).toHaveLength(1);
    expect(takes[0]!.to).toBe(SELF);
    s.data(takes[0]!.seq, 100, new Uint8Array([1, 2, 3]));
    await settle();
    expect((await store.list()).map((m) => m.slot)).toEqual([100]);
    // truncation below the oldest kept snapshot minus the margin, to the acceptor and the learner
    expect(s.of('log-truncate').map((m) => m.below)).toEqual([90]);
    expect(s.of('retain-truncate').map((m) => m.below)).toEqual([90]);
    expect(s.of('snap-saved').map((m) => m.slot)).toEqual([100]);
    expect(s.actor.getSnapshot().context.stats.saved).toBe(1);
  });

  it("spreads the members' snapshot points over the interval (stagger), and keeps each phase", async () => {
    const firstTake = (self: ReplicaId, options: Partial<SnapshotterOptions> = {}) => {
      const s = start(new MemorySnapshotStore(), { everySlots: 300, ...options }, self);
      for (let slot = 1; slot <= 300; slot++) {
        s.executed(slot);
        if (s.of('snap-take').length > 0) return { s, slot };
      }
      return { s, slot: -1 };
    };
    // r1, r2, r3 are places 0, 1, 2 of 3: their first snapshots come 0, 100 and 200 slots early
    expect(firstTake('r1').slot).toBe(300);
    expect(firstTake('r2').slot).toBe(200);
    expect(firstTake('r3').slot).toBe(100);
    expect(firstTake('r3', { stagger: false }).slot).toBe(300);
    // after its first snapshot a replica keeps the interval: r3's next one is at 100 + 300
    const { s } = firstTake('r3');
    const [take] = s.of('snap-take');
    s.data(take!.seq, 100, new Uint8Array([1]));
    await settle();
    s.executed(399);
    expect(s.of('snap-take')).toHaveLength(1);
    s.executed(400);
    expect(s.of('snap-take')).toHaveLength(2);
  });

  it('staggers the snapshots by bytes too: r3 takes its first at 1/3 of everyBytes less', () => {
    const firstTakeBytes = (self: ReplicaId) => {
      const s = start(new MemorySnapshotStore(), { everySlots: 0, everyBytes: 3_000 }, self);
      for (let slot = 1; slot <= 300; slot++) {
        s.executed(slot, slot * 10);
        if (s.of('snap-take').length > 0) return slot * 10;
      }
      return -1;
    };
    expect(firstTakeBytes('r1')).toBe(3_000);
    expect(firstTakeBytes('r2')).toBe(2_000);
    expect(firstTakeBytes('r3')).toBe(1_000);
  });

  it('takes snapshots by applied bytes as well as by slots', () => {
    const s = start(new MemorySnapshotStore(), { everySlots: 0, everyBytes: 1_000 });
    s.executed(5, 999);
    expect(s.of('snap-take')).toHaveLength(0);
    s.executed(6, 1_000);
    expect(s.of('snap-take')).toHaveLength(1);
  });

  it('a stop waits for the store write in flight before the machine is done', async () => {
    const store = new GatedStore();
    const s = start(store);
    s.executed(100);
    s.data(s.of('snap-take')[0]!.seq, 100, new Uint8Array([7]));
    await settle();
    expect(store.gates).toHaveLength(1);
    s.actor.send({ type: 'stop' });
    await settle();
    // still writing: not done yet
    expect(s.actor.getSnapshot().status).toBe('active');
    expect(state(s.actor)).toBe('"draining"');
    store.gates[0]!();
    await settle();
    expect(s.actor.getSnapshot().status).toBe('done');
    expect((await store.list()).map((m) => m.slot)).toEqual([100]);
    // a stopped snapshotter reports nothing more (no truncation after the stop)
    expect(s.of('log-truncate')).toHaveLength(0);
  });

  it('a stop with no write in flight is done at once', async () => {
    const s = start(new MemorySnapshotStore());
    s.actor.send({ type: 'stop' });
    await settle();
    expect(s.actor.getSnapshot().status).toBe('done');
  });

  it('serves a stored snapshot in chunks, a window at a time, paced by the receiver', async () => {
    const store = new MemorySnapshotStore();
    const payload = new Uint8Array(10_000).map((_, i) => i % 251);
    const meta = await store.save(50, CONFIG.members, payload, { epoch: 1, startSlot: 1 });
    const s = start(store, { chunkBytes: 1_000, window: 3 });
    s.actor.send({ type: 'snap-req', ...hdr('r2'), xfer: 1, slot: 0, crc: 0, next: 0, window: 3 });
    await settle();
    let chunks = s.of('snap-chunk');
    expect(chunks.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(chunks.every((c) => c.to === 'r2' && c.count === 10 && c.slot === 50 && c.crc === meta.crc)).toBe(true);
    expect(chunks.every((c) => crc32cOf(c.data) === c.chunkCrc)).toBe(true);
    // the receiver acknowledges 2 chunks: the window slides by 2
    s.actor.send({ type: 'snap-req', ...hdr('r2'), xfer: 1, slot: 50, crc: meta.crc, next: 2, window: 3 });
    chunks = s.of('snap-chunk');
    expect(chunks.map((c) => c.index)).toEqual([0, 1, 2, 3, 4]);
  });

  it('fetches a snapshot it needs, rejects a damaged chunk, and hands the whole one to the learner', async () => {
    const s = start(new MemorySnapshotStore(), { chunkBytes: 4, window: 8 });
    s.actor.send({ type: 'snap-need', ...hdr(), peer: 'r2', below: 10 });
    const req = s.of('snap-req');
    expect(req).toHaveLength(1);
    expect(req[0]!.to).toBe('r2');
    const payload = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    const chunk = (index: number, data: Uint8Array, chunkCrc = crc32cOf(data)): MessageOf<'snap-chunk'> => ({
      type: 'snap-chunk',
      ring: RING,
      from: 'r2',
      to: SELF,
      xfer: req[0]!.xfer,
      slot: 40,
      members: CONFIG.members,
      epoch: 1,
      length: payload.length,
      crc: crc32cOf(payload),
      index,
      count: 2,
      chunkCrc,
      data,
    });
    s.actor.send(chunk(0, payload.subarray(0, 4), 12345));
    expect(s.actor.getSnapshot().context.stats.badChunks).toBe(1);
    expect(s.of('snap-install')).toHaveLength(0);
    s.actor.send(chunk(0, payload.subarray(0, 4)));
    s.actor.send(chunk(1, payload.subarray(4, 8)));
    await settle();
    const installs = s.of('snap-install');
    expect(installs).toHaveLength(1);
    expect(installs[0]!.slot).toBe(40);
    expect([...installs[0]!.data]).toEqual([...payload]);
  });
});
