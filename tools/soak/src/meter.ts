/**
 * Windows of successful operations and the recovery time of each fault. All times are
 * `performance.now()` milliseconds (the history's clock); reports give them relative to `origin`.
 */
export interface Window {
  index: number;
  /** ms since the load started */
  start: number;
  end: number;
  ok: number;
  okBulk: number;
  okChecked: number;
  /** error replies */
  errors: number;
  /** commands whose outcome became unknown without an error reply (timeout, broken connection) */
  unknown: number;
  /** faults started in this window, e.g. "kill9 r2" */
  faults: string[];
}

/** Something that waits for its first acknowledged write invoked at or after `since`. */
export interface RecoveryWatch {
  since: number;
  recoveredAt?: number;
}

export class Meter {
  readonly windows: Window[] = [];
  errorsByCause: Record<string, number> = {};
  errorSamples: Record<string, string> = {};
  totals = { ok: 0, okBulk: 0, okChecked: 0, writesAcked: 0, errors: 0, unknown: 0 };
  private watches: RecoveryWatch[] = [];

  constructor(
    /** performance.now() when the load started: window 0 starts here */
    readonly origin: number,
    readonly windowMs = 5000,
  ) {}

  private win(t: number): Window {
    const i = Math.max(0, Math.floor((t - this.origin) / this.windowMs));
    while (this.windows.length <= i) {
      const index = this.windows.length;
      const start = index * this.windowMs;
      const end = start + this.windowMs;
      this.windows.push({ index, start, end, ok: 0, okBulk: 0, okChecked: 0, errors: 0, unknown: 0, faults: [] });
    }
    return this.windows[i]!;
  }

  /** An operation succeeded at `t`; a write also ends the recovery of every watch it was invoked after. */
  ok(t: number, source: 'bulk' | 'checked', write?: { invoke: number }): void {
    const w = this.win(t);
    w.ok++;
    this.totals.ok++;
    if (source === 'bulk') {
      w.okBulk++;
      this.totals.okBulk++;
    } else {
      w.okChecked++;
      this.totals.okChecked++;
    }
    if (!write) return;
    this.totals.writesAcked++;
    if (this.watches.length === 0) return;
    this.watches = this.watches.filter((x) => {
      if (write.invoke < x.since) return true;
      x.recoveredAt = t;
      return false;
    });
  }

  error(t: number, message: string): void {
    this.win(t).errors++;
    this.totals.errors++;
    const cause = message.split(' ')[0] || 'ERR';
    this.errorsByCause[cause] = (this.errorsByCause[cause] ?? 0) + 1;
    this.errorSamples[cause] ??= message.slice(0, 160);
  }

  /** `n` commands' outcome became unknown at `t` for `cause` (timeout, connection-lost, ...). */
  unknown(t: number, n: number, cause: string): void {
    if (n <= 0) return;
    this.win(t).unknown += n;
    this.totals.unknown += n;
    this.errorsByCause[cause] = (this.errorsByCause[cause] ?? 0) + n;
  }

  fault(t: number, label: string): void {
    this.win(t).faults.push(label);
  }

  /** Watches for the first acknowledged write invoked at or after `since`. */
  watch(since: number): RecoveryWatch {
    const w: RecoveryWatch = { since };
    this.watches.push(w);
    return w;
  }

  /** Stops watching (recovered or given up). */
  unwatch(w: RecoveryWatch): void {
    this.watches = this.watches.filter((x) => x !== w);
  }

  /** Makes sure every window up to the one containing `t` exists (quiet windows too). */
  touch(t: number): void {
    this.win(t);
  }
}

/** Nearest-rank percentile of `xs` (p in [0, 100]); undefined when empty. */
export function percentile(xs: readonly number[], p: number): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** An interval (ms since the load started) during which the harness itself holds a majority down. */
export interface HeldDown {
  from: number;
  to: number;
}

/**
 * The zero-window rule: a window counts if it ends after `firstFault` and no later than `loadEnd`
 * (both ms since the load started); a counted window with no success is a zero window unless it
 * overlaps a held-down interval. Returns the indices of the zero windows and of the counted windows.
 */
export function zeroWindows(
  windows: readonly Window[],
  firstFault: number | undefined,
  loadEnd: number,
  heldDown: readonly HeldDown[],
): { zero: number[]; counted: number[]; exempt: number[] } {
  const zero: number[] = [];
  const counted: number[] = [];
  const exempt: number[] = [];
  if (firstFault === undefined) return { zero, counted, exempt };
  for (const w of windows) {
    if (w.end <= firstFault || w.end > loadEnd) continue;
    counted.push(w.index);
    if (w.ok > 0) continue;
    if (heldDown.some((h) => h.from < w.end && h.to > w.start)) exempt.push(w.index);
    else zero.push(w.index);
  }
  return { zero, counted, exempt };
}
