import { type SnapshotFrom, createActor } from 'xstate';
import { SimScheduler } from '@decree/bus';
import type { AcceptedEntry, Ballot, Message, MessageOf, ReplicaId, SlotValue, SubmitItem } from '@decree/protocol';
import { type ProposerInput, proposerMachine } from '../src/index.ts';

export const RING = 'ring';
export const SELF = 'r1';
export const MEMBERS = ['r1', 'r2', 'r3'] as const;
export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
export const b = (round: number, leader: ReplicaId): Ballot => ({ round, leader });
export const val = (tag: string, origin: ReplicaId = 'r9'): SlotValue => ({
  k: 'batch',
  origin,
  inc: 1,
  firstId: 1,
  cmds: [enc(tag)],
});

const h0 = (from: ReplicaId, to: ReplicaId = SELF) => ({ ring: RING, from, to });

export const campaign = (round = 1, cookie?: Uint8Array): MessageOf<'campaign'> => ({
  type: 'campaign',
  ...h0(SELF),
  round,
  ...(cookie ? { cookie } : {}),
});
export const promise = (
  from: ReplicaId,
  ballot: Ballot,
  fromSlot: number,
  accepted: AcceptedEntry[] = [],
  truncatedBelow = 0,
): MessageOf<'promise'> => ({
  type: 'promise',
  ...h0(from),
  ballot,
  fromSlot,
  accepted,
  truncatedBelow,
});
export const accepted = (from: ReplicaId, ballot: Ballot, slot: number): MessageOf<'accepted'> => ({
  type: 'accepted',
  ...h0(from),
  ballot,
  slot,
});
export const nack = (from: ReplicaId, ballot: Ballot, promised: Ballot, slot?: number): MessageOf<'nack'> => ({
  type: 'nack',
  ...h0(from),
  ballot,
  promised,
  ...(slot !== undefined ? { slot } : {}),
});
export const submit = (items: SubmitItem[]): MessageOf<'submit'> => ({ type: 'submit', ...h0(SELF), items });
export const item = (id: number, cmd = `c${id}`, extra: Partial<SubmitItem> = {}): SubmitItem => ({
  id,
  cmd: enc(cmd),
  ...extra,
});
export const progress = (executedUpTo: number, chosenUpTo = executedUpTo): MessageOf<'progress'> => ({
  type: 'progress',
  ...h0(SELF),
  executedUpTo,
  chosenUpTo,
});

/** A state value as a dotted path: 'leading.reconfiguring.re-preparing'. */
export function statePath(v: unknown): string {
  if (typeof v === 'string') return v;
  const [k, sub] = Object.entries(v as Record<string, unknown>)[0]!;
  return `${k}.${statePath(sub)}`;
}

/**
 * What the substates stand for, checked against the data after every event a harness sends: a
 * config value is in flight exactly in leading.reconfiguring.config-in-flight; leading.recovering
 * until the slots phase 1 found are chosen; stepping-down never lasts; no slot in flight unless
 * leading. Returns the first broken rule.
 */
export function stateInvariants(s: SnapshotFrom<typeof proposerMachine>): string | undefined {
  const d = s.context;
  const where = statePath(s.value);
  if ((d.pendingConfig !== undefined) !== s.matches({ leading: { reconfiguring: 'config-in-flight' } }))
    return `${where} with pendingConfig ${d.pendingConfig?.slot ?? 'none'}`;
  if (s.matches({ leading: 'recovering' }) && d.chosenUpTo >= d.recoveryEnd) return `${where} with recovery chosen`;
  if (s.matches({ leading: 'steady' }) && d.chosenUpTo < d.recoveryEnd) return `${where} with recovery not chosen`;
  if (s.matches({ leading: 'stepping-down' })) return `${where} at rest`;
  if (!s.matches('leading') && (d.slots.size > 0 || d.queue.length > d.queueHead))
    return `${where} with slots or a queue`;
  return undefined;
}

/** One proposer alone: every message it sends lands in `out`; `now` and timers come from a SimScheduler. */
export function proposerHarness(input: Partial<ProposerInput> = {}) {
  const sched = new SimScheduler(1);
  const out: Message[] = [];
  const errors: unknown[] = [];
  /** the state after every microstep (transient states included), as paths */
  const steps: string[] = [];
  const actor = createActor(proposerMachine, {
    input: {
      ring: RING,
      self: SELF,
      inc: 1,
      members: MEMBERS,
      send: (m) => out.push(m),
      now: () => sched.now(),
      ...input,
    },
    clock: { setTimeout: (fn, ms) => sched.after(ms, fn), clearTimeout: (h) => sched.cancel(h) },
    inspect: (ev) => {
      if (ev.type === '@xstate.microstep') steps.push(statePath((ev.snapshot as unknown as { value: unknown }).value));
    },
  });
  actor.subscribe({ error: (e) => errors.push(e) });
  actor.start();
  // every event the tests send: the substates must agree with the data
  const send = actor.send.bind(actor);
  actor.send = (e) => {
    send(e);
    const bad = stateInvariants(actor.getSnapshot());
    if (bad) throw new Error(`proposer state invariant: ${bad}`);
  };
  const api = {
    actor,
    out,
    errors,
    steps,
    sched,
    sent<T extends Message['type']>(type: T): MessageOf<T>[] {
      return out.filter((m): m is MessageOf<T> => m.type === type);
    },
    take(): Message[] {
      return out.splice(0);
    },
    ctx: () => actor.getSnapshot().context,
    /** the top-level state ('leading' in leading.steady) */
    state: () => statePath(actor.getSnapshot().value).split('.')[0],
    /** the whole state path ('leading.reconfiguring.re-preparing') */
    path: () => statePath(actor.getSnapshot().value),
    /** campaign and collect promises from r1 and r2: leading at ballot (round, r1) */
    lead(
      round = 1,
      promises: (ballot: Ballot, fromSlot: number) => MessageOf<'promise'>[] = (bb, f) => [
        promise('r1', bb, f),
        promise('r2', bb, f),
      ],
    ): Ballot {
      actor.send(campaign(round));
      const { ballot, fromSlot } = actor.getSnapshot().context;
      for (const p of promises(ballot, fromSlot)) actor.send(p);
      return ballot;
    },
    /** a majority (r1, r2) accepts `slot` */
    choose(slot: number, ballot = actor.getSnapshot().context.ballot): void {
      actor.send(accepted('r1', ballot, slot));
      actor.send(accepted('r2', ballot, slot));
    },
    /** the distinct (slot -> value) of the Accepts sent so far */
    proposals(): Map<number, SlotValue> {
      const m = new Map<number, SlotValue>();
      for (const a of out) if (a.type === 'accept') m.set(a.slot, a.value);
      return m;
    },
  };
  return api;
}

export const cmdsOf = (v: SlotValue | undefined): string[] => (v && v.k === 'batch' ? v.cmds.map(dec) : []);
