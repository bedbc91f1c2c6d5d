import { createActor } from 'xstate';
import { SimScheduler } from '@decree/bus';
import type { Ballot, ChosenEntry, Message, MessageOf, ReplicaId, SlotValue, StateMachine } from '@decree/protocol';
import { type LearnerInput, learnerMachine } from '../src/index.ts';

export const RING = 'ring';
export const SELF = 'r1';
export const MEMBERS = ['r1', 'r2', 'r3'] as const;
export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
export const b = (round: number, leader: ReplicaId): Ballot => ({ round, leader });

/** a slot value with the given commands, proposed by `origin` (incarnation `inc`), first id `firstId` */
export const batch = (cmds: string[], origin: ReplicaId = 'r2', inc = 1, firstId = 1): SlotValue => ({
  k: 'batch',
  origin,
  inc,
  firstId,
  cmds: cmds.map(enc),
});

const h0 = (from: ReplicaId, to: ReplicaId = SELF) => ({ ring: RING, from, to });

/** what the local acceptor tells its learner when it accepts `value` at (ballot, slot) */
export const learn = (ballot: Ballot, slot: number, value: SlotValue, decidedUpTo = 0): MessageOf<'learn'> => ({
  type: 'learn',
  ...h0(SELF),
  ballot,
  slot,
  value,
  decidedUpTo,
});
export const decide = (ballot: Ballot, upTo: number): MessageOf<'decide'> => ({
  type: 'decide',
  ...h0(ballot.leader),
  ballot,
  upTo,
});
export const catchupReq = (from: ReplicaId, fromSlot: number, toSlot: number): MessageOf<'catchup-req'> => ({
  type: 'catchup-req',
  ...h0(from),
  fromSlot,
  toSlot,
});
export const catchupRep = (
  from: ReplicaId,
  entries: ChosenEntry[],
  chosenUpTo: number,
  truncatedBelow = 1,
): MessageOf<'catchup-rep'> => ({
  type: 'catchup-rep',
  ...h0(from),
  entries,
  chosenUpTo,
  truncatedBelow,
});

/** the snapshotter's snap-install of a snapshot as of `slot` (an empty state) */
export const snapInstall = (slot: number, seq = 1): MessageOf<'snap-install'> => ({
  type: 'snap-install',
  ...h0(SELF),
  seq,
  slot,
  data: new Uint8Array(0),
});
/** the snapshotter's snap-saved: a snapshot as of `slot` is durable (copied: installed from a peer) */
export const snapSaved = (slot: number, copied: boolean): MessageOf<'snap-saved'> => ({
  type: 'snap-saved',
  ...h0(SELF),
  slot,
  name: `snap-${slot}`,
  copied,
});

/** A state machine that records what it is asked to do: `slot:cmd` per command, `<slot` / `>slot` around each batch. */
export class RecordingMachine implements StateMachine {
  readonly log: string[] = [];
  readonly applied: string[] = [];
  /** unset: the learner applies through apply (a test may set it to take the in-place path) */
  applyAt?: StateMachine['applyAt'];
  /** unset: no prefetch hints (a test may set it to see them) */
  prefetchAt?: StateMachine['prefetchAt'];
  apply(command: Uint8Array, slot: number): Uint8Array | undefined {
    const c = dec(command);
    this.log.push(`${slot}:${c}`);
    if (c === 'boom') throw new Error('boom');
    this.applied.push(c);
    return enc(`ok:${c}`);
  }
  beforeBatch(slot: number): void {
    this.log.push(`<${slot}`);
  }
  afterBatch(slot: number): void {
    this.log.push(`>${slot}`);
  }
  async snapshot(): Promise<Uint8Array> {
    return new Uint8Array();
  }
  async restore(): Promise<void> {}
}

/** One learner alone: its sends land in `out`, its state machine records, time is a SimScheduler's. */
export function learnerHarness(input: Partial<LearnerInput> = {}) {
  const sched = new SimScheduler(1);
  const out: Message[] = [];
  const errors: unknown[] = [];
  const sm = new RecordingMachine();
  const actor = createActor(learnerMachine, {
    input: {
      ring: RING,
      self: SELF,
      inc: 1,
      members: MEMBERS,
      stateMachine: sm,
      send: (m) => out.push(m),
      now: () => sched.now(),
      ...input,
    },
    clock: { setTimeout: (fn, ms) => sched.after(ms, fn), clearTimeout: (h) => sched.cancel(h) },
  });
  actor.subscribe({ error: (e) => errors.push(e) });
  actor.start();
  return {
    actor,
    out,
    errors,
    sm,
    sched,
    sent<T extends Message['type']>(type: T): MessageOf<T>[] {
      return out.filter((m): m is MessageOf<T> => m.type === type);
    },
    take(): Message[] {
      return out.splice(0);
    },
    ctx: () => actor.getSnapshot().context,
    /** learns and decides slots lo..hi (one command `c<slot>` each, by r2 at ballot (1, r2)) */
    feed(lo: number, hi: number, ballot = b(1, 'r2')): void {
      for (let s = lo; s <= hi; s++) actor.send(learn(ballot, s, batch([`c${s}`])));
      actor.send(decide(ballot, hi));
    },
  };
}
