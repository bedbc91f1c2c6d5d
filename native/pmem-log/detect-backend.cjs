// Prints the backend binding.gyp builds: 'libpmem' when libpmem's headers and library are present,
// else 'mmap'. DECREE_PMEM_BACKEND=mmap forces the fallback (CI builds both).
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
function detect() {
  if (process.env.DECREE_PMEM_BACKEND === 'mmap') return 'mmap';
  const pc = spawnSync('pkg-config', ['--exists', 'libpmem'], { stdio: 'ignore' });
  if (pc.status === 0) return 'libpmem';
  if (existsSync('/usr/include/libpmem.h') && ['/usr/lib/x86_64-linux-gnu/libpmem.so', '/usr/lib/aarch64-linux-gnu/libpmem.so', '/usr/lib/libpmem.so'].some(existsSync)) return 'libpmem';
  return 'mmap';
}
process.stdout.write(detect());
