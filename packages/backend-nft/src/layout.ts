import type { IpFamily } from '@route-controller/core';

/** The one table we own. `inet` so a single transaction covers both families (see README). */
export const NFT_TABLE = 'route-controller';
export const NFT_FAMILY = 'inet';
export const NFT_CHAIN = 'forward';

/**
 * Our base chain's priority on the forward hook: `filter + 20`. Netfilter runs every base chain of
 * the hook in priority order; an ACCEPT ends only its own chain, a DROP or REJECT ends the packet.
 * After `filter` (0), kube-proxy's REJECT for a Service without endpoints (iptables FORWARD or its
 * nftables table at `filter - 10`) answers first, as it does without us, while no ACCEPT there (the
 * CNI's, Docker's, kube-proxy's) can let a stale packet past us. Not `filter + 10`, firewalld's: at
 * one priority the order of two chains is their registration order, which nobody controls. Before
 * `security` (50), where iptables' security table and SELinux labelling run.
 */
export const NFT_CHAIN_PRIORITY = 20;

/** 0.1.0's priority (`filter`): a chain there runs before kube-proxy's REJECT; apply replaces it. */
export const OLD_NFT_CHAIN_PRIORITY = 0;

/**
 * Written on every object nft's JSON parser accepts a comment for. nft 1.0.6 keeps it only on
 * rules; newer releases also store it on the table, chain and sets. Never required on read.
 */
export const OWNER_COMMENT = 'route-controller: drops forwarded packets to Service CIDRs';

/** Names and types of our objects for one address family. */
export interface FamilyLayout {
  readonly family: IpFamily;
  readonly set: string;
  /** nft set key type. */
  readonly type: 'ipv4_addr' | 'ipv6_addr';
  /** Payload protocol whose daddr the rule matches. */
  readonly protocol: 'ip' | 'ip6';
  /** ICMP flavour for `reject with ... admin-prohibited`. */
  readonly rejectType: 'icmp' | 'icmpv6';
  /** The dynamic set of (source . destination) pairs that hit the rule (with records on). */
  readonly recordSet: string;
  /** The regular chain the rule jumps to (goto) with records on: it records the pair, then blocks. */
  readonly recordChain: string;
}

export const FAMILY_LAYOUTS: Readonly<Record<IpFamily, FamilyLayout>> = {
  ipv4: {
    family: 'ipv4',
    set: 'service-cidrs-v4',
    type: 'ipv4_addr',
    protocol: 'ip',
    rejectType: 'icmp',
    recordSet: 'stale-v4',
    recordChain: 'blocked-v4',
  },
  ipv6: {
    family: 'ipv6',
    set: 'service-cidrs-v6',
    type: 'ipv6_addr',
    protocol: 'ip6',
    rejectType: 'icmpv6',
    recordSet: 'stale-v6',
    recordChain: 'blocked-v6',
  },
};

/**
 * The record sets' bound and window. 4,096 pairs per family: about 130 bytes of kernel memory per
 * pair plus 16 per CPU for its counter (both sets full: about 1.3 MiB on 2 CPUs), and a listing of
 * both full sets is about 1 MB of JSON that nft 1.0.6 prints in about 0.1 s; a scan of a whole
 * Service range cannot grow it further. When a set is full, new pairs go unrecorded until older
 * ones expire; their packets are still blocked and counted. (Without a size the kernel takes 65535.)
 */
export const RECORD_SET_SIZE = 4096;
/** A pair is forgotten this long after its last packet (`update` re-arms the timeout per packet). */
export const RECORD_TIMEOUT_SECONDS = 600;

export interface RecordsLayout {
  readonly size: number;
  readonly timeoutSeconds: number;
}

/** Everything that decides what our table looks like: its name and the families it serves. */
export interface NftLayout {
  readonly table: string;
  /** Families that get a set and a rule, in this order. */
  readonly families: readonly IpFamily[];
  /** Record sets and chains (who hit the rule), or undefined for the plain rule alone. */
  readonly records?: RecordsLayout | undefined;
}

export const DEFAULT_RECORDS: RecordsLayout = Object.freeze({
  size: RECORD_SET_SIZE,
  timeoutSeconds: RECORD_TIMEOUT_SECONDS,
});

export const DEFAULT_LAYOUT: NftLayout = Object.freeze({
  table: NFT_TABLE,
  families: Object.freeze(['ipv4', 'ipv6'] as IpFamily[]),
  records: DEFAULT_RECORDS,
});

export function familyLayouts(layout: NftLayout): FamilyLayout[] {
  return layout.families.map((family) => FAMILY_LAYOUTS[family]);
}
