import { type CommandRunner, ErrorCodes, errorMessage, type IpFamily } from '@route-controller/core';
import { classifyNftStderr, firstErrorLine } from './classify-error.js';
import { parseListing } from './parse.js';

/**
 * kube-proxy in nftables mode (Kubernetes 1.30+, with the ServiceCIDR informer) drops forwarded
 * traffic to unallocated ClusterIPs itself: table ip|ip6 kube-proxy, chain cluster-ips-check,
 * rule `ip daddr { <service CIDRs> } drop`. Reading that one chain (never the ruleset) tells
 * whether a node is already covered; route-controller installs its own rules all the same.
 */

export const KUBE_PROXY_TABLE = 'kube-proxy';
export const KUBE_PROXY_CHECK_CHAIN = 'cluster-ips-check';

const NFT_FAMILIES: Readonly<Record<IpFamily, 'ip' | 'ip6'>> = { ipv4: 'ip', ipv6: 'ip6' };

export type KubeProxyFamilyDrop =
  /** The chain is there with a drop of destination CIDRs: these. */
  | { readonly kind: 'drops'; readonly cidrs: readonly string[] }
  /** No such table or chain, or the chain has no such rule. */
  | { readonly kind: 'absent'; readonly detail: string }
  /** It could not be read (no nft, no permission, an output we do not know). */
  | { readonly kind: 'unknown'; readonly detail: string };

export interface KubeProxyDrops {
  readonly ipv4: KubeProxyFamilyDrop;
  readonly ipv6: KubeProxyFamilyDrop;
}

/** `nft -j list chain <ip|ip6> kube-proxy cluster-ips-check` for each family. */
export async function readKubeProxyDrops(
  runner: CommandRunner,
  options: { readonly nft?: string; readonly signal?: AbortSignal } = {},
): Promise<KubeProxyDrops> {
  const read = async (family: IpFamily): Promise<KubeProxyFamilyDrop> => {
    const args = ['-j', 'list', 'chain', NFT_FAMILIES[family], KUBE_PROXY_TABLE, KUBE_PROXY_CHECK_CHAIN];
    try {
      const result = await runner.run({
        file: options.nft ?? 'nft',
        args,
        timeoutMs: 10_000,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      if (result.exitCode !== 0) {
        const { code } = classifyNftStderr(result.stderr);
        return code === ErrorCodes.FirewallNotFound
          ? { kind: 'absent', detail: `no chain ${NFT_FAMILIES[family]} ${KUBE_PROXY_TABLE} ${KUBE_PROXY_CHECK_CHAIN}` }
          : { kind: 'unknown', detail: `nft could not list it: ${firstErrorLine(result.stderr)}` };
      }
      const cidrs = unallocatedDropCidrs(result.stdout, family);
      return cidrs.length > 0
        ? { kind: 'drops', cidrs }
        : { kind: 'absent', detail: `chain ${KUBE_PROXY_CHECK_CHAIN} has no drop of Service CIDRs` };
    } catch (error) {
      return { kind: 'unknown', detail: errorMessage(error) };
    }
  };
  const [ipv4, ipv6] = await Promise.all([read('ipv4'), read('ipv6')]);
  return { ipv4, ipv6 };
}

/**
 * The CIDRs of the chain's rules that match the destination address against a prefix (or a set
 * of prefixes) and end in drop. `nft list` prints one CIDR without braces, several as a set; the
 * comment "Drop traffic to unallocated ClusterIPs" is not relied on (it is only a comment).
 */
export function unallocatedDropCidrs(stdout: string, family: IpFamily): string[] {
  const protocol = NFT_FAMILIES[family];
  const cidrs: string[] = [];
  for (const entry of parseListing(stdout)) {
    const rule = entry.rule as { chain?: unknown; expr?: unknown } | undefined;
    if (!rule || rule.chain !== KUBE_PROXY_CHECK_CHAIN || !Array.isArray(rule.expr)) continue;
    const expr = rule.expr as Record<string, unknown>[];
    if (!expr.some((statement) => statement && 'drop' in statement)) continue;
    for (const statement of expr) {
      const match = statement?.match as { op?: unknown; left?: unknown; right?: unknown } | undefined;
      const payload = (match?.left as { payload?: { protocol?: unknown; field?: unknown } } | undefined)?.payload;
      if (
        !match ||
        (match.op !== '==' && match.op !== 'in') ||
        payload?.protocol !== protocol ||
        payload.field !== 'daddr'
      ) {
        continue;
      }
      cidrs.push(...prefixes(match.right));
    }
  }
  return cidrs;
}

/** {"prefix": {...}}, {"set": [...]} of them, or a bare address; "@set" references are not CIDRs. */
function prefixes(right: unknown): string[] {
  if (typeof right === 'string') return right.startsWith('@') ? [] : [right];
  if (typeof right !== 'object' || right === null) return [];
  const record = right as { prefix?: { addr?: unknown; len?: unknown }; set?: unknown };
  if (record.prefix && typeof record.prefix.addr === 'string' && typeof record.prefix.len === 'number') {
    return [`${record.prefix.addr}/${record.prefix.len}`];
  }
  if (Array.isArray(record.set)) return record.set.flatMap((element) => prefixes(element));
  return [];
}
