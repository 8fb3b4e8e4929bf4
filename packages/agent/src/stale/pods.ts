import { describeFailure, failureOf } from '../kube-api/api-failure.js';
import type { Connection } from '../kube-api/connection.js';
import { TransportError } from '../kube-api/transport.js';
import type { Logger } from '../observability/logger.js';

export interface NodePodsOptions {
  readonly connect: () => Connection;
  /** This node (NODE_NAME): only its pods are listed, with a field selector. */
  readonly nodeName: string;
  readonly logger: Logger;
  readonly requestTimeoutMs?: number;
  /** An address not found is looked for again (a new pod) no sooner than this after the last list. */
  readonly relistAfterMs?: number;
  /** Names older than this are listed afresh before use (pods die and their addresses are reused). */
  readonly maxAgeMs?: number;
  /** After a failed list, the next one waits this long. */
  readonly retryAfterMs?: number;
  readonly now?: () => number;
}

const PERMISSION = 'get and list on pods (the Helm chart grants it with routeController.staleClusterIPs.podLookup)';

interface PodItem {
  readonly metadata?: { readonly name?: string; readonly namespace?: string };
  readonly spec?: { readonly hostNetwork?: boolean };
  readonly status?: { readonly phase?: string; readonly podIP?: string; readonly podIPs?: readonly { ip?: string }[] };
}

/**
 * Names the pods of this node by address, for the sources of packets to stale ClusterIPs: one list
 * of the node's pods (fieldSelector spec.nodeName, from the API server's cache), kept a minute and
 * listed again sooner only for an address it does not know. Host-network pods share the node's
 * addresses and finished pods may have given theirs away: neither names an address. A source that
 * is no pod of this node stays an address.
 */
export class NodePods {
  readonly #options: NodePodsOptions;
  readonly #now: () => number;
  #byAddress = new Map<string, string>();
  #listedAt = Number.NEGATIVE_INFINITY;
  #failedAt = Number.NEGATIVE_INFINITY;
  #said = '';

  constructor(options: NodePodsOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** The pods ("namespace/name") of the addresses that belong to pods of this node. */
  async names(addresses: readonly string[]): Promise<ReadonlyMap<string, string>> {
    const now = this.#now();
    const age = now - this.#listedAt;
    const unknown = addresses.some((address) => !this.#byAddress.has(address));
    const due =
      age >= (this.#options.maxAgeMs ?? 60_000) || (unknown && age >= (this.#options.relistAfterMs ?? 15_000));
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
      return this.#failed(now, response.status === 403 ? `${failure}; it needs ${PERMISSION}` : failure);
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
    this.#say(
      'debug',
      `listed ${items.length} pod(s) of node ${nodeName} to name the sources of stale ClusterIP traffic`,
    );
  }

  #failed(now: number, why: string): void {
    this.#failedAt = now;
    this.#say(
      'warn',
      `cannot list the pods of node ${this.#options.nodeName} to name the sources of stale ClusterIP traffic (${why}); they are shown as addresses, and the list is tried again in a few minutes`,
    );
  }

  /** Says a message once until it changes: the lookup runs whenever a stale ClusterIP is reported. */
  #say(level: 'debug' | 'warn', message: string): void {
    if (message === this.#said) return;
    this.#said = message;
    this.#options.logger[level]({ nodeName: this.#options.nodeName }, message);
  }
}
