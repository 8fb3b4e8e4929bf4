import { LabProcess } from '@route-controller/lab';
import { afterAll, afterEach, beforeEach } from 'vitest';

/**
 * A setup file of the kernel, bench and image projects: every process the lab starts (an agent, a
 * one-shot CLI command) ends with the test that started it, or with the test file when a suite's
 * beforeAll started it, also when the test fails or times out. One still running then is ended
 * (SIGTERM, SIGKILL after a grace period) and fails the test or the file, naming it: a leak is a bug,
 * and a leaked agent would run on in a deleted namespace after the suite.
 */
const GRACE_MS = 2_000;
let runningBefore = new Set<LabProcess>();

async function end(processes: readonly LabProcess[]): Promise<string> {
  const names = processes.map((child) => `  ${String(child)}`).join('\n');
  await Promise.all(processes.map((child) => child.stop('SIGTERM', GRACE_MS)));
  return names;
}

beforeEach(() => {
  runningBefore = new Set(LabProcess.running());
});

afterEach(async (context) => {
  const left = LabProcess.running().filter((child) => !runningBefore.has(child));
  if (left.length === 0) return;
  const names = await end(left);
  // A failed test has said what went wrong; ending what it left running is all that is owed.
  if (context.task.result?.state === 'fail') {
    console.warn(`[process guard] ended ${left.length} process(es) the failed test left running:\n${names}`);
    return;
  }
  throw new Error(`the test left ${left.length} process(es) running (now ended):\n${names}`);
});

afterAll(async () => {
  const left = LabProcess.running();
  if (left.length === 0) return;
  throw new Error(`the file left ${left.length} process(es) running after its tests (now ended):\n${await end(left)}`);
});
