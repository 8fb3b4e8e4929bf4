import { ErrorCodes, formatServiceCidrs, RouteControllerError, type SourceReading } from '@route-controller/core';
import type { ReflectorStatus, ReflectorSubject } from './reflector.js';
import { Reflector } from './reflector.js';

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

export { Reflector };
