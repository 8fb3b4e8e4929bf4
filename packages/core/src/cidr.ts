import IPCIDR from 'ip-cidr';
import { ErrorCodes, RouteControllerError } from './errors.js';

export type IpFamily = 'ipv4' | 'ipv6';
export const IP_FAMILIES: readonly IpFamily[] = ['ipv4', 'ipv6'];

/** A canonical CIDR: network address with host bits cleared, IPv6 in RFC 5952 form. */
export interface Cidr {
  readonly family: IpFamily;
  /** Network address, canonical text ("10.96.0.0", "fd00:10:96::"). */
  readonly address: string;
  readonly prefix: number;
  /** "address/prefix", the form every backend writes and every comparison uses. */
  readonly text: string;
  /** First and last address of the range, as integers, for ordering and containment. */
  readonly first: bigint;
  readonly last: bigint;
}

/**
 * The widest prefix we accept per family. kube-apiserver caps a Service range given by flag at
 * 20 host bits (/12 for IPv4, /108 for IPv6); the ServiceCIDR API lets IPv6 ranges grow to /64.
 * We accept up to /8 (the widest private IPv4 block, 10.0.0.0/8) and /64: anything wider cannot be
 * a Service range, and dropping it would black-hole real networks.
 */
export const WIDEST_PREFIX: Readonly<Record<IpFamily, number>> = { ipv4: 8, ipv6: 64 };
export const MAX_PREFIX: Readonly<Record<IpFamily, number>> = { ipv4: 32, ipv6: 128 };

export const CIDR_EXPECTED_FORM = 'an address and a prefix length such as 10.96.0.0/12 or fd00:10:96::/108';

export interface ParsedCidr {
  readonly cidr: Cidr;
  /** The entry as given, trimmed. */
  readonly input: string;
  /** True when the entry had host bits set ("10.96.0.1/12") and was masked to its network. */
  readonly hostBitsCleared: boolean;
}

// Shape check before ip-cidr: it is lenient about some inputs (zone ids, IPv4-mapped forms).
const CIDR_SHAPE = /^(?<address>[0-9A-Fa-f:.]+)\/(?<prefix>0|[1-9][0-9]{0,2})$/;

function invalid(input: string, reason: string, cause?: unknown): RouteControllerError {
  const separatorHint = /[;\s|]/.test(input) ? ' Separate entries with commas, not semicolons or spaces.' : '';
  return new RouteControllerError(ErrorCodes.InvalidCidr, `"${input}" is not a valid CIDR: ${reason}`, {
    hint: `Write ${CIDR_EXPECTED_FORM}.${separatorHint}`,
    details: { entry: input, reason },
    cause,
  });
}

/**
 * Parses one CIDR entry. Host bits are cleared, as Go's net.ParseCIDR (and so kube-apiserver) does,
 * and reported through `hostBitsCleared` so callers can warn about the likely typo.
 */
export function parseCidr(entry: string): ParsedCidr {
  const input = entry.trim();
  const shape = CIDR_SHAPE.exec(input);
  if (!shape?.groups) {
    const reason = input.includes('/') ? 'unexpected characters' : 'no "/prefix" part';
    throw invalid(input, reason);
  }
  const { address, prefix: prefixText } = shape.groups as { address: string; prefix: string };
  const family: IpFamily = address.includes(':') ? 'ipv6' : 'ipv4';
  if (family === 'ipv6' && address.includes('.')) {
    throw invalid(input, 'IPv6 with an embedded IPv4 address is not supported; write IPv4 ranges in dotted form');
  }
  const prefix = Number(prefixText);
  if (prefix > MAX_PREFIX[family]) {
    throw invalid(input, `prefix /${prefix} is longer than ${MAX_PREFIX[family]} bits`);
  }
  let range: IPCIDR;
  try {
    range = new IPCIDR(input);
  } catch (error) {
    throw invalid(input, `"${address}" is not an ${family === 'ipv4' ? 'IPv4' : 'IPv6'} address`, error);
  }
  if (prefix < WIDEST_PREFIX[family]) {
    throw new RouteControllerError(
      ErrorCodes.CidrTooBroad,
      `"${input}" is too broad to be a Service range (prefix /${prefix}, the widest accepted is /${WIDEST_PREFIX[family]})`,
      {
        hint: `Use the cluster's Service range (kubectl get servicecidrs, or kube-apiserver --service-cluster-ip-range); route-controller refuses ${family} prefixes shorter than /${WIDEST_PREFIX[family]}.`,
        details: { entry: input, prefix, widest: WIDEST_PREFIX[family] },
      },
    );
  }
  const networkAddress = range.addressStart.correctForm();
  const cidr = makeCidr(
    family,
    networkAddress,
    prefix,
    toBigInt(range.start({ type: 'bigInteger' })),
    toBigInt(range.end({ type: 'bigInteger' })),
  );
  return Object.freeze({ cidr, input, hostBitsCleared: range.address.correctForm() !== networkAddress });
}

function toBigInt(value: unknown): bigint {
  return typeof value === 'bigint' ? value : BigInt(String(value));
}

function makeCidr(family: IpFamily, address: string, prefix: number, first: bigint, last: bigint): Cidr {
  return Object.freeze({ family, address, prefix, text: `${address}/${prefix}`, first, last });
}

/** True when `outer` contains every address of `inner`. */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && outer.first <= inner.first && inner.last <= outer.last;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.family === b.family && a.first <= b.last && b.first <= a.last;
}

/** True when `address` (an IP address, no prefix) lies inside `cidr`. */
export function cidrContainsAddress(cidr: Cidr, address: string): boolean {
  const family: IpFamily = address.includes(':') ? 'ipv6' : 'ipv4';
  if (family !== cidr.family) return false;
  try {
    const host = parseCidr(`${address.split('%')[0]}/${MAX_PREFIX[family]}`).cidr;
    return cidrContains(cidr, host);
  } catch {
    return false;
  }
}

export function compareCidrs(a: Cidr, b: Cidr): number {
  if (a.family !== b.family) return a.family === 'ipv4' ? -1 : 1;
  if (a.first !== b.first) return a.first < b.first ? -1 : 1;
  return a.prefix - b.prefix;
}
