import { backendOf } from '../backends/backend-set.js';
import { kubeProxyReport } from '../backends/kube-proxy-report.js';
import { BACKEND_NAMES } from '../config/settings.js';
import type { Toolbox } from '../container.js';
import { describeDiscovery, discoveryReport } from './discovery-report.js';
import { json, type Output, table } from './output.js';
import { driftRepair } from './status.js';

/**
 * `route-controller probe`: which backend this node would use, and why; where the Service CIDRs
 * would come from; and whether kube-proxy already drops traffic to unallocated ClusterIPs here.
 */
export async function probeCommand(toolbox: Toolbox, options: { json: boolean }, output: Output): Promise<number> {
  const report = await toolbox.selector.report();
  const { availability, detection, decision, error } = report;
  const discovery = await discoveryReport(toolbox.discovery);
  const kubeProxy = await kubeProxyReport(
    toolbox.runner,
    discovery.source.kind === 'cidrs' ? discovery.source : undefined,
  );
  const events = Object.fromEntries(
    BACKEND_NAMES.map((name) => [name, backendOf(toolbox.backends, name).capabilities.events]),
  );
  if (options.json) {
    output.out(
      json({
        source: discovery.source.source,
        discovery: discovery.source,
        kubernetes: discovery.kubernetes,
        kubeProxy,
        backend: decision?.backend ?? null,
        reason: decision?.reason ?? error?.message,
        warnings: decision?.warnings ?? [],
        requested: toolbox.config.backend,
        backends: availability,
        // Per backend: whether drift is repaired at once from kernel change events (else by the resync).
        changeEvents: events,
        iptablesFlavour: detection,
        ...(error ? { error: error.toJSON() } : {}),
      }),
    );
    return decision ? 0 : 1;
  }
  const lines: string[] = ['Backends on this node:'];
  lines.push(
    table(
      BACKEND_NAMES.map((name) => {
        const probe = availability[name];
        return [`  ${name}`, probe?.available ? 'available' : 'unavailable', probe?.reason ?? 'not probed'];
      }),
    ),
  );
  for (const name of BACKEND_NAMES) {
    for (const check of availability[name]?.checks ?? []) {
      lines.push(`    ${name}: ${check.ok ? 'ok  ' : 'FAIL'} ${check.name}: ${check.detail}`);
    }
    for (const warning of availability[name]?.warnings ?? []) lines.push(`    ${name}: warning: ${warning}`);
    lines.push(`    ${name}: ${driftRepair(name, events[name] === true)}`);
  }
  lines.push('', `iptables flavour in use on this node: ${detection.mode} (${detection.reason})`);
  lines.push(`  evidence: ${JSON.stringify(detection.evidence)}`);
  lines.push('');
  if (decision) {
    lines.push(
      `Chosen backend: ${decision.backend} (requested: ${toolbox.config.backend})`,
      `  why: ${decision.reason}`,
    );
    for (const warning of decision.warnings) lines.push(`  warning: ${warning}`);
  } else {
    lines.push(`No backend can be used: ${error?.message ?? 'unknown'}`);
    if (error?.hint) lines.push(`  hint: ${error.hint}`);
  }
  lines.push('', ...describeDiscovery(discovery));
  if (kubeProxy.notice) lines.push(`Note: ${kubeProxy.notice}`);
  output.out(lines.join('\n'));
  return decision ? 0 : 1;
}
