// Prints one closing line for the whole workspace, "N passed, N failed", from the JSON reports that each
// project's vitest run writes and the JUnit XML that the trainer's pytest writes (restored from Nx's cache when
// the run was cached).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
let passed = 0;
let failed = 0;
let skipped = 0;
let reports = 0;
for (const group of ['libs', 'services', 'tools', 'stacks']) {
  const dir = join(root, group);
  if (!existsSync(dir)) continue;
  for (const project of readdirSync(dir)) {
    for (const name of ['vitest.json', 'integration.json']) {
      const file = join(dir, project, 'test-results', name);
      if (!existsSync(file)) continue;
      const r = JSON.parse(readFileSync(file, 'utf8'));
      passed += r.numPassedTests;
      failed += r.numFailedTests;
      skipped += r.numPendingTests + (r.numTodoTests ?? 0);
      reports++;
    }
    const junit = join(dir, project, 'test-results', 'pytest.xml');
    if (existsSync(junit)) {
      const r = junitCounts(readFileSync(junit, 'utf8'));
      passed += r.tests - r.failures - r.errors - r.skipped;
      failed += r.failures + r.errors;
      skipped += r.skipped;
      reports++;
    }
  }
}

/** The totals of a JUnit XML report's <testsuite> elements (pytest writes one); no XML parser needed for these. */
function junitCounts(xml) {
  const totals = { tests: 0, failures: 0, errors: 0, skipped: 0 };
  for (const [, attrs] of xml.matchAll(/<testsuite\s([^>]*)>/g)) {
    for (const key of Object.keys(totals)) totals[key] += Number(new RegExp(`\\b${key}="(\\d+)"`).exec(attrs)?.[1] ?? 0);
  }
  return totals;
}
console.log(`\n${reports} test reports`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
