/**
 * The dependency rules `npm run lint` enforces (dependency-cruiser), over
 * every file: production code never imports a test helper, and a package
 * reaches another only through its entry points (its package.json
 * `exports`). Loops between the server's module folders are checked over
 * production code alone, in .dependency-cruiser.loops.cjs.
 */
const TEST_CODE = '(\\.test\\.tsx?$|/test/)';

module.exports = {
  forbidden: [
    {
      name: 'no-test-helpers-in-production',
      comment: 'Test helpers live in test/ folders (or are tests): production code never imports them.',
      severity: 'error',
      from: { path: '^packages/', pathNot: TEST_CODE },
      to: { path: TEST_CODE },
    },
    {
      name: 'packages-through-entry-points',
      comment: 'A package imports another as @quell/<name> (or a subpath its package.json exports), never a file inside it by a relative path.',
      severity: 'error',
      from: { path: '^packages/([^/]+)/' },
      to: { path: '^packages/', pathNot: '^packages/$1/', dependencyTypes: ['local'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|dist)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
