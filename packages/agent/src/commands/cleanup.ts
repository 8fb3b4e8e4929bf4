import { ErrorCodes } from '@route-controller/core';
import { backendOf } from '../backends/backend-set.js';
import { BACKEND_NAMES } from '../config/settings.js';
import type { Toolbox } from '../container.js';
import { describeError, type Output } from './output.js';

const UNREADABLE_HINT =
  'route-controller writes nothing into a table it cannot read. Remove the native nft rules that make it unreadable and run cleanup again, or remove our rules with nft: nft -a list chain ip filter FORWARD, nft delete rule ip filter FORWARD handle <the jump to ROUTE-CONTROLLER>, nft flush chain ip filter ROUTE-CONTROLLER, nft delete chain ip filter ROUTE-CONTROLLER (ip6 likewise).';

/**
 * `route-controller cleanup`: removes everything route-controller installed, with every backend.
 * A backend whose tables cannot be read is left untouched, and fails the command.
 */
export async function cleanupCommand(toolbox: Toolbox, output: Output): Promise<number> {
  let failures = 0;
  for (const name of BACKEND_NAMES) {
    const availability = await toolbox.selector.probe(name);
    if (availability.failure === ErrorCodes.FirewallUnreadable) {
      // Rules of ours may be there, unseen: a skip would read as "nothing to remove", and a blind
      // write would stack. Leave the node as it is, and say so with a failure.
      failures += 1;
      output.err(
        `${name}: nothing removed, the firewall was left as it is: ${availability.reason}\n  hint: ${UNREADABLE_HINT}`,
      );
      continue;
    }
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
