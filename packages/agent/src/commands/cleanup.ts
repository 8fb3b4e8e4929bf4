import { ErrorCodes, RouteControllerError } from '@route-controller/core';
import { backendOf } from '../backends/backend-set.js';
import { BACKEND_NAMES } from '../config/settings.js';
import type { Toolbox } from '../container.js';
import { type AgentPresence, agentRuns, describeAgent } from '../lifecycle/agent-socket.js';
import { describeError, type Output } from './output.js';

const UNREADABLE_HINT =
  'route-controller writes nothing into a table it cannot read. Remove the native nft rules that make it unreadable and run cleanup again, or remove our rules with nft: nft -a list chain ip filter FORWARD, nft delete rule ip filter FORWARD handle <the jump to ROUTE-CONTROLLER>, nft flush chain ip filter ROUTE-CONTROLLER, nft delete chain ip filter ROUTE-CONTROLLER (ip6 likewise).';

/**
 * `route-controller cleanup`: removes everything route-controller installed, with every backend.
 * A backend whose tables cannot be read is left untouched, and fails the command. Beside a running
 * agent it refuses (the agent would put the rules back within milliseconds, and "removed" would be
 * a lie) unless forced; an agent that is stopping no longer repairs, so it is no obstacle.
 */
export async function cleanupCommand(
  toolbox: Toolbox,
  output: Output,
  options: { readonly force?: boolean } = {},
): Promise<number> {
  const presence = await toolbox.agent();
  const refusal = agentInTheWay(presence);
  if (refusal && !options.force) {
    output.err(describeError(refusal));
    return 1;
  }
  if (refusal) output.err(`warning: ${refusal.message}; removing the rules all the same (--force)`);
  if (presence.kind === 'unknown') {
    output.err(`warning: something holds the agent socket but does not answer as an agent (${presence.detail})`);
  }
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

/** The refusal when a running (or starting) agent would undo the cleanup at once. */
function agentInTheWay(presence: AgentPresence): RouteControllerError | undefined {
  if (!agentRuns(presence)) return undefined;
  return new RouteControllerError(
    ErrorCodes.AgentRunning,
    `an agent runs on this node, ${describeAgent(presence.identity)}: it would put the rules back at once`,
    {
      hint: 'Stop the agent first: helm uninstall (with routeController.cleanupOnUninstall the agents remove their rules themselves), or keep it off this node. --force removes the rules anyway, until the agent repairs them.',
      details: { agent: presence.identity },
    },
  );
}
