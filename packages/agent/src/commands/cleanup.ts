import { backendOf } from '../backends/backend-set.js';
import { BACKEND_NAMES } from '../config/settings.js';
import type { Toolbox } from '../container.js';
import { describeError, type Output } from './output.js';

/** `route-controller cleanup`: removes everything route-controller installed, with every backend. */
export async function cleanupCommand(toolbox: Toolbox, output: Output): Promise<number> {
  let failures = 0;
  for (const name of BACKEND_NAMES) {
    const availability = await toolbox.selector.probe(name);
    if (!availability.available) {
      output.out(`${name}: skipped, not usable here (${availability.reason})`);
      continue;
    }
    try {
      const result = await backendOf(toolbox.backends, name).cleanup();
      output.out(`${name}: ${result.removed ? result.summary : 'nothing of ours installed'}`);
    } catch (error) {
      failures += 1;
      output.err(`${name}: ${describeError(error)}`);
    }
  }
  return failures === 0 ? 0 : 1;
}
