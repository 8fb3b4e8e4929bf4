import type { MonitorLineTest } from '@route-controller/backend-nft/monitor';
import { FORWARD_CHAIN, type IptablesTable } from './constants.js';

/**
 * Which `nft -j monitor ruleset` lines are about iptables-nft's objects of ours (its tables are
 * nf_tables tables, so the nft monitor reports every change to them; iptables-legacy has nothing like
 * it). Ours: the ip/ip6 table our objects live in (security; filter in the fallback) deleted or made
 * anew, its FORWARD chain changed (an ACCEPT inserted above our jump, a flush, a policy change), or
 * our chain (as chain, rule, or jump target). `tables` is asked per line, so a fallback decided
 * while the stream runs is followed at once. Substring checks, no parsing; needles are quoted: a bare
 * FORWARD would also match kube-proxy's KUBE-FORWARD, which it rewrites on every sync.
 */
export function isIptablesLine(chain: string, tables: () => readonly IptablesTable[]): MonitorLineTest {
  const forwardRule = `"chain": ${JSON.stringify(FORWARD_CHAIN)}`;
  const forwardChain = `"name": ${JSON.stringify(FORWARD_CHAIN)}`;
  const ours = JSON.stringify(chain);
  return (line) => {
    if (!(line.includes('"family": "ip", ') || line.includes('"family": "ip6", '))) return false;
    const names = tables();
    if (line.includes('{"table": {')) return names.some((table) => line.includes(`"name": ${JSON.stringify(table)}`));
    if (!names.some((table) => line.includes(`"table": ${JSON.stringify(table)}`))) return false;
    return line.includes(forwardRule) || line.includes(forwardChain) || line.includes(ours);
  };
}
