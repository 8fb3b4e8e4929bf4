import type { IptablesFlavourDetection } from '@route-controller/backend-iptables';
import { type Availability, ErrorCodes, RouteControllerError } from '@route-controller/core';
import { BACKEND_NAMES, type BackendChoice, type BackendName } from '../config/settings.js';

export interface BackendDecision {
  readonly backend: BackendName;
  /** One sentence: why this backend. */
  readonly reason: string;
  /** Things the user should know about the choice (a forced backend the probe refused, ...). */
  readonly warnings: readonly string[];
}

/** What the probes found; backends that were not probed are absent. */
export interface ProbeFindings {
  readonly availability: Partial<Record<BackendName, Availability>>;
  readonly detection?: IptablesFlavourDetection;
}

const iptablesOf = (mode: 'nft' | 'legacy'): BackendName => `iptables-${mode}`;

/**
 * The selection policy, pure: native nft when its probe passes; otherwise the iptables flavour
 * the node already uses; an explicit choice always wins, with a warning when the probes disagree.
 */
export function decideBackend(requested: BackendChoice, findings: ProbeFindings): BackendDecision {
  const { availability, detection } = findings;
  if (requested !== 'auto') {
    const warnings: string[] = [];
    const probe = availability[requested];
    if (probe && !probe.available) warnings.push(`${requested} was forced but its probe failed: ${probe.reason}`);
    // A blank node, or one whose iptables could not be read, says nothing about kube-proxy.
    const evidence = detection && detection.basis !== 'blank-node' && detection.basis !== 'unreadable';
    if (evidence && requested.startsWith('iptables-') && iptablesOf(detection.mode) !== requested) {
      warnings.push(
        `${requested} was forced but this node's kube-proxy/kubelet use iptables-${detection.mode} (${detection.reason})`,
      );
    }
    return { backend: requested, reason: `FIREWALL_BACKEND=${requested} was set explicitly`, warnings };
  }
  const nft = availability.nft;
  if (nft?.available)
    return { backend: 'nft', reason: `native nftables works here: ${nft.reason}`, warnings: nft.warnings };
  const nftWhy = nft ? `nft unavailable (${nft.reason})` : 'nft not probed';
  if (detection) {
    const preferred = iptablesOf(detection.mode);
    const probe = availability[preferred];
    if (probe?.available) {
      return {
        backend: preferred,
        reason: `${nftWhy}; the node uses iptables-${detection.mode}: ${detection.reason}`,
        warnings: probe.warnings,
      };
    }
    const other = iptablesOf(detection.mode === 'nft' ? 'legacy' : 'nft');
    const otherProbe = availability[other];
    if (otherProbe?.available) {
      return {
        backend: other,
        reason: `${nftWhy}; ${preferred} unavailable (${probe?.reason ?? 'not probed'}), ${other} works`,
        warnings: [
          `the node uses iptables-${detection.mode} but only ${other} works here; rules still take effect, but check FIREWALL_BACKEND`,
          ...otherProbe.warnings,
        ],
      };
    }
  }
  const reasons = BACKEND_NAMES.map((name) => `${name}: ${availability[name]?.reason ?? 'not probed'}`).join('; ');
  throw new RouteControllerError(ErrorCodes.BackendUnavailable, `no firewall backend works on this node (${reasons})`, {
    hint: unavailableHint(BACKEND_NAMES.flatMap((name) => availability[name]?.failure ?? [])),
    details: { availability },
  });
}

/** The fix for "no backend works", from why the probes failed: permission first, then what is missing. */
function unavailableHint(failures: readonly string[]): string {
  if (failures.includes(ErrorCodes.FirewallPermission)) {
    return 'Run route-controller as root with CAP_NET_ADMIN and CAP_NET_RAW in the host network namespace (the Helm chart does; by hand: sudo, or docker run --network host --cap-add NET_ADMIN --cap-add NET_RAW).';
  }
  if (failures.length > 0 && failures.every((failure) => failure === ErrorCodes.CommandNotFound)) {
    return 'Install nftables (nft >= 1.0.1, with JSON) or iptables (1.8.4 or newer) on the node or in the image.';
  }
  return "See each backend's reason above (route-controller probe shows every check); nftables >= 1.0.1 with JSON, or iptables >= 1.8.4, and CAP_NET_ADMIN are needed.";
}
