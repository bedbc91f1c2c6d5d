/**
 * Code contracts. Off unless turned on with setContracts(true): the test setup does, and so does the
 * decree command when DECREE_CONTRACTS=1 (a library reads no environment variables). Write them
 * behind the flag so they cost nothing when off:
 *
 *   CONTRACTS && requires(ballot.round >= 0, 'round is non-negative');
 *
 * The always-on safety checks (safety()) do not depend on it.
 */
export let CONTRACTS = false;

/** Turns the contracts on or off for this process (before the roles start). */
export function setContracts(on: boolean): void {
  CONTRACTS = on;
}

/** DECREE_CONTRACTS as a program reads it: `1` or `true` turn the contracts on. */
export function contractsWanted(value: string | undefined): boolean {
  return value === '1' || value === 'true';
}

export class ContractViolation extends Error {
  constructor(
    readonly kind: 'requires' | 'ensures' | 'invariant' | 'safety',
    message: string,
  ) {
    super(`${kind} violated: ${message}`);
    this.name = 'ContractViolation';
  }
}

export function requires(cond: boolean, message: string): true {
  if (!cond) throw new ContractViolation('requires', message);
  return true;
}
export function ensures(cond: boolean, message: string): true {
  if (!cond) throw new ContractViolation('ensures', message);
  return true;
}
export function invariant(cond: boolean, message: string): true {
  if (!cond) throw new ContractViolation('invariant', message);
  return true;
}

/**
 * A safety property the protocol rests on (ballot monotonicity, one value per chosen slot, in-order
 * execution), checked in production builds too: each check is a comparison or two. A violation means
 * a bug or a corrupted input; the replica stops with one log line rather than go on (issue #17).
 */
export class SafetyViolation extends ContractViolation {
  constructor(message: string) {
    super('safety', message);
    this.name = 'SafetyViolation';
  }
}

/** Always on, unlike the contracts above: keep the condition cheap. */
export function safety(cond: boolean, message: string): true {
  if (!cond) throw new SafetyViolation(message);
  return true;
}
