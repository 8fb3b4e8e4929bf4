import type { ServiceCidrSource } from '@route-controller/core';
import type { DiscoverySourceName } from '../config/settings.js';
import { KubernetesConnection } from '../kube-api/connection.js';
import type { ReflectorTimings } from '../kube-api/reflector.js';
import type { Logger } from '../observability/logger.js';
import { DryRunSource } from './dry-run-source.js';
import { KubeadmConfigSource } from './kubeadm-source.js';
import { NodeArgsSource } from './node-args-source.js';
import { ServiceCidrApiSource } from './service-cidr-source.js';
import type { KubernetesSource } from './watched-source.js';

export type { KubernetesSource, KubernetesSourceStatus } from './watched-source.js';

export interface KubernetesSourcesOptions {
  /** An explicit kubeconfig (KUBECONFIG / --kubeconfig); otherwise in-cluster, then ~/.kube/config. */
  readonly kubeconfig: string | undefined;
  readonly logger: Logger;
  readonly nodeName: string | undefined;
  readonly podNamespace: string | undefined;
  readonly timings?: Partial<ReflectorTimings>;
  readonly firstListWaitMs?: number;
  /** The connection to share (stale ClusterIP reporting uses it too); default: one of their own. */
  readonly connection?: KubernetesConnection;
}

/**
 * Every Kubernetes source, sharing one API connection. This module is the one the composition root
 * imports lazily: nothing of the Kubernetes client is loaded until a source is first read.
 */
export function createKubernetesSources(
  options: KubernetesSourcesOptions,
): ReadonlyMap<DiscoverySourceName, ServiceCidrSource & KubernetesSource> {
  const connection = options.connection ?? new KubernetesConnection(options.kubeconfig, options.logger);
  const connect = () => connection.connect();
  const common = {
    connect,
    logger: options.logger,
    ...(options.timings ? { timings: options.timings } : {}),
    ...(options.firstListWaitMs !== undefined ? { firstListWaitMs: options.firstListWaitMs } : {}),
  };
  return new Map<DiscoverySourceName, ServiceCidrSource & KubernetesSource>([
    ['servicecidr', new ServiceCidrApiSource(common)],
    ['kubeadm', new KubeadmConfigSource(common)],
    ['node-args', new NodeArgsSource({ ...common, nodeName: options.nodeName })],
    [
      'dry-run',
      new DryRunSource({
        connect,
        logger: options.logger,
        namespace: options.podNamespace,
        ...(options.timings?.requestTimeoutMs ? { requestTimeoutMs: options.timings.requestTimeoutMs } : {}),
      }),
    ],
  ]);
}
