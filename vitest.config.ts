import { defineConfig } from 'vitest/config';

// Unit tests sit beside the code; integration and e2e suites under test/ talk to the real components that
// infra/local starts (see infra/local/test.sh). Files run one at a time: the machines have two cores, and the
// integration suites share one BuildKit daemon.
export default defineConfig({
  test: {
    fileParallelism: false,
    // One scratch folder per run for the tests' small files, removed when the run ends.
    globalSetup: ['test/support/run-scratch.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['{api,workflows,activities,worker,lib}/**/*.test.ts'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
