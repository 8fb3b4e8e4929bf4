import { formatServiceCidrs, normalizeCidrs, parseCidr, type SourceReading } from '@route-controller/core';
import { ApiError, failureOf } from '../kube-api/api-failure.js';
import type { ApiSubject } from '../kube-api/api-loop.js';
import type { Connection } from '../kube-api/connection.js';
import type { PeriodicReadTimings } from '../kube-api/periodic-read.js';
import { type KubeObject, Reflector, type ReflectorTimings, type Resolution } from '../kube-api/reflector.js';
import type { KubeTransport } from '../kube-api/transport.js';
import type { Logger } from '../observability/logger.js';
import { SaidOnce } from '../util/said-once.js';
import { type KubernetesSourceStatus, LoopSource } from './api-source.js';

const SERVICECIDR_GROUP = 'networking.k8s.io';
/** Newest first: v1 (GA in 1.33) wins; v1beta1 (1.31-1.32 with the beta API on) otherwise. */
const SERVICECIDR_VERSIONS = ['v1', 'v1beta1'] as const;

const SUBJECT: ApiSubject = {
  noun: 'ServiceCIDRs',
  permission: 'get, list and watch on servicecidrs (API group networking.k8s.io)',
};

/** What every Kubernetes source is built with. */
export interface SourceCommonOptions {
  readonly connect: () => Connection;
  readonly logger: Logger;
  /** The reflector's timings, and the periodic reads' (periodMs). */
  readonly timings?: Partial<ReflectorTimings & PeriodicReadTimings>;
  /** How long the first read waits for the first answer before answering "unavailable". */
  readonly firstListWaitMs?: number;
  readonly random?: () => number;
  readonly now?: () => number;
}

/**
 * Where ServiceCIDRs are served, decided by the APIResourceList of each version (not by the
 * group-version existing: networking.k8s.io/v1beta1 was also Ingress's, without servicecidrs).
 */
async function resolveServiceCidrs(transport: KubeTransport, signal: AbortSignal): Promise<Resolution> {
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
 * ServiceCIDR objects, followed live by the agent's one watch: the union of every object's
 * spec.cidrs. A terminating object (held by its finalizer while ClusterIPs in it are allocated)
 * keeps its CIDRs until it is gone. Where the API is served is asked once, and again only after a
 * 404, or about every 10 minutes while it is not served.
 */
export class ServiceCidrApiSource extends LoopSource {
  readonly name = 'servicecidr';
  protected readonly subject = SUBJECT;
  protected readonly loop: Reflector;
  readonly #log: Logger;
  readonly #unusable = new SaidOnce();

  constructor(options: SourceCommonOptions) {
    super(options.firstListWaitMs);
    this.#log = options.logger;
    this.loop = this.follow(
      new Reflector({
        subject: SUBJECT,
        connect: options.connect,
        resolve: async (transport, signal) => {
          const resolution = await resolveServiceCidrs(transport, signal);
          if (resolution.kind === 'served') {
            this.#log.info({ resource: resolution.target.resource, server: transport.server }, 'servicecidr api found');
          }
          return resolution;
        },
        logger: options.logger,
        ...(options.timings ? { timings: options.timings } : {}),
        ...(options.random ? { random: options.random } : {}),
        ...(options.now ? { now: options.now } : {}),
        onEvent: (type, object, previous) => this.#logEvent(type, object, previous),
      }),
    );
  }

  protected override statusExtras(): Partial<KubernetesSourceStatus> {
    return { terminating: this.#terminating() };
  }

  protected answer(): SourceReading {
    const entries: string[] = [];
    let count = 0;
    for (const object of this.loop.objects().values()) {
      count += 1;
      entries.push(...this.#usableCidrs(object));
    }
    const terminating = this.#terminating();
    const resource = this.loop.status().resource ?? 'servicecidrs';
    if (entries.length === 0) return { kind: 'none', detail: `no ServiceCIDR objects in the cluster (${resource})` };
    const { cidrs, notes } = normalizeCidrs(entries);
    const detail = `${count} ServiceCIDR object(s)${terminating ? `, ${terminating} terminating` : ''} (${resource}): ${formatServiceCidrs(cidrs)}`;
    return { kind: 'cidrs', cidrs, detail, notes };
  }

  #terminating(): number {
    let count = 0;
    for (const object of this.loop.objects().values()) if (object.metadata?.deletionTimestamp != null) count += 1;
    return count;
  }

  #logEvent(type: 'ADDED' | 'MODIFIED' | 'DELETED', object: KubeObject, previous: KubeObject | undefined): void {
    const fields = {
      servicecidr: object.metadata?.name,
      resourceVersion: object.metadata?.resourceVersion,
      cidrs: specCidrs(object),
    };
    if (type === 'DELETED') {
      this.#log.info(fields, 'servicecidr deleted');
    } else if (object.metadata?.deletionTimestamp != null && previous?.metadata?.deletionTimestamp == null) {
      // Its CIDRs stay until it is gone.
      this.#log.info(fields, 'servicecidr terminating');
    } else if (!previous) {
      this.#log.info(fields, 'servicecidr added');
    } else if (specCidrs(previous).join() !== fields.cidrs.join()) {
      this.#log.info(fields, 'servicecidr changed');
    }
  }

  /** The object's CIDRs that parse; an entry that does not is warned about (once) and left out. */
  #usableCidrs(object: KubeObject): string[] {
    const usable: string[] = [];
    for (const entry of specCidrs(object)) {
      try {
        parseCidr(entry);
        usable.push(entry);
      } catch (error) {
        const name = object.metadata?.name;
        if (this.#unusable.said(`${name}:${entry}`, 'unusable')) {
          this.#log.warn({ servicecidr: name, entry, err: error }, 'servicecidr entry unusable, ignored');
        }
      }
    }
    return usable;
  }
}

function specCidrs(object: KubeObject): string[] {
  const cidrs = (object.spec as { cidrs?: unknown } | undefined)?.cidrs;
  return Array.isArray(cidrs) ? cidrs.filter((entry): entry is string => typeof entry === 'string') : [];
}
