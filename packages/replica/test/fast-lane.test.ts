import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assign, createActor, setup } from 'xstate';
import { fastLane } from '../src/fast-lane.ts';

interface Ctx {
  n: number;
  log: string[];
}
type Ev =
  | { type: 'inc' }
  | { type: 'bump'; by: number }
  | { type: 'echo' }
  | { type: 'reset' }
  | { type: 'boom' }
  | { type: 'go' }
  | { type: 'tick' };

/** A toy machine with every kind of transition the lane must tell apart. */
const toy = setup({
  types: { context: {} as Ctx, events: {} as Ev },
  actions: {
    inc: ({ context }) => {
      context.n++;
      context.log.push('inc');
    },
    add: ({ context, event }, params: { times: number }) => {
      if (event.type === 'bump') context.n += event.by * params.times;
      context.log.push('add');
    },
    // sends to itself while running: the nested event must wait for this one to finish
    echo: ({ context, self }) => {
      context.log.push('echo-start');
      self.send({ type: 'inc' });
      context.log.push('echo-end');
    },
    boom: () => {
      throw new Error('boom');
    },
    tick: ({ context }) => {
      context.log.push(`tick@${context.n}`);
    },
    reset: assign({ n: 0 }),
  },
  guards: {
    small: ({ event }) => event.type === 'bump' && event.by < 5,
    atLeast: ({ context }, params: { n: number }) => context.n >= params.n,
  },
}).createMachine({
  id: 'toy',
  context: () => ({ n: 0, log: [] }),
  initial: 'running',
  states: {
    running: {
      initial: 'low',
      // eventless: from `low` to `high` once n >= 10
      on: { tick: { actions: 'tick' }, go: { target: '.high' } },
      states: {
        low: {
          always: { guard: { type: 'atLeast', params: { n: 10 } }, target: 'high' },
          on: {
            inc: { actions: 'inc' },
            bump: [{ guard: 'small', actions: { type: 'add', params: { times: 2 } } }, { target: 'high' }],
            echo: { actions: 'echo' },
            reset: { actions: 'reset' },
            boom: { actions: 'boom' },
          },
        },
        high: {
          on: { inc: { actions: 'inc' }, reset: { target: 'low', actions: 'reset' }, echo: { actions: 'echo' } },
        },
      },
    },
  },
});

const EVENTS: fc.Arbitrary<Ev> = fc.oneof(
  fc.constant({ type: 'inc' } as const),
  fc.integer({ min: 0, max: 9 }).map((by) => ({ type: 'bump', by }) as const),
  fc.constant({ type: 'echo' } as const),
  fc.constant({ type: 'reset' } as const),
  fc.constant({ type: 'go' } as const),
  fc.constant({ type: 'tick' } as const),
);

/** Runs events through a fresh actor (by the lane or not); what its observers saw, and where it ended. */
function run(events: readonly Ev[], lane: boolean) {
  const a = createActor(toy);
  const seen: string[] = [];
  a.subscribe((s) => seen.push(`${JSON.stringify(s.value)}:${s.context.n}`));
  a.start();
  const send = fastLane<Ev>(a, lane);
  for (const e of events) send(e);
  const s = a.getSnapshot();
  return { value: s.value, n: s.context.n, log: s.context.log, seen };
}

describe('fastLane (decision 0014)', () => {
  it('ends where XState ends, with the same actions in the same order and the same observer calls', () => {
    fc.assert(
      fc.property(fc.array(EVENTS, { maxLength: 60 }), (events) => {
        expect(run(events, true)).toEqual(run(events, false));
      }),
      { numRuns: 500 },
    );
  });

  it('runs a targetless plain action without XState, and hands the rest to XState', () => {
    const a = createActor(toy).start();
    const send = fastLane<Ev>(a);
    const before = a.getSnapshot();
    send({ type: 'inc' });
    send({ type: 'bump', by: 2 }); // guarded, params
    // no transition went through XState: the snapshot object is the same one, its context moved on
    expect(a.getSnapshot()).toBe(before);
    expect(a.getSnapshot().context.n).toBe(5);
    send({ type: 'reset' }); // a built-in action (assign): XState
    expect(a.getSnapshot()).not.toBe(before);
    expect(a.getSnapshot().context.n).toBe(0);
    send({ type: 'bump', by: 7 }); // the guard fails: the second candidate has a target, XState takes it
    expect(a.getSnapshot().value).toEqual({ running: 'high' });
  });

  it('wakes XState for an eventless transition that a fast action enabled', () => {
    const a = createActor(toy).start();
    const send = fastLane(a);
    for (let i = 0; i < 9; i++) send({ type: 'inc' });
    expect(a.getSnapshot().value).toEqual({ running: 'low' });
    send({ type: 'inc' }); // n = 10: `always` to high
    expect(a.getSnapshot().value).toEqual({ running: 'high' });
  });

  it('keeps XState order for an event an action sends to its own actor', () => {
    const a = createActor(toy).start();
    fastLane(a)({ type: 'echo' });
    expect(a.getSnapshot().context.log).toEqual(['echo-start', 'echo-end', 'inc']);
  });

  it('fails the actor as XState does when an action throws: error observers told, later events dropped', () => {
    const a = createActor(toy);
    const errors: unknown[] = [];
    a.subscribe({ error: (e) => errors.push(e) });
    a.start();
    const send = fastLane(a);
    send({ type: 'inc' });
    send({ type: 'boom' });
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toBe('boom');
    expect(a.getSnapshot().status).toBe('error');
    send({ type: 'inc' });
    expect(a.getSnapshot().context.n).toBe(1);
  });

  it('is actor.send when off (the inspector sees every event) and for machines with wildcard events', () => {
    const inspected: string[] = [];
    const a = createActor(toy, {
      inspect: (e) => {
        if (e.type === '@xstate.event') inspected.push((e.event as { type: string }).type);
      },
    }).start();
    const send = fastLane(a, false);
    send({ type: 'inc' });
    expect(inspected).toContain('inc');
    const wild = setup({ actions: { any: () => {} } }).createMachine({ on: { '*': { actions: 'any' } } });
    const wildSeen: string[] = [];
    const w = createActor(wild, {
      inspect: (e) => {
        if (e.type === '@xstate.event') wildSeen.push((e.event as { type: string }).type);
      },
    }).start();
    fastLane(w)({ type: 'x' }); // on: the machine has a wildcard, so XState still gets the event
    expect(wildSeen).toContain('x');
    const t = createActor(toy, {
      inspect: (e) => {
        if (e.type === '@xstate.event') inspected.push(`on:${(e.event as { type: string }).type}`);
      },
    }).start();
    fastLane(t)({ type: 'inc' }); // and on for a laneable machine, the inspector does not see it
    expect(inspected).not.toContain('on:inc');
  });
});
