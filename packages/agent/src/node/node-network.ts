import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';

/** An address configured on one of the node's interfaces. */
export interface NodeAddress {
  readonly interface: string;
  readonly address: string;
}

export interface NodeNetwork {
  readonly addresses: readonly NodeAddress[];
  /** Next hops of the default routes, IPv4 and IPv6. */
  readonly gateways: readonly string[];
}

/** Reads the network of the namespace this process runs in (the node's, with hostNetwork). */
export interface NodeNetworkReader {
  read(): Promise<NodeNetwork>;
}

/**
 * Interfaces whose addresses are Service IPs by design: kube-proxy's IPVS mode binds every
 * ClusterIP to kube-ipvs0, kube-router uses kube-dummy-if, NodeLocal DNSCache binds the kube-dns
 * ClusterIP to nodelocaldns. A Service CIDR containing them is expected, not dangerous.
 */
export const SERVICE_IP_INTERFACES: readonly string[] = ['kube-ipvs0', 'kube-dummy-if', 'nodelocaldns'];

/**
 * Reads addresses from the OS and default gateways from /proc/net (no iproute2 needed, so the
 * container image stays small).
 */
export class ProcNodeNetworkReader implements NodeNetworkReader {
  constructor(private readonly procNet = '/proc/net') {}

  async read(): Promise<NodeNetwork> {
    const addresses: NodeAddress[] = [];
    for (const [name, infos] of Object.entries(networkInterfaces())) {
      for (const info of infos ?? []) {
        if (info.internal || SERVICE_IP_INTERFACES.includes(name)) continue;
        addresses.push({ interface: name, address: info.address });
      }
    }
    const [v4, v6] = await Promise.all([
      readFile(`${this.procNet}/route`, 'utf8').catch(() => ''),
      readFile(`${this.procNet}/ipv6_route`, 'utf8').catch(() => ''),
    ]);
    return { addresses, gateways: [...parseIpv4DefaultGateways(v4), ...parseIpv6DefaultGateways(v6)] };
  }
}

/** /proc/net/route: hex little-endian fields; a default route has destination and mask 0. */
export function parseIpv4DefaultGateways(text: string): string[] {
  const gateways: string[] = [];
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const [, destination, gateway, , , , , mask] = fields;
    if (destination !== '00000000' || mask !== '00000000' || !gateway || gateway === '00000000') continue;
    const bytes = gateway.match(/../g)?.map((byte) => Number.parseInt(byte, 16)) ?? [];
    gateways.push(bytes.reverse().join('.'));
  }
  return gateways;
}

/** /proc/net/ipv6_route: destination ::/0 with a non-zero next hop. */
export function parseIpv6DefaultGateways(text: string): string[] {
  const gateways: string[] = [];
  for (const line of text.split('\n')) {
    const [destination, prefix, , , nextHop] = line.trim().split(/\s+/);
    if (destination !== '0'.repeat(32) || prefix !== '00' || !nextHop || /^0+$/.test(nextHop)) continue;
    const groups = nextHop.match(/.{4}/g)?.map((group) => group.replace(/^0{1,3}/, '')) ?? [];
    gateways.push(compressIpv6(groups.join(':')));
  }
  return [...new Set(gateways)];
}

function compressIpv6(full: string): string {
  // Longest run of zero groups becomes "::" (RFC 5952).
  const groups = full.split(':');
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== '0') {
      i += 1;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j += 1;
    if (j - i > bestLength && j - i > 1) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return groups.join(':');
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLength).join(':')}`;
}
