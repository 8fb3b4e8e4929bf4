import {
  cidrContainsAddress,
  ErrorCodes,
  IP_FAMILIES,
  RouteControllerError,
  type ServiceCidrs,
} from '@route-controller/core';
import type { NodeNetwork } from './node-network.js';

/**
 * Refuses Service CIDRs that contain one of the node's own addresses or its default gateway:
 * such a range cannot be a Service range, and dropping it would cut pods off from the network.
 */
export function assertSafeServiceCidrs(cidrs: ServiceCidrs, network: NodeNetwork): void {
  const conflicts: string[] = [];
  for (const family of IP_FAMILIES) {
    for (const cidr of cidrs[family]) {
      for (const { interface: name, address } of network.addresses) {
        if (cidrContainsAddress(cidr, address))
          conflicts.push(`${cidr.text} contains ${address}, an address of ${name}`);
      }
      for (const gateway of network.gateways) {
        if (cidrContainsAddress(cidr, gateway)) conflicts.push(`${cidr.text} contains ${gateway}, the default gateway`);
      }
    }
  }
  if (conflicts.length > 0) {
    throw new RouteControllerError(ErrorCodes.UnsafeCidr, `refusing unsafe Service CIDRs: ${conflicts.join('; ')}`, {
      hint: "Set SERVICE_CIDRS to the cluster's Service range (kubectl get servicecidrs), not the node or pod network.",
      details: { conflicts },
    });
  }
}
