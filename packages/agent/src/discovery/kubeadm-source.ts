import { normalizeCidrs, type SourceReading } from '@route-controller/core';
import type { ApiSubject } from '../kube-api/api-loop.js';
import { getObject, PeriodicRead } from '../kube-api/periodic-read.js';
import type { Logger } from '../observability/logger.js';
import { SaidOnce } from '../util/said-once.js';
import { type KubernetesSourceStatus, LoopSource } from './api-source.js';
import { KUBEADM_CONFIGMAP, KUBEADM_NAMESPACE, kubeadmServiceSubnet } from './kubeadm.js';
import type { SourceCommonOptions } from './service-cidr-source.js';

const NAME = `${KUBEADM_NAMESPACE}/${KUBEADM_CONFIGMAP}`;
const SUBJECT: ApiSubject = {
  noun: `the ${KUBEADM_CONFIGMAP} ConfigMap`,
  permission: `get on configmaps named ${KUBEADM_CONFIGMAP} in ${KUBEADM_NAMESPACE} (a Role there with resourceNames: [${KUBEADM_CONFIGMAP}])`,
};

/**
 * kubeadm's ClusterConfiguration (kind, minikube, Docker Desktop and every kubeadm cluster): one GET
 * of that ConfigMap (from the watch cache), read again about every 10 minutes, no watch: it changes
 * only when the cluster is re-initialised. A Role with resourceNames: [kubeadm-config] and the verb
 * get is all it needs.
 */
export class KubeadmConfigSource extends LoopSource {
  readonly name = 'kubeadm';
  protected readonly subject = SUBJECT;
  protected readonly loop: PeriodicRead<Record<string, unknown> | null>;
  readonly #log: Logger;
  readonly #said = new SaidOnce();

  constructor(options: SourceCommonOptions) {
    super(options.firstListWaitMs);
    this.#log = options.logger;
    this.loop = this.follow(
      new PeriodicRead({
        subject: SUBJECT,
        resource: `configmaps ${NAME}`,
        connect: options.connect,
        read: (transport, signal) =>
          getObject(transport, `/api/v1/namespaces/${KUBEADM_NAMESPACE}/configmaps/${KUBEADM_CONFIGMAP}`, signal),
        logger: options.logger,
        ...(options.timings ? { timings: options.timings } : {}),
        ...(options.random ? { random: options.random } : {}),
        ...(options.now ? { now: options.now } : {}),
      }),
    );
  }

  protected override statusExtras(): Partial<KubernetesSourceStatus> {
    return { objects: this.loop.value() ? 1 : 0 };
  }

  protected answer(): SourceReading {
    const configMap = this.loop.value();
    if (!configMap) return { kind: 'none', detail: `no ${NAME} ConfigMap (not a kubeadm cluster)` };
    const subnet = kubeadmServiceSubnet(configMap as { data?: unknown });
    if (subnet.kind !== 'subnet') {
      if (subnet.kind === 'invalid' && this.#said.said('invalid', subnet.detail)) {
        this.#log.warn({ configmap: NAME, detail: subnet.detail }, 'kubeadm-config unreadable');
      }
      return { kind: 'none', detail: `${NAME}: ${subnet.detail}` };
    }
    for (const entry of subnet.rejected) {
      if (this.#said.said(`entry:${entry}`, subnet.value)) {
        this.#log.warn(
          { configmap: NAME, entry, serviceSubnet: subnet.value },
          'kubeadm-config entry unusable, ignored',
        );
      }
    }
    if (subnet.cidrs.length === 0) {
      return { kind: 'none', detail: `${NAME} networking.serviceSubnet "${subnet.value}" holds no CIDR` };
    }
    const { cidrs, notes } = normalizeCidrs(subnet.cidrs);
    return {
      kind: 'cidrs',
      cidrs,
      notes,
      detail: `${NAME} ClusterConfiguration networking.serviceSubnet ${subnet.value}`,
    };
  }
}
