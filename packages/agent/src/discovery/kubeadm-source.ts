import { normalizeCidrs, type SourceReading } from '@route-controller/core';
import type { Logger } from '../observability/logger.js';
import { KUBEADM_CONFIGMAP, KUBEADM_NAMESPACE, kubeadmServiceSubnet } from './kubeadm.js';
import type { SourceCommonOptions } from './service-cidr-source.js';
import { warnOnce } from './service-cidr-source.js';
import { ReflectedSource } from './watched-source.js';

const SUBJECT = {
  noun: `the ${KUBEADM_CONFIGMAP} ConfigMap`,
  permission: `get, list and watch on configmaps named ${KUBEADM_CONFIGMAP} in ${KUBEADM_NAMESPACE} (a Role there with resourceNames: [${KUBEADM_CONFIGMAP}])`,
};

/**
 * kubeadm's ClusterConfiguration (kind, minikube, Docker Desktop and every kubeadm cluster), followed
 * live. Only that one object is listed and watched, by a metadata.name field selector, so a Role
 * restricted to resourceNames: [kubeadm-config] is enough.
 */
export class KubeadmConfigSource extends ReflectedSource {
  readonly name = 'kubeadm';
  readonly #log: Logger;

  constructor(options: SourceCommonOptions) {
    super(
      {
        subject: SUBJECT,
        connect: options.connect,
        resolve: async () => ({
          kind: 'served',
          target: {
            path: `/api/v1/namespaces/${KUBEADM_NAMESPACE}/configmaps`,
            query: { fieldSelector: `metadata.name=${KUBEADM_CONFIGMAP}` },
            resource: `configmaps ${KUBEADM_NAMESPACE}/${KUBEADM_CONFIGMAP}`,
          },
        }),
        logger: options.logger,
        ...(options.timings ? { timings: options.timings } : {}),
        ...(options.random ? { random: options.random } : {}),
      },
      options.firstListWaitMs,
    );
    this.#log = options.logger;
  }

  protected override onEvent(type: 'ADDED' | 'MODIFIED' | 'DELETED'): void {
    this.#log.info(
      { configmap: `${KUBEADM_NAMESPACE}/${KUBEADM_CONFIGMAP}`, event: type },
      `${KUBEADM_NAMESPACE}/${KUBEADM_CONFIGMAP} ${type === 'DELETED' ? 'deleted' : type === 'ADDED' ? 'created' : 'changed'}`,
    );
  }

  protected syncedReading(): SourceReading {
    const [configMap] = this.reflector.objects().values();
    if (!configMap) {
      return { kind: 'none', detail: `no ${KUBEADM_NAMESPACE}/${KUBEADM_CONFIGMAP} ConfigMap (not a kubeadm cluster)` };
    }
    const subnet = kubeadmServiceSubnet(configMap as { data?: unknown });
    if (subnet.kind !== 'subnet') {
      if (subnet.kind === 'invalid') {
        warnOnce(this.#log, subnet.detail, () =>
          this.#log.warn(
            { detail: subnet.detail },
            `${KUBEADM_NAMESPACE}/${KUBEADM_CONFIGMAP} cannot be read: ${subnet.detail}`,
          ),
        );
      }
      return { kind: 'none', detail: `${KUBEADM_NAMESPACE}/${KUBEADM_CONFIGMAP}: ${subnet.detail}` };
    }
    for (const entry of subnet.rejected) {
      warnOnce(this.#log, `kubeadm:${entry}`, () =>
        this.#log.warn(
          { entry, serviceSubnet: subnet.value },
          `${KUBEADM_NAMESPACE}/${KUBEADM_CONFIGMAP} networking.serviceSubnet has an entry route-controller cannot use: "${entry}"; ignored`,
        ),
      );
    }
    if (subnet.cidrs.length === 0) {
      return {
        kind: 'none',
        detail: `${KUBEADM_NAMESPACE}/${KUBEADM_CONFIGMAP} networking.serviceSubnet "${subnet.value}" holds no CIDR`,
      };
    }
    const { cidrs, notes } = normalizeCidrs(subnet.cidrs);
    return {
      kind: 'cidrs',
      cidrs,
      notes,
      detail: `${KUBEADM_NAMESPACE}/${KUBEADM_CONFIGMAP} ClusterConfiguration networking.serviceSubnet ${subnet.value}`,
    };
  }
}
