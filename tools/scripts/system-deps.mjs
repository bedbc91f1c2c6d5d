#!/usr/bin/env node
// pretest: checks the Debian packages the tests need. As root it installs the missing ones with
// apt-get; otherwise it stops and prints the exact apt-get line to run.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const wanted = JSON.parse(readFileSync(new URL('./system-deps.json', import.meta.url), 'utf8')).debian;
const installed = (pkg) =>
  spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' }).stdout?.includes('install ok installed');
const missing = wanted.filter((p) => !installed(p));
if (missing.length === 0) process.exit(0);
const line = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
if (process.getuid?.() !== 0) {
  console.error(`decree: missing Debian packages for the tests: ${missing.join(', ')}\nrun as root:\n  apt-get update && ${line}`);
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
