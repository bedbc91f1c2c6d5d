import type { Slot } from '@decree/protocol';

export interface AppliedEntry {
  slot: Slot;
  cmd: string;
}

export class SafetyViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetyViolation';
  }
}

/** Agreement: every replica applied a prefix of one common sequence, slot for slot. */
export function checkAgreement(logs: ReadonlyMap<string, readonly AppliedEntry[]>): void {
  let longest: readonly AppliedEntry[] = [];
  let longestId = '';
  for (const [id, l] of logs) if (l.length > longest.length) [longest, longestId] = [l, id];
  for (const [id, l] of logs) {
    for (let i = 0; i < l.length; i++) {
      const a = l[i]!;
      const b = longest[i]!;
      if (a.slot !== b.slot || a.cmd !== b.cmd)
        throw new SafetyViolation(
          `agreement: ${id} applied ${JSON.stringify(a)} at position ${i}, ${longestId} applied ${JSON.stringify(b)}`,
        );
    }
  }
}

/** Validity: only submitted commands are applied, each at most once. */
export function checkValidity(
  logs: ReadonlyMap<string, readonly AppliedEntry[]>,
  submitted: ReadonlySet<string>,
): void {
  for (const [id, l] of logs) {
    const seen = new Set<string>();
    for (const e of l) {
      if (!submitted.has(e.cmd)) throw new SafetyViolation(`validity: ${id} applied ${e.cmd}, which nobody submitted`);
      if (seen.has(e.cmd)) throw new SafetyViolation(`validity: ${id} applied ${e.cmd} twice`);
      seen.add(e.cmd);
    }
  }
}

/** Durability: every acknowledged command is applied on at least `quorum` replicas. */
export function checkDurability(
  logs: ReadonlyMap<string, readonly AppliedEntry[]>,
  acked: Iterable<string>,
  quorum: number,
): void {
  const sets = [...logs.values()].map((l) => new Set(l.map((e) => e.cmd)));
  for (const c of acked) {
    const n = sets.filter((s) => s.has(c)).length;
    if (n < quorum)
      throw new SafetyViolation(`durability: acknowledged ${c} is applied on ${n} replicas, fewer than ${quorum}`);
  }
}
