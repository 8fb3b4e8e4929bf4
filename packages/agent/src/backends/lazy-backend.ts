import {
  type ApplyResult,
  type Availability,
  type BackendCapabilities,
  type ChangeListener,
  type ChangeStreamEnd,
  type CleanupResult,
  type DesiredState,
  ErrorCodes,
  type FirewallBackend,
  type ObservedState,
  once,
  type Plan,
  RouteControllerError,
  type WriteOptions,
} from '@route-controller/core';

/**
 * A backend whose module is imported on first use, so a node where nft works never loads the
 * iptables backend before its rules are in place. A failed import is tried again on the next call.
 */
export class LazyBackend implements FirewallBackend {
  readonly #get: () => Promise<FirewallBackend>;
  #loaded: FirewallBackend | undefined;

  constructor(
    readonly name: string,
    private readonly fallbackCapabilities: BackendCapabilities,
    load: () => Promise<FirewallBackend>,
  ) {
    this.#get = once(async () => {
      this.#loaded = await load();
      return this.#loaded;
    });
  }

  /** The real backend's capabilities once loaded (they can narrow after its probe). */
  get capabilities(): BackendCapabilities {
    return this.#loaded?.capabilities ?? this.fallbackCapabilities;
  }

  async probe(): Promise<Availability> {
    return (await this.#get()).probe();
  }

  async plan(desired: DesiredState): Promise<Plan> {
    return (await this.#get()).plan(desired);
  }

  async apply(desired: DesiredState, options?: WriteOptions): Promise<ApplyResult> {
    return (await this.#get()).apply(desired, options);
  }

  async observe(): Promise<ObservedState> {
    return (await this.#get()).observe();
  }

  async cleanup(options?: WriteOptions): Promise<CleanupResult> {
    return (await this.#get()).cleanup(options);
  }

  async watchChanges(listener: ChangeListener, signal: AbortSignal): Promise<ChangeStreamEnd> {
    const backend = await this.#get();
    if (!backend.watchChanges) {
      throw new RouteControllerError(ErrorCodes.FirewallUnsupported, `${this.name} reports no kernel change events`, {
        hint: 'Nothing to do: the resync (RESYNC_INTERVAL) finds and repairs drift.',
      });
    }
    return backend.watchChanges(listener, signal);
  }
}
