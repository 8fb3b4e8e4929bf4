import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    reporters: ['default'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['packages/*/test/**/*.test.ts'],
        },
      },
      {
        // Real-kernel tests: each file builds its own network namespaces, so files may run in parallel.
        test: {
          name: 'kernel',
          include: ['test/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          pool: 'forks',
          globalSetup: ['test/src/global-setup.ts'],
        },
      },
    ],
  },
});
