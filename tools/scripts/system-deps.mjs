#!/usr/bin/env node
// pretest: checks the Debian packages the tests need. As root it installs the missing ones with
// apt-get; otherwise it stops and prints the exact apt-get line to run.
// Then it rebuilds the native addons whose library appeared since `npm install` built them
// (build-native.mjs --stale: one line per rebuilt addon, nothing when all are current). On a fresh
// machine `npm install` runs before libpmem-dev and libibverbs-dev exist, so it builds the
// fallbacks (mmap, no verbs); this is where they become the real ones.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const wanted = JSON.parse(readFileSync(new URL('./system-deps.json', import.meta.url), 'utf8')).debian;
const installed = (pkg) =>
  spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' }).stdout?.includes('install ok installed');
const missing = wanted.filter((p) => !installed(p));
if (missing.length > 0) {
  const line = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (process.getuid?.() !== 0) {
    console.error(
      `decree: missing Debian packages for the tests: ${missing.join(', ')}\nrun as root:\n  apt-get update && ${line}`,
    );
    process.exit(1);
  }
  console.log(`decree: installing ${missing.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    execFileSync('apt-get', ['update', '-q'], { stdio: 'inherit', env });
    execFileSync('sh', ['-c', line], { stdio: 'inherit', env });
  } catch (e) {
    console.error(`decree: apt-get failed; run by hand: apt-get update && ${line}`);
    process.exit(1);
  }
}

const buildNative = fileURLToPath(new URL('./build-native.mjs', import.meta.url));
const r = spawnSync(process.execPath, [buildNative, '--stale'], { stdio: 'inherit' });
process.exit(r.status ?? 1);
