import { randomBytes } from 'node:crypto';
import { describeFailure, failureOf } from '../kube-api/api-failure.js';
import type { Connection } from '../kube-api/connection.js';
import { TransportError } from '../kube-api/transport.js';
import type { Logger } from '../observability/logger.js';
import { SaidOnce } from '../util/said-once.js';
import type { StaleEvent } from './kubernetes-features.js';
import { EVENT_MEMORY } from './stale-notices.js';

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
const PERMISSION = `create and patch on events in the ${NODE_EVENT_NAMESPACE} namespace (the Helm chart grants them with routeController.staleClusterIPs.events)`;

/** The Event created for a destination, to bump rather than create anew. */
interface Created {
  readonly name: string;
}

/**
 * Writes core/v1 Events about this node's Node object, as kubelet does (involvedObject uid = the
 * node's name), so `kubectl get events` and `kubectl describe node` show them. One Event per
 * destination, as client-go's EventRecorder aggregates: created with its first count, then its
 * count, message and lastTimestamp patched; created anew when the server no longer has it. How
 * often is the caller's business (StaleEventPolicy); a failure is logged once until it changes.
 */
export class NodeEvents {
  readonly #options: NodeEventsOptions;
  readonly #created = new Map<string, Created>();
  readonly #said = new SaidOnce();

  constructor(options: NodeEventsOptions) {
    this.#options = options;
  }

  async record(event: StaleEvent): Promise<void> {
    const connection = this.#options.connect();
    if (connection.kind !== 'ready') return this.#failed(event.destination, connection.message);
    const at = (this.#options.now ?? (() => new Date()))().toISOString();
    const existing = event.count > 1 ? this.#created.get(event.destination) : undefined;
    try {
      if (existing) {
        const response = await this.#send(connection, {
          method: 'PATCH',
          path: `/api/v1/namespaces/${NODE_EVENT_NAMESPACE}/events/${existing.name}`,
          body: { count: event.count, lastTimestamp: at, message: event.message },
        });
        if (response.status >= 200 && response.status < 300) return this.#written(event, existing.name, 'patched');
        // Gone (the API server keeps Events an hour): write it anew. Anything else is a failure.
        if (response.status !== 404) return this.#refused(event, response);
      }
      const name = `${this.#options.nodeName}.${randomBytes(8).toString('hex')}`;
      const response = await this.#send(connection, {
        method: 'POST',
        path: `/api/v1/namespaces/${NODE_EVENT_NAMESPACE}/events`,
        body: this.#body(name, event, at),
      });
      if (response.status >= 200 && response.status < 300) return this.#written(event, name, 'created');
      return this.#refused(event, response);
    } catch (error) {
      if (!(error instanceof TransportError) && !(error instanceof Error && /abort|timeout/i.test(error.name)))
        throw error;
      return this.#failed(
        event.destination,
        error instanceof TransportError ? error.message : 'the API server did not answer in time',
      );
    }
  }

  #send(
    connection: Extract<Connection, { kind: 'ready' }>,
    request: { method: 'POST' | 'PATCH'; path: string; body: unknown },
  ) {
    return connection.transport.request({
      ...request,
      signal: AbortSignal.timeout(this.#options.requestTimeoutMs ?? 10_000),
    });
  }

  #body(name: string, event: StaleEvent, at: string) {
    const { nodeName } = this.#options;
    return {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name, namespace: NODE_EVENT_NAMESPACE },
      involvedObject: { apiVersion: 'v1', kind: 'Node', name: nodeName, uid: nodeName },
      reason: STALE_CLUSTERIP_REASON,
      message: event.message,
      type: 'Warning',
      source: { component: 'route-controller', host: nodeName },
      reportingComponent: 'route-controller',
      reportingInstance: nodeName,
      firstTimestamp: at,
      lastTimestamp: at,
      count: event.count,
    };
  }

  #written(event: StaleEvent, name: string, how: 'created' | 'patched'): void {
    // Most recently written last, so the oldest is the one forgotten.
    this.#created.delete(event.destination);
    this.#created.set(event.destination, { name });
    if (this.#created.size > EVENT_MEMORY) this.#created.delete(this.#created.keys().next().value as string);
    this.#said.forget();
    this.#options.logger.debug(
      { destination: event.destination, event: name, count: event.count, how },
      'stale ClusterIP Event written',
    );
  }

  #refused(event: StaleEvent, response: { status: number; body: unknown }): void {
    const failure = describeFailure(failureOf(response));
    this.#failed(event.destination, failure, response.status === 403 ? PERMISSION : undefined);
  }

  #failed(destination: string, why: string, needs?: string): void {
    if (!this.#said.said('failure', why)) return;
    this.#options.logger.warn(
      { destination, nodeName: this.#options.nodeName, reason: why, needs },
      'cannot write stale ClusterIP Events; the log still has them',
    );
  }
}
