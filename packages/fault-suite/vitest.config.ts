import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: 'fault-suite',
    include: ['test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 180_000,
    hookTimeout: 120_000,
  },
});
