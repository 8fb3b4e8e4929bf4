import type { IpFamily } from '@route-controller/core';
import type { IptablesMode } from './binaries.js';
import { familyStateFromSave, holdsFallbackLayout, type Placement } from './chain-state.js';
import { FORWARD_CHAIN, SECURITY_TABLE } from './constants.js';
import { findTable, type SaveDump } from './parse-save.js';

/**
 * Where a drop goes in each family, and how `probe` and `status` say it. The security table is the
 * place; filter FORWARD at position 1 is the fallback for an iptables-legacy kernel without
 * iptable_security (ip6table_security), found out at the first write (the kernel refuses to make the
 * table) and remembered in the kernel by the filter jump's own comment. The reject action lives in
 * filter FORWARD at position 1 whatever the kernel has: REJECT is a filter-table target.
 */

export const SECURITY_PLACEMENT = `${SECURITY_TABLE} table ${FORWARD_CHAIN} (after filter: kube-proxy's REJECT answers first)`;

const FALLBACK_PLACEMENT = `filter ${FORWARD_CHAIN} position 1 (fallback: the kernel has no security table for iptables-legacy)`;

export type Placements = Readonly<Record<IpFamily, Placement>>;

export const SECURITY_EVERYWHERE: Placements = Object.freeze({ ipv4: 'security', ipv6: 'security' });

/**
 * Where a probe finds our objects belong, from its read (reads only: a legacy table is never made
 * to find out). iptables-nft always has the security table (an nf_tables table, no module needed).
 * A legacy dump that holds the security table says the kernel has it; one without it but with our
 * fallback jump says an earlier write found it missing. Otherwise the first write finds out.
 */
export function probedPlacement(mode: IptablesMode, dump: SaveDump, chain: string, family: IpFamily): Placement {
  if (mode === 'nft' || findTable(dump, SECURITY_TABLE)) return 'security';
  return holdsFallbackLayout(familyStateFromSave(dump, family, chain)) ? 'filter' : 'security';
}

/** The probe's `placement` check detail: "security table FORWARD (...)", per family when they differ. */
export function describePlacements(mode: IptablesMode, placements: Placements, families: readonly IpFamily[]): string {
  const describe = (placement: Placement) => (placement === 'security' ? SECURITY_PLACEMENT : FALLBACK_PLACEMENT);
  const shown = families.map((family) => placements[family]);
  const untried =
    mode === 'legacy' && shown.includes('security')
      ? '; a legacy security table the kernel lacks (no iptable_security) sends our rules to filter FORWARD at the first write, with a warning'
      : '';
  const reject = '; with BLOCK_ACTION=reject: filter FORWARD position 1 (REJECT works in filter only)';
  const placed =
    new Set(shown).size <= 1
      ? describe(shown[0] ?? 'security')
      : families.map((family) => `${family}: ${describe(placements[family])}`).join('; ');
  return `${placed}${untried}${reject}`;
}

/** The warning for a family whose rules sit in filter FORWARD: what it costs, and the way out. */
export function fallbackWarning(family: IpFamily): string {
  const modules = family === 'ipv4' ? 'iptable_security' : 'ip6table_security';
  return `the kernel has no ${family} security table for iptables-legacy (no ${modules}), so route-controller's ${family} rules sit at position 1 of filter FORWARD instead, before kube-proxy's REJECT: a connection to a Service with no endpoints hangs instead of being refused at once. To have them after filter, load ${modules} and restart the agent (it tries the security table again at start), or use the nft backend (FIREWALL_BACKEND=nft)`;
}
