import type { ServiceCidrSource } from '@route-controller/core';
import type { DiscoverySourceName } from '../config/settings.js';
import { KubernetesConnection } from '../kube-api/connection.js';
import type { KubernetesSource } from './api-source.js';
import { DryRunSource } from './dry-run-source.js';
import { KubeadmConfigSource } from './kubeadm-source.js';
import { NodeArgsSource } from './node-args-source.js';
import { ServiceCidrApiSource, type SourceCommonOptions } from './service-cidr-source.js';

export type { KubernetesSource, KubernetesSourceStatus } from './api-source.js';

export interface KubernetesSourcesOptions extends Omit<SourceCommonOptions, 'connect'> {
  /** An explicit kubeconfig (KUBECONFIG / --kubeconfig); otherwise in-cluster, then ~/.kube/config. */
  readonly kubeconfig: string | undefined;
  readonly nodeName: string | undefined;
  readonly podNamespace: string | undefined;
  /** The connection to share (stale ClusterIP reporting uses it too); default: one of their own. */
  readonly connection?: KubernetesConnection;
}

/**
 * Every Kubernetes source, sharing one API connection; none started (the composition root starts
 * each when the discovery chain first reaches it). This module is the one the composition root
 * imports lazily: nothing of the Kubernetes client is loaded until a source is first read.
 */
export function createKubernetesSources(
  options: KubernetesSourcesOptions,
): ReadonlyMap<DiscoverySourceName, ServiceCidrSource & KubernetesSource> {
  const connection = options.connection ?? new KubernetesConnection(options.kubeconfig, options.logger);
  const { kubeconfig: _kubeconfig, nodeName, podNamespace, connection: _connection, logger, ...rest } = options;
  const common = (source: DiscoverySourceName): SourceCommonOptions => ({
    ...rest,
    connect: () => connection.connect(),
    logger: logger.child({ source }),
  });
  return new Map<DiscoverySourceName, ServiceCidrSource & KubernetesSource>([
    ['servicecidr', new ServiceCidrApiSource(common('servicecidr'))],
    ['kubeadm', new KubeadmConfigSource(common('kubeadm'))],
    ['node-args', new NodeArgsSource({ ...common('node-args'), nodeName })],
    ['dry-run', new DryRunSource({ ...common('dry-run'), namespace: podNamespace })],
  ]);
}
