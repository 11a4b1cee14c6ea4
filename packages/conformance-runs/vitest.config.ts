import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: 'conformance-runs',
    include: ['test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 300_000,
    hookTimeout: 120_000,
  },
});
