// Reads vitest JSON reports (SQLite run, PostgreSQL run), fails when a run is
// empty, skipped tests or files, or did not run on its database, and prints
// the closing "N passed, N failed" line.
import { readFileSync } from 'node:fs';

const [sqlitePath, postgresPath] = process.argv.slice(2);
let passed = 0;
let failed = 0;
const problems = [];

for (const [dialect, path] of [['sqlite', sqlitePath], ['postgres', postgresPath]]) {
  const report = JSON.parse(readFileSync(path, 'utf8'));
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  const skipped = report.numPendingTests + report.numTodoTests;
  if (report.numTotalTests === 0) problems.push(`${dialect}: no test ran`);
  if (skipped > 0) problems.push(`${dialect}: ${skipped} tests were skipped`);
  const titles = report.testResults.flatMap((file) => file.assertionResults.map((t) => t.fullName));
  // The end-to-end suite names its database in its title: proof the run used it.
  if (!titles.some((title) => title.includes(`end to end over HTTP (${dialect})`))) problems.push(`${dialect}: the end-to-end suite did not run on ${dialect}`);
}

console.log(`\n${passed} passed, ${failed} failed`);
for (const problem of problems) console.error(`CI: ${problem}`);
process.exit(failed > 0 || problems.length > 0 ? 1 : 0);
