import {
  describeDesiredState,
  describeNote,
  ErrorCodes,
  formatCommand,
  type PlannedCommand,
  RouteControllerError,
  toRouteControllerError,
} from '@route-controller/core';
import { backendOf } from '../backends/backend-set.js';
import type { Toolbox } from '../container.js';
import { assertSafeServiceCidrs } from '../node/cidr-safety.js';
import { desiredFromDiscovery } from '../reconcile/desired-from-discovery.js';
import { EXIT_CONFIGURATION, EXIT_RUNTIME_FAILURE, isConfigurationError, json, type Output } from './output.js';

/**
 * `route-controller plan`: the desired state and the exact commands the chosen backend would run,
 * readable (nft's JSON pretty-printed, as a here-document the shell can run as it stands).
 * With --json, failures are JSON too: `{ "error": { "code", "message", "hint" } }`.
 */
export async function planCommand(toolbox: Toolbox, options: { json: boolean }, output: Output): Promise<number> {
  try {
    return await plan(toolbox, options, output);
  } catch (error) {
    if (!options.json) throw error;
    const coded = toRouteControllerError(error, ErrorCodes.CommandFailed, 'plan failed');
    output.out(json({ error: coded.toJSON() }));
    return isConfigurationError(coded) ? EXIT_CONFIGURATION : EXIT_RUNTIME_FAILURE;
  } finally {
    await toolbox.discovery.close();
  }
}

async function plan(toolbox: Toolbox, options: { json: boolean }, output: Output): Promise<number> {
  const selection = await toolbox.selector.select();
  const backend = backendOf(toolbox.backends, selection.backend);
  const discovery = await toolbox.discovery.resolve();
  const outcome = desiredFromDiscovery(discovery, toolbox.config.action, backend.capabilities.families);
  if (outcome.kind === 'keep') {
    throw new RouteControllerError(
      ErrorCodes.SourceFailed,
      `the Service CIDR source cannot answer now (${outcome.reason}); the agent would keep the rules in place`,
      { hint: 'Check the source (route-controller status shows its state), or set SERVICE_CIDRS.' },
    );
  }
  if (outcome.desired.cidrs.ipv4.length + outcome.desired.cidrs.ipv6.length > 0) {
    assertSafeServiceCidrs(outcome.desired.cidrs, await toolbox.network.read());
  }
  const planned = await backend.plan(outcome.desired);
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
        changes: planned.changes,
        summary: planned.summary,
        commands: planned.commands.map(({ file, args, input }) => ({
          file,
          args,
          ...(input === undefined ? {} : { input }),
        })),
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
  if (outcome.dropped.length > 0) {
    lines.push(`  warning: ${backend.name} cannot enforce ${outcome.dropped.join(', ')} here`);
  }
  if (!planned.changes) {
    lines.push('', `Nothing to do: the kernel already matches (${planned.summary}).`);
  } else {
    lines.push('', `Plan: ${planned.summary}`);
    for (const command of planned.commands) lines.push('', ...shellLines(command));
  }
  output.out(lines.join('\n'));
  return 0;
}

/** A command as a person reads it and a shell runs it: a long payload goes in a here-document. */
export function shellLines(command: PlannedCommand): string[] {
  if (command.display) {
    const head = formatCommand({ file: command.file, args: command.args.slice(0, command.display.afterArgs) });
    return [`$ ${head} "$(cat <<'EOF'`, ...command.display.text.split('\n'), 'EOF', ')"'];
  }
  const text = `$ ${formatCommand(command)}`;
  return command.input === undefined ? [text] : [`${text} <<'EOF'`, ...command.input.trimEnd().split('\n'), 'EOF'];
}
