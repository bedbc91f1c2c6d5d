#!/usr/bin/env node
// Builds every native/<name>/ that has a binding.gyp with node-gyp (against the system Node headers,
// --nodedir=/usr). Runs as the root `prepare` script on `npm install` / `npm ci`.
// A failed build prints one clear line and does NOT fail the install: the stores that need the
// addon then report "pmem addon not built" when used. Pass --strict to exit non-zero on failure,
// and folder names to build only those (node tools/scripts/build-native.mjs pmem-log).
//
// Each build records what it found in native/<name>/build/decree-build.json (tools/scripts/native-addons.mjs).
// --stale rebuilds only the addons that are missing or whose optional library appeared (or went)
// since they were built, one line each, and prints nothing when all are current. system-deps.mjs
// (npm test's pretest) runs it after installing the Debian packages: `npm install` on a fresh
// machine builds the fallbacks (mmap, no verbs) before libpmem-dev and libibverbs-dev exist.
import { dirname, join, relative } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import {
  addonFiles,
  buildAddon,
  describeBackend,
  listAddons,
  probeAddon,
  readStamp,
  staleReason,
} from './native-addons.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const strict = args.includes('--strict');
const staleOnly = args.includes('--stale');
const only = args.filter((a) => !a.startsWith('--'));
// DECREE_NATIVE_DIR: another folder of addons (the tests of this script use a throwaway one)
const nativeDir = process.env.DECREE_NATIVE_DIR ?? join(root, 'native');
const nodedir = process.env.DECREE_NODEDIR ?? '/usr';

let nodeGyp;
try {
  nodeGyp = join(
    dirname(createRequire(join(root, 'package.json')).resolve('node-gyp/package.json')),
    'bin',
    'node-gyp.js',
  );
} catch {
  nodeGyp = null;
}

let failed = 0;
for (const addon of listAddons(nativeDir, only)) {
  const { name } = addon;
  let reason = null;
  if (staleOnly) {
    reason = staleReason({
      built: addonFiles(addon).every((f) => existsSync(f)),
      stamp: readStamp(addon),
      probe: probeAddon(addon),
    });
    if (reason === null) continue;
  }
  if (!nodeGyp) {
    console.error(`decree: native/${name}: NOT BUILT (node-gyp is not installed; run npm install first)`);
    failed++;
    continue;
  }
  const r = buildAddon(addon, { nodeGyp, nodedir });
  if (r.ok) {
    const verb = reason
      ? `rebuilt in ${r.seconds.toFixed(1)} s${describeBackend(r.probe)}: ${reason}`
      : `built in ${r.seconds.toFixed(1)} s${describeBackend(r.probe)}`;
    console.log(`decree: native/${name}: ${verb}`);
  } else {
    failed++;
    console.error(
      `decree: native/${name}: BUILD FAILED (exit ${r.status})${reason ? ` rebuilding it (${reason})` : ''}; ` +
        `the features that need it will report that it is not built.`,
    );
    for (const l of r.errors) console.error(`  ${l}`);
    console.error(`  retry with: (cd ${relative(root, addon.dir)} && npx node-gyp rebuild --nodedir=${nodedir})`);
  }
}
process.exit(strict && failed > 0 ? 1 : 0);
