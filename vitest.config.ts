import { defineConfig } from 'vitest/config';

// One vitest run covers every package (npm test); `nx run <pkg>:test` runs one package's folder.
export default defineConfig({
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'] } },
  test: {
    include: ['{packages,apps,tools}/*/test/**/*.test.ts'],
    env: { DECREE_CONTRACTS: '1' },
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
