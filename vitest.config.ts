import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests spawn real processes and send real signals; two cores is the CI size.
    maxWorkers: 2,
    // The run's throwaway PostgreSQL server: started by the first test that needs it, stopped and
    // deleted at the end (RWS_TEST_DATABASE_URL: an existing server instead).
    globalSetup: ['test/helpers/postgres-global-setup.ts'],
  },
});
