import type { Reporter, TestModule } from 'vitest/node';

/**
 * Lists every skipped test at the end of a run, with the reason its name carries (kernel tests
 * outside root, a contract group a backend lacks), so a skip is never just a number in the summary.
 */
export default class SkippedReporter implements Reporter {
  onTestRunEnd(modules: readonly TestModule[]): void {
    const skipped: string[] = [];
    for (const module of modules) {
      for (const test of module.children.allTests()) {
        if (test.result().state === 'skipped')
          skipped.push(`  ${module.moduleId.replace(`${process.cwd()}/`, '')} > ${test.fullName}`);
      }
    }
    if (skipped.length === 0) return;
    process.stdout.write(`\nSkipped tests (${skipped.length}), with their reasons:\n${skipped.join('\n')}\n`);
  }
}
