import {
  type BlockAction,
  type DesiredState,
  type Discovery,
  desiredState,
  type IpFamily,
  NO_SERVICE_CIDRS,
  type ServiceCidrs,
} from '@route-controller/core';

export type DesiredOutcome =
  /** Apply this. */
  | {
      readonly kind: 'apply';
      readonly desired: DesiredState;
      readonly source: string;
      readonly dropped: readonly IpFamily[];
    }
  /** No source can say now: keep whatever is installed (fail-static). */
  | { readonly kind: 'keep'; readonly reason: string };

/**
 * Turns a discovery result into the state to apply, restricted to the families the backend can
 * enforce. No CIDRs anywhere means no rules; an unavailable source means keep what is there.
 */
export function desiredFromDiscovery(
  discovery: Discovery,
  action: BlockAction,
  families: readonly IpFamily[],
): DesiredOutcome {
  switch (discovery.kind) {
    case 'cidrs': {
      const dropped = (['ipv4', 'ipv6'] as const).filter((f) => !families.includes(f) && discovery.cidrs[f].length > 0);
      const cidrs: ServiceCidrs = {
        ipv4: families.includes('ipv4') ? discovery.cidrs.ipv4 : [],
        ipv6: families.includes('ipv6') ? discovery.cidrs.ipv6 : [],
      };
      return { kind: 'apply', desired: desiredState(cidrs, action), source: discovery.source, dropped };
    }
    case 'none':
      return { kind: 'apply', desired: desiredState(NO_SERVICE_CIDRS, action), source: 'none', dropped: [] };
    case 'unavailable':
      return { kind: 'keep', reason: `${discovery.source}: ${discovery.detail}` };
  }
}
