// Prints the verbs backend binding.gyp builds: 'ibverbs' when libibverbs' headers and library are
// present (Debian's libibverbs-dev), else 'none' (the shared-memory backend only; the verbs calls
// then throw "built without libibverbs"). DECREE_RDMA_BACKEND=none forces the fallback.
// Required as a module it gives probe(): the backend and what was found (tools/scripts/build-native.mjs
// records that next to the build, and rebuilds when it changes: libibverbs-dev installed later).
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const HEADER = '/usr/include/infiniband/verbs.h';
const LIBRARIES = [
  '/usr/lib/x86_64-linux-gnu/libibverbs.so',
  '/usr/lib/aarch64-linux-gnu/libibverbs.so',
  '/usr/lib/libibverbs.so',
];
function probe() {
  const forced = process.env.DECREE_RDMA_BACKEND === 'none' ? 'DECREE_RDMA_BACKEND=none' : null;
  const pkgConfig = spawnSync('pkg-config', ['--exists', 'libibverbs'], { stdio: 'ignore' }).status === 0;
  const header = existsSync(HEADER) ? HEADER : null;
  const library = LIBRARIES.find((p) => existsSync(p)) ?? null;
  const found = pkgConfig || (header !== null && library !== null);
  return {
    backend: !forced && found ? 'ibverbs' : 'none',
    forced,
    libraries: { libibverbs: { found, pkgConfig, header, library } },
  };
}
module.exports = { probe };
if (require.main === module) process.stdout.write(probe().backend);
