// Prints the backend binding.gyp builds: 'libpmem' when libpmem's headers and library are present,
// else 'mmap'. DECREE_PMEM_BACKEND=mmap forces the fallback (CI builds both).
// Required as a module it gives probe(): the backend and what was found (tools/scripts/build-native.mjs
// records that next to the build, and rebuilds when it changes: libpmem-dev installed later).
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const HEADER = '/usr/include/libpmem.h';
const LIBRARIES = [
  '/usr/lib/x86_64-linux-gnu/libpmem.so',
  '/usr/lib/aarch64-linux-gnu/libpmem.so',
  '/usr/lib/libpmem.so',
];
function probe() {
  const forced = process.env.DECREE_PMEM_BACKEND === 'mmap' ? 'DECREE_PMEM_BACKEND=mmap' : null;
  const pkgConfig = spawnSync('pkg-config', ['--exists', 'libpmem'], { stdio: 'ignore' }).status === 0;
  const header = existsSync(HEADER) ? HEADER : null;
  const library = LIBRARIES.find((p) => existsSync(p)) ?? null;
  const found = pkgConfig || (header !== null && library !== null);
  return {
    backend: !forced && found ? 'libpmem' : 'mmap',
    forced,
    libraries: { libpmem: { found, pkgConfig, header, library } },
  };
}
module.exports = { probe };
if (require.main === module) process.stdout.write(probe().backend);
