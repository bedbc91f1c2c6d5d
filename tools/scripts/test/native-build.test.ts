import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script without types
import { listAddons, probeAddon, readStamp, staleReason, STAMP_FILE } from '../native-addons.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const buildNative = join(root, 'tools', 'scripts', 'build-native.mjs');

const lib = (found: boolean) => ({ libpmem: { found } });

describe('staleReason', () => {
  const probe = (backend: string, found: boolean, forced: string | null = null) => ({
    backend,
    forced,
    libraries: lib(found),
  });
  it('rebuilds a missing build, and a build without a stamp when the addon has optional libraries', () => {
    expect(staleReason({ built: false, stamp: null, probe: null })).toBe('it was not built');
    expect(staleReason({ built: true, stamp: null, probe: null })).toBeNull();
    expect(staleReason({ built: true, stamp: null, probe: probe('mmap', false) })).toMatch(
      /no record of what it was built against/,
    );
  });
  it('is quiet while the stamped backend is the one the probe picks now', () => {
    expect(staleReason({ built: true, stamp: probe('mmap', false), probe: probe('mmap', false) })).toBeNull();
    expect(staleReason({ built: true, stamp: probe('libpmem', true), probe: probe('libpmem', true) })).toBeNull();
    // forced fallback, library present: nothing to do while the variable stays set
    expect(
      staleReason({ built: true, stamp: probe('mmap', true, 'X=mmap'), probe: probe('mmap', true, 'X=mmap') }),
    ).toBeNull();
  });
  it('names the library that appeared or went since the build', () => {
    expect(staleReason({ built: true, stamp: probe('mmap', false), probe: probe('libpmem', true) })).toBe(
      'libpmem appeared since it was built (mmap backend)',
    );
    expect(staleReason({ built: true, stamp: probe('libpmem', true), probe: probe('mmap', false) })).toBe(
      'libpmem is gone since it was built (libpmem backend)',
    );
  });
  it('names the variable that forced the fallback', () => {
    expect(staleReason({ built: true, stamp: probe('libpmem', true), probe: probe('mmap', true, 'X=mmap') })).toBe(
      'X=mmap is set now (libpmem backend before)',
    );
    expect(staleReason({ built: true, stamp: probe('mmap', true, 'X=mmap'), probe: probe('libpmem', true) })).toBe(
      'X=mmap is no longer set (mmap backend before)',
    );
  });
});

describe("the repo's addons", () => {
  it('each detect-backend.cjs prints the backend its probe() picks (binding.gyp reads the printed one)', () => {
    const addons = listAddons(join(root, 'native'));
    expect(addons.map((a: { name: string }) => a.name)).toEqual(['pmem-log', 'rdma-transport']);
    for (const a of addons) {
      const p = probeAddon(a);
      expect(Object.keys(p.libraries).length).toBeGreaterThan(0);
      const printed = spawnSync(process.execPath, ['detect-backend.cjs'], { cwd: a.dir, encoding: 'utf8' }).stdout;
      expect(printed).toBe(p.backend);
      expect(a.targets.length).toBe(1);
    }
  });
});

// A throwaway addon whose "library" is a file we create: the whole rebuild path (node-gyp, the stamp,
// --stale) without touching the machine's Debian packages.
describe('build-native.mjs --stale', () => {
  const dir = mkdtempSync(join(tmpdir(), 'decree-native-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const addonDir = join(dir, 'fake');
  mkdirSync(addonDir);
  writeFileSync(
    join(addonDir, 'binding.gyp'),
    JSON.stringify({
      variables: { 'fake_backend%': '<!(node detect-backend.cjs)' },
      targets: [
        {
          target_name: 'fake',
          sources: ['fake.c'],
          conditions: [["fake_backend=='libfake'", { defines: ['FAKE_HAVE_LIB=1'] }]],
        },
      ],
    }),
  );
  writeFileSync(
    join(addonDir, 'fake.c'),
    `#include <node_api.h>
#ifdef FAKE_HAVE_LIB
#define BACKEND "libfake"
#else
#define BACKEND "none"
#endif
static napi_value Init(napi_env env, napi_value exports) {
  napi_value s;
  napi_create_string_utf8(env, BACKEND, NAPI_AUTO_LENGTH, &s);
  napi_set_named_property(env, exports, "backend", s);
  return exports;
}
NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
`,
  );
  writeFileSync(
    join(addonDir, 'detect-backend.cjs'),
    `const { existsSync } = require('node:fs');
const { join } = require('node:path');
function probe() {
  const library = join(__dirname, 'lib', 'libfake.so');
  const found = existsSync(library);
  return { backend: found ? 'libfake' : 'none', forced: null, ` +
      `libraries: { libfake: { found, library: found ? library : null } } };
}
module.exports = { probe };
if (require.main === module) process.stdout.write(probe().backend);
`,
  );
  const run = (...args: string[]) => {
    const r = spawnSync(process.execPath, [buildNative, ...args], {
      encoding: 'utf8',
      env: { ...process.env, DECREE_NATIVE_DIR: dir },
    });
    return { status: r.status, out: `${r.stdout}${r.stderr}`.trim() };
  };
  const builtBackend = () =>
    spawnSync(
      process.execPath,
      ['-p', `require(${JSON.stringify(join(addonDir, 'build', 'Release', 'fake.node'))}).backend`],
      { encoding: 'utf8' },
    ).stdout.trim();

  it('builds the fallback, stays quiet while nothing changed, rebuilds once when the library appears', () => {
    let r = run('--stale'); // never built
    expect(r.status).toBe(0);
    expect(r.out).toMatch(
      /^decree: native\/fake: rebuilt in [\d.]+ s \(none backend: libfake not found\): it was not built$/,
    );
    expect(builtBackend()).toBe('none');
    expect(readStamp({ dir: addonDir })).toMatchObject({
      addon: 'fake',
      backend: 'none',
      libraries: { libfake: { found: false } },
    });

    expect(run('--stale')).toEqual({ status: 0, out: '' });

    mkdirSync(join(addonDir, 'lib'));
    writeFileSync(join(addonDir, 'lib', 'libfake.so'), ''); // "apt-get install libfake-dev"
    r = run('--stale');
    expect(r.out.split('\n')).toHaveLength(1);
    expect(r.out).toMatch(
      /^decree: native\/fake: rebuilt in [\d.]+ s \(libfake backend\): libfake appeared since it was built \(none backend\)$/,
    );
    expect(builtBackend()).toBe('libfake');
    expect(JSON.parse(readFileSync(join(addonDir, 'build', STAMP_FILE), 'utf8')).backend).toBe('libfake');

    expect(run('--stale')).toEqual({ status: 0, out: '' });
    expect(run()).toMatchObject({
      status: 0,
      out: expect.stringMatching(/^decree: native\/fake: built in [\d.]+ s \(libfake backend\)$/),
    });
  });
});

describe('allowScripts in package.json', () => {
  it(
    'names exactly the locked packages that have install scripts, ' +
      'by name only (docs/decisions/0007-install-scripts.md)',
    () => {
      const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
      const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
      const withScripts = new Set<string>();
      for (const [path, entry] of Object.entries<{ hasInstallScript?: boolean; link?: boolean }>(lock.packages)) {
        if (!entry.hasInstallScript || entry.link || !path.includes('node_modules/')) continue;
        withScripts.add(path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length));
      }
      expect(Object.keys(pkg.allowScripts).sort()).toEqual([...withScripts].sort());
      for (const [name, allowed] of Object.entries(pkg.allowScripts)) {
        expect(name).not.toMatch(/.@/); // no version pin: an upgrade keeps its approval (see the decision)
        expect(typeof allowed).toBe('boolean');
      }
    },
  );
});
