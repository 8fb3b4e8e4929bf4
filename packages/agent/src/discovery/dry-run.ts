import { parseCidr } from '@route-controller/core';
import { failureOf } from '../kube-api/api-failure.js';
import type { KubeResponse } from '../kube-api/transport.js';

export const DRY_RUN_SERVICE_NAME = 'route-controller-cidr-probe';
/** The one stable part of the API server's answer, from 1.23 on: "... The range of valid IPs is <cidr>". */
export const RANGE_MARKER = 'The range of valid IPs is';

export type DryRunFamily = 'ipv4' | 'ipv6';

/** An unspecified address per family: valid as an IP (so it reaches the allocator), in no range. */
export const PROBE_ADDRESS: Readonly<Record<DryRunFamily, string>> = { ipv4: '0.0.0.0', ipv6: '::' };

/** The Service sent with dryRun=All: an explicit name (some versions allocate before generateName). */
export function probeService(family: DryRunFamily): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: DRY_RUN_SERVICE_NAME },
    spec: { type: 'ClusterIP', clusterIP: PROBE_ADDRESS[family], ports: [{ port: 443, protocol: 'TCP' }] },
  };
}

export type DryRunAnswer =
  /** The answer names the family's range. */
  | { readonly kind: 'range'; readonly cidr: string }
  /** "IPv6 is not configured on this cluster": a clean "no such family". */
  | { readonly kind: 'no-family' }
  /** An answer that is no answer: accepted (1.22 and older skip allocation on dry-run) or no marker. */
  | { readonly kind: 'no-answer'; readonly detail: string }
  /** Refused for a reason the user must fix: 403, a webhook without sideEffects None, no namespace. */
  | { readonly kind: 'refused'; readonly status: number; readonly detail: string }
  /** The API server could not answer now (5xx, "allocator not ready"): try again later. */
  | { readonly kind: 'failed'; readonly status: number; readonly detail: string };

/**
 * Classifies the API server's answer to a dry-run create of a Service with an invalid clusterIP.
 * The range is read after RANGE_MARKER, never by position: the text before it changed in 1.23,
 * 1.27 and 1.34, and a proposal upstream removes the range altogether (then: 'no-answer').
 */
export function classifyDryRun(response: KubeResponse, family: DryRunFamily): DryRunAnswer {
  const { status } = response;
  if (status >= 200 && status < 300) {
    return {
      kind: 'no-answer',
      detail: `the API server accepted the dry-run Service without checking its clusterIP (Kubernetes 1.22 and older skip the allocation on dry run)`,
    };
  }
  const { message } = failureOf(response);
  if (status === 422) {
    const texts = [...causeMessages(response.body), message];
    for (const text of texts) {
      const cidr = rangeIn(text);
      if (cidr) return { kind: 'range', cidr };
    }
    if (
      texts.some((text) =>
        new RegExp(`${family === 'ipv4' ? 'IPv4' : 'IPv6'} is not configured on this cluster`).test(text),
      )
    ) {
      return { kind: 'no-family' };
    }
    if (/allocator not ready/.test(message)) return { kind: 'failed', status, detail: message };
    return { kind: 'no-answer', detail: `the API server's answer names no range: ${message}` };
  }
  if (status === 400 && /does not support dry run/.test(message)) {
    return {
      kind: 'refused',
      status,
      detail: `${message}: an admission webhook that watches Services must declare sideEffects: None (or NoneOnDryRun) for this source to work`,
    };
  }
  if (status === 401 || status === 403 || status === 404) return { kind: 'refused', status, detail: message };
  return { kind: 'failed', status, detail: message };
}

/** The CIDR after the marker, if it is one. */
export function rangeIn(text: string): string | undefined {
  const at = text.lastIndexOf(RANGE_MARKER);
  if (at < 0) return undefined;
  const candidate = /^\s*([0-9A-Fa-f:.]+\/\d{1,3})/.exec(text.slice(at + RANGE_MARKER.length))?.[1];
  if (!candidate) return undefined;
  try {
    parseCidr(candidate);
    return candidate;
  } catch {
    return undefined;
  }
}

/** details.causes[].message of the clusterIP fields, first: the Status message repeats them. */
function causeMessages(body: unknown): string[] {
  const causes = (body as { details?: { causes?: unknown } } | null)?.details?.causes;
  if (!Array.isArray(causes)) return [];
  return (causes as { field?: unknown; message?: unknown }[])
    .filter((cause) => typeof cause?.message === 'string' && String(cause.field ?? '').startsWith('spec.clusterIP'))
    .map((cause) => cause.message as string);
}
