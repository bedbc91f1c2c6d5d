import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { setup } from 'xstate';
import { generateStatecharts, mermaidOf, STATECHART_DIR } from '../statecharts.ts';

describe('statecharts', () => {
  it('the committed docs/statecharts equal the ones generated from the machines', () => {
    const gen = generateStatecharts();
    expect(Object.keys(gen).sort()).toEqual([
      'acceptor.md',
      'config-manager.md',
      'elector.md',
      'learner.md',
      'proposer.md',
      'snapshotter.md',
    ]);
    for (const [file, text] of Object.entries(gen))
      expect(
        readFileSync(join(STATECHART_DIR, file), 'utf8'),
        `${file} is stale: run tools/scripts/statecharts.ts`,
      ).toBe(text);
  });

  it('draws states, initial states, guarded and delayed transitions of a machine', () => {
    const m = setup({ guards: { ok: () => true }, delays: { wait: 10 } }).createMachine({
      id: 'm',
      initial: 'a',
      states: {
        a: { on: { go: { target: 'b', guard: 'ok' }, noop: { actions: [] } } },
        b: { initial: 'x', states: { x: { after: { wait: 'y' } }, y: {} }, on: { back: 'a' } },
        done: { type: 'final' },
      },
      on: { quit: '.done' },
    });
    const text = mermaidOf(m);
    expect(text).toContain('[*] --> a');
    expect(text).toContain('a --> b : go [ok]');
    expect(text).toContain('state "b" as b {');
    expect(text).toContain('[*] --> b_x');
    expect(text).toContain('b_x --> b_y : after wait');
    expect(text).toContain('b --> a : back');
    expect(text).toContain('a --> done : quit');
    expect(text).toContain('done --> [*]');
    expect(text).not.toContain('noop');
  });
});
