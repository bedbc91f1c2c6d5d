/**
 * SCAN support: a cursor index over the keys and Redis's glob matching (MATCH).
 *
 * The cursor is a position in a fixed hash space: a key's slot is the top 16 bits of a 32-bit hash of its
 * bytes, and a page returns every key of the slots from the cursor on (whole slots, in slot order) until it
 * holds at least `count` keys; the next cursor is the first slot not visited (0 once past the last).
 * A key's slot never changes, so a key present for a whole scan is returned exactly once, whatever is
 * added or deleted meanwhile (Redis guarantees at least once), and a cursor means the same on every
 * replica (the slot of a key is a pure function of its bytes), so a scan may go on after a leader change.
 */

/** Slots of the cursor space: cursors are 0 .. SCAN_SLOTS - 1. */
export const SCAN_SLOTS = 1 << 16;

/** 32-bit FNV-1a of a binary (latin1) string, finished with murmur3's fmix32 for well-spread top bits. */
export function keyHash(k: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < k.length; i++) {
    h ^= k.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The cursor slot of a key. */
export const scanSlot = (k: string): number => keyHash(k) >>> 16;

/**
 * The keys grouped by slot. Derived state (never in a snapshot or the digest): KvMachine builds it at the
 * first SCAN and keeps it up to date from then on.
 */
export class ScanIndex {
  // arrays rather than Sets: about 5x cheaper to build and to add to (a slot holds few keys: N / 65,536)
  private readonly slots: (string[] | undefined)[] = new Array<string[] | undefined>(SCAN_SLOTS).fill(undefined);

  /** The index of distinct keys (two passes: each slot's array is allocated once, at its final size). */
  static of(keys: Iterable<string>): ScanIndex {
    const ix = new ScanIndex();
    const all = Array.isArray(keys) ? (keys as string[]) : Array.from(keys);
    const n = all.length;
    const slotOf = new Uint16Array(n);
    const fill = new Uint32Array(SCAN_SLOTS);
    for (let i = 0; i < n; i++) fill[(slotOf[i] = scanSlot(all[i]!))]!++;
    const slots = ix.slots;
    for (let s = 0; s < SCAN_SLOTS; s++) {
      if (fill[s] === 0) continue;
      slots[s] = new Array<string>(fill[s]!);
      fill[s] = 0;
    }
    for (let i = 0; i < n; i++) {
      const s = slotOf[i]!;
      slots[s]![fill[s]!++] = all[i]!;
    }
    return ix;
  }

  /** a key not in the index yet */
  add(k: string): void {
    const i = scanSlot(k);
    const s = this.slots[i];
    if (s === undefined) this.slots[i] = [k];
    else s.push(k);
  }

  delete(k: string): void {
    const i = scanSlot(k);
    const s = this.slots[i];
    if (s === undefined) return;
    const j = s.indexOf(k);
    if (j < 0) return;
    s[j] = s[s.length - 1]!;
    s.pop();
    if (s.length === 0) this.slots[i] = undefined;
  }

  /**
   * Whole slots from `cursor` on until at least `count` keys (each slot's keys sorted, so every replica
   * answers the same page); `next` is 0 once past the last slot. A cursor past the space ends the scan.
   */
  page(cursor: number, count: number): { next: number; keys: string[] } {
    const keys: string[] = [];
    let i = cursor;
    while (i < SCAN_SLOTS && keys.length < count) {
      const s = this.slots[i++];
      if (s === undefined) continue;
      if (s.length === 1) keys.push(s[0]!);
      else for (const k of s.slice().sort()) keys.push(k);
    }
    return { next: i >= SCAN_SLOTS ? 0 : i, keys };
  }
}

const STAR = -1;
const ANY = -2;
/** a pattern token: STAR, ANY, a literal byte, or a class (256 flags, negation applied) */
type Tok = number | Uint8Array;

/**
 * Compiles a Redis glob (stringmatchlen, case-sensitive) over binary (latin1) strings: `*`, `?`,
 * `[abc]`, `[^abc]`, `[a-z]` (a reversed range is swapped), `\x` escapes (also inside classes); an
 * unterminated class runs to the end of the pattern. As in Redis, a non-empty pattern never matches
 * the empty key (SCAN's `MATCH *` filters nothing, so it does return it).
 */
export function globMatcher(pattern: string): (s: string) => boolean {
  const p = pattern;
  const n = p.length;
  const toks: Tok[] = [];
  let i = 0;
  while (i < n) {
    const ch = p.charCodeAt(i);
    if (ch === 0x2a /* * */) {
      if (toks[toks.length - 1] !== STAR) toks.push(STAR);
      i++;
    } else if (ch === 0x3f /* ? */) {
      toks.push(ANY);
      i++;
    } else if (ch === 0x5b /* [ */) {
      i++;
      const not = i < n && p.charCodeAt(i) === 0x5e; /* ^ */
      if (not) i++;
      const set = new Uint8Array(256);
      // the steps of Redis's loop, in its order
      for (;;) {
        if (i < n && p.charCodeAt(i) === 0x5c /* \ */ && n - i >= 2) {
          i++;
          set[p.charCodeAt(i)] = 1;
        } else if (i < n && p.charCodeAt(i) === 0x5d /* ] */) {
          break;
        } else if (i >= n) {
          i--;
          break;
        } else if (n - i >= 3 && p.charCodeAt(i + 1) === 0x2d /* - */) {
          let a = p.charCodeAt(i);
          let b = p.charCodeAt(i + 2);
          if (a > b) [a, b] = [b, a];
          for (let c = a; c <= b; c++) set[c] = 1;
          i += 2;
        } else {
          set[p.charCodeAt(i)] = 1;
        }
        i++;
      }
      i++;
      if (not) for (let c = 0; c < 256; c++) set[c] ^= 1;
      toks.push(set);
    } else if (ch === 0x5c /* \ */ && n - i >= 2) {
      toks.push(p.charCodeAt(i + 1));
      i += 2;
    } else {
      toks.push(ch);
      i++;
    }
  }
  const m = toks.length;
  const one = (t: Tok, c: number): boolean => (typeof t === 'number' ? t === ANY || t === c : t[c] === 1);
  return (s: string): boolean => {
    const len = s.length;
    if (len === 0) return n === 0;
    // every token but STAR takes exactly one byte: greedy with a single backtrack point is exact
    let ti = 0;
    let si = 0;
    let starT = -1;
    let starS = 0;
    while (si < len) {
      const t = ti < m ? toks[ti]! : undefined;
      if (t === STAR) {
        starT = ti++;
        starS = si;
      } else if (t !== undefined && one(t, s.charCodeAt(si))) {
        ti++;
        si++;
      } else if (starT >= 0) {
        ti = starT + 1;
        si = ++starS;
      } else return false;
    }
    while (ti < m && toks[ti] === STAR) ti++;
    return ti === m;
  };
}
