import { describe, expect, it } from 'vitest';
import { MemoryStore } from '@decree/storage/memory';
import {
  type AcceptorStore,
  CONTRACTS,
  ContractViolation,
  emptyRecoveredState,
  slotValueEquals,
  slotValueSize,
} from '@decree/protocol';
import { type AcceptorData, handleAccept } from '../src/index.ts';
import { SELF, accept, acceptorHarness, b, forgetfulAcceptor, prepare, val } from './harness.ts';

describe('acceptor: phase 1', () => {
  it('promises a higher ballot with every accepted entry >= fromSlot, the highest ballot per slot', () => {
    const h = acceptorHarness();
    h.actor.send(prepare('p1', 1));
    h.actor.send(accept('p1', 1, 1, val('one')));
    h.actor.send(accept('p1', 1, 2, val('two')));
    h.actor.send(accept('p1', 1, 3, val('three')));
    h.diskDone();
    h.diskDone();
    h.actor.send(prepare('p2', 2));
    h.actor.send(accept('p2', 2, 2, val('two-b', 'p2')));
    h.diskDone();
    h.diskDone();
    h.take();

    h.actor.send(prepare('p3', 3, 2));
    h.diskDone();
    const [p] = h.sent('promise');
    expect(p).toBeDefined();
    expect(p!.to).toBe('p3');
    expect(p!.ballot).toEqual(b(3, 'p3'));
    expect(p!.fromSlot).toBe(2);
    expect(p!.truncatedBelow).toBe(0);
    // slot 1 is below fromSlot; slot 2 carries the value of ballot 2 (not 1)
    expect(p!.accepted.map((e) => e.slot)).toEqual([2, 3]);
    expect(p!.accepted[0]!.ballot).toEqual(b(2, 'p2'));
    expect(slotValueEquals(p!.accepted[0]!.value, val('two-b', 'p2'))).toBe(true);
    expect(p!.accepted[1]!.ballot).toEqual(b(1, 'p1'));
    expect(slotValueEquals(p!.accepted[1]!.value, val('three'))).toBe(true);
    expect(h.ctx().promised).toEqual(b(3, 'p3'));
  });

  it('nacks a lower Prepare and a lower Accept with the promised ballot', () => {
    const h = acceptorHarness();
    h.actor.send(prepare('p2', 5));
    h.diskDone();
    h.take();
    h.actor.send(prepare('p1', 4));
    h.actor.send(prepare('p1', 5)); // same round, lower leader id: lower ballot
    h.actor.send(accept('p1', 3, 7, val('x')));
    const nacks = h.sent('nack');
    expect(nacks).toHaveLength(3);
    for (const n of nacks) {
      expect(n.to).toBe('p1');
      expect(n.promised).toEqual(b(5, 'p2'));
    }
    expect(nacks[0]!.ballot).toEqual(b(4, 'p1'));
    expect(nacks[2]!.ballot).toEqual(b(3, 'p1'));
    expect(nacks[2]!.slot).toBe(7);
    expect(h.sent('promise')).toHaveLength(0);
    expect(h.sent('accepted')).toHaveLength(0);
    expect(h.sent('learn')).toHaveLength(0);
    expect(h.ctx().accepted.size).toBe(0);
    expect(h.ctx().promised).toEqual(b(5, 'p2'));
  });

  it('a repeated Prepare at the promised ballot is promised again', () => {
    const h = acceptorHarness();
    h.actor.send(prepare('p1', 2));
    h.diskDone();
    h.actor.send(prepare('p1', 2));
    expect(h.sent('promise')).toHaveLength(2);
    expect(h.sent('nack')).toHaveLength(0);
    expect(h.mem.stats().records).toBe(1); // one promise record, not two
  });
});

describe('acceptor: phase 2', () => {
  it('stores an Accept at >= promised, answers Accepted and tells its own learner (with decidedUpTo)', async () => {
    const h = acceptorHarness();
    h.actor.send(prepare('p1', 1));
    h.diskDone();
    h.take();
    h.actor.send(accept('p1', 1, 1, val('v1'), 0));
    h.actor.send(accept('p1', 2, 2, val('v2'), 1)); // higher than promised: raises the promise too
    h.diskDone();
    h.diskDone();

    const learns = h.sent('learn');
    expect(learns.map((l) => [l.to, l.from, l.slot, l.decidedUpTo])).toEqual([
      [SELF, SELF, 1, 0],
      [SELF, SELF, 2, 1],
    ]);
    expect(learns[1]!.ballot).toEqual(b(2, 'p1'));
    const acc = h.sent('accepted');
    expect(acc.map((a) => [a.to, a.slot, a.ballot.round])).toEqual([
      ['p1', 1, 1],
      ['p1', 2, 2],
    ]);
    expect(h.ctx().promised).toEqual(b(2, 'p1'));
    // durable: a recovery of the store sees both votes and the raised promise
    const rec = await h.mem.recover();
    expect(rec.promised).toEqual(b(2, 'p1'));
    expect([...rec.accepted.keys()].sort()).toEqual([1, 2]);
    expect(slotValueEquals(rec.accepted.get(2)!.value, val('v2'))).toBe(true);
  });

  it('replies only once its write is durable', () => {
    const h = acceptorHarness();
    h.actor.send(prepare('p1', 1));
    expect(h.sent('promise')).toHaveLength(0); // the promise record is not durable yet
    expect(h.disk).toHaveLength(1);
    h.diskDone();
    expect(h.sent('promise')).toHaveLength(1);

    h.actor.send(accept('p1', 1, 1, val('v')));
    expect(h.sent('learn')).toHaveLength(1); // the local learner hears at once (it only executes decided slots)
    expect(h.sent('accepted')).toHaveLength(0);
    h.diskDone();
    expect(h.sent('accepted')).toHaveLength(1);
  });

  it('group commit: accepts arriving during one write go out in ONE next append, replies after its callback', () => {
    const h = acceptorHarness();
    h.actor.send(prepare('p1', 1));
    h.diskDone();
    h.take();
    const before = h.mem.stats();

    h.actor.send(accept('p1', 1, 1, val('s1')));
    expect(h.mem.stats().appends).toBe(before.appends + 1); // write #1 in flight
    for (let s = 2; s <= 6; s++) h.actor.send(accept('p1', 1, s, val(`s${s}`)));
    expect(h.mem.stats().appends).toBe(before.appends + 1); // no new write while one is in flight
    expect(h.sent('accepted')).toHaveLength(0);

    h.diskDone(); // write #1 durable: its reply goes, and ONE append takes the 5 waiting records
    expect(h.sent('accepted').map((a) => a.slot)).toEqual([1]);
    const mid = h.mem.stats();
    expect(mid.appends).toBe(before.appends + 2);
    expect(mid.records).toBe(before.records + 6);

    h.diskDone();
    expect(h.sent('accepted').map((a) => a.slot)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(h.mem.stats().appends).toBe(before.appends + 2);
    expect(h.ctx().stats.writes).toBe(3); // promise, slot 1, slots 2..6
  });

  it('a nack that follows a pending write waits for it (replies keep their order)', () => {
    const h = acceptorHarness();
    h.actor.send(prepare('p2', 3));
    h.actor.send(prepare('p1', 1));
    expect(h.out).toHaveLength(0);
    h.diskDone();
    expect(h.out.map((m) => m.type)).toEqual(['promise', 'nack']);
  });

  it('answers a retransmitted identical Accept again without a second record', () => {
    const h = acceptorHarness();
    h.actor.send(prepare('p1', 1));
    h.diskDone();
    h.actor.send(accept('p1', 1, 4, val('v')));
    // retransmission while the first write is in flight: its answer waits for that write
    h.actor.send(accept('p1', 1, 4, val('v')));
    expect(h.sent('accepted')).toHaveLength(0);
    h.diskDone();
    expect(h.sent('accepted')).toHaveLength(2);
    const st = h.mem.stats();
    // and one after it is durable: answered at once, nothing written
    h.actor.send(accept('p1', 1, 4, val('v')));
    expect(h.sent('accepted')).toHaveLength(3);
    expect(h.mem.stats().records).toBe(st.records);
    expect(h.mem.stats().appends).toBe(st.appends);
    expect(h.disk).toHaveLength(0);
  });

  it('contract: another value at the same slot and ballot throws ContractViolation and is never stored', async () => {
    expect(CONTRACTS).toBe(true);
    const h = acceptorHarness();
    h.actor.send(prepare('p1', 1));
    h.actor.send(accept('p1', 1, 1, val('first')));
    h.diskDone();
    h.diskDone();
    const recordsBefore = h.mem.stats().records;
    h.actor.send(accept('p1', 1, 1, val('second')));
    expect(h.errors).toHaveLength(1);
    expect(h.errors[0]).toBeInstanceOf(ContractViolation);
    expect(String((h.errors[0] as Error).message)).toMatch(/slot 1 already holds another value/);
    expect(h.actor.getSnapshot().status).toBe('error');
    expect(slotValueEquals(h.ctx().accepted.get(1)!.value, val('first'))).toBe(true);
    expect(h.mem.stats().records).toBe(recordsBefore);
    expect(slotValueEquals((await h.mem.recover()).accepted.get(1)!.value, val('first'))).toBe(true);
    expect(h.sent('accepted')).toHaveLength(1);
  });

  it('the same contract on handleAccept directly: it throws and leaves the data alone', () => {
    const h = acceptorHarness();
    h.actor.send(prepare('p1', 1));
    h.actor.send(accept('p1', 1, 1, val('first')));
    h.diskDone();
    h.diskDone();
    const d = h.ctx() as AcceptorData;
    const pending = d.pendingRecords.length;
    expect(() => handleAccept(d, accept('p1', 1, 1, val('other')))).toThrow(ContractViolation);
    expect(slotValueEquals(d.accepted.get(1)!.value, val('first'))).toBe(true);
    expect(d.pendingRecords.length).toBe(pending);
  });

  it(
    'a full store puts it in `full`: records and replies are held, the ' +
      'snapshotter is asked for room, a truncation lets the write through',
    async () => {
      const mem = new MemoryStore();
      let full = true;
      const disk: (() => void)[] = [];
      const fulls: Error[] = [];
      const fullError = () => Object.assign(new Error('no space'), { name: 'StorageFullError' });
      const store: AcceptorStore = {
        recover: () => mem.recover(),
        append: (records, done) => {
          const err = full ? fullError() : null;
          if (!err) mem.append(records, () => {});
          disk.push(() => done(err));
        },
        truncateBelow: (s) => mem.truncateBelow(s),
        close: () => mem.close(),
        stats: () => mem.stats(),
        usage: () => ({ usedBytes: 64, capacityBytes: 64 }),
      };
      const h = acceptorHarness({ store, input: { onStoreFull: (e) => fulls.push(e), now: () => h.sched.now() } });
      h.actor.send(prepare('p1', 1));
      h.actor.send(accept('p1', 1, 1, val('v')));
      disk.splice(0).forEach((f) => f());
      expect(h.state()).toBe('full');
      expect(fulls).toHaveLength(1);
      expect(h.sent('log-full')).toEqual([expect.objectContaining({ to: SELF, usedBytes: 64, capacityBytes: 64 })]);
      expect(h.sent('promise')).toHaveLength(0);
      h.actor.send(accept('p1', 1, 2, val('w'))); // more arrives: held behind
      expect(disk).toHaveLength(0); // no write while full: it waits for room, it never spins
      expect(h.ctx().pendingRecords.map((r) => r.t)).toEqual(['promise', 'accept', 'accept']);
      // the retry timer tries again (still full: back to waiting, nothing lost)
      h.sched.runFor(1001);
      disk.splice(0).forEach((f) => f());
      expect(h.state()).toBe('full');
      expect(h.ctx().pendingRecords).toHaveLength(3);
      // a snapshot let the log be truncated: the held write goes through, and its replies with it
      full = false;
      h.actor.send({ type: 'log-truncate', ring: 'ring', from: SELF, to: SELF, below: 1 });
      disk.splice(0).forEach((f) => f());
      expect(h.actor.getSnapshot().matches('serving')).toBe(true);
      expect(h.sent('promise')).toHaveLength(1);
      expect(h.sent('accepted').map((m) => m.slot)).toEqual([1, 2]);
      expect((await mem.recover()).accepted.size).toBe(2); // durable now
      expect(h.ctx().stats.fullWrites).toBe(2);
    },
  );

  it('a failed acceptor ignores prepares and accepts (no reply, no write)', () => {
    const store: AcceptorStore = {
      recover: async () => emptyRecoveredState(),
      append: (_r, done) => queueMicrotask(() => done(new Error('EIO'))),
      truncateBelow: () => {},
      close: async () => {},
      stats: () => new MemoryStore().stats(),
    };
    const h = acceptorHarness({ store });
    h.actor.send(prepare('p1', 1));
    return new Promise<void>((resolve) => setTimeout(resolve, 5)).then(() => {
      expect(h.state()).toBe('failed');
      const before = h.ctx().promised;
      h.actor.send(prepare('p2', 7));
      h.actor.send(accept('p2', 7, 1, val('x')));
      expect(h.ctx().promised).toEqual(before);
      expect(h.out).toHaveLength(0);
    });
  });

  it('a store failure puts it in `failed`: the unsynced reply is never sent and it votes no more', () => {
    const mem = new MemoryStore();
    let failNext = false;
    const disk: (() => void)[] = [];
    const errs: Error[] = [];
    // a store whose syncs complete when the test says, and fail once `failNext` is set
    const store: AcceptorStore = {
      recover: () => mem.recover(),
      append: (records, done) => {
        const err = failNext ? new Error('disk on fire') : null;
        if (!err) mem.append(records, () => {});
        disk.push(() => done(err));
      },
      truncateBelow: (s) => mem.truncateBelow(s),
      close: () => mem.close(),
      stats: () => mem.stats(),
    };
    const h = acceptorHarness({ store, input: { onStoreError: (e) => errs.push(e) } });
    h.actor.send(prepare('p1', 1));
    disk.splice(0).forEach((f) => f());
    expect(h.sent('promise')).toHaveLength(1);
    failNext = true;
    h.actor.send(accept('p1', 1, 1, val('v')));
    disk.splice(0).forEach((f) => f());
    expect(h.state()).toBe('failed');
    expect(errs.map((e) => e.message)).toEqual(['disk on fire']);
    expect(h.sent('accepted')).toHaveLength(0);
    const n = h.out.length;
    h.actor.send(prepare('p2', 9));
    h.actor.send(accept('p1', 1, 2, val('w')));
    expect(disk).toHaveLength(0);
    expect(h.out.length).toBe(n);
    expect(h.ctx().promised).toEqual(b(1, 'p1'));
  });

  it('acceptMessageFrom refusing a leader: no promise, no nack, no accept', () => {
    const h = acceptorHarness({ input: { acceptMessageFrom: (leader) => leader !== 'bad' } });
    h.actor.send(prepare('bad', 5));
    h.actor.send(accept('bad', 6, 1, val('x', 'bad')));
    h.diskDone();
    expect(h.out).toHaveLength(0);
    expect(h.ctx().promised).toEqual(b(0, ''));
    expect(h.ctx().accepted.size).toBe(0);
    expect(h.ctx().stats.refused).toBe(2);
    h.actor.send(prepare('good', 1));
    h.diskDone();
    expect(h.sent('promise')).toHaveLength(1);
  });

  it('passes the Prepare cookie to acceptMessageFrom', () => {
    const seen: (Uint8Array | undefined)[] = [];
    const h = acceptorHarness({ input: { acceptMessageFrom: (_l, cookie) => (seen.push(cookie), cookie?.[0] === 1) } });
    h.actor.send({ ...prepare('p1', 1), cookie: new Uint8Array([2]) });
    h.actor.send({ ...prepare('p1', 2), cookie: new Uint8Array([1]) });
    h.diskDone();
    expect(seen.map((c) => c?.[0])).toEqual([2, 1]);
    expect(h.sent('promise').map((p) => p.ballot.round)).toEqual([2]);
  });

  it('recovers promised and accepted from a RecoveredState', () => {
    const recovered = emptyRecoveredState();
    recovered.promised = b(5, 'p2');
    recovered.accepted.set(7, { ballot: b(4, 'p1'), value: val('seven') });
    recovered.accepted.set(9, { ballot: b(5, 'p2'), value: val('nine', 'p2') });
    recovered.truncatedBelow = 6;
    const h = acceptorHarness({ recovered });
    expect(h.ctx().promised).toEqual(b(5, 'p2'));
    h.actor.send(prepare('p1', 5));
    expect(h.sent('nack')[0]!.promised).toEqual(b(5, 'p2'));
    h.actor.send(prepare('p3', 6, 8));
    h.diskDone();
    const [p] = h.sent('promise');
    expect(p!.truncatedBelow).toBe(6);
    expect(p!.accepted.map((e) => [e.slot, e.ballot.round])).toEqual([[9, 5]]);
    // the recovered vote binds: the same (slot, ballot) with another value is refused
    const h2 = acceptorHarness({ recovered });
    expect(() => handleAccept(h2.ctx() as AcceptorData, accept('p2', 5, 9, val('other', 'p2')))).toThrow(
      ContractViolation,
    );
  });

  it('truncate drops entries below the point and the next Promise says so', () => {
    const h = acceptorHarness();
    h.actor.send(prepare('p1', 1));
    for (let s = 1; s <= 4; s++) h.actor.send(accept('p1', 1, s, val(`s${s}`)));
    h.diskDone();
    h.diskDone();
    h.actor.send({ type: 'log-truncate', ring: 'ring', from: SELF, to: SELF, below: 3 });
    expect([...h.ctx().accepted.keys()]).toEqual([3, 4]);
    h.actor.send(prepare('p2', 2));
    h.diskDone();
    const [p] = h.sent('promise').slice(-1);
    expect(p!.truncatedBelow).toBe(3);
    expect(p!.accepted.map((e) => e.slot)).toEqual([3, 4]);
  });

  it('a forgetful acceptor (keepPromise replaced through provide, DELIBERATELY broken) promises a lower ballot', () => {
    // Built only so the simulator and the properties can prove their checkers catch a broken acceptor.
    // Correct acceptors nack here (see "nacks a lower Prepare"); this one promises.
    const h = acceptorHarness({ machine: forgetfulAcceptor });
    h.actor.send(prepare('p2', 5));
    h.diskDone();
    h.actor.send(prepare('p1', 3));
    h.diskDone();
    expect(h.sent('nack')).toHaveLength(0);
    expect(h.sent('promise').map((p) => p.ballot.round)).toEqual([5, 3]);
  });

  it('stop ends the machine', () => {
    const h = acceptorHarness();
    h.actor.send({ type: 'stop' });
    expect(h.actor.getSnapshot().status).toBe('done');
  });
});

describe('acceptor: a long log promises in pages, each pulled by the candidate', () => {
  const big = (i: number) => ({ k: 'batch' as const, origin: 'p1', inc: 1, firstId: i, cmds: [new Uint8Array(60)] });
  const tenSlots = () => {
    const h = acceptorHarness({ input: { maxPromiseBytes: 200 } });
    for (let s = 1; s <= 10; s++) h.actor.send(accept('p1', 1, s, big(s)));
    for (let i = 0; i < 3; i++) h.diskDone();
    h.take();
    return h;
  };

  it('one page per request, under the byte budget; `more` names the next page, pulled by pageFrom', () => {
    const h = tenSlots();
    h.actor.send(prepare('p2', 2, 3));
    for (let i = 0; i < 3; i++) h.diskDone();
    const pages = [...h.sent('promise')];
    expect(pages).toHaveLength(1); // never the whole log at once: the candidate pulls the rest
    for (let guard = 0; pages.at(-1)!.more !== undefined && guard < 20; guard++) {
      h.take();
      h.actor.send({ ...prepare('p2', 2, 3), pageFrom: pages.at(-1)!.more! });
      const next = h.sent('promise');
      expect(next).toHaveLength(1);
      expect(next[0]!.pageFrom).toBe(pages.at(-1)!.more);
      pages.push(next[0]!);
    }
    expect(pages.length).toBeGreaterThan(2);
    for (const p of pages) {
      expect(p).toMatchObject({ ballot: b(2, 'p2'), fromSlot: 3 });
      const bytes = p.accepted.reduce((n, e) => n + slotValueSize(e.value), 0);
      expect(p.accepted.length === 1 || bytes <= 200).toBe(true);
    }
    expect(pages.at(-1)!.more).toBeUndefined();
    expect(pages.flatMap((p) => p.accepted.map((e) => e.slot))).toEqual([3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('a pull for an older ballot is refused like any lower prepare', () => {
    const h = tenSlots();
    h.actor.send(prepare('p2', 2, 3));
    h.actor.send(prepare('p3', 3, 3));
    for (let i = 0; i < 3; i++) h.diskDone();
    h.take();
    h.actor.send({ ...prepare('p2', 2, 3), pageFrom: 5 });
    expect(h.sent('promise')).toHaveLength(0);
    expect(h.sent('nack')).toHaveLength(1);
  });

  it('a replica that executed slots >= fromSlot sends no entries, and says how far it executed', () => {
    const h = tenSlots();
    h.actor.send({ type: 'exec-mark', ring: 'ring0', from: SELF, to: SELF, upTo: 8, fills: [] });
    h.actor.send(prepare('p2', 2, 5));
    for (let i = 0; i < 3; i++) h.diskDone();
    const [p] = h.sent('promise');
    expect(p).toMatchObject({ fromSlot: 5, executedUpTo: 8, accepted: [] });
    expect(p!.more).toBeUndefined();
    h.take();
    h.actor.send(prepare('p3', 3, 9));
    for (let i = 0; i < 3; i++) h.diskDone();
    const [q] = h.sent('promise');
    expect(q!.executedUpTo).toBe(8);
    expect(q!.accepted.map((e) => e.slot)).toEqual([9, 10]);
  });
});
