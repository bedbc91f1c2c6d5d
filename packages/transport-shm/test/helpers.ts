import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), `decree-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | false,
  timeoutMs = 20_000,
  everyMs = 5,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** a payload whose bytes name its index (never all 0xee, the torn marker) */
export function payload(i: number, len: number): Buffer {
  const b = Buffer.alloc(len, (i * 7 + 1) & 0x7f);
  if (len >= 4) b.writeUInt32LE(i, 0);
  return b;
}
