import { ErrorCodes, type IpFamily, RouteControllerError } from '@route-controller/core';

/** Our chain, in the table where our jump lives. Everything else we write refers to it. */
export const IPTABLES_CHAIN = 'ROUTE-CONTROLLER';

/** On the jump from FORWARD: names us for anyone reading `iptables-save`. */
export const JUMP_COMMENT = 'route-controller: block forwarded traffic to Service CIDRs';
/**
 * On our jump in filter FORWARD (the fallback, and the reject action): the kernel itself then says
 * which layout is meant, so every later reader (a restarted agent, `status`, `probe`) tells it from
 * 0.1.0's jump, which carried JUMP_COMMENT in filter FORWARD and is always replaced.
 */
export const FILTER_JUMP_COMMENT = 'route-controller: block forwarded traffic to Service CIDRs (filter)';
/** On each rule of our chain. */
export const RULE_COMMENT = 'route-controller: Service CIDR';

/**
 * Where our chain and its jump live. `security`: netfilter runs that table's FORWARD after every
 * chain of filter (priority 50 for iptables-legacy, 150 for iptables-nft, against filter's 0), so
 * kube-proxy's REJECT for a Service without endpoints answers first and no ACCEPT in filter can let a
 * stale packet past us. `filter`, at position 1 of FORWARD, before the ACCEPTs there but also before
 * kube-proxy's REJECT: the fallback where the kernel has no security table for iptables-legacy (no
 * iptable_security), and the reject action's place, as the REJECT target works in filter only (an
 * endpoint-less Service is then refused by us at once, with "administratively prohibited").
 */
export type IptablesTable = 'security' | 'filter';
export const SECURITY_TABLE: IptablesTable = 'security';
export const FILTER_TABLE: IptablesTable = 'filter';
/** Every table we read and may write, the preferred placement first. */
export const OUR_TABLES: readonly IptablesTable[] = [SECURITY_TABLE, FILTER_TABLE];
/** The built-in chain our jump lives in, at position 1. */
export const FORWARD_CHAIN = 'FORWARD';

/** The comment on our jump in `table`. */
export function jumpComment(table: IptablesTable): string {
  return table === SECURITY_TABLE ? JUMP_COMMENT : FILTER_JUMP_COMMENT;
}

/**
 * Seconds iptables-restore waits for the xtables lock (`-w`). kube-proxy holds it for a whole
 * sync; five seconds is what kube-proxy itself waits.
 */
export const DEFAULT_LOCK_WAIT_SECONDS = 5;

/** The ICMP error REJECT sends per family: "administratively prohibited", not a bare port error. */
export const REJECT_WITH: Readonly<Record<IpFamily, string>> = {
  ipv4: 'icmp-admin-prohibited',
  ipv6: 'icmp6-adm-prohibited',
};

// Targets and built-in chains a user chain must not be named after: a jump would mean something else.
const RESERVED = new Set([
  'ACCEPT',
  'DROP',
  'REJECT',
  'RETURN',
  'QUEUE',
  'INPUT',
  'FORWARD',
  'OUTPUT',
  'PREROUTING',
  'POSTROUTING',
]);

/**
 * Chain names end up unquoted in restore payloads and in the kernel (28 characters at most for
 * legacy's xt_table), so only a conservative alphabet is accepted.
 */
export function assertValidChainName(chain: string): void {
  if (/^[A-Za-z0-9][A-Za-z0-9_-]{0,27}$/.test(chain) && !RESERVED.has(chain.toUpperCase())) return;
  throw new RouteControllerError(ErrorCodes.InvalidConfig, `"${chain}" cannot be our iptables chain name`, {
    hint: `Use up to 28 letters, digits, "-" or "_", not a built-in chain or target; the default is ${IPTABLES_CHAIN}.`,
    details: { chain },
  });
}
