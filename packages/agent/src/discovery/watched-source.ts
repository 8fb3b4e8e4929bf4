import {
  ErrorCodes,
  formatServiceCidrs,
  RouteControllerError,
  type ServiceCidrSource,
  type SourceReading,
} from '@route-controller/core';
import type { KubeObject, ReflectorOptions, ReflectorStatus, ReflectorSubject } from '../kube-api/reflector.js';
import { Reflector } from '../kube-api/reflector.js';

/** One connection's state as status and metrics show it, named by the source (and part) it serves. */
export interface KubernetesSourceStatus extends ReflectorStatus {
  /** servicecidr, kubeadm, node-args, node-args-servers, dry-run. */
  readonly source: string;
  /** ServiceCIDRs only: objects being deleted, held by their finalizer. */
  readonly terminating?: number;
}

/** A Kubernetes source: a ServiceCidrSource that can also show its API connections. */
export interface KubernetesSource {
  readonly name: string;
  statuses(): readonly KubernetesSourceStatus[];
}

/** Listeners told only when what read() would answer has changed. */
export class ReadingListeners {
  readonly #listeners = new Set<() => void>();
  #lastKey = '';

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Calls the listeners if `reading` differs from the last one seen; true when it did. */
  update(reading: SourceReading): boolean {
    const key = `${reading.kind}:${reading.kind === 'cidrs' ? formatServiceCidrs(reading.cidrs) : reading.detail}`;
    if (key === this.#lastKey) return false;
    this.#lastKey = key;
    for (const listener of this.#listeners) listener();
    return true;
  }
}

/**
 * What a reflector's source answers before its first list: 'none' (skip to the next source, with
 * the reason) when there is no configuration, the API is not served, or the source is not
 * allowed; 'unavailable' (the chain stops, rules in place stay) while the API cannot be reached.
 */
export function unsyncedReading(reflector: Reflector, subject: ReflectorSubject, hint: string): SourceReading {
  const status = reflector.status();
  const why = reflector.lastFailure?.message;
  switch (status.state) {
    case 'not-configured':
      return { kind: 'none', detail: `no Kubernetes configuration (${why ?? 'none found'})` };
    case 'not-found':
      return { kind: 'none', detail: why ?? `${subject.noun} are not served` };
    case 'forbidden':
      return { kind: 'none', detail: `not allowed (${why ?? '403'}); it needs ${subject.permission}` };
    default: {
      const state = status.state === 'stopped' ? 'stopped' : status.state;
      const detail = `no list of ${subject.noun} yet (${state}: ${why ?? 'waiting for the first list'})`;
      return {
        kind: 'unavailable',
        detail,
        error: new RouteControllerError(ErrorCodes.SourceFailed, `cannot read ${subject.noun}: ${detail}`, {
          hint,
          details: { state: status.state },
        }),
      };
    }
  }
}

/** The note added to a cached reading while the API is failing: the last list is what counts. */
export function staleNote(reflector: Reflector): string {
  const { state, lastError } = reflector.status();
  if (state === 'synced' || state === 'stopped' || !lastError) return '';
  return `; API ${state} (${lastError}), keeping the last list`;
}

export function withDetail(reading: SourceReading, suffix: string): SourceReading {
  return suffix ? { ...reading, detail: `${reading.detail}${suffix}` } : reading;
}

/** The fix to suggest while a source's API cannot be reached. */
const UNREACHABLE_HINT =
  'Check that the API server is reachable from the node, or set SERVICE_CIDRS (Helm: routeController.serviceCIDRs).';

/**
 * A source that follows one kind of object with one reflector: the first read waits briefly for the
 * first list, listeners hear only of changed readings, and before the first list the reading says
 * why there is none (unsyncedReading). A subclass says what a synced store means, and may log events.
 */
export abstract class ReflectedSource implements ServiceCidrSource, KubernetesSource {
  abstract readonly name: string;
  protected readonly reflector: Reflector;
  readonly #listeners = new ReadingListeners();
  readonly #subject: ReflectorSubject;
  readonly #firstListWaitMs: number;

  constructor(options: Omit<ReflectorOptions, 'onEvent'>, firstListWaitMs = 2_000) {
    this.#subject = options.subject;
    this.#firstListWaitMs = firstListWaitMs;
    this.reflector = new Reflector({
      ...options,
      onEvent: (type, object, previous) => this.onEvent(type, object, previous),
    });
    this.reflector.subscribe(() => this.#listeners.update(this.reading()));
  }

  statuses(): readonly KubernetesSourceStatus[] {
    return [{ source: this.name, ...this.reflector.status(), ...this.statusExtras() }];
  }

  async read(): Promise<SourceReading> {
    // A healthy cluster answers at once; an unreachable one does not hold start-up for long.
    await this.reflector.start(this.#firstListWaitMs);
    return this.reading();
  }

  subscribe(listener: () => void): () => void {
    return this.#listeners.subscribe(listener);
  }

  async close(): Promise<void> {
    await this.reflector.stop();
  }

  protected reading(): SourceReading {
    if (!this.reflector.status().synced) return unsyncedReading(this.reflector, this.#subject, UNREACHABLE_HINT);
    return withDetail(this.syncedReading(), staleNote(this.reflector));
  }

  /** What the store says once listed (the stale note is added by the caller). */
  protected abstract syncedReading(): SourceReading;

  /** Each ADDED, MODIFIED or DELETED event, after the store has it: for the source's own log lines. */
  protected onEvent(_type: 'ADDED' | 'MODIFIED' | 'DELETED', _object: KubeObject, _previous?: KubeObject): void {}

  /** Fields of this source's own added to its status. */
  protected statusExtras(): Partial<KubernetesSourceStatus> {
    return {};
  }
}

export { Reflector };
