import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real-Asterisk suites run only with E2E=1 (npm run test:e2e); they skip with a reason otherwise.
    exclude: process.env['E2E'] ? [] : ['test/e2e/**'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
  },
});
