// Prints the verbs backend binding.gyp builds: 'ibverbs' when libibverbs' headers and library are
// present (Debian's libibverbs-dev), else 'none' (the shared-memory backend only; the verbs calls
// then throw "built without libibverbs"). DECREE_RDMA_BACKEND=none forces the fallback.
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
function detect() {
  if (process.env.DECREE_RDMA_BACKEND === 'none') return 'none';
  const pc = spawnSync('pkg-config', ['--exists', 'libibverbs'], { stdio: 'ignore' });
  if (pc.status === 0) return 'ibverbs';
  if (existsSync('/usr/include/infiniband/verbs.h') && ['/usr/lib/x86_64-linux-gnu/libibverbs.so', '/usr/lib/aarch64-linux-gnu/libibverbs.so', '/usr/lib/libibverbs.so'].some(existsSync)) return 'ibverbs';
  return 'none';
}
process.stdout.write(detect());
