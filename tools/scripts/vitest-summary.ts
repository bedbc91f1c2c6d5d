// A vitest 4 reporter that ends the run with one plain line, alone on its line:
//   N passed, N failed            (", N skipped" follows when some were skipped)
// CI tooling reads that line. Counts are of tests; a test file that failed to load (no test ran
// in it) and every unhandled error each count as one failure, so a broken run never reads "0 failed".
// Use it next to the default reporter:
//   npx vitest run --reporter=default --reporter=./tools/scripts/vitest-summary.ts
import type { Reporter, SerializedError, TestModule } from 'vitest/node';

export interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

export function countTests(
  modules: ReadonlyArray<TestModule>,
  unhandledErrors: ReadonlyArray<SerializedError>,
): Counts {
  const c: Counts = { passed: 0, failed: 0, skipped: 0 };
  for (const mod of modules) {
    let failedHere = 0;
    for (const t of mod.children.allTests()) {
      const state = t.result().state;
      if (state === 'passed') c.passed++;
      else if (state === 'failed') failedHere++;
      else if (state === 'skipped') c.skipped++;
      // 'pending': the run was interrupted before it finished; counted nowhere
    }
    // a module that failed without a failing test: it did not load, or a hook failed
    if (failedHere === 0 && mod.state() === 'failed') failedHere = 1;
    c.failed += failedHere;
  }
  c.failed += unhandledErrors.length;
  return c;
}

export function summaryLine(c: Counts): string {
  return `${c.passed} passed, ${c.failed} failed${c.skipped > 0 ? `, ${c.skipped} skipped` : ''}`;
}

export default class VitestSummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>): void {
    // the leading newline keeps the line alone even if the previous output did not end one
    process.stdout.write(`\n${summaryLine(countTests(testModules, unhandledErrors))}\n`);
  }
}
