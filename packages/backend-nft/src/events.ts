import { type ChangeLineKind, type ChangeStreamSpec, waitForNetlinkSubscription } from '@route-controller/core';
import { NFT_FAMILY } from './layout.js';

/**
 * Kernel change events for our table, from `nft -j monitor ruleset`: one JSON object per line per
 * event. `ruleset`, not plain `monitor`: plain monitor also joins the trace group, whose lines are
 * plain text even with -j, several per traced packet.
 */
export const NFT_MONITOR_ARGS: readonly string[] = Object.freeze(['-j', 'monitor', 'ruleset']);

/** NETLINK_NETFILTER and its NFNLGRP_NFTABLES group: what the monitor's socket joins. */
export const NFTABLES_EVENT_GROUP = Object.freeze({ protocol: 12, groups: 0x40 });

/** nft prints this on stdout, then goes on, when the kernel's socket buffer overflowed. */
const LOST_EVENTS = /lost some netlink events/i;

/**
 * Sorts a monitor line with two substring checks, no parsing: nearly every line on a busy node is
 * another tool's. Two separate needles, because sets print `name` before `table` while rules,
 * chains and elements print `table` first; quoted, so a longer name containing ours does not match.
 * Matching a foreign object that mentions our name costs one read, nothing worse.
 */
export function classifyNftMonitorLine(table: string): (line: string) => ChangeLineKind {
  const family = `"family": ${JSON.stringify(NFT_FAMILY)}`;
  const name = JSON.stringify(table);
  return (line) => {
    if (line.startsWith('#')) return LOST_EVENTS.test(line) ? 'lost' : 'ignore';
    if (line === '') return 'ignore';
    return line.includes(family) && line.includes(name) ? 'ours' : 'other';
  };
}

/** "delete table inet route-controller", from a monitor line (parsed: lines of ours are rare). */
export function describeNftMonitorLine(line: string): string {
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

/** The monitor for our table: its command, how to read its lines, and how to tell it subscribed. */
export function nftMonitorSpec(nft: string, table: string): ChangeStreamSpec {
  return {
    file: nft,
    args: NFT_MONITOR_ARGS,
    classify: classifyNftMonitorLine(table),
    describe: describeNftMonitorLine,
    // nft prints nothing when it starts: its socket joining the group is the only sign.
    subscribed: (pid, signal) => waitForNetlinkSubscription(pid, NFTABLES_EVENT_GROUP, signal),
  };
}
