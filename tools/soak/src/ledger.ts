/**
 * The durability ledger: every SET (unique value) and INCR the soak sent, and what became of it, so
 * that reads of every key at the end tell whether an acknowledged write was lost.
 *
 * SET keys. The final value v of key k was written by some op w_v. An acknowledged SET w of k is
 * lost when w_v completed before w was invoked (w_v then precedes w in any linearization, so w
 * cannot have been applied after it), or when v is absent. To stay small the ledger keeps, per key,
 * only the writes that may still be the final value: a completed write x is forgotten once an
 * acknowledged write of the same key was invoked after x completed — if x's value is read at the end
 * anyway, that acknowledged write was lost. Writes with an unknown outcome are never forgotten.
 *
 * Counters. The final value must be at least the highest acknowledged INCR result and at least the
 * number of acknowledged INCRs; above the number of INCRs sent means an INCR was applied twice
 * (the soak never retries one).
 */
export interface SetEntry {
  readonly key: string;
  readonly id: string;
  readonly invoke: number;
  complete: number | null;
}

interface SetKey {
  /** the latest invocation time of an acknowledged write (-Infinity: none) */
  floor: number;
  acked: number;
  /** writes in flight or completed and not yet forgotten */
  live: Map<string, SetEntry>;
  /** writes whose outcome is unknown (never forgotten) */
  unknown: Map<string, SetEntry>;
}

interface CounterKey {
  sent: number;
  acked: number;
  maxAcked: number;
}

export interface LostWrite {
  key: string;
  /** what was lost: the acknowledged write (id) or the INCR count */
  what: string;
  /** the final value's id, or null (absent), or the counter value */
  found: string | number | null;
}

export interface LedgerCheck {
  setKeys: number;
  counterKeys: number;
  ackedSets: number;
  ackedIncrs: number;
  /** keys (SET or counter) whose final state shows a lost acknowledged write */
  lost: LostWrite[];
  /** values no soak op wrote to that key, corrupted big values, counters above the INCRs sent */
  corrupt: string[];
  /** keys with no final read */
  unread: number;
}

export class Ledger {
  private readonly sets = new Map<string, SetKey>();
  private readonly counters = new Map<string, CounterKey>();
  /** highest sequence number issued per writer */
  private readonly issued = new Map<string, number>();

  /** A SET (or a CAS: a conditional write) of `key` with the value named `id` = `<writer>.<seq>` is sent. */
  setInvoked(key: string, id: string, invoke: number): SetEntry {
    let k = this.sets.get(key);
    if (!k) this.sets.set(key, (k = { floor: -Infinity, acked: 0, live: new Map(), unknown: new Map() }));
    const e: SetEntry = { key, id, invoke, complete: null };
    k.live.set(id, e);
    const dot = id.lastIndexOf('.');
    const writer = id.slice(0, dot);
    const seq = Number(id.slice(dot + 1));
    if (seq > (this.issued.get(writer) ?? -1)) this.issued.set(writer, seq);
    return e;
  }

  /** The write was acknowledged at `t`. */
  setAcked(e: SetEntry, t: number): void {
    const k = this.sets.get(e.key)!;
    e.complete = Math.max(t, e.invoke);
    k.acked++;
    if (e.invoke > k.floor) {
      k.floor = e.invoke;
      for (const [id, x] of k.live) if (x.complete !== null && x.complete < k.floor) k.live.delete(id);
    }
  }

  /** No answer, an error reply or a broken connection: it may have been applied, or not. */
  setUnknown(e: SetEntry): void {
    const k = this.sets.get(e.key)!;
    k.live.delete(e.id);
    k.unknown.set(e.id, e);
  }

  /** The write certainly did not happen (a CAS answered 0). */
  setNotApplied(e: SetEntry): void {
    this.sets.get(e.key)!.live.delete(e.id);
  }

  incrInvoked(key: string): void {
    let c = this.counters.get(key);
    if (!c) this.counters.set(key, (c = { sent: 0, acked: 0, maxAcked: -Infinity }));
    c.sent++;
  }

  incrAcked(key: string, result: number): void {
    const c = this.counters.get(key)!;
    c.acked++;
    if (result > c.maxAcked) c.maxAcked = result;
  }

  setKeys(): string[] {
    return [...this.sets.keys()];
  }

  counterKeys(): string[] {
    return [...this.counters.keys()];
  }

  isCounter(key: string): boolean {
    return this.counters.has(key);
  }

  /**
   * Checks the final reads. `values`: key -> final value (null: absent; missing: not read).
   * `parse` gives a value's {key, id}; `intact` (optional) says whether a value's body is intact.
   */
  check(
    values: ReadonlyMap<string, string | null>,
    parse: (v: string) => { key: string; id: string } | undefined,
    intact?: (key: string, v: string) => boolean,
  ): LedgerCheck {
    const lost: LostWrite[] = [];
    const corrupt: string[] = [];
    let unread = 0;
    let ackedSets = 0;
    let ackedIncrs = 0;
    for (const [key, k] of this.sets) {
      ackedSets += k.acked;
      if (!values.has(key)) {
        unread++;
        continue;
      }
      const v = values.get(key)!;
      if (v === null) {
        if (k.acked > 0) lost.push({ key, what: `${k.acked} acknowledged SET(s)`, found: null });
        continue;
      }
      const p = parse(v);
      if (!p || p.key !== key) {
        corrupt.push(`${key}: a value no soak op wrote to it (${JSON.stringify(v.slice(0, 60))})`);
        continue;
      }
      if (intact && !intact(key, v)) corrupt.push(`${key}: value ${p.id} is corrupted (${v.length} bytes)`);
      if (k.live.has(p.id) || k.unknown.has(p.id)) continue;
      const dot = p.id.lastIndexOf('.');
      const issued = this.issued.get(p.id.slice(0, dot));
      if (issued === undefined || Number(p.id.slice(dot + 1)) > issued) {
        corrupt.push(`${key}: value ${p.id} was never sent`);
        continue;
      }
      // a forgotten write: it completed before an acknowledged write of the key was invoked
      lost.push({ key, what: 'an acknowledged SET invoked after the value read had been written', found: p.id });
    }
    for (const [key, c] of this.counters) {
      ackedIncrs += c.acked;
      if (!values.has(key)) {
        unread++;
        continue;
      }
      const v = values.get(key)!;
      const n = v === null ? 0 : Number(v);
      if (!Number.isSafeInteger(n)) {
        corrupt.push(`${key}: counter holds ${JSON.stringify(v.slice(0, 60))}`);
        continue;
      }
      if (c.acked > 0 && (n < c.maxAcked || n < c.acked))
        lost.push({ key, what: `INCRs: ${c.acked} acknowledged, highest answer ${c.maxAcked}`, found: n });
      if (n > c.sent) corrupt.push(`${key}: counter ${n} > ${c.sent} INCRs sent (an INCR applied twice)`);
    }
    return { setKeys: this.sets.size, counterKeys: this.counters.size, ackedSets, ackedIncrs, lost, corrupt, unread };
  }
}
