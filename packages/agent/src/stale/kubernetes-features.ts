import { errorMessage, once } from '@route-controller/core';
import type { AgentConfig } from '../config/config.js';
import type { KubernetesConnection } from '../kube-api/connection.js';
import type { Logger } from '../observability/logger.js';
import { SaidOnce } from '../util/said-once.js';

/*
 * The two Kubernetes features of stale ClusterIP reporting: naming the pods behind the sources, and
 * Events on the Node. Both use the API connection of the Kubernetes discovery, and both load their
 * code (and the Kubernetes client) only when first used: an agent given SERVICE_CIDRS never loads it.
 */

/** Opens (once) the connection the Kubernetes sources use. */
export type ConnectionLoader = () => Promise<KubernetesConnection>;

/** Pod names ("namespace/name") of source addresses that belong to pods of this node. */
export interface PodNames {
  names(addresses: readonly string[]): Promise<ReadonlyMap<string, string>>;
}

/** One destination's StaleClusterIP Event as it should now read. */
export interface StaleEvent {
  readonly destination: string;
  readonly message: string;
  /** How many times the destination was seen dialled: 1 creates the Event, more bump it. */
  readonly count: number;
}

/** Where Events about stale ClusterIPs go. */
export interface StaleEventSink {
  /** Writes the destination's Event (the caller limits how often); failures are logged, never thrown. */
  record(event: StaleEvent): Promise<void>;
}

export const NO_POD_NAMES: PodNames = { names: async () => new Map() };
export const NO_STALE_EVENTS: StaleEventSink = { record: async () => {} };

/** Why pods are not named, or undefined when they are looked up. */
export function podLookupOff(config: AgentConfig): string | undefined {
  if (!config.podLookup) return 'POD_LOOKUP=false';
  return needsApi(config);
}

/** Why no Events are created, or undefined when they are. */
export function staleEventsOff(config: AgentConfig): string | undefined {
  if (!config.staleEvents) return 'STALE_CLUSTERIP_EVENTS is not true';
  return needsApi(config);
}

function needsApi(config: AgentConfig): string | undefined {
  if (config.serviceCidrs !== undefined) return 'SERVICE_CIDRS is set, so the agent does not use the Kubernetes API';
  if (!config.nodeName) return 'NODE_NAME is not set (the downward API gives it in a pod)';
  return undefined;
}

/** Pod names from the pods of this node, or none (with the reason) when the lookup is off. */
export function createPodNames(config: AgentConfig, connection: ConnectionLoader, logger: Logger): PodNames {
  const nodeName = config.nodeName;
  if (podLookupOff(config) || !nodeName) return NO_POD_NAMES;
  const use = onFirstUse(
    async () => {
      const [{ NodePods }, loaded] = await Promise.all([import('./pods.js'), connection()]);
      return new NodePods({ connect: () => loaded.connect(), nodeName, logger });
    },
    logger,
    'cannot name the pods behind stale ClusterIP sources',
  );
  return {
    names: async (addresses) =>
      addresses.length === 0 ? new Map() : use((pods) => pods.names(addresses), new Map<string, string>()),
  };
}

/** Events on this node's Node object, or none when they are off. */
export function createStaleEvents(config: AgentConfig, connection: ConnectionLoader, logger: Logger): StaleEventSink {
  const nodeName = config.nodeName;
  if (staleEventsOff(config) || !nodeName) return NO_STALE_EVENTS;
  const use = onFirstUse(
    async () => {
      const [{ NodeEvents }, loaded] = await Promise.all([import('./node-events.js'), connection()]);
      return new NodeEvents({ connect: () => loaded.connect(), nodeName, logger });
    },
    logger,
    'cannot write stale ClusterIP Events',
  );
  return { record: (event) => use((events) => events.record(event), undefined, { destination: event.destination }) };
}

/**
 * A feature built on its first use (its code, and the Kubernetes client, imported then). A use that
 * fails answers `fallback`, and the failure is logged once per cause: every read of the records
 * would say it again.
 */
function onFirstUse<F>(build: () => Promise<F>, logger: Logger, failure: string) {
  const load = once(build);
  const said = new SaidOnce();
  return async <R>(use: (feature: F) => Promise<R>, fallback: R, fields: Record<string, unknown> = {}): Promise<R> => {
    try {
      return await use(await load());
    } catch (error) {
      if (said.said(failure, errorMessage(error))) logger.warn({ err: error, ...fields }, failure);
      return fallback;
    }
  };
}
