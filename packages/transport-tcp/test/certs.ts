import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Pem {
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  /** the cluster CA */
  ca: string;
  /** the CA of another cluster */
  otherCa: string;
  /** certificates signed by the cluster CA, named by `name` (CN and DNS SAN) */
  good: Record<string, Pem>;
  /** a certificate for r2 signed by the other CA */
  foreign: Pem;
  /** a certificate signed by the cluster CA for "r9" (a valid cert, but not for the id it will claim) */
  wrongName: Pem;
  /** a self-signed certificate naming r2 */
  selfSigned: Pem;
  /** paths of r1's files, to test loading from files */
  paths: { ca: string; cert: string; key: string };
  cleanup(): void;
}

const run = (dir: string, args: string[]): void => {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
};

/** Generates a throwaway PKI with the openssl CLI in a temp dir (EC P-256 keys: fast). */
export function makePki(names: readonly string[] = ['r1', 'r2', 'r3']): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'decree-pki-'));
  const ca = (name: string) =>
    run(dir, [
      'req',
      '-x509',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
    ]);
  const leaf = (file: string, cn: string, san: string, caName: string): Pem => {
    run(dir, [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      `${file}.key`,
      '-out',
      `${file}.csr`,
      '-subj',
      `/CN=${cn}`,
    ]);
    writeFileSync(
      join(dir, `${file}.ext`),
      `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n`,
    );
    run(dir, [
      'x509',
      '-req',
      '-in',
      `${file}.csr`,
      '-CA',
      `${caName}.pem`,
      '-CAkey',
      `${caName}.key`,
      '-CAcreateserial',
      '-out',
      `${file}.pem`,
      '-days',
      '2',
      '-extfile',
      `${file}.ext`,
    ]);
    return {
      cert: readFileSync(join(dir, `${file}.pem`), 'utf8'),
      key: readFileSync(join(dir, `${file}.key`), 'utf8'),
    };
  };
  ca('cluster-ca');
  ca('other-ca');
  const good: Record<string, Pem> = {};
  for (const n of names) good[n] = leaf(n, n, `DNS:${n},URI:decree:${n}`, 'cluster-ca');
  const foreign = leaf('foreign-r2', 'r2', 'DNS:r2', 'other-ca');
  const wrongName = leaf('wrong-r9', 'r9', 'DNS:r9', 'cluster-ca');
  run(dir, [
    'req',
    '-x509',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'self-r2.key',
    '-out',
    'self-r2.pem',
    '-days',
    '2',
    '-subj',
    '/CN=r2',
    '-addext',
    'subjectAltName=DNS:r2',
  ]);
  const selfSigned = {
    cert: readFileSync(join(dir, 'self-r2.pem'), 'utf8'),
    key: readFileSync(join(dir, 'self-r2.key'), 'utf8'),
  };
  return {
    dir,
    ca: readFileSync(join(dir, 'cluster-ca.pem'), 'utf8'),
    otherCa: readFileSync(join(dir, 'other-ca.pem'), 'utf8'),
    good,
    foreign,
    wrongName,
    selfSigned,
    paths: { ca: join(dir, 'cluster-ca.pem'), cert: join(dir, `${names[0]}.pem`), key: join(dir, `${names[0]}.key`) },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
