import { describe, expect, it } from 'vitest';
import { setup } from 'xstate';
import { proposerMachine } from '@decree/proposer';
import { activePaths, chartOf, LatencyWindow } from '../src/index.ts';

describe('chartOf', () => {
  it('reads the states tree and the state-changing transitions of a machine', () => {
    const m = setup({ guards: { ok: () => true }, delays: { wait: 10 } }).createMachine({
      id: 'm',
      initial: 'a',
      states: {
        a: { description: 'the start', on: { go: { target: 'b', guard: 'ok' }, noop: { actions: [] } } },
        b: { initial: 'x', states: { x: { after: { wait: 'y' } }, y: { id: 'why' } }, on: { back: 'a' } },
        done: { type: 'final' },
      },
      on: { quit: '.done' },
    });
    const c = chartOf(m);
    expect(c.id).toBe('m');
    expect(c.root.initial).toBe('a');
    expect(c.root.children.map((s) => [s.key, s.path, s.type])).toEqual([
      ['a', 'a', 'atomic'],
      ['b', 'b', 'compound'],
      ['done', 'done', 'final'],
    ]);
    const b = c.root.children[1]!;
    expect(b.initial).toBe('b.x');
    expect(b.children.map((s) => [s.path, s.id])).toEqual([
      ['b.x', 'm.b.x'],
      ['b.y', 'why'],
    ]);
    expect(c.root.children[0]!.description).toBe('the start');
    expect(c.transitions).toEqual([
      { from: 'a', to: ['b'], event: 'go', guard: 'ok' },
      { from: 'b.x', to: ['b.y'], event: 'after wait', guard: undefined },
      { from: 'b', to: ['a'], event: 'back', guard: undefined },
      { from: '', to: ['done'], event: 'quit', guard: undefined },
    ]);
  });

  it('finds every state a proposer can be in', () => {
    const c = chartOf(proposerMachine);
    const paths: string[] = [];
    const walk = (s: (typeof c)['root']) => {
      if (s.path) paths.push(s.path);
      s.children.forEach(walk);
    };
    walk(c.root);
    expect(paths).toContain('leading.steady');
    expect(paths).toContain('follower.following');
    for (const t of c.transitions) for (const p of [t.from, ...t.to]) expect(p === '' || paths.includes(p)).toBe(true);
  });
});

describe('activePaths', () => {
  it('lists the active states outermost first', () => {
    expect(activePaths('idle')).toEqual(['idle']);
    expect(activePaths({ leading: 'steady' })).toEqual(['leading', 'leading.steady']);
    expect(activePaths({ leading: { reconfiguring: 'config-in-flight' } })).toEqual([
      'leading',
      'leading.reconfiguring',
      'leading.reconfiguring.config-in-flight',
    ]);
    // parallel regions
    expect(activePaths({ p: { a: 'x', b: 'y' } })).toEqual(['p', 'p.a', 'p.a.x', 'p.b', 'p.b.y']);
    expect(activePaths({ q: {} })).toEqual(['q']);
  });
});

describe('LatencyWindow', () => {
  it('gives p50/p99 of the recent samples, bounded in count and age', () => {
    let now = 0;
    const w = new LatencyWindow(100, 1000, () => now);
    expect(w.quantiles()).toBeUndefined();
    for (let i = 1; i <= 100; i++) w.record(i);
    expect(w.quantiles()).toEqual({ p50: 50, p99: 99, samples: 100 });
    for (let i = 0; i < 50; i++) w.record(1000); // the ring keeps the latest 100: 51..100 and 1000 × 50
    expect(w.quantiles()).toEqual({ p50: 100, p99: 1000, samples: 100 });
    now = 2000; // all older than maxAgeMs
    expect(w.quantiles()).toBeUndefined();
    w.record(7);
    expect(w.quantiles()).toEqual({ p50: 7, p99: 7, samples: 1 });
  });
});
