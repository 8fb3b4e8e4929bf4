import { formatServiceCidrs, normalizeCidrs, parseCidr, type SourceReading } from '@route-controller/core';
import { ApiError, failureOf } from '../kube-api/api-failure.js';
import type { Connection } from '../kube-api/connection.js';
import type { KubeObject, ReflectorTimings, Resolution } from '../kube-api/reflector.js';
import type { KubeTransport } from '../kube-api/transport.js';
import type { Logger } from '../observability/logger.js';
import { type KubernetesSourceStatus, ReflectedSource } from './watched-source.js';

export const SERVICECIDR_GROUP = 'networking.k8s.io';
/** Newest first: v1 (GA in 1.33) wins; v1beta1 (1.31-1.32 with the beta API on) otherwise. */
export const SERVICECIDR_VERSIONS = ['v1', 'v1beta1'] as const;

const SUBJECT = {
  noun: 'ServiceCIDRs',
  permission: 'get, list and watch on servicecidrs (API group networking.k8s.io)',
};

export interface SourceCommonOptions {
  readonly connect: () => Connection;
  readonly logger: Logger;
  readonly timings?: Partial<ReflectorTimings>;
  /** How long the first read waits for the first list before answering "unavailable". */
  readonly firstListWaitMs?: number;
  readonly random?: () => number;
}

/**
 * Where ServiceCIDRs are served, decided by the APIResourceList of each version (not by the
 * group-version existing: networking.k8s.io/v1beta1 was also Ingress's, without servicecidrs).
 */
export async function resolveServiceCidrs(transport: KubeTransport, signal: AbortSignal): Promise<Resolution> {
  for (const version of SERVICECIDR_VERSIONS) {
    const response = await transport.request({ method: 'GET', path: `/apis/${SERVICECIDR_GROUP}/${version}`, signal });
    if (response.status === 404) continue;
    if (response.status !== 200) throw new ApiError(failureOf(response));
    const resources = (response.body as { resources?: readonly { name?: unknown }[] } | null)?.resources;
    if (Array.isArray(resources) && resources.some((resource) => resource?.name === 'servicecidrs')) {
      return {
        kind: 'served',
        target: {
          path: `/apis/${SERVICECIDR_GROUP}/${version}/servicecidrs`,
          resource: `${SERVICECIDR_GROUP}/${version} servicecidrs`,
        },
      };
    }
  }
  return {
    kind: 'not-served',
    detail:
      'the ServiceCIDR API (servicecidrs in networking.k8s.io/v1 or v1beta1) is not served by this cluster: Kubernetes older than 1.33, or 1.31-1.32 without the beta API',
  };
}

/**
 * ServiceCIDR objects, followed live: the union of every object's spec.cidrs. A terminating object
 * (held by its finalizer while ClusterIPs in it are allocated) keeps its CIDRs until it is gone.
 */
export class ServiceCidrApiSource extends ReflectedSource {
  readonly name = 'servicecidr';
  readonly #log: Logger;
  #resource: string | undefined;

  constructor(options: SourceCommonOptions) {
    super(
      {
        subject: SUBJECT,
        connect: options.connect,
        resolve: async (transport, signal) => {
          const resolution = await resolveServiceCidrs(transport, signal);
          if (resolution.kind === 'served' && resolution.target.resource !== this.#resource) {
            this.#resource = resolution.target.resource;
            this.#log.info(
              { resource: this.#resource },
              `watching ServiceCIDR objects (${this.#resource}) on ${transport.server}`,
            );
          }
          return resolution;
        },
        logger: options.logger,
        ...(options.timings ? { timings: options.timings } : {}),
        ...(options.random ? { random: options.random } : {}),
      },
      options.firstListWaitMs,
    );
    this.#log = options.logger;
  }

  protected override statusExtras(): Partial<KubernetesSourceStatus> {
    return { terminating: this.#terminating() };
  }

  protected syncedReading(): SourceReading {
    const entries: string[] = [];
    let count = 0;
    for (const object of this.reflector.objects().values()) {
      count += 1;
      entries.push(...usableCidrs(object, this.#log));
    }
    const terminating = this.#terminating();
    const resource = this.reflector.status().resource ?? 'servicecidrs';
    if (entries.length === 0) return { kind: 'none', detail: `no ServiceCIDR objects in the cluster (${resource})` };
    const { cidrs, notes } = normalizeCidrs(entries);
    const detail = `${count} ServiceCIDR object(s)${terminating ? `, ${terminating} terminating` : ''} (${resource}): ${formatServiceCidrs(cidrs)}`;
    return { kind: 'cidrs', cidrs, detail, notes };
  }

  #terminating(): number {
    let count = 0;
    for (const object of this.reflector.objects().values()) if (object.metadata?.deletionTimestamp != null) count += 1;
    return count;
  }

  protected override onEvent(
    type: 'ADDED' | 'MODIFIED' | 'DELETED',
    object: KubeObject,
    previous: KubeObject | undefined,
  ): void {
    const name = object.metadata?.name;
    const rv = object.metadata?.resourceVersion;
    if (type === 'DELETED') {
      this.#log.info({ servicecidr: name, resourceVersion: rv }, `ServiceCIDR ${name} deleted`);
      return;
    }
    const cidrs = specCidrs(object);
    const fields = { servicecidr: name, cidrs, resourceVersion: rv };
    const terminating = object.metadata?.deletionTimestamp != null;
    if (terminating && previous?.metadata?.deletionTimestamp == null) {
      this.#log.info(fields, `ServiceCIDR ${name} is terminating; its CIDRs stay until it is gone`);
    } else if (!previous) {
      this.#log.info(fields, `ServiceCIDR ${name} added: ${cidrs.join(', ')}`);
    } else if (specCidrs(previous).join() !== cidrs.join()) {
      this.#log.info(fields, `ServiceCIDR ${name} changed: ${cidrs.join(', ')}`);
    }
  }
}

function specCidrs(object: KubeObject): string[] {
  const cidrs = (object.spec as { cidrs?: unknown } | undefined)?.cidrs;
  return Array.isArray(cidrs) ? cidrs.filter((entry): entry is string => typeof entry === 'string') : [];
}

/** The object's CIDRs that parse; an entry that does not is warned about and left out. */
function usableCidrs(object: KubeObject, log: Logger): string[] {
  const usable: string[] = [];
  for (const entry of specCidrs(object)) {
    try {
      parseCidr(entry);
      usable.push(entry);
    } catch (error) {
      warnOnce(log, `${object.metadata?.name}:${entry}`, () =>
        log.warn(
          { servicecidr: object.metadata?.name, entry, err: error },
          `ServiceCIDR ${object.metadata?.name} has an entry route-controller cannot use: "${entry}"; ignored`,
        ),
      );
    }
  }
  return usable;
}

const warned = new WeakMap<Logger, Set<string>>();

/** Readings are recomputed often; a warning about the same bad value is said once per logger. */
export function warnOnce(log: Logger, key: string, say: () => void): void {
  let seen = warned.get(log);
  if (!seen) {
    seen = new Set();
    warned.set(log, seen);
  }
  if (seen.has(key)) return;
  seen.add(key);
  say();
}
