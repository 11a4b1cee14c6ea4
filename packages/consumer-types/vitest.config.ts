import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    name: 'consumer-types',
    include: ['test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 300_000,
  },
});
