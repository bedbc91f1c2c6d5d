// The native addons under native/ (one folder with a binding.gyp each), what each was built against,
// and whether a build is stale. Used by build-native.mjs; its CLI is the only caller besides tests.
//
// A folder may have a detect-backend.cjs exporting probe(): { backend, forced, libraries }, the same
// detection its binding.gyp runs (`<!(node detect-backend.cjs)`). After a successful build we write
// build/decree-build.json (the "stamp": which backend was built and which libraries and headers were
// found). `node-gyp rebuild` deletes build/, so a stamp never outlives the build it describes.
// A build is stale when its .node file is missing, when it has no stamp, or when the backend the
// probe picks now differs from the stamped one (libpmem-dev installed after `npm install` built the
// mmap fallback, say).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

export const STAMP_FILE = 'decree-build.json';

/** Every native/<name>/ with a binding.gyp (only the names in `only`, when given). */
export function listAddons(nativeDir, only = []) {
  if (!existsSync(nativeDir)) return [];
  return readdirSync(nativeDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(nativeDir, d.name, 'binding.gyp')))
    .map((d) => d.name)
    .filter((n) => only.length === 0 || only.includes(n))
    .sort()
    .map((name) => {
      const dir = join(nativeDir, name);
      const gyp = readFileSync(join(dir, 'binding.gyp'), 'utf8');
      const targets = [...gyp.matchAll(/["']target_name["']\s*:\s*["']([^"']+)["']/g)].map((m) => m[1]);
      const detect = join(dir, 'detect-backend.cjs');
      return { name, dir, targets, detect: existsSync(detect) ? detect : null };
    });
}

/** The .node files node-gyp leaves for an addon (build/Release/<target_name>.node). */
export function addonFiles(addon) {
  return addon.targets.map((t) => join(addon.dir, 'build', 'Release', `${t}.node`));
}

/** What the addon's binding.gyp would pick now, or null for an addon without detect-backend.cjs. */
export function probeAddon(addon) {
  if (!addon.detect) return null;
  const require = createRequire(addon.detect);
  const mod = require(addon.detect);
  return typeof mod.probe === 'function' ? mod.probe() : null;
}

export function stampPath(addon) {
  return join(addon.dir, 'build', STAMP_FILE);
}

export function readStamp(addon) {
  try {
    return JSON.parse(readFileSync(stampPath(addon), 'utf8'));
  } catch {
    return null;
  }
}

export function writeStamp(addon, probe) {
  const stamp = {
    addon: addon.name,
    backend: probe?.backend ?? null,
    forced: probe?.forced ?? null,
    libraries: probe?.libraries ?? {},
    node: process.version,
    builtAt: new Date().toISOString(),
  };
  writeFileSync(stampPath(addon), `${JSON.stringify(stamp, null, 2)}\n`);
  return stamp;
}

/**
 * Why the build should be redone, or null when it is current.
 * built: every .node file exists; stamp: readStamp(); probe: probeAddon().
 */
export function staleReason({ built, stamp, probe }) {
  if (!built) return 'it was not built';
  if (!probe) return null; // nothing optional to detect: a build is a build
  if (!stamp) return `no record of what it was built against (${STAMP_FILE})`;
  if (stamp.backend === probe.backend) return null;
  for (const [lib, now] of Object.entries(probe.libraries ?? {})) {
    const then = stamp.libraries?.[lib];
    if (now?.found && !then?.found) return `${lib} appeared since it was built (${stamp.backend} backend)`;
    if (!now?.found && then?.found) return `${lib} is gone since it was built (${stamp.backend} backend)`;
  }
  if (probe.forced && probe.forced !== stamp.forced)
    return `${probe.forced} is set now (${stamp.backend} backend before)`;
  if (stamp.forced && !probe.forced) return `${stamp.forced} is no longer set (${stamp.backend} backend before)`;
  return `backend ${stamp.backend} -> ${probe.backend}`;
}

/** Builds one addon with node-gyp; writes the stamp on success. */
export function buildAddon(addon, { nodeGyp, nodedir, env = process.env }) {
  const probe = probeAddon(addon);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [nodeGyp, 'rebuild', `--nodedir=${nodedir}`], {
    cwd: addon.dir,
    encoding: 'utf8',
    env,
  });
  const seconds = (Date.now() - t0) / 1000;
  if (r.status !== 0 || !addonFiles(addon).every((f) => existsSync(f))) {
    const errors = `${r.stdout ?? ''}${r.stderr ?? ''}`
      .split('\n')
      .filter((l) => /error|Error|not found|No such/.test(l))
      .slice(-8);
    return { ok: false, seconds, status: r.status ?? r.signal, errors, probe };
  }
  return { ok: true, seconds, stamp: writeStamp(addon, probe), probe };
}

/** "libpmem backend", or "mmap backend: libpmem not found", for the build line. */
export function describeBackend(probe) {
  if (!probe) return '';
  const missing = Object.entries(probe.libraries ?? {})
    .filter(([, v]) => !v?.found)
    .map(([k]) => k);
  if (probe.forced) return ` (${probe.backend} backend: ${probe.forced})`;
  if (missing.length > 0) return ` (${probe.backend} backend: ${missing.join(', ')} not found)`;
  return ` (${probe.backend} backend)`;
}
