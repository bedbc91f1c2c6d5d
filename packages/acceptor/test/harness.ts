import { assertEvent, createActor } from 'xstate';
import { SimScheduler } from '@decree/bus';
import { MemoryStore } from '@decree/storage/memory';
import {
  type AcceptorStore,
  type Ballot,
  type Message,
  type MessageOf,
  type RecoveredState,
  type ReplicaId,
  type SlotValue,
  emptyRecoveredState,
} from '@decree/protocol';
import { type AcceptorInput, acceptorMachine, recordPromise } from '../src/index.ts';

export const RING = 'ring';
export const SELF = 'a1';
export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const b = (round: number, leader: ReplicaId): Ballot => ({ round, leader });

/** A batch value; `tag` makes values distinguishable. */
export const val = (tag: string, origin: ReplicaId = 'p1'): SlotValue => ({
  k: 'batch',
  origin,
  inc: 1,
  firstId: 1,
  cmds: [enc(tag)],
});

export const prepare = (from: ReplicaId, round: number, fromSlot = 1, to: ReplicaId = SELF): MessageOf<'prepare'> => ({
  type: 'prepare',
  ring: RING,
  from,
  to,
  ballot: b(round, from),
  fromSlot,
});

export const accept = (
  from: ReplicaId,
  round: number,
  slot: number,
  value: SlotValue,
  decidedUpTo = 0,
  to: ReplicaId = SELF,
): MessageOf<'accept'> => ({
  type: 'accept',
  ring: RING,
  from,
  to,
  ballot: b(round, from),
  slot,
  value,
  decidedUpTo,
});

export interface HarnessOptions {
  recovered?: RecoveredState;
  store?: AcceptorStore;
  input?: Partial<AcceptorInput>;
  /** the machine to run (default acceptorMachine) */
  machine?: typeof acceptorMachine;
}

/**
 * A DELIBERATELY BROKEN acceptor built with `provide`, as the testkit's `forgetfulAcceptorMachine` (which
 * this package cannot import: the testkit depends on it): its promise step takes every ballot as the
 * promise, forgetting a higher one, so it promises and accepts lower ballots.
 */
export const forgetfulAcceptor = acceptorMachine.provide({
  actions: {
    keepPromise: ({ context, event }) => {
      assertEvent(event, ['prepare', 'accept']);
      recordPromise(context, event.ballot);
    },
  },
});

/**
 * One acceptor alone: a MemoryStore whose completions wait in `disk` until the test says
 * `diskDone()`, every message it sends in `out`, timers on a SimScheduler.
 */
export function acceptorHarness(opts: HarnessOptions = {}) {
  const sched = new SimScheduler(1);
  const disk: (() => void)[] = [];
  const mem = new MemoryStore({ defer: (fn) => disk.push(fn) });
  const store = opts.store ?? mem;
  const out: Message[] = [];
  const errors: unknown[] = [];
  const actor = createActor(opts.machine ?? acceptorMachine, {
    input: {
      ring: RING,
      self: SELF,
      store,
      recovered: opts.recovered ?? emptyRecoveredState(),
      send: (m) => out.push(m),
      ...opts.input,
    },
    clock: { setTimeout: (fn, ms) => sched.after(ms, fn), clearTimeout: (h) => sched.cancel(h) },
  });
  actor.subscribe({ error: (e) => errors.push(e) });
  actor.start();
  return {
    actor,
    out,
    errors,
    disk,
    mem,
    sched,
    /** completes the appends handed to the store so far (in order), as a sync would; not those they start */
    diskDone(): void {
      for (const fn of disk.splice(0)) fn();
    },
    /** the messages sent so far of one type, and clears nothing */
    sent<T extends Message['type']>(type: T): MessageOf<T>[] {
      return out.filter((m): m is MessageOf<T> => m.type === type);
    },
    take(): Message[] {
      return out.splice(0);
    },
    ctx: () => actor.getSnapshot().context,
    state: () => actor.getSnapshot().value,
  };
}
