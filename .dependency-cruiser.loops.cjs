/**
 * No loops between the server's module folders (and its plugins folder),
 * in production code: a folder that imports another is never imported
 * back by it, directly or through others. Tests are left out: a test may
 * build the whole server.
 */
const base = require('./.dependency-cruiser.cjs');
const MODULE_FOLDER = '^packages/server/src/(modules/[^/]+|plugins)$';
const TEST_CODE = base.forbidden.find((rule) => rule.name === 'no-test-helpers-in-production').to.path;

module.exports = {
  forbidden: [
    {
      name: 'no-loop-between-server-modules',
      severity: 'error',
      scope: 'folder',
      from: { path: MODULE_FOLDER },
      to: { path: MODULE_FOLDER, circular: true },
    },
  ],
  options: { ...base.options, exclude: { path: [base.options.exclude.path, TEST_CODE] } },
};
