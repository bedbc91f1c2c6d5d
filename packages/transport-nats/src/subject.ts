import type { ReplicaId, RingId, Role } from '@decree/protocol';

const PLAIN = /^[A-Za-z0-9_-]+$/;

/**
 * Makes any id a valid NATS subject token: letters, digits, `_` and `-` stay; every other UTF-8
 * byte (and `%` itself) becomes `%XX`; the empty id becomes `%`. Injective, so distinct ids never
 * share a subject.
 */
export function escapeToken(id: string): string {
  if (PLAIN.test(id)) return id;
  if (id === '') return '%';
  let out = '';
  for (const b of new TextEncoder().encode(id)) {
    const c = String.fromCharCode(b);
    out += b < 0x80 && PLAIN.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function unescapeToken(token: string): string {
  if (token === '%') return '';
  if (!token.includes('%')) return token;
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    if (token[i] === '%') {
      bytes.push(parseInt(token.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(token.charCodeAt(i));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** `<prefix>.<ring>.<replica>.<role>`: where messages for that role of that replica go. */
export function roleSubject(prefix: string, ring: RingId, replica: ReplicaId, role: Role): string {
  return `${prefix}.${escapeToken(ring)}.${escapeToken(replica)}.${role}`;
}

/** `<prefix>.*.<replica>.>`: everything for that replica, in every ring, for every role. */
export function replicaWildcard(prefix: string, replica: ReplicaId): string {
  return `${prefix}.*.${escapeToken(replica)}.>`;
}

/** Valid subject prefix: dot-separated non-empty tokens without wildcards or whitespace. */
export function isValidPrefix(prefix: string): boolean {
  return prefix.split('.').every((t) => t.length > 0 && !/[\s*>]/.test(t));
}
