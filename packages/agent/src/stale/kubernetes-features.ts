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
  const off = podLookupOff(config);
  const nodeName = config.nodeName;
  if (off || !nodeName) return NO_POD_NAMES;
  const said = new SaidOnce();
  const load = once(async (): Promise<PodNames> => {
    const [{ NodePods }, loaded] = await Promise.all([import('./pods.js'), connection()]);
    return new NodePods({ connect: () => loaded.connect(), nodeName, logger });
  });
  return {
    names: async (addresses) => {
      if (addresses.length === 0) return new Map();
      try {
        return await (await load()).names(addresses);
      } catch (error) {
        // Once per cause: every read of the records would say it again.
        if (said.said('names', errorMessage(error))) {
          logger.warn({ err: error }, 'cannot name the pods behind stale ClusterIP sources');
        }
        return new Map();
      }
    },
  };
}

/** Events on this node's Node object, or none when they are off. */
export function createStaleEvents(config: AgentConfig, connection: ConnectionLoader, logger: Logger): StaleEventSink {
  const nodeName = config.nodeName;
  if (staleEventsOff(config) || !nodeName) return NO_STALE_EVENTS;
  const said = new SaidOnce();
  const load = once(async (): Promise<StaleEventSink> => {
    const [{ NodeEvents }, loaded] = await Promise.all([import('./node-events.js'), connection()]);
    return new NodeEvents({ connect: () => loaded.connect(), nodeName, logger });
  });
  return {
    record: async (event) => {
      try {
        await (await load()).record(event);
      } catch (error) {
        if (said.said('record', errorMessage(error))) {
          logger.warn({ err: error, destination: event.destination }, 'cannot write stale ClusterIP Events');
        }
      }
    },
  };
}
