import type { BackendCapabilities, BlockAction, IpFamily } from '@route-controller/core';

/*
 * What the iptables backend can do, on its own subpath (@route-controller/backend-iptables/capabilities)
 * so the agent can name it without loading the backend. The single source of truth: the backend
 * reports it (narrowed to IPv4 when the ip6tables binaries are missing) and the contract suite
 * checks the backend against it.
 */

export const IPTABLES_ACTIONS: readonly BlockAction[] = Object.freeze(['drop', 'reject'] as BlockAction[]);

/** What the backend can do before a probe has narrowed the families. */
export const IPTABLES_CAPABILITIES: BackendCapabilities = Object.freeze({
  families: Object.freeze(['ipv4', 'ipv6'] as IpFamily[]),
  actions: IPTABLES_ACTIONS,
  counters: true,
  comments: true,
  // No per-(source, destination) records: iptables alone has no set a rule fills with per-entry
  // counters (xt_recent keeps one address, no bytes; ipset is another tool and kernel module, outside
  // the chains we own). The rules' per-family counters are what it offers (see README).
  records: false,
});
