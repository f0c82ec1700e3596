import { defineConfig } from 'vitest/config';

/**
 * Two groups of test files. The agent's tests and the browser test share this
 * host's network namespaces, routes, containers and CPU-bound timings, so they
 * run one file at a time. The rest (server, contracts, CLI, console units) each
 * have their own database and port. `npm test` (scripts/test.ts) runs the two
 * groups side by side, a file of each at a time; a plain `vitest run` runs the
 * host-bound group first, then the rest two at a time.
 */
const HOST_BOUND = ['packages/agent/src/**/*.test.ts', 'packages/console/src/console.browser.test.ts'];
/** Suites of what only PostgreSQL offers (replicas on one database, LISTEN/NOTIFY): run when the suite runs on PostgreSQL. */
const POSTGRES_ONLY = process.env.QUELL_TEST_DB === 'postgres' ? [] : ['**/*.postgres.test.ts'];

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
          exclude: [...POSTGRES_ONLY, '**/node_modules/**'],
          maxWorkers: 1,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          ...shared,
          name: 'isolated',
          include: ['packages/*/src/**/*.test.ts'],
          exclude: [...HOST_BOUND, ...POSTGRES_ONLY, '**/node_modules/**'],
          // npm test runs this project beside the host-bound one, with one worker each (scripts/test.ts).
          maxWorkers: Number(process.env.QUELL_TEST_ISOLATED_WORKERS ?? 2),
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
