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

/**
 * What the backend can do in each mode before a probe has narrowed the families. Only iptables-nft
 * has change events (its tables are nf_tables tables, so `nft monitor` sees them); iptables-legacy
 * changes go through setsockopt, which notifies nobody, so there only the resync finds drift.
 */
export const IPTABLES_CAPABILITIES: Readonly<Record<IptablesMode, BackendCapabilities>> = Object.freeze({
  nft: Object.freeze({ families, actions: IPTABLES_ACTIONS, counters: true, comments: true, events: true }),
  legacy: Object.freeze({ families, actions: IPTABLES_ACTIONS, counters: true, comments: true, events: false }),
});
