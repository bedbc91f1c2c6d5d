import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CONTRACTS, ContractViolation, contractsWanted, ensures, invariant, requires } from '../src/index.ts';

const contractsFile = fileURLToPath(new URL('../src/contracts.ts', import.meta.url));
const root = fileURLToPath(new URL('../../..', import.meta.url));

/** CONTRACTS as a fresh node process that imports the library sees it, DECREE_CONTRACTS set to `value`. */
function contractsInChild(value: string | undefined): string {
  const env = { ...process.env };
  delete env.DECREE_CONTRACTS;
  if (value !== undefined) env.DECREE_CONTRACTS = value;
  const script =
    `import(${JSON.stringify(contractsFile)}).then((m) => ` + `process.stdout.write(JSON.stringify(m.CONTRACTS)))`;
  return execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    env,
    encoding: 'utf8',
    timeout: 45_000,
    killSignal: 'SIGKILL',
  }).trim();
}

describe('contracts', () => {
  it('are on in tests (the vitest setup turns them on; DECREE_CONTRACTS=1 for child processes)', () => {
    expect(process.env.DECREE_CONTRACTS).toBe('1');
    expect(CONTRACTS).toBe(true);
  });

  it('`CONTRACTS && requires(false, ...)` throws ContractViolation naming kind and message', () => {
    let err: unknown;
    try {
      CONTRACTS && requires(false, 'ballot must grow');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ContractViolation);
    expect(err).toBeInstanceOf(Error);
    expect((err as ContractViolation).kind).toBe('requires');
    expect((err as Error).message).toBe('requires violated: ballot must grow');
    expect((err as Error).name).toBe('ContractViolation');
  });

  it('ensures and invariant throw their own kind; true conditions return true', () => {
    expect(() => ensures(false, 'e')).toThrow(
      expect.objectContaining({ kind: 'ensures', message: 'ensures violated: e' }),
    );
    expect(() => invariant(false, 'i')).toThrow(
      expect.objectContaining({ kind: 'invariant', message: 'invariant violated: i' }),
    );
    expect(requires(true, 'x')).toBe(true);
    expect(ensures(true, 'x')).toBe(true);
    expect(invariant(true, 'x')).toBe(true);
  });

  it('the library reads no environment: off in a fresh process whatever DECREE_CONTRACTS says', () => {
    expect(contractsInChild(undefined)).toBe('false');
    expect(contractsInChild('1')).toBe('false');
  });

  it('programs turn them on for DECREE_CONTRACTS 1 or true (contractsWanted)', () => {
    expect(contractsWanted(undefined)).toBe(false);
    expect(contractsWanted('0')).toBe(false);
    expect(contractsWanted('yes')).toBe(false);
    expect(contractsWanted('1')).toBe(true);
    expect(contractsWanted('true')).toBe(true);
  });

  it('when off, `CONTRACTS && requires(...)` does not evaluate the check', () => {
    const off = false as boolean; // what CONTRACTS is in production
    let evaluated = false;
    const check = () => {
      evaluated = true;
      return false;
    };
    expect(() => off && requires(check(), 'never')).not.toThrow();
    expect(evaluated).toBe(false);
  });
});
