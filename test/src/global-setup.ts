import { findSessionAgents, removeStrayNamespaces, SESSION_VARIABLE } from '@route-controller/lab';

/**
 * Sweeps namespaces left behind by an earlier, interrupted run (their creating process is gone),
 * and names this run's lab session, which every agent the workers start carries in its environment.
 * The teardown fails the run if any of those agents is still alive once every worker is done: an
 * agent that outlived the worker that started it (parent PID 1, its namespace gone).
 */
export default function setup(): () => void {
  process.env[SESSION_VARIABLE] ??= `vitest-${process.pid}-${Date.now()}`;
  const session = process.env[SESSION_VARIABLE];
  if (process.getuid?.() === 0) {
    const removed = removeStrayNamespaces();
    if (removed.length > 0) console.log(`removed ${removed.length} stray test namespaces: ${removed.join(', ')}`);
  }
  return () => {
    const leaked = findSessionAgents(session);
    if (leaked.length === 0) return;
    for (const { pid } of leaked) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
    console.error(
      `\n[process guard] ${leaked.length} agent process(es) of this run outlived the tests (now killed):\n${leaked
        .map(({ pid, parentPid, command }) => `  pid ${pid} (parent ${parentPid}): ${command}`)
        .join('\n')}\n`,
    );
    process.exitCode = 1;
  };
}
