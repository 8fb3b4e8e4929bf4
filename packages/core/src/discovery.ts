import { ErrorCodes, RouteControllerError, toRouteControllerError } from './errors.js';
import { once } from './once.js';
import { countCidrs, type NormalizationNote, type ServiceCidrs } from './service-cidrs.js';

/** What one source says right now. */
export type SourceReading =
  /** The source knows the Service CIDRs. */
  | {
      readonly kind: 'cidrs';
      readonly cidrs: ServiceCidrs;
      readonly detail: string;
      readonly notes?: readonly NormalizationNote[];
    }
  /** The source has nothing to say (not configured, API absent, no objects): ask the next one. */
  | { readonly kind: 'none'; readonly detail: string }
  /**
   * The source should know but cannot answer now (API server down, forbidden). The chain stops
   * here, so rules already installed stay in place (fail-static) rather than falling through.
   */
  | { readonly kind: 'unavailable'; readonly detail: string; readonly error: RouteControllerError };

export interface ServiceCidrSource {
  /** Stable name for logs, metrics and status ("env", "kubernetes"). */
  readonly name: string;
  read(): Promise<SourceReading>;
  /** Live sources call `listener` whenever their reading may have changed. Returns an unsubscribe. */
  subscribe?(listener: () => void): () => void;
  close?(): Promise<void>;
}

export type Discovery =
  | {
      readonly kind: 'cidrs';
      readonly source: string;
      readonly cidrs: ServiceCidrs;
      readonly detail: string;
      readonly notes: readonly NormalizationNote[];
      /** Sources asked before the winner, and why they had nothing. */
      readonly skipped: readonly SkippedSource[];
    }
  | { readonly kind: 'none'; readonly skipped: readonly SkippedSource[] }
  | {
      readonly kind: 'unavailable';
      readonly source: string;
      readonly detail: string;
      readonly error: RouteControllerError;
      readonly skipped: readonly SkippedSource[];
    };

export interface SkippedSource {
  readonly source: string;
  readonly detail: string;
}

/**
 * Asks sources in priority order; the first with CIDRs wins. Later sources are not even read
 * (a lazy source is never loaded) once an earlier one answers.
 */
export class DiscoveryChain {
  readonly #sources: readonly ServiceCidrSource[];

  constructor(sources: readonly ServiceCidrSource[]) {
    this.#sources = sources;
  }

  get sources(): readonly ServiceCidrSource[] {
    return this.#sources;
  }

  async resolve(): Promise<Discovery> {
    const skipped: SkippedSource[] = [];
    for (const source of this.#sources) {
      let reading: SourceReading;
      try {
        reading = await source.read();
      } catch (error) {
        const coded = toRouteControllerError(error, ErrorCodes.SourceFailed, `source ${source.name} failed`);
        return { kind: 'unavailable', source: source.name, detail: coded.message, error: coded, skipped };
      }
      if (reading.kind === 'cidrs' && countCidrs(reading.cidrs) > 0) {
        return {
          kind: 'cidrs',
          source: source.name,
          cidrs: reading.cidrs,
          detail: reading.detail,
          notes: reading.notes ?? [],
          skipped,
        };
      }
      if (reading.kind === 'unavailable') {
        return { kind: 'unavailable', source: source.name, detail: reading.detail, error: reading.error, skipped };
      }
      skipped.push({ source: source.name, detail: reading.detail });
    }
    return { kind: 'none', skipped };
  }

  /** Listens to every live source; the listener should re-resolve the chain. */
  subscribe(listener: () => void): () => void {
    const unsubscribes = this.#sources.flatMap((source) => (source.subscribe ? [source.subscribe(listener)] : []));
    return () => {
      for (const unsubscribe of unsubscribes) unsubscribe();
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.#sources.map((source) => source.close?.()));
  }
}

/**
 * A source whose implementation is loaded on first use, so an expensive dependency (the
 * Kubernetes client) costs nothing when an earlier source answers.
 */
export class LazySource implements ServiceCidrSource {
  readonly #source: () => Promise<ServiceCidrSource>;
  /** The latest load, so close() also closes a source still loading. */
  #loading: Promise<ServiceCidrSource> | undefined;
  #instance: ServiceCidrSource | undefined;
  readonly #listeners = new Set<() => void>();
  #unsubscribe: (() => void) | undefined;

  constructor(
    readonly name: string,
    load: () => Promise<ServiceCidrSource>,
  ) {
    // A failed load is forgotten (once), so a later read tries again.
    this.#source = once(async () => {
      let source: ServiceCidrSource;
      try {
        source = await load();
      } catch (error) {
        throw new RouteControllerError(ErrorCodes.SourceFailed, `could not load the ${name} source`, { cause: error });
      }
      this.#instance = source;
      this.#unsubscribe = source.subscribe?.(() => {
        for (const listener of this.#listeners) listener();
      });
      return source;
    });
  }

  /** The implementation, once a read has loaded it (for status displays); never loads it. */
  get instance(): ServiceCidrSource | undefined {
    return this.#instance;
  }

  async read(): Promise<SourceReading> {
    this.#loading = this.#source();
    return (await this.#loading).read();
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.#unsubscribe?.();
    const source = await this.#loading?.catch(() => undefined);
    await source?.close?.();
  }
}
