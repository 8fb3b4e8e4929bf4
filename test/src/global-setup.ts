import { removeStrayNamespaces } from '@route-controller/lab';

/** Sweeps namespaces left behind by an earlier, interrupted run (their creating process is gone). */
export default function setup(): void {
  if (process.getuid?.() !== 0) return;
  const removed = removeStrayNamespaces();
  if (removed.length > 0) console.log(`removed ${removed.length} stray test namespaces: ${removed.join(', ')}`);
}
