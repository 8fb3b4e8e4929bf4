import { errorMessage, firstLine } from '@route-controller/core';
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
 * The one API connection of the agent, shared by every Kubernetes source and the stale ClusterIP
 * clients: the kubeconfig is loaded once it loads (and looked for again on each attempt while it
 * does not: a file may appear), and one transport, with one kept-alive HTTP agent, serves them all.
 * Says once which server and configuration they use.
 */
export class KubernetesConnection {
  #ready: { readonly kind: 'ready'; readonly transport: HttpKubeTransport } | undefined;
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
          this.logger.warn({ reason: message }, 'no kubernetes configuration');
        }
        return { kind: 'none', message };
      }
      const { config, server, origin } = loaded;
      this.logger.info({ server, origin }, 'kubernetes api chosen');
      this.#ready = { kind: 'ready', transport: new HttpKubeTransport(config, server) };
      return this.#ready;
    } catch (error) {
      return {
        kind: 'invalid',
        message: `cannot load the Kubernetes configuration: ${firstLine(errorMessage(error))}`,
      };
    }
  }

  /** Closes the kept-alive connections (the sources and clients stop first). */
  close(): void {
    this.#ready?.transport.close();
  }
}
