/**
 * Vitest reporter that ends the run with the plain line CI reads: `N passed, N failed`, and lists every
 * skipped test with the reason it was skipped. A test file that fails to load, a suite whose hook failed and an
 * unhandled error each count as a failure, so a broken file can never look green.
 * With AUTHSEC_TEST_COUNTS_FILE set it also appends `passed failed skipped` to that file, so .ci/run can add
 * up several runs (for example core's tests again under Node 22).
 */
import { appendFileSync } from 'node:fs';
import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    let passed = 0;
    let failed = unhandledErrors.length;
    const skipped: string[] = [];
    for (const mod of testModules) {
      let count = 0;
      for (const test of mod.children.allTests()) {
        count++;
        const result = test.result();
        if (result.state === 'passed') passed++;
        else if (result.state === 'failed') failed++;
        else
          skipped.push(
            `${mod.moduleId.split('/').slice(-3).join('/')} > ${test.fullName}${result.note ? ` (${result.note})` : ''}`,
          );
      }
      if (count === 0 && mod.state() === 'failed') failed++;
      else if (mod.errors().length > 0) failed += mod.errors().length;
      // A suite whose hook failed (a beforeAll that threw) skips its tests: the suite itself is the failure.
      for (const suite of mod.children.allSuites()) if (suite.errors().length > 0) failed++;
    }
    for (const line of skipped) process.stdout.write(`skipped: ${line}\n`);
    const file = process.env.AUTHSEC_TEST_COUNTS_FILE;
    if (file) appendFileSync(file, `${passed} ${failed} ${skipped.length}\n`);
    process.stdout.write(
      `\n${passed} passed, ${failed} failed${skipped.length ? `, ${skipped.length} skipped` : ''}\n`,
    );
  }
}
