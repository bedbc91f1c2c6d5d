import { describe, expect, it } from 'vitest';
import { CounterLedger, keyLabel } from '../src/counters.ts';

const finals = (o: Record<string, string | null>) => new Map(Object.entries(o));

describe('CounterLedger', () => {
  it('accepts a counter whose final value lies between the acknowledged INCRs and acknowledged + in doubt', () => {
    const l = new CounterLedger();
    for (let i = 0; i < 5; i++) l.sent('c');
    l.acked('c', 1, 'a');
    l.acked('c', 3, 'b');
    l.acked('c', 2, 'c');
    l.doubt('c');
    l.doubt('c');
    const r = l.check(finals({ c: '4' }));
    expect(r.violations).toEqual([]);
    expect(r.counters[0]).toMatchObject({ key: 'c', sent: 5, acked: 3, inDoubt: 2, maxAcked: 3, final: 4, ok: true });
  });

  it('reports a result acknowledged twice, with who got it', () => {
    const l = new CounterLedger();
    for (let i = 0; i < 3; i++) l.sent('c');
    l.acked('c', 1, 'w1#1[0]@r1(leader)');
    l.acked('c', 2, 'w1#1[5]@r1(leader)');
    l.acked('c', 2, 'w2#4[9]@r2(follower)');
    const r = l.check(finals({ c: '3' }));
    expect(r.violations).toEqual(['c: INCR result 2 acknowledged 2 times: w1#1[5]@r1(leader), w2#4[9]@r2(follower)']);
  });

  it('reports a final value above acknowledged + in doubt (an INCR applied twice)', () => {
    const l = new CounterLedger();
    for (let i = 0; i < 4; i++) l.sent('c');
    for (let i = 1; i <= 3; i++) l.acked('c', i + 2, `x${i}`);
    l.doubt('c');
    const r = l.check(finals({ c: '6' }));
    expect(r.violations).toEqual([
      'c: acknowledged INCR result 5 > 4 INCRs sent (given to x3)',
      'c: final 6 > 3 acknowledged + 1 in doubt = 4 (2 INCR application(s) more than INCRs sent)',
    ]);
  });

  it('reports a lost acknowledged INCR (final below the highest result or the acknowledged count)', () => {
    const l = new CounterLedger();
    for (let i = 0; i < 3; i++) l.sent('c');
    l.acked('c', 1, 'a');
    l.acked('c', 2, 'b');
    l.acked('c', 3, 'c');
    const r = l.check(finals({ c: '2' }));
    expect(r.violations).toEqual([
      'c: final 2 < highest acknowledged result 3 (given to c)',
      'c: final 2 < 3 acknowledged INCRs',
    ]);
    expect(l.check(finals({ c: null })).violations).toHaveLength(2);
  });

  it('lists counters with no final read, keeps groups, abbreviates padded keys', () => {
    const l = new CounterLedger();
    const pad = `pc:w1.3:${'.'.repeat(200)}`;
    l.sent(pad, 'pipeline');
    l.doubt(pad);
    l.sent('h0:n', 'recorded');
    l.acked('h0:n', 1, 'r1.0@r2');
    const r = l.check(finals({ 'h0:n': '1' }));
    expect(r.unread).toEqual(['pc:w1.3:…+200']);
    expect(keyLabel(pad)).toBe('pc:w1.3:…+200');
    expect(l.keyList('recorded')).toEqual(['h0:n']);
    expect(l.totals()).toEqual({ sent: 2, acked: 1, inDoubt: 1 });
  });
});
