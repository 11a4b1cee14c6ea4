import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: 'adapter-conformance',
    include: ['test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // The suite runs from each adapter's tests; this package has none of its own.
    passWithNoTests: true,
  },
});
