#!/usr/bin/env node
// Builds every native/<name>/ that has a binding.gyp with node-gyp (against the system Node headers,
// --nodedir=/usr). Runs as the root `prepare` script on `npm install` / `npm ci`.
// A failed build prints one clear line and does NOT fail the install: the stores that need the
// addon then report "pmem addon not built" when used. Pass --strict to exit non-zero on failure,
// and folder names to build only those (node tools/scripts/build-native.mjs pmem-log).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const strict = args.includes('--strict');
const only = args.filter((a) => !a.startsWith('--'));
const nativeDir = join(root, 'native');
const nodedir = process.env.DECREE_NODEDIR ?? '/usr';

let nodeGyp;
try {
  nodeGyp = join(dirname(createRequire(join(root, 'package.json')).resolve('node-gyp/package.json')), 'bin', 'node-gyp.js');
} catch {
  nodeGyp = null;
}

const folders = existsSync(nativeDir)
  ? readdirSync(nativeDir, { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(join(nativeDir, d.name, 'binding.gyp')))
      .map((d) => d.name)
      .filter((n) => only.length === 0 || only.includes(n))
  : [];

let failed = 0;
for (const name of folders) {
  const cwd = join(nativeDir, name);
  if (!nodeGyp) {
    console.error(`decree: native/${name}: NOT BUILT (node-gyp is not installed; run npm install first)`);
    failed++;
    continue;
  }
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [nodeGyp, 'rebuild', `--nodedir=${nodedir}`], { cwd, encoding: 'utf8', env: process.env });
  if (r.status === 0) {
    console.log(`decree: native/${name}: built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  } else {
    failed++;
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').filter((l) => /error|Error|not found|No such/.test(l)).slice(-8);
    console.error(`decree: native/${name}: BUILD FAILED (exit ${r.status ?? r.signal}); the features that need it will report that it is not built.`);
    for (const l of out) console.error(`  ${l}`);
    console.error(`  retry with: (cd native/${name} && npx node-gyp rebuild --nodedir=${nodedir})`);
  }
}
process.exit(strict && failed > 0 ? 1 : 0);
