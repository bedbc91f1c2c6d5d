/**
 * Code contracts. On when DECREE_CONTRACTS=1 (the test config sets it), off in production.
 * Write them behind the constant so they cost nothing when off:
 *
 *   CONTRACTS && requires(ballot.round >= 0, 'round is non-negative');
 */
export const CONTRACTS: boolean =
  typeof process !== 'undefined' && (process.env.DECREE_CONTRACTS === '1' || process.env.DECREE_CONTRACTS === 'true');

export class ContractViolation extends Error {
  constructor(
    readonly kind: 'requires' | 'ensures' | 'invariant',
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
