import { describe, expect, it } from 'vitest';
import type { Message, SlotValue } from '@decree/protocol';
import {
  ArgReader,
  ScriptRunner,
  type RoleAdapter,
  ScriptError,
  fmtValue,
  parseAccepted,
  parseCommand,
  parseConfig,
  parseValue,
  fmtAccepted,
  fmtConfig,
  runGoldenText,
  tokenize,
} from '../src/index.ts';

const enc = (s: string) => new TextEncoder().encode(s);

describe('syntax', () => {
  it('splits on white space outside brackets and quotes', () => {
    expect(tokenize('promise from=r2 accepted=[2:1.r3:batch(a,b) 3:1.r3:noop] reason="a b"')).toEqual([
      'promise',
      'from=r2',
      'accepted=[2:1.r3:batch(a,b) 3:1.r3:noop]',
      'reason="a b"',
    ]);
    expect(() => tokenize('x=(a')).toThrow(ScriptError);
  });
  it('reads key=value and positional arguments, and refuses unread ones', () => {
    const a = new ArgReader(parseCommand('sync full extra=1', 1));
    expect(a.positional()).toEqual(['full']);
    expect(() => a.done()).toThrow(/unexpected extra=/);
  });
});

describe('values', () => {
  const values: SlotValue[] = [
    { k: 'noop' },
    { k: 'batch', origin: 'x', inc: 1, firstId: 1, cmds: [enc('a'), enc('b')] },
    { k: 'batch', origin: 'r1', inc: 2, firstId: 7, cmds: [enc('c7')], excl: true, last: true },
    { k: 'batch', origin: 'r1', inc: 1, firstId: 3, cmds: [new Uint8Array([0, 255]), new Uint8Array()], at: 1234 },
    { k: 'config', epoch: 2, members: ['r1', 'r2', 'r4'], origin: 'x', inc: 1, firstId: 1 },
    { k: 'config', epoch: 3, members: ['r1'], origin: 'r1', inc: 1, firstId: 9, cookie: enc('ck') },
  ];
  it('print compactly and parse back', () => {
    expect(values.map(fmtValue)).toEqual([
      'noop',
      'batch(a,b)',
      'batch(c7)@r1/2#7+excl+last',
      'batch(0x00ff,0x)@r1#3+at=1234',
      'config(e2:r1,r2,r4)',
      'config(e3:r1)@r1#9+cookie=ck',
    ]);
    for (const v of values) expect(parseValue(fmtValue(v))).toEqual(v);
  });
  it('entries and configurations round-trip', () => {
    const e = parseAccepted('4:3.r2:config(e2:r1,r2)');
    expect(e).toEqual({ slot: 4, ballot: { round: 3, leader: 'r2' }, value: parseValue('config(e2:r1,r2)') });
    expect(fmtAccepted(e)).toBe('4:3.r2:config(e2:r1,r2)');
    expect(fmtConfig(parseConfig('e2:r1,r2,r4@6'))).toBe('e2:r1,r2,r4@6');
  });
});

/** A role that echoes: each `ping` is answered with a promise carrying the given entries. */
function echoRole(): RoleAdapter {
  let io: Parameters<RoleAdapter['init']>[1];
  return {
    defaultSelf: 'r1',
    events: new Set(['prepare', 'tick']),
    init(_args, i) {
      io = i;
    },
    send(e) {
      if (e.type !== 'prepare') return;
      const m = e as unknown as Extract<Message, { type: 'prepare' }>;
      const accepted = Array.from({ length: m.fromSlot }, (_, k) => ({
        slot: k + 1,
        ballot: m.ballot,
        value: parseValue(`batch(command-number-${k + 1})`),
      }));
      for (const to of ['r2', 'r3']) {
        const { ballot, fromSlot } = m;
        io.send({ type: 'promise', ring: 'ring', from: 'r1', to, ballot, fromSlot, accepted, truncatedBelow: 0 });
      }
      io.note('noted');
    },
    status: () => 'fine',
  };
}

describe('runner and golden text', () => {
  it('merges broadcasts, wraps long lists, and renders the file again', () => {
    const text = [
      '# one entry',
      'prepare from=r2 ballot=1.r2 fromSlot=1',
      '----',
      'stale output',
      '',
      'prepare ballot=1.r2',
      '  fromSlot=4',
      '----',
      '',
    ].join('\n');
    const runner = new ScriptRunner(echoRole());
    const r = runGoldenText(text, (c) => runner.run(c));
    expect(r.differing).toEqual([2, 6]);
    expect(r.actual).toBe(
      [
        '# one entry',
        'prepare from=r2 ballot=1.r2 fromSlot=1',
        '----',
        '> promise to=r2,r3 ballot=1.r2 fromSlot=1 truncatedBelow=0 accepted=[1:1.r2:batch(command-number-1)]',
        'noted',
        '',
        'prepare ballot=1.r2',
        '  fromSlot=4',
        '----',
        '> promise to=r2,r3 ballot=1.r2 fromSlot=4 truncatedBelow=0',
        '  accepted=[',
        '    1:1.r2:batch(command-number-1)',
        '    2:1.r2:batch(command-number-2)',
        '    3:1.r2:batch(command-number-3)',
        '    4:1.r2:batch(command-number-4)',
        '  ]',
        'noted',
        '',
      ].join('\n'),
    );
  });
  it('names the line of a command that does not parse', () => {
    const runner = new ScriptRunner(echoRole());
    expect(() => runGoldenText('status\n----\nfine\n\nprepare ballot=banana\n----\n', (c) => runner.run(c))).toThrow(
      /script:5: prepare ballot=banana: ballot=: not a ballot/,
    );
  });
});
