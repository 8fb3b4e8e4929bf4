import {
  type Discovery,
  type DiscoveryChain,
  ErrorCodes,
  LazySource,
  type ServiceCidrSource,
  type SkippedSource,
  toRouteControllerError,
} from '@route-controller/core';
// Types only: the Kubernetes code is loaded by the discovery chain, and only when it gets there.
import type { KubernetesSourceStatus } from '../discovery/sources.js';

/** Where the Service CIDRs come from now, as this process resolves the discovery chain. */
export interface SourceStatus {
  /** The source that answers: env, servicecidr, kubeadm, node-args, dry-run, or none. */
  readonly source: string;
  readonly kind: Discovery['kind'];
  readonly detail: string;
  readonly ipv4: readonly string[];
  readonly ipv6: readonly string[];
  /** Sources asked first that had nothing to say, and why. */
  readonly skipped: readonly SkippedSource[];
  readonly error?: { readonly code: string; readonly message: string; readonly hint?: string };
}

export interface DiscoveryReport {
  readonly source: SourceStatus;
  /** The API connections of the Kubernetes sources the chain loaded (none with SERVICE_CIDRS). */
  readonly kubernetes: readonly KubernetesSourceStatus[];
}

/** Resolves the chain once (loading the Kubernetes sources only if the chain gets to them), then closes it. */
export async function discoveryReport(chain: DiscoveryChain): Promise<DiscoveryReport> {
  try {
    let discovery: Discovery;
    try {
      discovery = await chain.resolve();
    } catch (error) {
      const coded = toRouteControllerError(error, ErrorCodes.SourceFailed, 'Service CIDR discovery failed');
      discovery = { kind: 'unavailable', source: 'unknown', detail: coded.message, error: coded, skipped: [] };
    }
    // Read before close(): closing turns the connection states to "stopped".
    return { source: toSourceStatus(discovery), kubernetes: kubernetesStatuses(chain.sources) };
  } finally {
    await chain.close();
  }
}

function toSourceStatus(discovery: Discovery): SourceStatus {
  switch (discovery.kind) {
    case 'cidrs':
      return {
        source: discovery.source,
        kind: 'cidrs',
        detail: discovery.detail,
        ipv4: discovery.cidrs.ipv4.map((c) => c.text),
        ipv6: discovery.cidrs.ipv6.map((c) => c.text),
        skipped: discovery.skipped,
      };
    case 'none':
      return {
        source: 'none',
        kind: 'none',
        detail: discovery.skipped.map((s) => `${s.source}: ${s.detail}`).join('; '),
        ipv4: [],
        ipv6: [],
        skipped: discovery.skipped,
      };
    case 'unavailable':
      return {
        source: discovery.source,
        kind: 'unavailable',
        detail: discovery.detail,
        ipv4: [],
        ipv6: [],
        skipped: discovery.skipped,
        error: {
          code: discovery.error.code,
          message: discovery.error.message,
          ...(discovery.error.hint ? { hint: discovery.error.hint } : {}),
        },
      };
  }
}

/** The loaded Kubernetes sources' connections (a source the chain never reached is not loaded for it). */
function kubernetesStatuses(sources: readonly ServiceCidrSource[]): KubernetesSourceStatus[] {
  const statuses: KubernetesSourceStatus[] = [];
  for (const source of sources) {
    const inner = source instanceof LazySource ? source.instance : source;
    if (inner && hasStatuses(inner)) statuses.push(...inner.statuses());
  }
  return statuses;
}

function hasStatuses(
  source: ServiceCidrSource,
): source is ServiceCidrSource & { statuses(): readonly KubernetesSourceStatus[] } {
  return typeof (source as { statuses?: unknown }).statuses === 'function';
}

/** Lines for the text output: the answer, the skipped sources with their reasons, the API connections. */
export function describeDiscovery(report: DiscoveryReport): string[] {
  const { source, kubernetes } = report;
  const lines: string[] = [];
  if (source.kind === 'cidrs') {
    lines.push(
      `Service CIDRs: ${[...source.ipv4, ...source.ipv6].join(', ')} (from ${source.source}: ${source.detail})`,
    );
    for (const skipped of source.skipped) lines.push(`  skipped ${skipped.source}: ${skipped.detail}`);
  } else if (source.kind === 'none') {
    lines.push('Service CIDRs: none found');
    for (const skipped of source.skipped) lines.push(`  ${skipped.source}: ${skipped.detail}`);
  } else {
    lines.push(
      `Service CIDRs: source ${source.source} unavailable (${source.detail}); the agent keeps the rules in place`,
    );
    for (const skipped of source.skipped) lines.push(`  skipped ${skipped.source}: ${skipped.detail}`);
    if (source.error?.hint) lines.push(`  hint: ${source.error.hint}`);
  }
  for (const status of kubernetes) {
    const where = status.server ? ` at ${status.server}` : '';
    const what = status.resource ? ` ${status.resource}` : '';
    const objects = status.synced
      ? `${status.objects} object(s)${status.terminating ? `, ${status.terminating} terminating` : ''}${status.resourceVersion ? `, resourceVersion ${status.resourceVersion}` : ''}`
      : 'no answer yet';
    lines.push(`Kubernetes API${where}, ${status.source}${what}: ${status.state} (${objects})`);
    if (status.lastError) lines.push(`  last error: ${status.lastError}`);
  }
  return lines;
}
