import {
  ErrorCodes,
  formatServiceCidrs,
  RouteControllerError,
  type ServiceCidrSource,
  type SourceReading,
} from '@route-controller/core';
import type { ApiLoop, ApiLoopStatus, ApiSubject } from '../kube-api/api-loop.js';

/** One API loop's state as status and metrics show it, named by the source it serves. */
export interface KubernetesSourceStatus extends ApiLoopStatus {
  /** servicecidr, kubeadm, node-args, dry-run. */
  readonly source: string;
  /** Objects held: listed ServiceCIDRs, or the objects of the last read. */
  readonly objects: number;
  /** ServiceCIDRs only: the resourceVersion followed. */
  readonly resourceVersion: string;
  /** ServiceCIDRs only: objects being deleted, held by their finalizer. */
  readonly terminating?: number;
}

/** A Kubernetes source: a ServiceCidrSource whose API loop is started explicitly and shows its state. */
export interface KubernetesSource {
  readonly name: string;
  /** Starts its loop (once): reading a source never starts anything. */
  start(): void;
  statuses(): readonly KubernetesSourceStatus[];
}

/** The fix to suggest while a source's API cannot be reached. */
const UNREACHABLE_HINT =
  'Check that the API server is reachable from the node, or set SERVICE_CIDRS (Helm: routeController.serviceCIDRs).';

/** Listeners told only when what read() would answer has changed. */
class ReadingListeners {
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
 * What a source answers before its loop's first answer: 'none' (skip to the next source, with the
 * reason) when there is no configuration, the API is not served, or the source is not allowed;
 * 'unavailable' (the chain stops, rules in place stay) while the API cannot be reached.
 */
function unsyncedReading(loop: ApiLoop, subject: ApiSubject): SourceReading {
  const { state } = loop.status();
  const why = loop.lastFailure?.message;
  switch (state) {
    case 'not-configured':
      return { kind: 'none', detail: `no Kubernetes configuration (${why ?? 'none found'})` };
    case 'not-found':
      return { kind: 'none', detail: why ?? `${subject.noun} are not served` };
    case 'forbidden':
      return { kind: 'none', detail: `not allowed (${why ?? '403'}); it needs ${subject.permission}` };
    default: {
      const detail = `no answer about ${subject.noun} yet (${state}: ${why ?? (loop.started ? 'waiting for the first answer' : 'not started')})`;
      return {
        kind: 'unavailable',
        detail,
        error: new RouteControllerError(ErrorCodes.SourceFailed, `cannot read ${subject.noun}: ${detail}`, {
          hint: UNREACHABLE_HINT,
          details: { state },
        }),
      };
    }
  }
}

/** The note added to a kept answer while the API is failing: the last answer is what counts. */
function staleNote(loop: ApiLoop): string {
  const { state, lastError } = loop.status();
  if (state === 'synced' || state === 'stopped' || !lastError) return '';
  return `; API ${state} (${lastError}), keeping the last answer`;
}

function withDetail(reading: SourceReading, suffix: string): SourceReading {
  return suffix ? { ...reading, detail: `${reading.detail}${suffix}` } : reading;
}

/**
 * A source over one API loop (a reflector, or a periodic read). start() starts the loop; read()
 * waits briefly for its first answer (a healthy cluster answers at once; an unreachable one does
 * not hold start-up for long) and then answers from what the loop holds, starting nothing. Until
 * the first answer the reading says why there is none (unsyncedReading); listeners hear only of
 * changed readings. A subclass says what an answer means.
 */
export abstract class LoopSource implements ServiceCidrSource, KubernetesSource {
  abstract readonly name: string;
  protected abstract readonly loop: ApiLoop;
  protected abstract readonly subject: ApiSubject;
  readonly #listeners = new ReadingListeners();
  readonly #firstAnswerWaitMs: number;

  constructor(firstAnswerWaitMs = 2_000) {
    this.#firstAnswerWaitMs = firstAnswerWaitMs;
  }

  start(): void {
    this.loop.start();
  }

  async read(): Promise<SourceReading> {
    await this.loop.firstAttempt(this.#firstAnswerWaitMs);
    return this.reading();
  }

  subscribe(listener: () => void): () => void {
    return this.#listeners.subscribe(listener);
  }

  async close(): Promise<void> {
    await this.loop.stop();
  }

  statuses(): readonly KubernetesSourceStatus[] {
    return [{ source: this.name, objects: 0, resourceVersion: '', ...this.loop.status(), ...this.statusExtras() }];
  }

  /** Called by the subclass once its loop exists: readings follow the loop. */
  protected follow<L extends ApiLoop>(loop: L): L {
    loop.subscribe(() => this.#listeners.update(this.reading()));
    return loop;
  }

  /** Pure: what the loop holds now, as a reading. */
  protected reading(): SourceReading {
    if (!this.loop.status().synced) return unsyncedReading(this.loop, this.subject);
    return withDetail(this.answer(), staleNote(this.loop));
  }

  /** What the loop's answer means (the stale note is added by the caller). */
  protected abstract answer(): SourceReading;

  /** Fields of this source's own added to its status. */
  protected statusExtras(): Partial<KubernetesSourceStatus> {
    return {};
  }
}
