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
  if (report.numFailedTestSuites > 0) problems.push(`${dialect}: ${report.numFailedTestSuites} test files failed to run`);
  const titles = report.testResults.flatMap((file) => file.assertionResults.map((t) => t.fullName));
  // The suites that need real parts name their database in their titles: proof they ran, on it.
  const suites = ['end to end over HTTP', 'a real agent process over a real WebSocket', 'isolation of a real endpoint in a network namespace', 'containment of an unmanaged device by every agent, in network namespaces', 'automated investigation with real agents in network namespaces', 'on-access antivirus of a real agent', 'a real agent refuses what would harm the endpoint or itself'];
  // The console's suite runs on SQLite only (see .ci/run).
  if (dialect === 'sqlite') suites.push('web console in a real Chromium');
  for (const suite of suites) {
    if (!titles.some((title) => title.includes(`${suite} (${dialect})`))) problems.push(`${dialect}: the suite "${suite}" did not run`);
  }
}

console.log(`\n${passed} passed, ${failed} failed`);
for (const problem of problems) console.error(`CI: ${problem}`);
process.exit(failed > 0 || problems.length > 0 ? 1 : 0);
