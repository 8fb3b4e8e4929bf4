import { randomBytes } from 'node:crypto';
import { describeFailure, failureOf } from '../kube-api/api-failure.js';
import type { Connection } from '../kube-api/connection.js';
import { TransportError } from '../kube-api/transport.js';
import type { Logger } from '../observability/logger.js';

export interface NodeEventsOptions {
  readonly connect: () => Connection;
  readonly nodeName: string;
  readonly logger: Logger;
  readonly requestTimeoutMs?: number;
  readonly now?: () => Date;
}

/** Where Node events live: kubelet writes its own there, and `kubectl describe node` finds them. */
export const NODE_EVENT_NAMESPACE = 'default';
export const STALE_CLUSTERIP_REASON = 'StaleClusterIP';
const PERMISSION = `create on events in the ${NODE_EVENT_NAMESPACE} namespace (the Helm chart grants it with routeController.staleClusterIPs.events)`;

/**
 * Creates core/v1 Events about this node's Node object, as kubelet does (involvedObject uid = the
 * node's name), so `kubectl get events` and `kubectl describe node` show them. How often is the
 * caller's business (one per destination per 10 minutes); a failure is logged once until it changes.
 */
export class NodeEvents {
  readonly #options: NodeEventsOptions;
  #said = '';

  constructor(options: NodeEventsOptions) {
    this.#options = options;
  }

  async record(destination: string, message: string): Promise<void> {
    const connection = this.#options.connect();
    if (connection.kind !== 'ready') return this.#failed(destination, connection.message);
    const { nodeName } = this.#options;
    const at = (this.#options.now ?? (() => new Date()))().toISOString();
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${nodeName}.${randomBytes(8).toString('hex')}`, namespace: NODE_EVENT_NAMESPACE },
      involvedObject: { apiVersion: 'v1', kind: 'Node', name: nodeName, uid: nodeName },
      reason: STALE_CLUSTERIP_REASON,
      message,
      type: 'Warning',
      source: { component: 'route-controller', host: nodeName },
      reportingComponent: 'route-controller',
      reportingInstance: nodeName,
      firstTimestamp: at,
      lastTimestamp: at,
      count: 1,
    };
    try {
      const response = await connection.transport.request({
        method: 'POST',
        path: `/api/v1/namespaces/${NODE_EVENT_NAMESPACE}/events`,
        body,
        signal: AbortSignal.timeout(this.#options.requestTimeoutMs ?? 10_000),
      });
      if (response.status >= 200 && response.status < 300) {
        this.#said = '';
        this.#options.logger.debug(
          { destination, event: body.metadata.name },
          `Event ${STALE_CLUSTERIP_REASON} created`,
        );
        return;
      }
      const failure = describeFailure(failureOf(response));
      return this.#failed(destination, response.status === 403 ? `${failure}; it needs ${PERMISSION}` : failure);
    } catch (error) {
      if (!(error instanceof TransportError) && !(error instanceof Error && /abort|timeout/i.test(error.name)))
        throw error;
      return this.#failed(
        destination,
        error instanceof TransportError ? error.message : 'the API server did not answer in time',
      );
    }
  }

  #failed(destination: string, why: string): void {
    const message = `cannot create ${STALE_CLUSTERIP_REASON} Events on node ${this.#options.nodeName} (${why}); the log still says it`;
    if (message === this.#said) return;
    this.#said = message;
    this.#options.logger.warn({ destination }, message);
  }
}
