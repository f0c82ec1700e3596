import { defineConfig } from 'vitest/config';

/**
 * Two groups of test files. The agent's tests and the browser test share this
 * host's network namespaces, routes, containers and CPU-bound timings, so they
 * run one file at a time (Vitest runs such a group last). The rest (server,
 * contracts, CLI, console units) each have their own database and port, so
 * they run two at a time.
 */
const HOST_BOUND = ['packages/agent/src/**/*.test.ts', 'packages/console/src/console.browser.test.ts'];

const shared = {
  testTimeout: 30_000,
  hookTimeout: 60_000,
  pool: 'forks',
} as const;

export default defineConfig({
  test: {
    globalSetup: ['./vitest.global-setup.ts'],
    projects: [
      {
        test: {
          ...shared,
          name: 'host',
          include: HOST_BOUND,
          maxWorkers: 1,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          ...shared,
          name: 'isolated',
          include: ['packages/*/src/**/*.test.ts'],
          exclude: [...HOST_BOUND, '**/node_modules/**'],
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
