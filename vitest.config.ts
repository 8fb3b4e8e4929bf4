import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The default report, then every skipped test with the reason its name carries.
    reporters: ['default', './test/src/skipped-reporter.ts'],
    projects: [
      {
        // Logic with fakes: no root, no network.
        test: { name: 'unit', include: ['packages/*/test/**/*.test.ts'] },
      },
      {
        // Real processes on loopback (the test API server, kubectl, helm): no root needed.
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/chart/**/*.test.ts'],
          testTimeout: 60_000,
        },
      },
      {
        // Real-kernel tests: each file builds its own network namespaces, so files may run in parallel.
        // The process guard fails a test or file that leaves a process it started running.
        test: {
          name: 'kernel',
          include: ['test/kernel/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          pool: 'forks',
          globalSetup: ['test/src/global-setup.ts'],
          setupFiles: ['test/src/process-guard.ts'],
        },
      },
      {
        // `pnpm bench`: measurements, not tests; one file, run alone. A whole run takes about an hour
        // with the fleet section's default 10-minute windows (30 minutes cut it short).
        test: {
          name: 'bench',
          include: ['test/bench/**/*.bench.ts'],
          testTimeout: 10_800_000,
          hookTimeout: 600_000,
          pool: 'forks',
          globalSetup: ['test/src/global-setup.ts'],
          setupFiles: ['test/src/process-guard.ts'],
        },
      },
      {
        // The container image: slow (debootstrap, buildah), run by `pnpm test:image` and CI only.
        test: {
          name: 'image',
          include: ['test/image/**/*.test.ts'],
          testTimeout: 1_800_000,
          hookTimeout: 1_800_000,
          pool: 'forks',
          globalSetup: ['test/src/global-setup.ts'],
          setupFiles: ['test/src/process-guard.ts'],
        },
      },
    ],
  },
});
