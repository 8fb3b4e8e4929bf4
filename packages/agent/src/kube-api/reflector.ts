import { errorMessage } from '@route-controller/core';
import type { ApiConnectionState } from '../observability/api-state.js';
import type { Logger } from '../observability/logger.js';
import { ApiError, type ApiFailure, describeFailure, failureOf, toApiFailure } from './api-failure.js';
import type { Connection } from './connection.js';
import { isWatchStream, type KubeTransport, TransportError, type WatchEvent } from './transport.js';

/** What a reflector lists and watches, once the source has worked out where it is served. */
export interface ReflectorTarget {
  /** A collection path: /api/v1/nodes, /apis/networking.k8s.io/v1/servicecidrs. */
  readonly path: string;
  /**
   * Selectors, sent with the list AND the watch: RBAC restricted by resourceNames authorizes a
   * list or watch only when it carries the matching metadata.name field selector.
   */
  readonly query?: Readonly<Record<string, string>>;
  /** For status: "networking.k8s.io/v1 servicecidrs". */
  readonly resource: string;
}

export type Resolution =
  | { readonly kind: 'served'; readonly target: ReflectorTarget }
  /** The API is not served here (404 on discovery): looked for again now and then. */
  | { readonly kind: 'not-served'; readonly detail: string };

export interface ReflectorSubject {
  /** For logs, in a sentence: "ServiceCIDRs", "the kubeadm-config ConfigMap", "this node's Node object". */
  readonly noun: string;
  /** The grant a 403 asks for: "get, list and watch on servicecidrs (API group networking.k8s.io)". */
  readonly permission: string;
}

export interface ReflectorTimings {
  /** First wait after a failure; doubled per failure up to backoffMaxMs, plus jitter. */
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  /** Each wait grows by a random amount up to this fraction (so restarts across nodes spread out). */
  readonly jitter: number;
  /** The longest wait between looks while the API is not served or there is no configuration. */
  readonly recheckMs: number;
  /** Server-side watch timeout; the watch is then resumed from the last resourceVersion. */
  readonly watchTimeoutSeconds: number;
  /** A watch with no event, bookmark or close this long past its timeout is presumed dead. */
  readonly watchGraceMs: number;
  /** A list, or a watch whose headers have not come, is abandoned after this long. */
  readonly requestTimeoutMs: number;
}

export const DEFAULT_TIMINGS: ReflectorTimings = {
  backoffInitialMs: 500,
  backoffMaxMs: 30_000,
  jitter: 0.25,
  recheckMs: 60_000,
  watchTimeoutSeconds: 300,
  watchGraceMs: 30_000,
  requestTimeoutMs: 30_000,
};

export interface ReflectorOptions {
  readonly subject: ReflectorSubject;
  readonly connect: () => Connection;
  /** Where the objects are served (API discovery for ServiceCIDRs); called before every list. */
  readonly resolve: (transport: KubeTransport, signal: AbortSignal) => Promise<Resolution>;
  readonly logger: Logger;
  readonly timings?: Partial<ReflectorTimings>;
  /** For the jitter; Math.random unless a test fixes it. */
  readonly random?: () => number;
  /** Called for each ADDED, MODIFIED or DELETED event, after the store has it (for the source's logs). */
  readonly onEvent?: (
    type: 'ADDED' | 'MODIFIED' | 'DELETED',
    object: KubeObject,
    previous: KubeObject | undefined,
  ) => void;
}

/** An object as listed or watched: only metadata is read here; the source reads the rest. */
export interface KubeObject {
  readonly metadata?: {
    readonly name?: string;
    readonly namespace?: string;
    readonly resourceVersion?: string;
    readonly deletionTimestamp?: unknown;
    readonly labels?: Readonly<Record<string, string>>;
    readonly annotations?: Readonly<Record<string, string>>;
  };
  readonly [field: string]: unknown;
}

export interface ReflectorStatus {
  readonly state: ApiConnectionState;
  /** A first list has succeeded: the store is authoritative, and stays so through faults. */
  readonly synced: boolean;
  readonly objects: number;
  readonly resourceVersion: string;
  readonly server?: string;
  readonly resource?: string;
  readonly lastError?: string;
}

type WatchEnd =
  | { readonly kind: 'stopped' }
  | { readonly kind: 'closed'; readonly events: number; readonly lastedMs: number }
  | { readonly kind: 'silent'; readonly silentMs: number }
  | { readonly kind: 'expired' }
  | { readonly kind: 'malformed'; readonly message: string }
  | { readonly kind: 'failed'; readonly failure: ApiFailure };

/** A watch that ends sooner than this without an event counts as a quick close (guards a hot loop). */
const QUICK_CLOSE_MS = 1_000;

/**
 * One generic list-then-watch loop, reused by every watched source (ServiceCIDRs, the
 * kubeadm-config ConfigMap, Nodes). It lists, then watches from the list's resourceVersion with
 * bookmarks; re-watches after a close, a server-side timeout or a silent connection (watchdog);
 * relists after 410 Gone; waits with exponential backoff and jitter after failures; and looks
 * again now and then while the API is not served.
 *
 * Any other error (a bug in the agent's own watch code, a transport that throws something
 * unforeseen) is shown as the state 'error' with its message, logged, and the reflector restarts
 * with a fresh list after a backoff: it never stops for good while its status says all is well.
 * (The alternative, exiting so the kubelet restarts the pod, was rejected: the node stays
 * protected either way, but a restart loop costs every source its cache and start-up.)
 *
 * Fail-static: once synced, the store is never emptied by a fault, only replaced by a later list.
 */
export class Reflector {
  readonly #options: ReflectorOptions;
  readonly #timings: ReflectorTimings;
  readonly #random: () => number;
  readonly #log: Logger;
  readonly #store = new Map<string, KubeObject>();
  readonly #listeners = new Set<() => void>();
  #backoffFailures = 0;
  #recheckFailures = 0;
  #resourceVersion = '';
  #state: ApiConnectionState = 'connecting';
  #synced = false;
  #lastFailure: ApiFailure | undefined;
  #server: string | undefined;
  #resource: string | undefined;
  #loop: Promise<void> | undefined;
  #firstAttempt: Promise<void> | undefined;
  #firstAttemptDone: () => void = () => {};
  /** Ends whatever is in flight now: a request, the watch, or a sleep. */
  #cancel: (() => void) | undefined;
  #stopped = false;
  #quickCloses = 0;

  constructor(options: ReflectorOptions) {
    this.#options = options;
    this.#timings = { ...DEFAULT_TIMINGS, ...options.timings };
    this.#random = options.random ?? Math.random;
    this.#log = options.logger;
  }

  get started(): boolean {
    return this.#loop !== undefined;
  }

  /** Starts the loop (once); resolves when the first list attempt has an outcome or after `waitMs`. */
  async start(waitMs = 0): Promise<void> {
    if (!this.#loop && !this.#stopped) {
      this.#firstAttempt = new Promise((resolve) => {
        this.#firstAttemptDone = resolve;
      });
      // Started on the next microtask, never inside this call: a first failure notifies listeners,
      // and a listener that calls start() again must find the loop already there.
      this.#loop = Promise.resolve().then(() => this.#run());
    }
    if (!this.#synced && this.#firstAttempt && waitMs > 0) await within(this.#firstAttempt, waitMs);
  }

  /** The objects by namespace/name (or name): never emptied by a fault once synced. */
  objects(): ReadonlyMap<string, KubeObject> {
    return this.#store;
  }

  status(): ReflectorStatus {
    return {
      state: this.#state,
      synced: this.#synced,
      objects: this.#store.size,
      resourceVersion: this.#resourceVersion,
      ...(this.#server ? { server: this.#server } : {}),
      ...(this.#resource ? { resource: this.#resource } : {}),
      ...(this.#lastFailure ? { lastError: describeFailure(this.#lastFailure) } : {}),
    };
  }

  /** The last failure, while the state is not 'synced'. */
  get lastFailure(): ApiFailure | undefined {
    return this.#lastFailure;
  }

  /** Called whenever the store or the state changes. Returns an unsubscribe. */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops at once: the request, watch or sleep in flight is ended; the store is kept. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#state = 'stopped';
    this.#cancel?.();
    this.#firstAttemptDone();
    await this.#loop;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      try {
        await this.#cycle();
      } catch (error) {
        if (this.#stopped) return;
        const wait = this.#nextBackoff();
        this.#setFailure('error', { status: undefined, message: `unexpected error: ${errorMessage(error)}` });
        this.#log.error(
          { err: error, retryInMs: wait },
          `the watch of ${this.#options.subject.noun} failed unexpectedly (${errorMessage(error)}); restarting it with a fresh list in ${formatMs(wait)}, ${this.#kept()}`,
        );
        this.#firstAttemptDone();
        await this.#sleep(wait);
      }
    }
  }

  /** Connect, resolve, list, then watch until a relist is needed. Returns to be called again. */
  async #cycle(): Promise<void> {
    const connection = this.#options.connect();
    if (connection.kind !== 'ready') {
      const none = connection.kind === 'none';
      this.#failed({ status: undefined, message: connection.message }, none ? 'not-configured' : 'unreachable');
      this.#firstAttemptDone();
      await this.#sleep(none ? this.#nextRecheck() : this.#nextBackoff());
      return;
    }
    const transport = connection.transport;
    this.#server = transport.server;

    const resolved = await this.#request((signal) => this.#options.resolve(transport, signal));
    if (resolved.kind === 'stopped') return;
    if (resolved.kind === 'failed') {
      this.#firstAttemptDone();
      await this.#sleep(this.#afterFailure(resolved.failure));
      return;
    }
    const resolution = resolved.value;
    if (resolution.kind === 'not-served') {
      this.#failed({ status: 404, message: resolution.detail }, 'not-found');
      this.#firstAttemptDone();
      await this.#sleep(this.#nextRecheck());
      return;
    }
    const { target } = resolution;
    this.#resource = target.resource;

    const listed = await this.#request((signal) => this.#list(transport, target, signal));
    this.#firstAttemptDone();
    if (listed.kind === 'stopped') return;
    if (listed.kind === 'failed') {
      await this.#sleep(this.#afterFailure(listed.failure));
      return;
    }
    await this.#watchUntilRelist(transport, target);
  }

  /** Runs one request under the request timeout; API and network failures come back as data. */
  async #request<T>(
    work: (signal: AbortSignal) => Promise<T>,
  ): Promise<{ kind: 'ok'; value: T } | { kind: 'failed'; failure: ApiFailure } | { kind: 'stopped' }> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.#timings.requestTimeoutMs);
    this.#cancel = () => controller.abort();
    try {
      // Raced against the abort too: a transport that ignores its signal cannot hold up stop().
      return { kind: 'ok', value: await Promise.race([work(controller.signal), rejectOnAbort(controller.signal)]) };
    } catch (error) {
      if (this.#stopped) return { kind: 'stopped' };
      if (timedOut) {
        return {
          kind: 'failed',
          failure: {
            status: undefined,
            message: `the API server did not answer within ${this.#timings.requestTimeoutMs} ms`,
          },
        };
      }
      if (error instanceof ApiError) return { kind: 'failed', failure: error.failure };
      if (error instanceof TransportError)
        return { kind: 'failed', failure: { status: undefined, message: error.message } };
      throw error;
    } finally {
      clearTimeout(timer);
      this.#cancel = undefined;
    }
  }

  async #list(transport: KubeTransport, target: ReflectorTarget, signal: AbortSignal): Promise<void> {
    const response = await transport.request({ method: 'GET', path: target.path, query: target.query ?? {}, signal });
    if (response.status !== 200) throw new ApiError(failureOf(response));
    const list = response.body as { metadata?: { resourceVersion?: unknown }; items?: unknown } | null;
    if (typeof list !== 'object' || list === null || !Array.isArray(list.items)) {
      throw new ApiError({ status: 200, message: `the list of ${this.#options.subject.noun} is not a list` });
    }
    if (this.#stopped) return;
    this.#store.clear();
    for (const item of list.items as KubeObject[]) {
      const key = keyOf(item);
      if (key) this.#store.set(key, item);
    }
    this.#resourceVersion = typeof list.metadata?.resourceVersion === 'string' ? list.metadata.resourceVersion : '';
    const recovered = this.#state !== 'synced';
    this.#state = 'synced';
    this.#synced = true;
    this.#lastFailure = undefined;
    this.#recheckFailures = 0;
    if (recovered) {
      this.#log.info(
        { objects: this.#store.size, resourceVersion: this.#resourceVersion, resource: target.resource },
        `listed ${this.#options.subject.noun}: ${this.#store.size} object(s) at resourceVersion ${this.#resourceVersion}`,
      );
    }
    this.#changed();
  }

  /** Watches from the last resourceVersion until the history is gone (410) or the API refuses. */
  async #watchUntilRelist(transport: KubeTransport, target: ReflectorTarget): Promise<void> {
    while (!this.#stopped) {
      const end = await this.#watchOnce(transport, target);
      switch (end.kind) {
        case 'stopped':
          return;
        case 'closed': {
          // A watch that closes at once, again and again, must not become a hot loop.
          const quick = end.events === 0 && end.lastedMs < QUICK_CLOSE_MS;
          this.#quickCloses = quick ? this.#quickCloses + 1 : 0;
          this.#log.debug(
            { resourceVersion: this.#resourceVersion, events: end.events, lastedMs: end.lastedMs },
            `the watch of ${this.#options.subject.noun} closed; resuming from the last resourceVersion`,
          );
          if (this.#quickCloses > 1) await this.#sleep(this.#nextBackoff());
          continue;
        }
        case 'silent':
          this.#log.warn(
            { resourceVersion: this.#resourceVersion, silentMs: end.silentMs },
            `the watch of ${this.#options.subject.noun} has been silent for ${formatMs(end.silentMs)}; replacing it`,
          );
          continue;
        case 'expired':
          this.#log.info(
            { resourceVersion: this.#resourceVersion },
            `resourceVersion ${this.#resourceVersion} of ${this.#options.subject.noun} is too old (410 Expired: history compacted); relisting`,
          );
          return;
        case 'malformed':
          // An event may have been lost with the bad line: only a fresh list is sure to be whole.
          this.#failed({ status: undefined, message: end.message }, 'unreachable');
          await this.#sleep(this.#nextBackoff());
          return;
        case 'failed': {
          const { failure } = end;
          if (failure.status === 410) {
            this.#log.info(
              { resourceVersion: this.#resourceVersion },
              `the watch of ${this.#options.subject.noun} answered 410 Gone; relisting`,
            );
            return;
          }
          await this.#sleep(this.#afterFailure(failure));
          // Permissions or the API itself changed: start over from discovery and a list.
          if (failure.status === 403 || failure.status === 404) return;
          continue;
        }
      }
    }
  }

  async #watchOnce(transport: KubeTransport, target: ReflectorTarget): Promise<WatchEnd> {
    const controller = new AbortController();
    const startedAt = performance.now();
    const silentMs = this.#timings.watchTimeoutSeconds * 1000 + this.#timings.watchGraceMs;
    let events = 0;
    let opened = false;
    let silent = false;
    let timer: NodeJS.Timeout | undefined;
    // Until the headers come, the request timeout; then the watchdog for a silent stream.
    const arm = (ms: number) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        silent = true;
        controller.abort();
      }, ms);
    };
    arm(this.#timings.requestTimeoutMs);
    this.#cancel = () => controller.abort();
    try {
      const opening = await transport.watch({
        method: 'GET',
        path: target.path,
        query: {
          ...target.query,
          watch: 'true',
          resourceVersion: this.#resourceVersion,
          allowWatchBookmarks: 'true',
          timeoutSeconds: String(this.#timings.watchTimeoutSeconds),
        },
        signal: controller.signal,
      });
      if (!isWatchStream(opening)) return { kind: 'failed', failure: failureOf(opening) };
      opened = true;
      this.#connected();
      arm(silentMs);
      for await (const event of opening.events) {
        if (this.#stopped) return { kind: 'stopped' };
        events += 1;
        arm(silentMs);
        const end = this.#onEvent(event);
        if (end) return end;
      }
      if (this.#stopped) return { kind: 'stopped' };
      return { kind: 'closed', events, lastedMs: performance.now() - startedAt };
    } catch (error) {
      if (this.#stopped) return { kind: 'stopped' };
      if (silent && opened) return { kind: 'silent', silentMs };
      if (silent) {
        return {
          kind: 'failed',
          failure: {
            status: undefined,
            message: `the API server did not answer the watch within ${this.#timings.requestTimeoutMs} ms`,
          },
        };
      }
      if (error instanceof TransportError) {
        return error.kind === 'malformed'
          ? { kind: 'malformed', message: error.message }
          : { kind: 'failed', failure: { status: undefined, message: error.message } };
      }
      throw error;
    } finally {
      clearTimeout(timer);
      this.#cancel = undefined;
      controller.abort();
    }
  }

  /** Applies one event; returns how the watch ends when the event ends it. */
  #onEvent(event: WatchEvent): WatchEnd | undefined {
    if (event.type === 'ERROR') {
      const failure = toApiFailure(event.object);
      return failure.status === 410 ? { kind: 'expired' } : { kind: 'failed', failure };
    }
    const object = event.object as KubeObject | null;
    if (typeof object !== 'object' || object === null) {
      return { kind: 'malformed', message: `a ${event.type} event without an object` };
    }
    const rv = object.metadata?.resourceVersion;
    if (typeof rv === 'string' && rv !== '') this.#resourceVersion = rv;
    this.#quickCloses = 0;
    if (event.type === 'BOOKMARK') return undefined;
    const key = keyOf(object);
    if (!key) return { kind: 'malformed', message: `a ${event.type} event for an object without a name` };
    const previous = this.#store.get(key);
    if (event.type === 'DELETED') this.#store.delete(key);
    else if (event.type === 'ADDED' || event.type === 'MODIFIED') this.#store.set(key, object);
    else {
      this.#log.debug({ type: event.type }, `ignoring a watch event of unknown type ${event.type}`);
      return undefined;
    }
    this.#options.onEvent?.(event.type, object, previous);
    this.#changed();
    return undefined;
  }

  /** The watch request was answered 200: the API is back, whatever failed before. */
  #connected(): void {
    this.#backoffFailures = 0;
    if (this.#state === 'synced') return;
    this.#state = 'synced';
    this.#lastFailure = undefined;
    this.#log.info(
      { resourceVersion: this.#resourceVersion },
      `the watch of ${this.#options.subject.noun} re-established at resourceVersion ${this.#resourceVersion}`,
    );
    this.#changed();
  }

  /** Records a failure by its status; returns how long to wait before the next attempt. */
  #afterFailure(failure: ApiFailure): number {
    if (failure.status === 404) {
      this.#failed(failure, 'not-found');
      return this.#nextRecheck();
    }
    this.#failed(failure, failure.status === 403 ? 'forbidden' : 'unreachable');
    return this.#nextBackoff();
  }

  #failed(failure: ApiFailure, state: ApiConnectionState): void {
    if (this.#stopped) return;
    const changed = state !== this.#state || this.#lastFailure?.message !== failure.message;
    this.#setFailure(state, failure);
    const { noun, permission } = this.#options.subject;
    const fields = { status: failure.status, state, err: failure.message, server: this.#server };
    let message: string;
    let repeat = false;
    if (state === 'not-configured') {
      message = `no Kubernetes configuration, so ${noun} cannot be read (${failure.message})`;
    } else if (state === 'not-found') {
      message = `${failure.message}; looking again now and then (at least every ${formatMs(this.#timings.recheckMs)}); ${this.#kept()}`;
    } else if (state === 'forbidden') {
      message = `forbidden to read ${noun} (${failure.message}): the agent's service account needs ${permission}; ${this.#synced ? this.#kept() : 'this source is skipped until it is granted'}`;
    } else {
      message = `cannot reach the API server for ${noun} (${describeFailure(failure)}); retrying with backoff, ${this.#kept()}`;
      // The first two failures in a row are worth a warning; after that the backoff speaks.
      repeat = this.#backoffFailures <= 1;
    }
    // "No configuration" is said once by the shared connection, not by every source.
    if (state === 'not-configured') this.#log.debug(fields, message);
    else if (changed || repeat) this.#log.warn(fields, message);
    else this.#log.debug(fields, message);
  }

  #setFailure(state: ApiConnectionState, failure: ApiFailure): void {
    this.#state = state;
    this.#lastFailure = failure;
    this.#changed();
  }

  #kept(): string {
    return this.#synced
      ? `keeping the last known ${this.#store.size} object(s) of ${this.#options.subject.noun}`
      : `no list of ${this.#options.subject.noun} yet`;
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }

  #nextBackoff(): number {
    const { backoffInitialMs, backoffMaxMs, jitter } = this.#timings;
    const base = Math.min(backoffMaxMs, backoffInitialMs * 2 ** this.#backoffFailures);
    this.#backoffFailures += 1;
    return Math.round(base * (1 + jitter * this.#random()));
  }

  #nextRecheck(): number {
    const { backoffInitialMs, recheckMs } = this.#timings;
    const wait = Math.min(recheckMs, Math.min(backoffInitialMs, recheckMs) * 2 ** this.#recheckFailures);
    this.#recheckFailures += 1;
    return wait;
  }

  /** Sleeps, but wakes at once when the reflector is stopped. */
  #sleep(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#cancel = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#cancel = done;
    });
  }
}

function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_resolve, reject) => {
    signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
  });
}

/** namespace/name, or name for cluster-scoped objects. */
export function keyOf(object: KubeObject): string | undefined {
  const name = object.metadata?.name;
  if (typeof name !== 'string' || name === '') return undefined;
  return object.metadata?.namespace ? `${object.metadata.namespace}/${name}` : name;
}

export function formatMs(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 1000)}s` : `${Math.round(ms)}ms`;
}

/** Waits for `promise`, or `ms`, whichever comes first; never rejects. */
export function within(promise: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    promise.then(done, done);
  });
}
