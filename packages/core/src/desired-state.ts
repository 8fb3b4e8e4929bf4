import { BLOCK_ACTIONS, type BlockAction, DEFAULT_BLOCK_ACTION } from './block-action.js';
import { type Cidr, cidrsOverlap, compareCidrs, IP_FAMILIES, parseCidr } from './cidr.js';
import { ErrorCodes, RouteControllerError } from './errors.js';
import { cidrsOf, formatServiceCidrs, NO_SERVICE_CIDRS, type ServiceCidrs, sameServiceCidrs } from './service-cidrs.js';

export { BLOCK_ACTIONS, type BlockAction, DEFAULT_BLOCK_ACTION } from './block-action.js';

/**
 * What a backend should make true in the kernel: forwarded packets to these CIDRs get `action`.
 * No CIDRs at all means "nothing of ours installed".
 */
export interface DesiredState {
  readonly cidrs: ServiceCidrs;
  readonly action: BlockAction;
}

/**
 * The most Service CIDRs one family may hold. A cluster has one Service range per family, two
 * while it is being renumbered; the ServiceCIDR API (Kubernetes 1.33) lets an admin add more, a
 * few at a time. 64 leaves room for any of that many times over, while keeping every payload small:
 * the nft transaction stays a few dozen KiB in one argument (the kernel allows 128 KiB), and
 * iptables writes at most 64 rules per family. More is a mistake (a list of pod or node addresses,
 * a generated list gone wrong), and refusing it says so instead of writing thousands of rules.
 */
export const MAX_CIDRS_PER_FAMILY = 64;

/** Throws ERR_RC_TOO_MANY_CIDRS when a family holds more than MAX_CIDRS_PER_FAMILY CIDRs. */
export function assertCidrCount(cidrs: ServiceCidrs): void {
  for (const family of IP_FAMILIES) {
    const count = cidrsOf(cidrs, family).length;
    if (count <= MAX_CIDRS_PER_FAMILY) continue;
    throw new RouteControllerError(
      ErrorCodes.TooManyCidrs,
      `${count} ${family} Service CIDRs, more than the ${MAX_CIDRS_PER_FAMILY} route-controller accepts per family`,
      {
        hint: `A cluster has one or two Service ranges per family: give those (kubectl get servicecidrs lists them), merged into wider ranges where they are adjacent, not individual addresses or pod and node networks.`,
        details: { family, count, limit: MAX_CIDRS_PER_FAMILY },
      },
    );
  }
}

/** A desired state; more than MAX_CIDRS_PER_FAMILY CIDRs in a family throws ERR_RC_TOO_MANY_CIDRS. */
export function desiredState(
  cidrs: ServiceCidrs = NO_SERVICE_CIDRS,
  action: BlockAction = DEFAULT_BLOCK_ACTION,
): DesiredState {
  assertCidrCount(cidrs);
  return Object.freeze({ cidrs, action });
}

export function isEmptyDesiredState(desired: DesiredState): boolean {
  return desired.cidrs.ipv4.length === 0 && desired.cidrs.ipv6.length === 0;
}

export function sameDesiredState(a: DesiredState, b: DesiredState): boolean {
  return a.action === b.action && sameServiceCidrs(a.cidrs, b.cidrs);
}

export function describeDesiredState(desired: DesiredState): string {
  return isEmptyDesiredState(desired)
    ? 'no Service CIDRs (nothing installed)'
    : `${desired.action} forwarded packets to ${formatServiceCidrs(desired.cidrs)}`;
}

/**
 * Backends call this before touching the kernel, so a malformed state (built by hand rather than
 * by normalizeCidrs) fails with a clear error and changes nothing. Too many CIDRs in a family is
 * ERR_RC_TOO_MANY_CIDRS, whoever built the state.
 */
export function assertValidDesiredState(desired: DesiredState): void {
  const fail = (reason: string, details: Record<string, unknown> = {}): never => {
    throw new RouteControllerError(ErrorCodes.InvalidDesiredState, `invalid desired state: ${reason}`, {
      hint: 'Build desired states with normalizeCidrs()/parseCidrList() and desiredState() from @route-controller/core.',
      details,
    });
  };
  if (!(BLOCK_ACTIONS as readonly string[]).includes(desired.action)) {
    fail(`action "${String(desired.action)}" is not one of ${BLOCK_ACTIONS.join(', ')}`, { action: desired.action });
  }
  for (const family of IP_FAMILIES) {
    const list = cidrsOf(desired.cidrs, family);
    if (!Array.isArray(list)) fail(`cidrs.${family} is not a list`);
    let previous: Cidr | undefined;
    for (const cidr of list) {
      if (cidr.family !== family) fail(`${cidr.text} is listed under ${family}`, { cidr: cidr.text });
      if (!isCanonical(cidr)) fail(`${String(cidr.text)} is not a canonical CIDR`, { cidr: cidr.text });
      if (previous && cidrsOverlap(previous, cidr)) {
        fail(`${previous.text} and ${cidr.text} overlap`, { cidrs: [previous.text, cidr.text] });
      }
      if (previous && compareCidrs(previous, cidr) > 0) fail(`${family} CIDRs are not sorted`, { cidr: cidr.text });
      previous = cidr;
    }
  }
  assertCidrCount(desired.cidrs);
}

function isCanonical(cidr: Cidr): boolean {
  try {
    const parsed = parseCidr(cidr.text);
    return (
      !parsed.hostBitsCleared &&
      parsed.cidr.text === cidr.text &&
      parsed.cidr.first === cidr.first &&
      parsed.cidr.last === cidr.last
    );
  } catch {
    return false;
  }
}
