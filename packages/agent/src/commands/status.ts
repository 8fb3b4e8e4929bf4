import { type Availability, ErrorCodes, errorMessage, type ObservedState } from '@route-controller/core';
import { backendOf } from '../backends/backend-set.js';
import { kubeProxyReport } from '../backends/kube-proxy-report.js';
import { BACKEND_NAMES, type BackendName } from '../config/settings.js';
import type { Toolbox } from '../container.js';
import { type AgentPresence, agentRuns, describeAgent } from '../lifecycle/agent-socket.js';
import { assertSafeServiceCidrs } from '../node/cidr-safety.js';
import type { NodeNetwork } from '../node/node-network.js';
import { describeDiscovery, discoveryReport, type SourceStatus } from './discovery-report.js';
import { describeError, json, type Output } from './output.js';
import { describeStaleReport, staleReport } from './stale-report.js';

interface BackendStatus {
  readonly backend: BackendName;
  readonly available: boolean;
  readonly reason: string;
  /** Whether the kernel reports changes to this backend's objects (so drift is repaired at once). */
  readonly events: boolean;
  /** Why it is not usable, as a code (ERR_RC_FIREWALL_UNREADABLE: its tables cannot be read in full). */
  readonly failure?: string;
  /** Where its rules sit on the forward hook, from its probe's `placement` check. */
  readonly placement?: string;
  /** What its probe says the user should know (the iptables fallback and its cost). */
  readonly warnings?: readonly string[];
  readonly installed?: {
    readonly present: boolean;
    readonly action: string | null;
    readonly ipv4: readonly string[];
    readonly ipv6: readonly string[];
    readonly counters: {
      readonly ipv4?: { packets: number; bytes: number };
      readonly ipv6?: { packets: number; bytes: number };
    };
    readonly problems: readonly string[];
    /** What is wrong with the installed rules as a whole: unsafe ranges, a mismatch with discovery. */
    readonly warnings: readonly string[];
  };
  readonly error?: string;
}

/**
 * `route-controller status`: what route-controller has installed on this node now, per backend,
 * and where the Service CIDRs come from (with the Kubernetes API connection when that is the source).
 */
export async function statusCommand(toolbox: Toolbox, options: { json: boolean }, output: Output): Promise<number> {
  // First: whether an agent runs here at all, before anything is said about what it will do.
  const presence = await toolbox.agent();
  const running = agentRuns(presence);
  const report = await discoveryReport(toolbox.discovery);
  const { source, kubernetes } = report;
  const kubeProxy = await kubeProxyReport(toolbox.runner, source.kind === 'cidrs' ? source : undefined);
  const network = await toolbox.network.read().catch(() => undefined);
  const statuses: BackendStatus[] = [];
  for (const name of BACKEND_NAMES) {
    const availability: Availability = await toolbox.selector.probe(name);
    const backend = backendOf(toolbox.backends, name);
    const events = backend.capabilities.events;
    if (!availability.available) {
      const failure = availability.failure ? { failure: availability.failure } : {};
      statuses.push({ backend: name, available: false, reason: availability.reason, events, ...failure });
      continue;
    }
    const placement = availability.checks.find((check) => check.name === 'placement')?.detail;
    const probed = { ...(placement ? { placement } : {}), warnings: availability.warnings };
    try {
      const observed = await backend.observe();
      const installed = summarise(observed, installedWarnings(observed, source, network, running));
      statuses.push({ backend: name, available: true, reason: availability.reason, events, ...probed, installed });
    } catch (error) {
      statuses.push({
        backend: name,
        available: true,
        reason: availability.reason,
        events,
        error: describeError(error),
      });
    }
  }
  // Who dials stale ClusterIPs, from the backend that holds our rules (and records hits).
  const installed = statuses
    .filter((s) => s.installed?.present)
    .map((s) => ({ name: s.backend, backend: backendOf(toolbox.backends, s.backend) }));
  const stale = await staleReport(installed, toolbox.pods);
  if (options.json) {
    output.out(
      json({
        agent: agentJson(presence),
        source: source.source,
        discovery: source,
        kubernetes,
        kubeProxy,
        backends: statuses,
        staleDestinations: stale.staleDestinations,
        recording: stale.recording,
      }),
    );
    return statuses.some((s) => s.error) ? 1 : 0;
  }
  const lines: string[] = [describePresence(presence), '', ...describeDiscovery(report)];
  if (kubeProxy.notice) lines.push(`Note: ${kubeProxy.notice}`);
  lines.push('');
  for (const status of statuses) {
    if (status.failure === ErrorCodes.FirewallUnreadable) {
      lines.push(
        `${status.backend}: cannot read its tables here, so rules of ours there would go unseen (${status.reason})`,
      );
    } else if (!status.available) {
      lines.push(`${status.backend}: not usable here (${status.reason})`);
    } else if (status.error) {
      lines.push(`${status.backend}: could not read: ${status.error}`);
    } else if (!status.installed?.present) {
      lines.push(`${status.backend}: nothing installed`);
    } else {
      const i = status.installed;
      lines.push(`${status.backend}: ${describeInstalled(i)}`);
      if (status.placement) lines.push(`  placement: ${status.placement}`);
      for (const warning of status.warnings ?? []) lines.push(`  warning: ${warning}`);
      for (const family of ['ipv4', 'ipv6'] as const) {
        const c = i.counters[family];
        if (c) lines.push(`  ${family}: ${c.packets} packets, ${c.bytes} bytes blocked`);
      }
      for (const problem of i.problems) lines.push(`  drift: ${problem}`);
      for (const warning of i.warnings) lines.push(`  warning: ${warning}`);
      lines.push(`  ${running ? driftRepair(status.backend, status.events) : NO_REPAIR}`);
    }
  }
  lines.push('', ...describeStaleReport(stale));
  output.out(lines.join('\n'));
  return statuses.some((s) => s.error) ? 1 : 0;
}

const NO_REPAIR = 'drift repair: none while no agent runs on this node';

/** The status's first line: whether an agent runs here, and which. */
function describePresence(presence: AgentPresence): string {
  switch (presence.kind) {
    case 'agent':
      return `agent: ${describeAgent(presence.identity)} on this node`;
    case 'none':
      return 'agent: none runs on this node (nothing answers on its socket); what is installed stays as it is';
    case 'unknown':
      return `agent: cannot tell: something holds the agent socket but does not answer as an agent (${presence.detail})`;
  }
}

function agentJson(presence: AgentPresence): Record<string, unknown> {
  if (presence.kind === 'agent') return { running: agentRuns(presence), ...presence.identity };
  return { running: false, ...(presence.kind === 'unknown' ? { unknown: presence.detail } : {}) };
}

/** How the agent finds drift with this backend. */
export function driftRepair(backend: string, events: boolean): string {
  return events
    ? 'drift repair: at once, from kernel change events (the resync is the safety net)'
    : `drift repair: at the next resync only (RESYNC_INTERVAL): ${backend} changes make no kernel change events`;
}

/** One line for what a backend holds, whole or not: never "mixed action" for a chain with no rules. */
function describeInstalled(installed: NonNullable<BackendStatus['installed']>): string {
  const cidrs = [...installed.ipv4, ...installed.ipv6];
  if (cidrs.length === 0)
    return 'objects of ours with no rules in them (incomplete: the agent repairs it, cleanup removes it)';
  if (installed.action === null) return `rules with different actions for ${cidrs.join(', ')} (incomplete)`;
  return `${installed.action} forwarded packets to ${cidrs.join(', ')}`;
}

/**
 * What the user should know about installed rules: a range that contains one of this node's
 * addresses (it cuts pods off), and rules that differ from what this command discovered (run
 * without the agent's environment, or the running agent will replace them).
 */
function installedWarnings(
  observed: ObservedState,
  source: SourceStatus,
  network: NodeNetwork | undefined,
  repairing: boolean,
): string[] {
  const warnings: string[] = [];
  const installed = { ipv4: observed.ipv4.cidrs, ipv6: observed.ipv6.cidrs };
  if (network) {
    try {
      assertSafeServiceCidrs(installed, network);
    } catch (error) {
      warnings.push(
        `unsafe: ${errorMessage(error).replace(/^refusing unsafe Service CIDRs: /, '')}; remove them with route-controller cleanup`,
      );
    }
  }
  const have = [...installed.ipv4, ...installed.ipv6].map((c) => c.text).join(', ');
  const want = [...source.ipv4, ...source.ipv6].join(', ');
  if (source.kind === 'cidrs' && have !== '' && have !== want) {
    warnings.push(
      repairing
        ? `installed ${have}, but ${source.source} says ${want}: the running agent will replace them at its next resync`
        : `installed ${have}, but ${source.source} says ${want}: no agent runs on this node to replace them`,
    );
  } else if (source.kind === 'unavailable' && have !== '') {
    warnings.push(
      `installed ${have}; ${source.source} cannot answer now (${source.detail}), so they cannot be compared`,
    );
  } else if (source.kind === 'none' && have !== '') {
    warnings.push(
      `installed ${have}, but this command found no Service CIDRs (${source.detail}): run it with the agent's SERVICE_CIDRS or --kubeconfig to compare`,
    );
  }
  return warnings;
}

function summarise(observed: ObservedState, warnings: string[]): NonNullable<BackendStatus['installed']> {
  return {
    warnings,
    present: observed.present,
    action: observed.action,
    ipv4: observed.ipv4.cidrs.map((c) => c.text),
    ipv6: observed.ipv6.cidrs.map((c) => c.text),
    counters: {
      ...(observed.ipv4.counters ? { ipv4: observed.ipv4.counters } : {}),
      ...(observed.ipv6.counters ? { ipv6: observed.ipv6.counters } : {}),
    },
    problems: observed.problems,
  };
}
