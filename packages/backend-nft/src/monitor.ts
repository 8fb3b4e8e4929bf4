import { type ChangeLineKind, type ChangeStreamSpec, waitForNetlinkSubscription } from '@route-controller/core';

/**
 * Kernel change events from `nft -j monitor ruleset`: one JSON object per line per change to any
 * nf_tables table. Both backends use it: the nft backend for its own table, the iptables backend in
 * nft mode for iptables-nft's tables (they are nf_tables tables too). Each passes only the test that
 * tells its own lines from the rest; everything else about the monitor is here, once.
 *
 * `ruleset`, not plain `monitor`: plain monitor also joins the trace group, whose lines are plain
 * text even with -j, several per traced packet.
 */
export const NFT_MONITOR_ARGS: readonly string[] = Object.freeze(['-j', 'monitor', 'ruleset']);

/** NETLINK_NETFILTER and its NFNLGRP_NFTABLES group: what the monitor's socket joins. */
export const NFTABLES_EVENT_GROUP = Object.freeze({ protocol: 12, groups: 0x40 });

/** nft prints this on stdout, then goes on, when the kernel's socket buffer overflowed. */
const LOST_EVENTS = /lost some netlink events/i;

/**
 * True when an event line (a JSON object, never a comment or blank) is about our objects. Called for
 * nearly every line on a busy node, which are another tool's: substring checks, no parsing.
 */
export type MonitorLineTest = (line: string) => boolean;

/** Sorts a monitor line: comments (lost events or noise), blank lines, then `isOurs` for the rest. */
export function classifyMonitorLine(isOurs: MonitorLineTest): (line: string) => ChangeLineKind {
  return (line) => {
    if (line.startsWith('#')) return LOST_EVENTS.test(line) ? 'lost' : 'ignore';
    if (line === '') return 'ignore';
    return isOurs(line) ? 'ours' : 'other';
  };
}

/**
 * "delete table inet route-controller", "insert rule ip security FORWARD", from a monitor line
 * (parsed: lines of ours are rare).
 */
export function describeMonitorLine(line: string): string {
  try {
    const event = JSON.parse(line) as Record<string, Record<string, Record<string, unknown>>>;
    const [verb, objects] = Object.entries(event)[0] ?? [];
    const [kind, body] = Object.entries(objects ?? {})[0] ?? [];
    if (verb && kind && body) {
      const table = kind === 'table' ? body.name : body.table;
      const where = [body.family, table, body.chain, kind === 'table' ? undefined : body.name];
      return [verb, kind, ...where.filter((part) => typeof part === 'string')].join(' ');
    }
  } catch {
    // not JSON: show it as it came
  }
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}

/** The monitor: its command, how to sort and describe its lines, and how to tell it subscribed. */
export function nftMonitorSpec(nft: string, isOurs: MonitorLineTest): ChangeStreamSpec {
  return {
    file: nft,
    args: NFT_MONITOR_ARGS,
    classify: classifyMonitorLine(isOurs),
    describe: describeMonitorLine,
    // nft prints nothing when it starts: its socket joining the group is the only sign.
    subscribed: (pid, signal) => waitForNetlinkSubscription(pid, NFTABLES_EVENT_GROUP, signal),
  };
}
