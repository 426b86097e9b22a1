import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Workers always run compiled (dist/); build once before the suite.
    globalSetup: ['tests/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Engine tests spawn real framework processes: run files one at a time on the 2-core machines
    // so timings inside them are not skewed and memory stays bounded.
    fileParallelism: false,
  },
});
