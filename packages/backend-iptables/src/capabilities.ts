import type { BackendCapabilities, BlockAction, IpFamily } from '@route-controller/core';
import type { IptablesMode } from './binaries.js';

/*
 * What the iptables backend can do, on its own subpath (@route-controller/backend-iptables/capabilities)
 * so the agent can name it without loading the backend. The single source of truth: the backend
 * reports it (narrowed to IPv4 when the ip6tables binaries are missing) and the contract suite
 * checks the backend against it.
 */

export const IPTABLES_ACTIONS: readonly BlockAction[] = Object.freeze(['drop', 'reject'] as BlockAction[]);

const families = Object.freeze(['ipv4', 'ipv6'] as IpFamily[]);

const common = {
  families,
  actions: IPTABLES_ACTIONS,
  counters: true,
  comments: true,
  // No per-(source, destination) records: iptables alone has no set a rule fills with per-entry
  // counters (xt_recent keeps one address, no bytes; ipset is another tool and kernel module, outside
  // the chains we own). The rules' per-family counters are what it offers (see README).
  records: false,
} as const;

/**
 * What the backend can do in each mode before a probe has narrowed the families. Only iptables-nft
 * has change events (its tables are nf_tables tables, so `nft monitor` sees them); iptables-legacy
 * changes go through setsockopt, which notifies nobody, so there only the resync finds drift.
 */
export const IPTABLES_CAPABILITIES: Readonly<Record<IptablesMode, BackendCapabilities>> = Object.freeze({
  nft: Object.freeze({ ...common, events: true }),
  legacy: Object.freeze({ ...common, events: false }),
});
