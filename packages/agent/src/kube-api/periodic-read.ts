import { ApiError, failureOf } from './api-failure.js';
import { ApiLoop, type ApiLoopOptions, type LoopTimings } from './api-loop.js';
import type { KubeTransport } from './transport.js';

export interface PeriodicReadTimings extends LoopTimings {
  /** Read again after this long (shortened by up to a tenth at random, so a fleet spreads out). */
  readonly periodMs: number;
}

export interface PeriodicReadOptions<T> extends ApiLoopOptions {
  /** For status: "configmaps kube-system/kubeadm-config". */
  readonly resource: string;
  /** One reading: throws ApiError (by status) or TransportError on a failure. */
  readonly read: (transport: KubeTransport, signal: AbortSignal) => Promise<T>;
  readonly timings?: Partial<PeriodicReadTimings>;
}

/**
 * A single read (a GET, or a list from the watch cache), done again about every 10 minutes, for what
 * changes almost never and needs no watch (kubeadm's ClusterConfiguration, k3s's node arguments, the
 * dry-run answer). A failure is retried after the loop's backoff, and the last answer is kept.
 */
export class PeriodicRead<T> extends ApiLoop {
  readonly #read: PeriodicReadOptions<T>['read'];
  readonly #periodMs: number;
  #value: { readonly value: T } | undefined;

  constructor(options: PeriodicReadOptions<T>) {
    super(options);
    this.#read = options.read;
    this.#periodMs = options.timings?.periodMs ?? 600_000;
    this.describe(options.resource);
  }

  /** The last answer (kept through failures), or undefined before the first. */
  value(): T | undefined {
    return this.#value?.value;
  }

  protected override kept(): number {
    return this.#value ? 1 : 0;
  }

  protected async cycle(transport: KubeTransport): Promise<number> {
    const outcome = await this.request((signal) => this.#read(transport, signal));
    if (outcome.kind === 'stopped') return 0;
    if (outcome.kind === 'failed') return this.failed(outcome.failure);
    this.#value = { value: outcome.value };
    this.log[this.succeeded() ? 'info' : 'debug']({ subject: this.subject.noun }, 'read');
    this.changed();
    return Math.round(this.#periodMs * (1 - 0.1 * this.random()));
  }
}

/** GETs one object (from the watch cache: resourceVersion=0); null when there is none (404). */
export async function getObject(
  transport: KubeTransport,
  path: string,
  signal: AbortSignal,
): Promise<Record<string, unknown> | null> {
  const response = await transport.request({ method: 'GET', path, query: { resourceVersion: '0' }, signal });
  if (response.status === 404) return null;
  if (response.status !== 200) throw new ApiError(failureOf(response));
  if (typeof response.body !== 'object' || response.body === null) {
    throw new ApiError({ status: 200, message: `${path} did not answer an object` });
  }
  return response.body as Record<string, unknown>;
}

/** Lists objects from the watch cache (resourceVersion=0): never a quorum read of etcd. */
export async function listObjects(
  transport: KubeTransport,
  path: string,
  query: Readonly<Record<string, string>>,
  signal: AbortSignal,
): Promise<Record<string, unknown>[]> {
  const response = await transport.request({
    method: 'GET',
    path,
    query: { ...query, resourceVersion: '0' },
    signal,
  });
  if (response.status !== 200) throw new ApiError(failureOf(response));
  const items = (response.body as { items?: unknown } | null)?.items;
  if (!Array.isArray(items)) throw new ApiError({ status: 200, message: `the list of ${path} is not a list` });
  return items as Record<string, unknown>[];
}
