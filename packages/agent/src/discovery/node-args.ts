import { isIP } from 'node:net';
import { parseCidr } from '@route-controller/core';
import type { KubeObject } from '../kube-api/reflector.js';

/** Where k3s and RKE2 (which links k3s, as program "rke2") record a node's command line. */
export const NODE_ARGS_ANNOTATIONS = [
  { annotation: 'k3s.io/node-args', distribution: 'k3s' },
  { annotation: 'rke2.io/node-args', distribution: 'RKE2' },
] as const;

/** Servers carry this label: k3s and RKE2 set "true", kubeadm "" (so select on it existing). */
export const CONTROL_PLANE_LABEL = 'node-role.kubernetes.io/control-plane';

/** k3s's (and RKE2's) default Service range, by the family of the server's first node IP. */
export const K3S_DEFAULT_SERVICE_CIDR = { ipv4: '10.43.0.0/16', ipv6: 'fd00:43::/112' } as const;

export type NodeArgs =
  /** Not a k3s/RKE2 node: no annotation. */
  | { readonly kind: 'absent' }
  | { readonly kind: 'invalid'; readonly annotation: string; readonly detail: string }
  | {
      readonly kind: 'args';
      readonly annotation: string;
      readonly distribution: 'k3s' | 'RKE2';
      /** The subcommand: "server" or "agent" (k3s writes os.Args[1:], so it comes first). */
      readonly role: string;
      /** Every --service-cidr value, comma lists split, in order. */
      readonly serviceCidrs: readonly string[];
    };

/**
 * Reads a Node's k3s.io/node-args (or rke2.io/node-args) annotation: a JSON array of the
 * process's arguments. k3s splits `--flag=value` into two elements before writing it, so
 * `--service-cidr` and its value are separate; `--service-cidr=value` is accepted too. The flag may
 * repeat (a YAML list in config.yaml becomes one flag per item) and each value may be a comma list.
 */
export function readNodeArgs(node: KubeObject): NodeArgs {
  const annotations = node.metadata?.annotations ?? {};
  for (const { annotation, distribution } of NODE_ARGS_ANNOTATIONS) {
    const text = annotations[annotation];
    if (text === undefined) continue;
    let args: unknown;
    try {
      args = JSON.parse(text);
    } catch {
      return { kind: 'invalid', annotation, detail: `${annotation} is not JSON` };
    }
    if (!Array.isArray(args) || !args.every((arg) => typeof arg === 'string')) {
      return { kind: 'invalid', annotation, detail: `${annotation} is not a JSON array of strings` };
    }
    return {
      kind: 'args',
      annotation,
      distribution,
      role: args[0] ?? '',
      serviceCidrs: serviceCidrFlag(args),
    };
  }
  return { kind: 'absent' };
}

/** The values of every --service-cidr in `args`, split on commas. */
export function serviceCidrFlag(args: readonly string[]): string[] {
  const values: string[] = [];
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i] as string;
    let value: string | undefined;
    if (arg === '--service-cidr') {
      const next = args[i + 1];
      if (next !== undefined && !next.startsWith('--')) {
        value = next;
        i += 1;
      }
    } else if (arg.startsWith('--service-cidr=')) {
      value = arg.slice('--service-cidr='.length);
    }
    if (value === undefined) continue;
    for (const entry of value.split(',')) if (entry.trim() !== '') values.push(entry.trim());
  }
  return values;
}

/** The values that are CIDRs, and those that are not (for a warning). */
export function splitUsable(values: readonly string[]): { cidrs: string[]; rejected: string[] } {
  const cidrs: string[] = [];
  const rejected: string[] = [];
  for (const value of values) {
    try {
      parseCidr(value);
      cidrs.push(value);
    } catch {
      rejected.push(value);
    }
  }
  return { cidrs, rejected };
}

/**
 * The family of a node's first IP, which picks k3s's default range: the first InternalIP in
 * status.addresses, else the first of k3s's own k3s.io/internal-ip annotation; IPv4 if neither.
 */
export function primaryFamily(node: KubeObject): 'ipv4' | 'ipv6' {
  const addresses = (node.status as { addresses?: unknown } | undefined)?.addresses;
  const internal = Array.isArray(addresses)
    ? (addresses as { type?: unknown; address?: unknown }[]).find((a) => a?.type === 'InternalIP')?.address
    : undefined;
  const annotated = (
    node.metadata?.annotations?.['k3s.io/internal-ip'] ?? node.metadata?.annotations?.['rke2.io/internal-ip']
  )?.split(',')[0];
  const first = typeof internal === 'string' ? internal : annotated?.trim();
  return first !== undefined && isIP(first) === 6 ? 'ipv6' : 'ipv4';
}
