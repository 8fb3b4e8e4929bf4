import type { IpFamily } from '@route-controller/core';

export type IptablesMode = 'legacy' | 'nft';
export const IPTABLES_MODES: readonly IptablesMode[] = ['legacy', 'nft'];

/** The three programs we use per family: the CLI (only for --version), save and restore. */
export type IptablesTool = 'iptables' | 'save' | 'restore';
export const IPTABLES_TOOLS: readonly IptablesTool[] = ['iptables', 'save', 'restore'];

/**
 * The explicit per-flavour names ("iptables-nft-save", "ip6tables-legacy-restore"), never the bare
 * "iptables": that one follows the distribution's alternatives, and may be the other flavour.
 */
export function iptablesBinary(mode: IptablesMode, family: IpFamily, tool: IptablesTool): string {
  const base = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${mode}`;
  return tool === 'iptables' ? base : `${base}-${tool}`;
}

/** True for the binaries that write (what tests count as a write). */
export function isRestoreBinary(file: string): boolean {
  return /^ip6?tables-(legacy|nft)-restore$/.test(file);
}
