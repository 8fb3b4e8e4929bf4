import { errorMessage, parseCidr } from '@route-controller/core';
import yaml from 'js-yaml';

export const KUBEADM_NAMESPACE = 'kube-system';
export const KUBEADM_CONFIGMAP = 'kubeadm-config';
export const KUBEADM_KEY = 'ClusterConfiguration';

/** What kube-system/kubeadm-config says about the Service range. */
export type KubeadmServiceSubnet =
  | {
      readonly kind: 'subnet';
      /** networking.serviceSubnet as written. */
      readonly value: string;
      /** Its entries that are CIDRs (comma-separated for dual stack). */
      readonly cidrs: readonly string[];
      /** Entries that are not, for a warning. */
      readonly rejected: readonly string[];
    }
  /** The ConfigMap says nothing usable about it (no key, no networking.serviceSubnet). */
  | { readonly kind: 'none'; readonly detail: string }
  /** The ConfigMap is there but cannot be read (not YAML, wrong shape). */
  | { readonly kind: 'invalid'; readonly detail: string };

/**
 * Reads networking.serviceSubnet from the ConfigMap's ClusterConfiguration. Only `networking` is
 * read: its shape is the same in kubeadm.k8s.io v1beta1 to v1beta4, while the rest changed (and
 * kubeadm stores the version of the binary that last wrote it, so apiVersion is never checked).
 */
export function kubeadmServiceSubnet(configMap: { readonly data?: unknown }): KubeadmServiceSubnet {
  const text = (configMap.data as Record<string, unknown> | undefined)?.[KUBEADM_KEY];
  if (typeof text !== 'string' || text.trim() === '') {
    return { kind: 'none', detail: `${KUBEADM_CONFIGMAP} has no ${KUBEADM_KEY} key` };
  }
  let parsed: unknown;
  try {
    // The core schema: plain scalars stay strings; nothing YAML 1.1 would turn into a date or a number.
    parsed = yaml.load(text, { schema: yaml.CORE_SCHEMA });
  } catch (error) {
    return { kind: 'invalid', detail: `its ${KUBEADM_KEY} is not YAML (${errorMessage(error).split('\n')[0]})` };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { kind: 'invalid', detail: `its ${KUBEADM_KEY} is not a YAML mapping` };
  }
  const networking = (parsed as { networking?: unknown }).networking;
  const subnet =
    typeof networking === 'object' && networking !== null
      ? (networking as { serviceSubnet?: unknown }).serviceSubnet
      : undefined;
  if (subnet === undefined || subnet === null || subnet === '') {
    return { kind: 'none', detail: `its ${KUBEADM_KEY} names no networking.serviceSubnet` };
  }
  if (typeof subnet !== 'string') {
    return { kind: 'invalid', detail: `its networking.serviceSubnet is not a string (${JSON.stringify(subnet)})` };
  }
  const cidrs: string[] = [];
  const rejected: string[] = [];
  for (const entry of subnet.split(',')) {
    const trimmed = entry.trim();
    if (trimmed === '') continue;
    try {
      parseCidr(trimmed);
      cidrs.push(trimmed);
    } catch {
      rejected.push(trimmed);
    }
  }
  return { kind: 'subnet', value: subnet, cidrs, rejected };
}
