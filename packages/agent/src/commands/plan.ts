import { describeDesiredState, describeNote, formatCommand } from '@route-controller/core';
import { backendOf } from '../backends/backend-set.js';
import type { Toolbox } from '../container.js';
import { assertSafeServiceCidrs } from '../node/cidr-safety.js';
import { desiredFromDiscovery } from '../reconcile/desired-from-discovery.js';
import { json, type Output } from './output.js';

/** `route-controller plan`: the desired state and the exact payload the chosen backend would apply. */
export async function planCommand(toolbox: Toolbox, options: { json: boolean }, output: Output): Promise<number> {
  const selection = await toolbox.selector.select();
  const backend = backendOf(toolbox.backends, selection.backend);
  const discovery = await toolbox.discovery.resolve();
  try {
    const outcome = desiredFromDiscovery(discovery, toolbox.config.action, backend.capabilities.families);
    if (outcome.kind === 'keep') {
      output.err(
        `The Service CIDR source cannot answer now (${outcome.reason}); the agent would keep the rules in place.`,
      );
      return 1;
    }
    if (outcome.desired.cidrs.ipv4.length + outcome.desired.cidrs.ipv6.length > 0) {
      assertSafeServiceCidrs(outcome.desired.cidrs, await toolbox.network.read());
    }
    const plan = await backend.plan(outcome.desired);
    if (options.json) {
      output.out(
        json({
          backend: backend.name,
          reason: selection.reason,
          source: outcome.source,
          desired: {
            action: outcome.desired.action,
            ipv4: outcome.desired.cidrs.ipv4.map((c) => c.text),
            ipv6: outcome.desired.cidrs.ipv6.map((c) => c.text),
          },
          ignoredFamilies: outcome.dropped,
          changes: plan.changes,
          summary: plan.summary,
          commands: plan.commands,
        }),
      );
      return 0;
    }
    const lines = [
      `Backend: ${backend.name} (${selection.reason})`,
      `Source: ${outcome.source}`,
      `Desired: ${describeDesiredState(outcome.desired)}`,
    ];
    if (discovery.kind === 'cidrs') for (const note of discovery.notes) lines.push(`  note: ${describeNote(note)}`);
    if (outcome.dropped.length > 0)
      lines.push(`  warning: ${backend.name} cannot enforce ${outcome.dropped.join(', ')} here`);
    if (!plan.changes) {
      lines.push('', `Nothing to do: the kernel already matches (${plan.summary}).`);
    } else {
      lines.push('', `Plan: ${plan.summary}`);
      for (const command of plan.commands) {
        lines.push('', `$ ${formatCommand(command)}${command.input === undefined ? '' : ' <<EOF'}`);
        if (command.input !== undefined) lines.push(command.input.trimEnd(), 'EOF');
      }
    }
    output.out(lines.join('\n'));
    return 0;
  } finally {
    await toolbox.discovery.close();
  }
}
