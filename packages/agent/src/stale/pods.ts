import { describeFailure, failureOf } from '../kube-api/api-failure.js';
import type { Connection } from '../kube-api/connection.js';
import { TransportError } from '../kube-api/transport.js';
import type { Logger } from '../observability/logger.js';
import { SaidOnce } from '../util/said-once.js';

export interface NodePodsOptions {
  readonly connect: () => Connection;
  /** This node (NODE_NAME): only its pods are listed, with a field selector. */
  readonly nodeName: string;
  readonly logger: Logger;
  readonly requestTimeoutMs?: number;
  /**
   * The list is taken again once it is this old, when names are next asked for: pods come and go,
   * and their addresses are reused. Nothing else lists: an address it does not name is no pod of
   * this node until the next list says otherwise.
   */
  readonly maxAgeMs?: number;
  /** After a failed list, the next one waits this long. */
  readonly retryAfterMs?: number;
  readonly now?: () => number;
}

const PERMISSION = 'list on pods (the Helm chart grants it with routeController.staleClusterIPs.podLookup=true)';

interface PodItem {
  readonly metadata?: { readonly name?: string; readonly namespace?: string };
  readonly spec?: { readonly hostNetwork?: boolean };
  readonly status?: { readonly phase?: string; readonly podIP?: string; readonly podIPs?: readonly { ip?: string }[] };
}

/**
 * Names the pods of this node by address, for the sources of packets to stale ClusterIPs: one list
 * of the node's pods (fieldSelector spec.nodeName, from the API server's cache), kept a minute.
 * An address the list does not name stays an address until the next list: a pod cannot make the
 * agent list pods by dialling from an address that is no pod's (a host-network pod shares the
 * node's addresses, and a finished pod may have given its address away, so neither names one).
 */
export class NodePods {
  readonly #options: NodePodsOptions;
  readonly #now: () => number;
  #byAddress = new Map<string, string>();
  #listedAt = Number.NEGATIVE_INFINITY;
  #failedAt = Number.NEGATIVE_INFINITY;
  readonly #said = new SaidOnce();

  constructor(options: NodePodsOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** The pods ("namespace/name") of the addresses that belong to pods of this node. */
  async names(addresses: readonly string[]): Promise<ReadonlyMap<string, string>> {
    const now = this.#now();
    const due = now - this.#listedAt >= (this.#options.maxAgeMs ?? 60_000);
    if (due && now - this.#failedAt >= (this.#options.retryAfterMs ?? 300_000)) await this.#list(now);
    const found = new Map<string, string>();
    for (const address of addresses) {
      const pod = this.#byAddress.get(address);
      if (pod) found.set(address, pod);
    }
    return found;
  }

  async #list(now: number): Promise<void> {
    const connection = this.#options.connect();
    if (connection.kind !== 'ready') return this.#failed(now, connection.message);
    const { nodeName } = this.#options;
    let response: Awaited<ReturnType<typeof connection.transport.request>>;
    try {
      response = await connection.transport.request({
        method: 'GET',
        path: '/api/v1/pods',
        // resourceVersion=0: from the API server's watch cache, not etcd.
        query: { fieldSelector: `spec.nodeName=${nodeName}`, resourceVersion: '0' },
        signal: AbortSignal.timeout(this.#options.requestTimeoutMs ?? 10_000),
      });
    } catch (error) {
      if (!(error instanceof TransportError) && !(error instanceof Error && /abort|timeout/i.test(error.name)))
        throw error;
      return this.#failed(
        now,
        error instanceof TransportError ? error.message : 'the API server did not answer in time',
      );
    }
    if (response.status !== 200) {
      const failure = describeFailure(failureOf(response));
      return this.#failed(now, failure, response.status === 403 ? PERMISSION : undefined);
    }
    const items = (response.body as { items?: readonly PodItem[] } | null)?.items ?? [];
    const byAddress = new Map<string, string>();
    for (const pod of items) {
      const { name, namespace } = pod.metadata ?? {};
      const phase = pod.status?.phase;
      if (!name || !namespace || pod.spec?.hostNetwork || phase === 'Succeeded' || phase === 'Failed') continue;
      const ips = pod.status?.podIPs?.flatMap((entry) => (entry.ip ? [entry.ip] : [])) ?? [];
      if (ips.length === 0 && pod.status?.podIP) ips.push(pod.status.podIP);
      for (const ip of ips) byAddress.set(ip, `${namespace}/${name}`);
    }
    this.#byAddress = byAddress;
    this.#listedAt = now;
    this.#failedAt = Number.NEGATIVE_INFINITY;
    if (this.#said.said('list', 'ok')) {
      this.#options.logger.debug({ nodeName, pods: items.length }, 'pods listed to name stale ClusterIP sources');
    }
  }

  #failed(now: number, why: string, needs?: string): void {
    this.#failedAt = now;
    // The lookup runs whenever a stale ClusterIP is reported: say each cause once.
    if (!this.#said.said('list', why)) return;
    this.#options.logger.warn(
      { nodeName: this.#options.nodeName, reason: why, needs, retryInMs: this.#options.retryAfterMs ?? 300_000 },
      'cannot list pods to name stale ClusterIP sources; they are shown as addresses',
    );
  }
}
