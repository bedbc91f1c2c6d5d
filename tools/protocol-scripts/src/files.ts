import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/** The script files of a `testdata` folder (`*.txt`), sorted by name. */
export function scriptFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.txt'))
    .sort()
    .map((f) => join(dir, f));
}

/**
 * Whether golden files are rewritten: the test files pass `process.env.UPDATE_GOLDEN` here (the
 * library reads no environment itself).
 */
export const wantsUpdate = (flag: string | undefined): boolean => flag === '1' || flag === 'true';
