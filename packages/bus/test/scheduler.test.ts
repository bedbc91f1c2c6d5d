import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { SimScheduler } from '../src/index.ts';
import './helpers.ts';

describe('SimScheduler ordering', () => {
  test.prop([fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 60 })])(
    'tasks run by time, then in insertion order',
    (times) => {
      const s = new SimScheduler(1);
      const ran: [number, number][] = [];
      times.forEach((t, i) => s.at(t, () => ran.push([s.now(), i])));
      s.runUntil(100);
      const expected = times.map((t, i) => [t, i] as [number, number]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      expect(ran).toEqual(expected);
      expect(s.steps).toBe(times.length);
      expect(s.pending).toBe(0);
    },
  );

  it('work scheduled at the current time runs after what was already due then (FIFO)', () => {
    const s = new SimScheduler(1);
    const log: string[] = [];
    s.at(5, () => {
      log.push('a');
      s.after(0, () => log.push('a-child'));
    });
    s.at(5, () => log.push('b'));
    s.at(6, () => log.push('c'));
    s.runUntil(10);
    expect(log).toEqual(['a', 'b', 'a-child', 'c']);
  });

  it('the past is clamped to now; negative delays are zero', () => {
    const s = new SimScheduler(1);
    s.runUntil(50);
    const log: number[] = [];
    s.at(10, () => log.push(s.now()));
    s.after(-5, () => log.push(s.now()));
    s.runUntil(50);
    expect(log).toEqual([50, 50]);
  });

  it('step runs one task and reports whether there was one', () => {
    const s = new SimScheduler(1);
    const log: number[] = [];
    s.at(3, () => log.push(1));
    s.at(4, () => log.push(2));
    expect(s.step()).toBe(true);
    expect(log).toEqual([1]);
    expect(s.now()).toBe(3);
    expect(s.step()).toBe(true);
    expect(s.step()).toBe(false);
    expect(log).toEqual([1, 2]);
  });
});

describe('SimScheduler cancel', () => {
  it('a cancelled task never runs; cancelling twice, after running, or garbage is harmless', () => {
    const s = new SimScheduler(1);
    const log: string[] = [];
    const a = s.at(1, () => log.push('a'));
    const b = s.at(2, () => log.push('b'));
    s.cancel(a);
    s.cancel(a);
    s.cancel(undefined);
    s.cancel(42);
    s.cancel({});
    s.runUntil(10);
    s.cancel(b);
    expect(log).toEqual(['b']);
  });

  it('a task can cancel a later one at the same time', () => {
    const s = new SimScheduler(1);
    const log: string[] = [];
    s.at(1, () => {
      log.push('first');
      s.cancel(later);
    });
    const later = s.at(1, () => log.push('second'));
    s.runUntil(5);
    expect(log).toEqual(['first']);
  });

  it('env timers: clearTimeout cancels', () => {
    const s = new SimScheduler(1);
    const env = s.env();
    const log: string[] = [];
    const h = env.clock.setTimeout(() => log.push('x'), 10);
    env.clock.setTimeout(() => log.push('y'), 20);
    env.clock.clearTimeout(h);
    s.runFor(100);
    expect(log).toEqual(['y']);
  });
});

describe('SimScheduler runUntil / runFor', () => {
  it('runs tasks due up to and including t, none later, and leaves the clock at t', () => {
    const s = new SimScheduler(1);
    const log: number[] = [];
    for (const t of [1, 5, 10, 11, 30]) s.at(t, () => log.push(t));
    s.runUntil(10);
    expect(log).toEqual([1, 5, 10]);
    expect(s.now()).toBe(10);
    s.runFor(5);
    expect(log).toEqual([1, 5, 10, 11]);
    expect(s.now()).toBe(15);
    s.runUntil(3); // never goes back
    expect(s.now()).toBe(15);
  });

  it('a cancelled task at the head does not let a later task run early (regression)', () => {
    const s = new SimScheduler(1);
    const log: number[] = [];
    const early = s.at(5, () => log.push(5));
    s.at(100, () => log.push(100));
    s.cancel(early);
    s.runUntil(10);
    expect(log).toEqual([]);
    expect(s.now()).toBe(10);
    s.runUntil(100);
    expect(log).toEqual([100]);
  });

  it('throws after maxSteps when tasks keep scheduling themselves at the same time', () => {
    const s = new SimScheduler(1);
    const loop = () => s.after(0, loop);
    s.after(0, loop);
    expect(() => s.runUntil(1, 1000)).toThrow(/more than 1000 steps/);
  });

  it('tasks scheduled during the run are honoured if due', () => {
    const s = new SimScheduler(1);
    const log: number[] = [];
    s.at(1, () => {
      s.after(2, () => log.push(s.now()));
      s.after(20, () => log.push(s.now()));
    });
    s.runUntil(10);
    expect(log).toEqual([3]);
  });
});

describe('SimScheduler runUntilCond', () => {
  it('stops as soon as the condition holds, at the time of the task that made it true', () => {
    const s = new SimScheduler(1);
    let n = 0;
    for (const t of [2, 4, 6, 8]) s.at(t, () => n++);
    expect(s.runUntilCond(() => n === 2, 100)).toBe(true);
    expect(s.now()).toBe(4);
    expect(s.pending).toBe(2);
  });

  it('true at once without running anything when it already holds', () => {
    const s = new SimScheduler(1);
    let ran = false;
    s.at(1, () => (ran = true));
    expect(s.runUntilCond(() => true, 10)).toBe(true);
    expect(ran).toBe(false);
    expect(s.now()).toBe(0);
  });

  it('false after the timeout, with the clock at the deadline and later tasks not run', () => {
    const s = new SimScheduler(1);
    const log: number[] = [];
    s.at(5, () => log.push(5));
    s.at(50, () => log.push(50));
    expect(s.runUntilCond(() => false, 20)).toBe(false);
    expect(log).toEqual([5]);
    expect(s.now()).toBe(20);
  });

  it('a cancelled head does not let a task past the deadline run (regression)', () => {
    const s = new SimScheduler(1);
    let ran = false;
    s.cancel(s.at(5, () => {}));
    s.at(500, () => (ran = true));
    expect(s.runUntilCond(() => ran, 20)).toBe(false);
    expect(ran).toBe(false);
    expect(s.now()).toBe(20);
  });
});

describe('SimScheduler env and determinism', () => {
  it('the env clock is virtual; defer runs after the current task at the same time', () => {
    const s = new SimScheduler(1);
    const env = s.env();
    const log: string[] = [];
    env.clock.setTimeout(() => {
      log.push(`t${env.clock.now()}`);
      env.defer(() => log.push(`d${env.clock.now()}`));
      log.push('after-defer');
    }, 7);
    s.runFor(10);
    expect(log).toEqual(['t7', 'after-defer', 'd7']);
  });

  /** A little randomized program: timers that spawn timers with random delays. */
  function trace(seed: number): string[] {
    const s = new SimScheduler(seed);
    const env = s.env();
    const out: string[] = [];
    const spawn = (name: string, depth: number) => {
      out.push(`${name}@${env.clock.now().toFixed(3)}`);
      if (depth < 4)
        for (let i = 0; i < 2; i++) env.clock.setTimeout(() => spawn(`${name}.${i}`, depth + 1), env.random() * 10);
    };
    spawn('root', 0);
    s.runFor(1000);
    return out;
  }

  test.prop([fc.integer({ min: 0, max: 2 ** 31 })], { numRuns: 30 })('same seed, same execution', (seed) => {
    expect(trace(seed)).toEqual(trace(seed));
  });

  it('different seeds, different executions', () => {
    expect(trace(1)).not.toEqual(trace(2));
    expect(trace(1)).toHaveLength(31);
  });
});
