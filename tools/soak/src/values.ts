/**
 * Values the soak writes. Every SET value names its key and its writer's id (`<writer>.<seq>`), so a
 * final read tells which write it came from: `<key>=<id>;` then padding (64-byte values) or a fixed
 * pseudo-random printable body (big values, checked byte for byte at the end).
 */
import type { Rng } from '@decree/chaos';

export const SMALL_BYTES = 64;

/** A 64-byte value (longer only if the header itself is longer). */
export function smallValue(key: string, id: string): string {
  const h = `${key}=${id};`;
  return h.length >= SMALL_BYTES ? h : h + '.'.repeat(SMALL_BYTES - h.length);
}

export function valueHeader(key: string, id: string): string {
  return `${key}=${id};`;
}

/** A printable-ASCII body for big values (so that a reply decodes as the same string). */
export function makeTemplate(bytes: number, rng: Rng): Buffer {
  const b = Buffer.allocUnsafe(bytes);
  for (let i = 0; i < bytes; i++) b[i] = 33 + Math.floor(rng.next() * 90); // '!'..'z'
  return b;
}

/** `{ key, id }` of a value written by the soak; undefined for anything else. */
export function parseValue(v: string): { key: string; id: string } | undefined {
  const eq = v.indexOf('=');
  const semi = v.indexOf(';', eq + 1);
  if (eq <= 0 || semi < 0) return undefined;
  const id = v.slice(eq + 1, semi);
  if (!/^[A-Za-z0-9_-]+\.\d+$/.test(id)) return undefined;
  return { key: v.slice(0, eq), id };
}

/** True when a big value read back is the header followed by exactly the template's first bytes. */
export function bigValueIntact(v: string, template: string, bytes: number): boolean {
  const semi = v.indexOf(';');
  if (semi < 0 || v.length !== bytes) return false;
  return v.slice(semi + 1) === template.slice(0, bytes - semi - 1);
}
