import { readFileSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';

/** Mutual-TLS material: each a PEM string, a path to a PEM file, or the file's bytes. */
export interface TlsOptions {
  /** the cluster CA certificate(s): a peer must present a certificate signed by one of them */
  readonly ca: string | Uint8Array;
  /** this replica's certificate (its CN or a subjectAltName names every replica id this process hosts) */
  readonly cert: string | Uint8Array;
  /** the private key of `cert` */
  readonly key: string | Uint8Array;
}

export interface TlsMaterial {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** Reads PEM strings or files; throws a TypeError naming the option and the problem. */
export function loadTlsMaterial(o: TlsOptions): TlsMaterial {
  const one = (what: keyof TlsOptions): Buffer => {
    const v = o[what];
    if (v instanceof Uint8Array) return Buffer.from(v);
    if (typeof v !== 'string' || v.length === 0)
      throw new TypeError(`transport-tcp: tls.${what} must be a PEM string or a file path`);
    if (v.includes('-----BEGIN')) return Buffer.from(v, 'utf8');
    try {
      const b = readFileSync(v);
      if (!b.includes('-----BEGIN')) throw new Error('not a PEM file');
      return b;
    } catch (e) {
      throw new TypeError(`transport-tcp: tls.${what}: cannot read ${v}: ${(e as Error).message}`);
    }
  };
  return { ca: one('ca'), cert: one('cert'), key: one('key') };
}

/**
 * The names a certificate gives its holder: the subject CN and every DNS, URI and IP subjectAltName
 * (e.g. `DNS:r1, URI:decree:r1` gives ['r1', 'decree:r1']). A replica id must be one of them.
 */
export function certificateNames(cert: PeerCertificate | Record<string, never> | null | undefined): string[] {
  if (!cert || typeof cert !== 'object') return [];
  const names: string[] = [];
  const cn = (cert as PeerCertificate).subject?.CN;
  if (typeof cn === 'string') names.push(cn);
  else if (Array.isArray(cn)) names.push(...(cn as string[]));
  const san = (cert as PeerCertificate).subjectaltname;
  if (typeof san === 'string') {
    for (const part of san.split(/,\s*/)) {
      const m = /^(DNS|URI|IP Address):(.*)$/.exec(part.trim());
      if (m && m[2]) names.push(m[2].replace(/^"|"$/g, ''));
    }
  }
  return names;
}
