import { defineConfig } from 'vitest/config';

// One vitest run covers every package (npm test); `nx run <pkg>:test` runs one package's folder.
export default defineConfig({
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'] } },
  test: {
    include: ['{packages,apps,tools}/*/test/**/*.test.ts'],
    env: { DECREE_CONTRACTS: '1' },
    setupFiles: ['./tools/scripts/contracts-on.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // the last line of a run is a plain `N passed, N failed` for CI
    reporters: ['default', './tools/scripts/vitest-summary.ts'],
  },
});
