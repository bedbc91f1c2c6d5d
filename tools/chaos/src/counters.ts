/**
 * The counter ledger of the chunks workload: every INCR sent, how it ended (acknowledged with a
 * result, or in doubt), and who got each result. Nothing is ever retried, by the harness or by the
 * client library, so with INCR by 1 on a key that only INCR touches:
 *
 * - every acknowledged result is distinct (two acknowledgements of one value: an INCR applied once
 *   but answered twice, or a lost application whose value was handed out again);
 * - no acknowledged result exceeds the INCRs sent;
 * - the final value is at least the highest acknowledged result and the number of acknowledged
 *   INCRs (else an acknowledged INCR was lost), and at most acknowledged + in doubt (else an INCR
 *   was applied twice: the server re-submitted something that had already run).
 */

interface CounterState {
  sent: number;
  acked: number;
  inDoubt: number;
  maxAcked: number;
  /** result -> who got it (the first one) */
  results: Map<number, string>;
  /** results acknowledged more than once: result -> everyone who got it */
  dupes: Map<number, string[]>;
}

export interface CounterReport {
  key: string;
  sent: number;
  acked: number;
  inDoubt: number;
  /** highest acknowledged result (0: none) */
  maxAcked: number;
  /** the value read back at the end; null: absent; undefined: not read */
  final: number | null | undefined;
  ok: boolean;
}

export interface CounterCheck {
  /** every counter's numbers (group: the key's group, e.g. "shared", "pipeline", "recorded") */
  counters: (CounterReport & { group: string })[];
  /** one line per violation, with the values that show it */
  violations: string[];
  /** counters whose final value was not read */
  unread: string[];
}

/** A key as the report shows it: a padded counter key's padding is abbreviated (`pc:w1.7:…+200`). */
export const keyLabel = (key: string): string => key.replace(/:\.{8,}$/, (m) => `:…+${m.length - 1}`);

export class CounterLedger {
  private readonly keys = new Map<string, CounterState & { group: string }>();

  private state(key: string, group = 'shared'): CounterState & { group: string } {
    let c = this.keys.get(key);
    if (!c) {
      c = { group, sent: 0, acked: 0, inDoubt: 0, maxAcked: 0, results: new Map(), dupes: new Map() };
      this.keys.set(key, c);
    }
    return c;
  }

  /** An INCR of `key` is about to be sent (`group` names the kind of key in the report). */
  sent(key: string, group?: string): void {
    this.state(key, group).sent++;
  }

  /** Its answer arrived: the counter's new value, given to `who` (writer, pipeline, position, replica). */
  acked(key: string, result: number, who: string): void {
    const c = this.state(key);
    c.acked++;
    if (result > c.maxAcked) c.maxAcked = result;
    const first = c.results.get(result);
    if (first === undefined) c.results.set(result, who);
    else {
      const d = c.dupes.get(result);
      if (d) d.push(who);
      else c.dupes.set(result, [first, who]);
    }
  }

  /** No answer, an error reply, or an answer that is not an integer: it may have run, or not. */
  doubt(key: string): void {
    this.state(key).inDoubt++;
  }

  keyList(group?: string): string[] {
    return [...this.keys].filter(([, c]) => group === undefined || c.group === group).map(([k]) => k);
  }

  totals(): { sent: number; acked: number; inDoubt: number } {
    let sent = 0;
    let acked = 0;
    let inDoubt = 0;
    for (const c of this.keys.values()) {
      sent += c.sent;
      acked += c.acked;
      inDoubt += c.inDoubt;
    }
    return { sent, acked, inDoubt };
  }

  /** Checks every counter against its final value (`finals`: key -> value read; missing: not read). */
  check(finals: ReadonlyMap<string, string | null>): CounterCheck {
    const counters: CounterCheck['counters'] = [];
    const violations: string[] = [];
    const unread: string[] = [];
    for (const [fullKey, c] of this.keys) {
      const key = keyLabel(fullKey);
      const bad: string[] = [];
      for (const [result, who] of c.dupes)
        bad.push(`${key}: INCR result ${result} acknowledged ${who.length} times: ${who.slice(0, 6).join(', ')}`);
      if (c.maxAcked > c.sent) {
        const who = c.results.get(c.maxAcked);
        bad.push(`${key}: acknowledged INCR result ${c.maxAcked} > ${c.sent} INCRs sent (given to ${who})`);
      }
      if (c.acked + c.inDoubt !== c.sent)
        bad.push(`${key}: ledger mismatch: ${c.sent} sent != ${c.acked} acknowledged + ${c.inDoubt} in doubt`);
      let final: number | null | undefined;
      if (!finals.has(fullKey)) unread.push(key);
      else {
        const v = finals.get(fullKey)!;
        final = v === null ? null : Number(v);
        const n = final ?? 0;
        if (v !== null && !/^-?\d+$/.test(v))
          bad.push(`${key}: final value is not an integer: ${JSON.stringify(v.slice(0, 60))}`);
        else {
          if (n > c.acked + c.inDoubt)
            bad.push(
              `${key}: final ${n} > ${c.acked} acknowledged + ${c.inDoubt} in doubt = ${c.acked + c.inDoubt} ` +
                `(${n - c.acked - c.inDoubt} INCR application(s) more than INCRs sent)`,
            );
          if (n < c.maxAcked)
            bad.push(
              `${key}: final ${n} < highest acknowledged result ${c.maxAcked} (given to ${c.results.get(c.maxAcked)})`,
            );
          if (n < c.acked) bad.push(`${key}: final ${n} < ${c.acked} acknowledged INCRs`);
        }
      }
      violations.push(...bad);
      counters.push({
        key,
        group: c.group,
        sent: c.sent,
        acked: c.acked,
        inDoubt: c.inDoubt,
        maxAcked: c.maxAcked,
        final,
        ok: bad.length === 0 && final !== undefined,
      });
    }
    return { counters, violations, unread };
  }
}
