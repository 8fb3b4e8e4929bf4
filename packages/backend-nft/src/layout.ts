import type { IpFamily } from '@route-controller/core';

/** The one table we own. `inet` so a single transaction covers both families (see README). */
export const NFT_TABLE = 'route-controller';
export const NFT_FAMILY = 'inet';
export const NFT_CHAIN = 'forward';

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
}

export const FAMILY_LAYOUTS: Readonly<Record<IpFamily, FamilyLayout>> = {
  ipv4: { family: 'ipv4', set: 'service-cidrs-v4', type: 'ipv4_addr', protocol: 'ip', rejectType: 'icmp' },
  ipv6: { family: 'ipv6', set: 'service-cidrs-v6', type: 'ipv6_addr', protocol: 'ip6', rejectType: 'icmpv6' },
};

/** Everything that decides what our table looks like: its name and the families it serves. */
export interface NftLayout {
  readonly table: string;
  /** Families that get a set and a rule, in this order. */
  readonly families: readonly IpFamily[];
}

export const DEFAULT_LAYOUT: NftLayout = Object.freeze({
  table: NFT_TABLE,
  families: Object.freeze(['ipv4', 'ipv6'] as IpFamily[]),
});

export function familyLayouts(layout: NftLayout): FamilyLayout[] {
  return layout.families.map((family) => FAMILY_LAYOUTS[family]);
}
