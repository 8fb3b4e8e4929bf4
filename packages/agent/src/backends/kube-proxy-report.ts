import { type KubeProxyDrops, readKubeProxyDrops } from '@route-controller/backend-nft';
import { type CommandRunner, cidrContains, parseCidr } from '@route-controller/core';

/** kube-proxy's own drop of unallocated ClusterIPs on this node, and what it means for ours. */
export interface KubeProxyReport {
  readonly ipv4: readonly string[];
  readonly ipv6: readonly string[];
  /** Every discovered Service CIDR lies inside kube-proxy's (undefined: nothing discovered to compare). */
  readonly coversDiscovered?: boolean;
  /** One sentence for logs and output; undefined when kube-proxy has no such rule here. */
  readonly notice?: string;
  /** Why a family could not be read, for --json. */
  readonly unknown?: readonly string[];
}

/** Reads kube-proxy's cluster-ips-check chains (nftables mode) and says whether it covers the node. */
export async function kubeProxyReport(
  runner: CommandRunner,
  discovered: { readonly ipv4: readonly string[]; readonly ipv6: readonly string[] } | undefined,
): Promise<KubeProxyReport> {
  const drops: KubeProxyDrops = await readKubeProxyDrops(runner);
  const ipv4 = drops.ipv4.kind === 'drops' ? drops.ipv4.cidrs : [];
  const ipv6 = drops.ipv6.kind === 'drops' ? drops.ipv6.cidrs : [];
  const unknown = [drops.ipv4, drops.ipv6].flatMap((d) => (d.kind === 'unknown' ? [d.detail] : []));
  const theirs = [...ipv4, ...ipv6];
  if (theirs.length === 0) return { ipv4, ipv6, ...(unknown.length ? { unknown } : {}) };
  const ours = discovered ? [...discovered.ipv4, ...discovered.ipv6] : [];
  const coversDiscovered = ours.length > 0 ? ours.every((cidr) => covered(cidr, theirs)) : undefined;
  const coverage =
    coversDiscovered === undefined
      ? ''
      : coversDiscovered
        ? ', every discovered Service CIDR included'
        : `, but not all of ${ours.join(', ')}`;
  const notice = `kube-proxy (nftables mode) already drops forwarded packets to unallocated ClusterIPs in ${theirs.join(', ')} (chain cluster-ips-check of table kube-proxy)${coverage}; route-controller installs its own rules all the same, as kube-proxy's may lag behind a change or be missing on other nodes`;
  return {
    ipv4,
    ipv6,
    ...(coversDiscovered === undefined ? {} : { coversDiscovered }),
    notice,
    ...(unknown.length ? { unknown } : {}),
  };
}

function covered(cidr: string, within: readonly string[]): boolean {
  try {
    const inner = parseCidr(cidr).cidr;
    return within.some((outer) => {
      try {
        return cidrContains(parseCidr(outer).cidr, inner);
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}
