import { ApiError, type ApiFailure, failureOf, toApiFailure } from './api-failure.js';
import { ApiLoop, type ApiLoopOptions, type ApiLoopStatus, type LoopTimings } from './api-loop.js';
import { isWatchStream, type KubeTransport, TransportError, type WatchEvent } from './transport.js';

/** What a reflector lists and watches, once the source has worked out where it is served. */
export interface ReflectorTarget {
  /** A collection path: /apis/networking.k8s.io/v1/servicecidrs. */
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
  /** The API is not served here (404 on discovery): looked for again after the recheck interval. */
  | { readonly kind: 'not-served'; readonly detail: string };

export interface ReflectorTimings extends LoopTimings {
  /** The shortest server-side watch timeout: each watch asks for one in [this, twice this) at random (client-go: 5 min). */
  readonly watchTimeoutSeconds: number;
  /** A watch with no event, bookmark or close this long past its timeout is presumed dead. */
  readonly watchGraceMs: number;
}

export interface ReflectorOptions extends ApiLoopOptions {
  /** Where the objects are served (API discovery for ServiceCIDRs): asked first, and again after a 404. */
  readonly resolve: (transport: KubeTransport, signal: AbortSignal) => Promise<Resolution>;
  readonly timings?: Partial<ReflectorTimings>;
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

export interface ReflectorStatus extends ApiLoopStatus {
  readonly objects: number;
  readonly resourceVersion: string;
}

type WatchEnd =
  | { readonly kind: 'stopped' }
  | { readonly kind: 'closed'; readonly events: number; readonly lastedMs: number; readonly timeoutMs: number }
  | { readonly kind: 'silent'; readonly silentMs: number }
  /** 410: the history since our resourceVersion is gone; a list from that resourceVersion catches up. */
  | { readonly kind: 'expired' }
  /** The server's cache is behind our resourceVersion: only a list from etcd gets past it. */
  | { readonly kind: 'too-large' }
  | { readonly kind: 'malformed'; readonly message: string }
  | { readonly kind: 'failed'; readonly failure: ApiFailure };

/** A watch that ends sooner than this without an event is client-go's "very short watch": a failure. */
const QUICK_CLOSE_MS = 1_000;
/** A watch that lasted this long, or its whole timeout, was healthy: it is resumed at once. */
const HEALTHY_WATCH_MS = 60_000;
/** After an ERROR event the server ends the stream: it is read to its end (the connection kept) for this long at most. */
const DRAIN_MS = 1_000;

/**
 * The list-then-watch loop of the ServiceCIDR source, with client-go's conventions: the first list
 * from the watch cache (resourceVersion=0), later ones from the last resourceVersion seen, and from
 * etcd ("") only after that one was gone (410) or not yet there ("Too large resource version");
 * watches from the list's resourceVersion with bookmarks and a timeout drawn from [5, 10) minutes,
 * so a fleet whose watches broke together does not re-watch in step.
 *
 * Every list->watch cycle goes through the loop's one backoff (0.8 s to 30 s, jittered, reset only
 * after 2 minutes without a failure): a watch answered 410 every time, or accepted and closed at
 * once, costs two requests per backoff step, never a tight loop. A watch that ends at its timeout
 * (or after a healthy minute) is resumed at once from its resourceVersion; one that ends early is
 * resumed after the backoff. 429 and a refused connection re-watch after the backoff (or the
 * server's Retry-After); any other failure lists anew after it.
 */
export class Reflector extends ApiLoop {
  readonly #resolve: ReflectorOptions['resolve'];
  readonly #onEvent: ReflectorOptions['onEvent'];
  readonly #watchTimeoutSeconds: number;
  readonly #watchGraceMs: number;
  readonly #store = new Map<string, KubeObject>();
  #target: ReflectorTarget | undefined;
  #resourceVersion = '';
  /** The last resourceVersion was gone (410) or not yet there (too large): the next list is from etcd. */
  #unavailable = false;

  constructor(options: ReflectorOptions) {
    super(options);
    this.#resolve = options.resolve;
    this.#onEvent = options.onEvent;
    this.#watchTimeoutSeconds = options.timings?.watchTimeoutSeconds ?? 300;
    this.#watchGraceMs = options.timings?.watchGraceMs ?? 30_000;
  }

  /** The objects by namespace/name (or name): never emptied by a fault once synced. */
  objects(): ReadonlyMap<string, KubeObject> {
    return this.#store;
  }

  override status(): ReflectorStatus {
    return { ...super.status(), objects: this.#store.size, resourceVersion: this.#resourceVersion };
  }

  protected override kept(): number {
    return this.#store.size;
  }

  protected async cycle(transport: KubeTransport): Promise<number> {
    if (!this.#target) {
      const resolved = await this.request((signal) => this.#resolve(transport, signal));
      if (resolved.kind === 'stopped') return 0;
      if (resolved.kind === 'failed') return this.failed(resolved.failure);
      if (resolved.value.kind === 'not-served') return this.failed({ status: 404, message: resolved.value.detail });
      this.#target = resolved.value.target;
      this.describe(this.#target.resource);
    }
    const target = this.#target;
    const wait = await this.#list(transport, target);
    this.attempted();
    return wait ?? this.#watchUntilRelist(transport, target);
  }

  /** Lists into the store; returns undefined when listed, else the wait before the next cycle. */
  async #list(transport: KubeTransport, target: ReflectorTarget): Promise<number | undefined> {
    for (;;) {
      const resourceVersion = this.#unavailable ? '' : this.#resourceVersion || '0';
      const listed = await this.request((signal) => this.#fetchList(transport, target, resourceVersion, signal));
      if (listed.kind === 'stopped') return 0;
      if (listed.kind === 'ok') {
        this.#replace(listed.value, target);
        return undefined;
      }
      const { failure } = listed;
      if ((failure.status === 410 || failure.tooLargeResourceVersion) && !this.#unavailable) {
        // As client-go: at once, from etcd.
        this.#unavailable = true;
        this.log.info(
          { subject: this.subject.noun, resourceVersion, status: failure.status },
          'resource version unavailable, listing from etcd',
        );
        continue;
      }
      if (failure.status === 404) this.#target = undefined;
      return this.failed(failure);
    }
  }

  async #fetchList(
    transport: KubeTransport,
    target: ReflectorTarget,
    resourceVersion: string,
    signal: AbortSignal,
  ): Promise<{ items: KubeObject[]; resourceVersion: string }> {
    const query = { ...target.query, ...(resourceVersion ? { resourceVersion } : {}) };
    const response = await transport.request({ method: 'GET', path: target.path, query, signal });
    if (response.status !== 200) throw new ApiError(failureOf(response));
    const list = response.body as { metadata?: { resourceVersion?: unknown }; items?: unknown } | null;
    if (typeof list !== 'object' || list === null || !Array.isArray(list.items)) {
      throw new ApiError({ status: 200, message: `the list of ${this.subject.noun} is not a list` });
    }
    const version = list.metadata?.resourceVersion;
    return { items: list.items as KubeObject[], resourceVersion: typeof version === 'string' ? version : '' };
  }

  #replace(list: { items: KubeObject[]; resourceVersion: string }, target: ReflectorTarget): void {
    if (this.stopped) return;
    this.#store.clear();
    for (const item of list.items) {
      const key = keyOf(item);
      if (key) this.#store.set(key, item);
    }
    this.#resourceVersion = list.resourceVersion;
    this.#unavailable = false;
    const fields = {
      subject: this.subject.noun,
      objects: this.#store.size,
      resourceVersion: this.#resourceVersion,
      resource: target.resource,
    };
    this.log[this.succeeded() ? 'info' : 'debug'](fields, 'listed');
    this.changed();
  }

  /** Watches (and re-watches) until a list is needed; returns the wait before it. */
  async #watchUntilRelist(transport: KubeTransport, target: ReflectorTarget): Promise<number> {
    while (!this.stopped) {
      const end = await this.#watchOnce(transport, target);
      const fields = { subject: this.subject.noun, resourceVersion: this.#resourceVersion };
      switch (end.kind) {
        case 'stopped':
          return 0;
        case 'closed': {
          if (end.lastedMs >= Math.min(HEALTHY_WATCH_MS, end.timeoutMs)) {
            this.log.debug({ ...fields, events: end.events, ms: Math.round(end.lastedMs) }, 'watch closed');
            continue;
          }
          if (end.events === 0 && end.lastedMs < QUICK_CLOSE_MS) {
            return this.failed({ status: undefined, message: 'the watch was closed at once, without an event' });
          }
          const wait = this.backoff.next();
          this.log.debug(
            { ...fields, events: end.events, ms: Math.round(end.lastedMs), retryInMs: wait },
            'watch closed early',
          );
          await this.pause(wait);
          continue;
        }
        case 'silent': {
          const wait = this.backoff.next();
          this.log.warn({ ...fields, silentMs: end.silentMs, retryInMs: wait }, 'watch silent, replacing it');
          await this.pause(wait);
          continue;
        }
        case 'expired': {
          const wait = this.backoff.next();
          this.log.info({ ...fields, retryInMs: wait }, 'watch expired, relisting');
          return wait;
        }
        case 'too-large': {
          this.#unavailable = true;
          const wait = this.backoff.next();
          this.log.info({ ...fields, retryInMs: wait }, 'watch resource version too large, relisting from etcd');
          return wait;
        }
        case 'malformed':
          // An event may have been lost with the bad line: only a fresh list is sure to be whole.
          return this.failed({ status: undefined, message: end.message });
        case 'failed': {
          const { failure } = end;
          // As client-go: a 429 or a refused connection re-watches after the wait; anything else relists.
          if (failure.status === 429 || failure.status === undefined) {
            await this.pause(this.failed(failure));
            continue;
          }
          if (failure.status === 404) this.#target = undefined;
          return this.failed(failure);
        }
      }
    }
    return 0;
  }

  async #watchOnce(transport: KubeTransport, target: ReflectorTarget): Promise<WatchEnd> {
    const controller = new AbortController();
    const startedAt = this.now();
    const timeoutSeconds = Math.floor(this.#watchTimeoutSeconds * (1 + this.random()));
    const silentMs = timeoutSeconds * 1000 + this.#watchGraceMs;
    let events = 0;
    let opened = false;
    let silent = false;
    let ended: WatchEnd | undefined;
    let timer: NodeJS.Timeout | undefined;
    // Until the headers come, the request timeout; then the watchdog for a silent stream.
    const arm = (ms: number) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        silent = true;
        controller.abort();
      }, ms);
    };
    arm(this.timings.requestTimeoutMs);
    try {
      const opening = await transport.watch({
        method: 'GET',
        path: target.path,
        query: {
          ...target.query,
          watch: 'true',
          resourceVersion: this.#resourceVersion,
          allowWatchBookmarks: 'true',
          timeoutSeconds: String(timeoutSeconds),
        },
        signal: AbortSignal.any([this.stopSignal, controller.signal]),
      });
      if (!isWatchStream(opening)) return refusal(failureOf(opening));
      opened = true;
      this.#connected();
      arm(silentMs);
      for await (const event of opening.events) {
        if (this.stopped) return { kind: 'stopped' };
        // After an ERROR event, read on to the end the server gives it, so the connection is kept.
        if (ended) continue;
        events += 1;
        arm(silentMs);
        ended = this.#apply(event);
        if (ended?.kind === 'malformed') return ended;
        if (ended) arm(DRAIN_MS);
      }
      if (this.stopped) return { kind: 'stopped' };
      return ended ?? { kind: 'closed', events, lastedMs: this.now() - startedAt, timeoutMs: timeoutSeconds * 1000 };
    } catch (error) {
      if (this.stopped) return { kind: 'stopped' };
      if (ended) return ended;
      if (silent && opened) return { kind: 'silent', silentMs };
      if (silent) {
        return {
          kind: 'failed',
          failure: {
            status: undefined,
            message: `the API server did not answer the watch within ${this.timings.requestTimeoutMs} ms`,
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
      controller.abort();
    }
  }

  /** Applies one event; returns how the watch ends when the event ends it. */
  #apply(event: WatchEvent): WatchEnd | undefined {
    if (event.type === 'ERROR') return refusal(toApiFailure(event.object));
    const object = event.object as KubeObject | null;
    if (typeof object !== 'object' || object === null) {
      return { kind: 'malformed', message: `a ${event.type} event without an object` };
    }
    const rv = object.metadata?.resourceVersion;
    if (typeof rv === 'string' && rv !== '') this.#resourceVersion = rv;
    if (event.type === 'BOOKMARK') return undefined;
    const key = keyOf(object);
    if (!key) return { kind: 'malformed', message: `a ${event.type} event for an object without a name` };
    const previous = this.#store.get(key);
    if (event.type === 'DELETED') this.#store.delete(key);
    else if (event.type === 'ADDED' || event.type === 'MODIFIED') this.#store.set(key, object);
    else {
      this.log.debug({ subject: this.subject.noun, type: event.type }, 'watch event of unknown type ignored');
      return undefined;
    }
    this.#onEvent?.(event.type, object, previous);
    this.changed();
    return undefined;
  }

  /** The watch request was answered 200: the API is back, whatever failed before. */
  #connected(): void {
    if (this.status().state === 'synced') return;
    const fields = { subject: this.subject.noun, resourceVersion: this.#resourceVersion };
    this.log[this.succeeded() ? 'info' : 'debug'](fields, 'watch re-established');
    this.changed();
  }
}

/** How a watch refused (or ended by an ERROR event) ends: 410 and "too large" ask for a list. */
function refusal(failure: ApiFailure): WatchEnd {
  if (failure.status === 410) return { kind: 'expired' };
  if (failure.tooLargeResourceVersion) return { kind: 'too-large' };
  return { kind: 'failed', failure };
}

/** namespace/name, or name for cluster-scoped objects. */
function keyOf(object: KubeObject): string | undefined {
  const name = object.metadata?.name;
  if (typeof name !== 'string' || name === '') return undefined;
  return object.metadata?.namespace ? `${object.metadata.namespace}/${name}` : name;
}
