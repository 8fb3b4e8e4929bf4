import { errorMessage } from '@route-controller/core';
import type { Logger } from '../observability/logger.js';
import { HttpKubeTransport } from './http-transport.js';
import { loadKubeconfig } from './kubeconfig.js';
import type { KubeTransport } from './transport.js';

/** How a source reaches the API server, or why it cannot. */
export type Connection =
  | { readonly kind: 'ready'; readonly transport: KubeTransport }
  /** No configuration at all: not in a pod, no KUBECONFIG, no ~/.kube/config. */
  | { readonly kind: 'none'; readonly message: string }
  /** A configuration that cannot be used (an explicit kubeconfig that broke after start-up). */
  | { readonly kind: 'invalid'; readonly message: string };

/**
 * One API connection shared by every Kubernetes source: the kubeconfig is loaded once it loads,
 * and looked for again on each attempt while it does not (a file may appear). Says once which
 * server and configuration the sources use.
 */
export class KubernetesConnection {
  #ready: Connection | undefined;
  #saidNone = false;

  constructor(
    private readonly kubeconfig: string | undefined,
    private readonly logger: Logger,
  ) {}

  connect(): Connection {
    if (this.#ready) return this.#ready;
    try {
      const loaded = loadKubeconfig(this.kubeconfig);
      if (!loaded) {
        const message = 'not in a pod (no service account), no KUBECONFIG and no ~/.kube/config';
        if (!this.#saidNone) {
          this.#saidNone = true;
          this.logger.warn(
            `no Kubernetes configuration (${message}): the Service CIDRs cannot be discovered from the cluster. Looking again now and then`,
          );
        }
        return { kind: 'none', message };
      }
      const { config, server, origin } = loaded;
      this.logger.info({ server, origin }, `using the Kubernetes API at ${server} (${origin})`);
      this.#ready = { kind: 'ready', transport: new HttpKubeTransport(config, server) };
      return this.#ready;
    } catch (error) {
      return {
        kind: 'invalid',
        message: `cannot load the Kubernetes configuration: ${errorMessage(error).split('\n')[0]}`,
      };
    }
  }
}
