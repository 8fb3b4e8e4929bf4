import { ErrorCodes, type IpFamily, RouteControllerError } from '@route-controller/core';

/** Our chain in the filter table of each family. Everything else we write refers to it. */
export const IPTABLES_CHAIN = 'ROUTE-CONTROLLER';

/** On the jump from FORWARD: names us for anyone reading `iptables-save`. */
export const JUMP_COMMENT = 'route-controller: block forwarded traffic to Service CIDRs';
/** On each rule of our chain. */
export const RULE_COMMENT = 'route-controller: Service CIDR';

/** The only table we touch. */
export const FILTER_TABLE = 'filter';
/** The built-in chain our jump lives in, at position 1. */
export const FORWARD_CHAIN = 'FORWARD';

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
