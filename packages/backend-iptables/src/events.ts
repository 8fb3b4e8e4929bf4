import { type ChangeLineKind, type ChangeStreamSpec, waitForNetlinkSubscription } from '@route-controller/core';
import { FILTER_TABLE, FORWARD_CHAIN } from './constants.js';

/**
 * Kernel change events for iptables-nft: its tables are nf_tables tables, so `nft -j monitor
 * ruleset` reports every change to them, one JSON object per line (`ruleset`, not plain `monitor`,
 * whose trace lines are plain text even with -j). iptables-legacy has nothing like it.
 */
export const NFT_MONITOR_ARGS: readonly string[] = Object.freeze(['-j', 'monitor', 'ruleset']);

/** NETLINK_NETFILTER and its NFNLGRP_NFTABLES group: what the monitor's socket joins. */
const NFTABLES_EVENT_GROUP = { protocol: 12, groups: 0x40 };

/** nft prints this on stdout, then goes on, when the kernel's socket buffer overflowed. */
const LOST_EVENTS = /lost some netlink events/i;

/**
 * Sorts a monitor line by substring checks, no parsing: ours when it touches the ip/ip6 filter
 * table itself (deleted, re-created), its FORWARD chain (an ACCEPT inserted above our jump, a flush,
 * a policy change), or our chain (as chain, rule, or jump target). Needles are quoted: a bare
 * FORWARD would also match kube-proxy's KUBE-FORWARD, which it rewrites on every sync.
 */
export function classifyIptablesMonitorLine(chain: string): (line: string) => ChangeLineKind {
  const table = `"table": ${JSON.stringify(FILTER_TABLE)}`;
  const tableName = `"name": ${JSON.stringify(FILTER_TABLE)}`;
  const forwardRule = `"chain": ${JSON.stringify(FORWARD_CHAIN)}`;
  const forwardChain = `"name": ${JSON.stringify(FORWARD_CHAIN)}`;
  const ours = JSON.stringify(chain);
  return (line) => {
    if (line.startsWith('#')) return LOST_EVENTS.test(line) ? 'lost' : 'ignore';
    if (line === '') return 'ignore';
    if (!(line.includes('"family": "ip", ') || line.includes('"family": "ip6", '))) return 'other';
    if (line.includes('{"table": {')) return line.includes(tableName) ? 'ours' : 'other';
    if (!line.includes(table)) return 'other';
    return line.includes(forwardRule) || line.includes(forwardChain) || line.includes(ours) ? 'ours' : 'other';
  };
}

/** "insert rule ip filter FORWARD", from a monitor line (parsed: lines of ours are rare). */
export function describeIptablesMonitorLine(line: string): string {
  try {
    const event = JSON.parse(line) as Record<string, Record<string, Record<string, unknown>>>;
    const [verb, objects] = Object.entries(event)[0] ?? [];
    const [kind, body] = Object.entries(objects ?? {})[0] ?? [];
    if (verb && kind && body) {
      const where = [body.family, kind === 'table' ? body.name : body.table, body.chain];
      if (kind !== 'table') where.push(body.name);
      return [verb, kind, ...where.filter((part) => typeof part === 'string')].join(' ');
    }
  } catch {
    // not JSON: show it as it came
  }
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}

export function iptablesMonitorSpec(nft: string, chain: string): ChangeStreamSpec {
  return {
    file: nft,
    args: NFT_MONITOR_ARGS,
    classify: classifyIptablesMonitorLine(chain),
    describe: describeIptablesMonitorLine,
    // nft prints nothing when it starts: its socket joining the group is the only sign.
    subscribed: (pid, signal) => waitForNetlinkSubscription(pid, NFTABLES_EVENT_GROUP, signal),
  };
}
