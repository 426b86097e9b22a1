import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Engine tests spawn real framework processes: run files one at a time on the 2-core machines
    // so timings inside them are not skewed (by each other or by the unit files) and memory stays
    // bounded.
    fileParallelism: false,
    projects: [
      {
        // `npm run test:unit`: pure TypeScript (*.unit.test.ts), nothing beyond npm: no dist/ build,
        // no CLI, no engine workers, no Python, Chromium or daemons.
        extends: true,
        test: { name: 'unit', include: ['tests/**/*.unit.test.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['tests/**/*.test.ts'],
          exclude: ['tests/**/*.unit.test.ts'],
          // Workers and the CLI always run compiled (dist/); build once before these files.
          globalSetup: ['tests/global-setup.ts'],
        },
      },
    ],
  },
});
