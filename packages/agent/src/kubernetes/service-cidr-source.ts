import { NetworkingV1Api, Observable, type RequestContext, type ResponseContext, Watch } from '@kubernetes/client-node';
import {
  ErrorCodes,
  errorMessage,
  formatServiceCidrs,
  normalizeCidrs,
  parseCidr,
  RouteControllerError,
  type ServiceCidrSource,
  type SourceReading,
} from '@route-controller/core';
import type { Logger } from '../observability/logger.js';
import { Backoff } from '../reconcile/backoff.js';
import { type ApiFailure, toApiFailure } from './api-failure.js';
import type { ApiConnectionState } from './api-state.js';
import { loadKubeconfig } from './kubeconfig.js';

export const SERVICECIDRS_PATH = '/apis/networking.k8s.io/v1/servicecidrs';

export interface KubernetesSourceStatus {
  readonly state: ApiConnectionState;
  /** A first list has succeeded: the cached objects are authoritative. */
  readonly synced: boolean;
  readonly objects: number;
  /** Of which terminating (deletionTimestamp set, held by their finalizer). */
  readonly terminating: number;
  readonly resourceVersion: string;
  /** The API server in use, once the configuration is loaded. */
  readonly server?: string;
  readonly lastError?: string;
}

export interface KubernetesSourceOptions {
  /**
   * A kubeconfig file (or a KUBECONFIG-style list of files); otherwise client-node's default:
   * KUBECONFIG, ~/.kube/config, in-cluster.
   */
  readonly kubeconfig?: string | undefined;
  readonly logger: Logger;
  /** The longest wait between looks after a 404 (API not served); the first looks come sooner. */
  readonly recheckMs?: number;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** Server-side watch timeout; the watch is then resumed from the last resourceVersion. */
  readonly watchTimeoutSeconds?: number;
  /** How long the first read waits for the first list before answering "unavailable". */
  readonly firstListWaitMs?: number;
  /** A list that has not answered by then is abandoned and retried (a hung connection). */
  readonly requestTimeoutMs?: number;
}

interface CachedObject {
  readonly cidrs: readonly string[];
  readonly terminating: boolean;
}

interface RawServiceCidr {
  readonly metadata?: {
    readonly name?: string;
    readonly resourceVersion?: string;
    readonly deletionTimestamp?: unknown;
  };
  readonly spec?: { readonly cidrs?: readonly string[] };
}

type WatchEnd =
  | { readonly kind: 'closed'; readonly events: number; readonly lastedMs: number }
  | { readonly kind: 'expired' }
  | { readonly kind: 'failed'; readonly failure: ApiFailure };

const FIX = 'set SERVICE_CIDRS (Helm: routeController.serviceCIDRs)';
/** A watch that ends sooner than this without an event counts as a quick close (guards a hot loop). */
const QUICK_CLOSE_MS = 1_000;
/** A watch silent this long past its server-side timeout is presumed dead and replaced. */
const WATCH_GRACE_MS = 30_000;

/**
 * Follows networking.k8s.io/v1 ServiceCIDR objects live: lists, then watches from the list's
 * resourceVersion, re-watching after timeouts and relisting after 410 Gone. The reading is the
 * union of every object's spec.cidrs; a terminating object (held by its finalizer) keeps its
 * CIDRs until it is gone. Once synced, faults never empty the cache: the rules stay (fail-static).
 */
export class KubernetesServiceCidrSource implements ServiceCidrSource {
  readonly name = 'kubernetes';
  readonly #log: Logger;
  readonly #options: Required<Omit<KubernetesSourceOptions, 'kubeconfig' | 'logger'>>;
  readonly #kubeconfig: string | undefined;
  readonly #objects = new Map<string, CachedObject>();
  readonly #listeners = new Set<() => void>();
  /** Waits after failures (5xx, unreachable, 403, quick watch closes). */
  readonly #backoff: Backoff;
  /** Waits between looks while the API is not served (404): quick at first, then every recheckMs. */
  readonly #recheck: Backoff;
  #resourceVersion = '';
  #state: ApiConnectionState = 'connecting';
  #synced = false;
  #lastFailure: ApiFailure | undefined;
  #server: string | undefined;
  #loop: Promise<void> | undefined;
  /** Settles when the first list attempt has an outcome, success or failure. */
  #firstAttempt: Promise<void> | undefined;
  #firstAttemptDone: () => void = () => {};
  /** Ends whatever is in flight now: the list request, the watch, or a sleep. */
  #cancel: (() => void) | undefined;
  #stopped = false;
  #api: NetworkingV1Api | undefined;
  #watcher: Watch | undefined;
  #lastReadingKey = '';
  #quickCloses = 0;

  constructor(options: KubernetesSourceOptions) {
    this.#log = options.logger;
    this.#kubeconfig = options.kubeconfig;
    this.#options = {
      recheckMs: options.recheckMs ?? 60_000,
      backoffInitialMs: options.backoffInitialMs ?? 500,
      backoffMaxMs: options.backoffMaxMs ?? 30_000,
      watchTimeoutSeconds: options.watchTimeoutSeconds ?? 300,
      firstListWaitMs: options.firstListWaitMs ?? 2_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
    };
    this.#backoff = new Backoff(this.#options.backoffInitialMs, this.#options.backoffMaxMs);
    this.#recheck = new Backoff(
      Math.min(this.#options.backoffInitialMs, this.#options.recheckMs),
      this.#options.recheckMs,
    );
  }

  status(): KubernetesSourceStatus {
    return {
      state: this.#state,
      synced: this.#synced,
      objects: this.#objects.size,
      terminating: this.#terminatingCount(),
      resourceVersion: this.#resourceVersion,
      ...(this.#server ? { server: this.#server } : {}),
      ...(this.#lastFailure ? { lastError: describeFailure(this.#lastFailure) } : {}),
    };
  }

  async read(): Promise<SourceReading> {
    if (!this.#loop && !this.#stopped) this.#start();
    // The first reads wait for the first list (briefly), so a healthy cluster answers at once
    // and an unreachable one does not hold start-up for long.
    if (!this.#synced && this.#firstAttempt) await within(this.#firstAttempt, this.#options.firstListWaitMs);
    return this.#reading();
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops at once: in-flight requests are aborted, the cache is kept (status shows "stopped"). */
  async close(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#state = 'stopped';
    this.#cancel?.();
    this.#firstAttemptDone();
    await this.#loop;
  }

  #terminatingCount(): number {
    let count = 0;
    for (const object of this.#objects.values()) if (object.terminating) count += 1;
    return count;
  }

  #reading(): SourceReading {
    if (this.#synced) {
      const entries: string[] = [];
      // Terminating objects still count: their finalizer holds them while ClusterIPs are allocated.
      for (const object of this.#objects.values()) entries.push(...object.cidrs);
      const { cidrs, notes } = normalizeCidrs(entries);
      const terminating = this.#terminatingCount();
      const stale =
        this.#state === 'synced' || this.#state === 'stopped' || !this.#lastFailure
          ? ''
          : `; API ${this.#state} (${describeFailure(this.#lastFailure)}), keeping the last list`;
      const detail =
        this.#objects.size === 0
          ? `no ServiceCIDR objects in the cluster${stale}`
          : `${this.#objects.size} ServiceCIDR object(s)${terminating ? `, ${terminating} terminating` : ''}: ${formatServiceCidrs(cidrs)}${stale}`;
      if (entries.length === 0) return { kind: 'none', detail };
      return { kind: 'cidrs', cidrs, detail, notes };
    }
    if (this.#state === 'not-configured') {
      return {
        kind: 'none',
        detail: `no Kubernetes configuration to discover ServiceCIDRs with (${this.#lastFailure?.message ?? 'none found'}); ${FIX}`,
      };
    }
    if (this.#state === 'not-found') {
      return {
        kind: 'none',
        detail: `the ServiceCIDR API (networking.k8s.io/v1) is not served by this cluster (Kubernetes older than 1.33, or the API disabled); ${FIX}`,
      };
    }
    const why = this.#lastFailure ? describeFailure(this.#lastFailure) : 'waiting for the first list';
    const hint =
      this.#state === 'forbidden'
        ? `Grant get, list and watch on servicecidrs (API group networking.k8s.io) to the agent's service account (the Helm chart's ClusterRole does), or ${FIX}.`
        : `Check that the API server is reachable from the node, or ${FIX}.`;
    return {
      kind: 'unavailable',
      detail: `no ServiceCIDR list yet (${this.#state}: ${why})`,
      error: new RouteControllerError(ErrorCodes.SourceFailed, `ServiceCIDR discovery is ${this.#state}: ${why}`, {
        hint,
        details: { state: this.#state },
      }),
    };
  }

  #start(): void {
    this.#firstAttempt = new Promise((resolve) => {
      this.#firstAttemptDone = resolve;
    });
    this.#loop = this.#run().catch((error: unknown) => {
      this.#firstAttemptDone();
      this.#log.error({ err: error }, 'ServiceCIDR discovery stopped after an unexpected error');
    });
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      if (!this.#api) {
        const configured = this.#configure();
        if (configured !== 'ok') {
          this.#firstAttemptDone();
          // No configuration at all is not a fault to hammer on: look again now and then.
          await this.#sleep(configured === 'none' ? this.#recheck.next() : this.#backoff.next());
          continue;
        }
      }
      const wait = await this.#list();
      this.#firstAttemptDone();
      if (this.#stopped) return;
      if (wait !== undefined) {
        await this.#sleep(wait);
        continue;
      }
      await this.#watchUntilRelist();
    }
  }

  /**
   * Loads the connection settings. 'none': there is no configuration at all (not in a pod, no
   * kubeconfig), so nothing can be discovered; 'failed': a configuration that cannot be used.
   */
  #configure(): 'ok' | 'none' | 'failed' {
    try {
      const loaded = loadKubeconfig(this.#kubeconfig);
      if (!loaded) {
        this.#failed(
          { status: undefined, message: 'not in a pod (no service account), no KUBECONFIG and no ~/.kube/config' },
          'not-configured',
        );
        return 'none';
      }
      const { config, server, origin } = loaded;
      this.#api = config.makeApiClient(NetworkingV1Api);
      this.#watcher = new Watch(config);
      this.#server = server;
      this.#log.info({ server, origin }, `watching ServiceCIDR objects on ${server} (${origin})`);
      return 'ok';
    } catch (error) {
      this.#failed(
        { status: undefined, message: `cannot load the Kubernetes configuration: ${firstLine(errorMessage(error))}` },
        'unreachable',
      );
      return 'failed';
    }
  }

  /** One list. Returns undefined on success, or how long to wait before trying again. */
  async #list(): Promise<number | undefined> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.#options.requestTimeoutMs);
    this.#cancel = () => controller.abort();
    try {
      const list = await (this.#api as NetworkingV1Api).listServiceCIDR({}, withSignal(controller.signal));
      if (this.#stopped) return undefined;
      this.#objects.clear();
      for (const item of list.items) this.#upsert(item as RawServiceCidr);
      this.#resourceVersion = list.metadata?.resourceVersion ?? '';
      const recovered = this.#state !== 'synced';
      this.#state = 'synced';
      this.#synced = true;
      this.#lastFailure = undefined;
      this.#recheck.reset();
      if (recovered) {
        const terminating = this.#terminatingCount();
        this.#log.info(
          { objects: this.#objects.size, terminating, resourceVersion: this.#resourceVersion },
          `listed ${this.#objects.size} ServiceCIDR object(s)${terminating ? ` (${terminating} terminating)` : ''} at resourceVersion ${this.#resourceVersion}`,
        );
      }
      this.#changed();
      return undefined;
    } catch (error) {
      if (this.#stopped) return undefined;
      const failure = timedOut
        ? { status: undefined, message: `the API server did not answer within ${this.#options.requestTimeoutMs} ms` }
        : toApiFailure(error);
      if (failure.status === 404) {
        this.#failed(failure, 'not-found');
        return this.#recheck.next();
      }
      this.#failed(failure, failure.status === 403 ? 'forbidden' : 'unreachable');
      return this.#backoff.next();
    } finally {
      clearTimeout(timer);
      this.#cancel = undefined;
    }
  }

  /** Watches from the last resourceVersion until the history is gone (410) or the API refuses. */
  async #watchUntilRelist(): Promise<void> {
    while (!this.#stopped) {
      const end = await this.#watchOnce();
      if (this.#stopped) return;
      if (end.kind === 'closed') {
        // A watch that closes at once, again and again, must not become a hot loop.
        const quick = end.events === 0 && end.lastedMs < QUICK_CLOSE_MS;
        this.#quickCloses = quick ? this.#quickCloses + 1 : 0;
        this.#log.debug(
          { resourceVersion: this.#resourceVersion, events: end.events, lastedMs: end.lastedMs },
          'watch closed; resuming from the last resourceVersion',
        );
        if (this.#quickCloses > 1) await this.#sleep(this.#backoff.next());
        continue;
      }
      if (end.kind === 'expired') {
        this.#log.info(
          { resourceVersion: this.#resourceVersion },
          `resourceVersion ${this.#resourceVersion} is too old (410 Expired: history compacted); relisting`,
        );
        return;
      }
      const { failure } = end;
      if (failure.status === 410) {
        this.#log.info({ resourceVersion: this.#resourceVersion }, 'watch answered 410 Gone; relisting');
        return;
      }
      this.#failed(
        failure,
        failure.status === 403 ? 'forbidden' : failure.status === 404 ? 'not-found' : 'unreachable',
      );
      await this.#sleep(this.#backoff.next());
      // Permissions or the API itself changed: start over from a list.
      if (failure.status === 403 || failure.status === 404) return;
    }
  }

  #watchOnce(): Promise<WatchEnd> {
    return new Promise<WatchEnd>((resolve) => {
      const startedAt = Date.now();
      let events = 0;
      let settled = false;
      let controller: AbortController | undefined;
      // No event, bookmark or close long past the server-side timeout: the connection is dead.
      const silentMs = this.#options.watchTimeoutSeconds * 1000 + WATCH_GRACE_MS;
      let watchdog = setTimeout(() => onSilent(), silentMs);
      const settle = (end: WatchEnd) => {
        if (settled) return;
        settled = true;
        clearTimeout(watchdog);
        controller?.abort();
        this.#cancel = undefined;
        resolve(end);
      };
      const onSilent = () => {
        this.#log.warn(
          { resourceVersion: this.#resourceVersion, silentMs },
          `the ServiceCIDR watch has been silent for ${Math.round(silentMs / 1000)}s; replacing it`,
        );
        settle({ kind: 'closed', events, lastedMs: Date.now() - startedAt });
      };
      this.#cancel = () => settle({ kind: 'closed', events, lastedMs: Date.now() - startedAt });
      const query = {
        resourceVersion: this.#resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: this.#options.watchTimeoutSeconds,
      };
      (this.#watcher as Watch)
        .watch(
          SERVICECIDRS_PATH,
          query,
          (type: string, object: unknown) => {
            if (settled) return;
            events += 1;
            clearTimeout(watchdog);
            watchdog = setTimeout(() => onSilent(), silentMs);
            if (type === 'ERROR') {
              const failure = toApiFailure(object);
              settle(failure.status === 410 ? { kind: 'expired' } : { kind: 'failed', failure });
              return;
            }
            this.#onEvent(type, object as RawServiceCidr);
          },
          (error: unknown) =>
            settle(
              error
                ? { kind: 'failed', failure: toApiFailure(error) }
                : { kind: 'closed', events, lastedMs: Date.now() - startedAt },
            ),
        )
        .then(
          (watchController) => {
            controller = watchController;
            if (settled) watchController.abort();
            else this.#connected();
          },
          (error: unknown) => settle({ kind: 'failed', failure: toApiFailure(error) }),
        );
    });
  }

  /** The watch request was answered 200: the API is back, whatever failed before. */
  #connected(): void {
    this.#backoff.reset();
    if (this.#state === 'synced') return;
    this.#state = 'synced';
    this.#lastFailure = undefined;
    this.#log.info(
      { resourceVersion: this.#resourceVersion },
      `ServiceCIDR watch re-established at resourceVersion ${this.#resourceVersion}`,
    );
  }

  #onEvent(type: string, object: RawServiceCidr): void {
    const name = object.metadata?.name;
    const rv = object.metadata?.resourceVersion;
    if (rv) this.#resourceVersion = rv;
    this.#quickCloses = 0;
    if (type === 'BOOKMARK' || !name) return;
    if (type === 'DELETED') {
      this.#objects.delete(name);
      this.#log.info({ servicecidr: name, resourceVersion: rv }, `ServiceCIDR ${name} deleted`);
    } else if (type === 'ADDED' || type === 'MODIFIED') {
      const before = this.#objects.get(name);
      this.#upsert(object);
      const after = this.#objects.get(name);
      const fields = { servicecidr: name, cidrs: after?.cidrs, resourceVersion: rv };
      if (after?.terminating && !before?.terminating) {
        this.#log.info(fields, `ServiceCIDR ${name} is terminating; its CIDRs stay until it is gone`);
      } else if (!before) {
        this.#log.info(fields, `ServiceCIDR ${name} added: ${after?.cidrs.join(', ')}`);
      } else if (before.cidrs.join() !== after?.cidrs.join()) {
        this.#log.info(fields, `ServiceCIDR ${name} changed: ${after?.cidrs.join(', ')}`);
      }
    } else {
      return;
    }
    this.#changed();
  }

  #upsert(object: RawServiceCidr): void {
    const name = object.metadata?.name;
    if (!name) return;
    const cidrs: string[] = [];
    for (const entry of object.spec?.cidrs ?? []) {
      try {
        parseCidr(entry);
        cidrs.push(entry);
      } catch (error) {
        this.#log.warn(
          { servicecidr: name, entry, err: error },
          `ServiceCIDR ${name} has an entry route-controller cannot use: "${entry}"; ignored`,
        );
      }
    }
    this.#objects.set(name, { cidrs, terminating: object.metadata?.deletionTimestamp != null });
  }

  /** Tells listeners when what read() would answer has changed. */
  #changed(): void {
    const reading = this.#reading();
    const key = `${reading.kind}:${reading.kind === 'cidrs' ? formatServiceCidrs(reading.cidrs) : ''}`;
    if (key === this.#lastReadingKey) return;
    this.#lastReadingKey = key;
    for (const listener of this.#listeners) listener();
  }

  #failed(failure: ApiFailure, state: ApiConnectionState): void {
    if (this.#stopped) return;
    const changed = state !== this.#state;
    this.#state = state;
    this.#lastFailure = failure;
    const kept = this.#synced
      ? `keeping the last known ${this.#objects.size} ServiceCIDR object(s) and their rules`
      : 'no rules from the API yet';
    const fields = { status: failure.status, state, err: failure.message, server: this.#server };
    let message: string;
    let repeat: boolean;
    if (state === 'not-configured') {
      message = `no Kubernetes configuration (${failure.message}), so ServiceCIDRs cannot be discovered. To protect this node, ${FIX}. Looking again now and then (at least every ${formatMs(this.#options.recheckMs)})`;
      repeat = false;
    } else if (state === 'not-found') {
      message = `the ServiceCIDR API (networking.k8s.io/v1 servicecidrs) is not served by this cluster: Kubernetes older than 1.33, or the API disabled. To protect this node, ${FIX}. Rechecking now and then (at least every ${formatMs(this.#options.recheckMs)}); ${kept}`;
      repeat = false;
    } else if (state === 'forbidden') {
      message = `forbidden to read ServiceCIDRs (${failure.message}): the agent's service account needs get, list and watch on servicecidrs in API group networking.k8s.io (the Helm chart's ClusterRole grants them), or ${FIX}; ${kept}`;
      repeat = false;
    } else {
      message = `cannot reach the API server for ServiceCIDRs (${describeFailure(failure)}); retrying with backoff, ${kept}`;
      // The first two failures in a row are worth a warning; after that the backoff speaks.
      repeat = this.#backoff.failures <= 1;
    }
    if (changed || repeat) this.#log.warn(fields, message);
    else this.#log.debug(fields, message);
    this.#changed();
  }

  /** Sleeps, but wakes at once when the source is closed. */
  #sleep(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.#cancel = undefined;
        resolve();
      }
      this.#cancel = done;
    });
  }
}

/** Per-request options that let an AbortSignal end a list request (client-node has no other way). */
function withSignal(signal: AbortSignal): Parameters<NetworkingV1Api['listServiceCIDR']>[1] {
  const middleware = {
    pre: (context: RequestContext) => {
      context.setSignal(signal as Parameters<RequestContext['setSignal']>[0]);
      return new Observable(Promise.resolve(context));
    },
    post: (context: ResponseContext) => new Observable(Promise.resolve(context)),
  };
  return { middleware: [middleware], middlewareMergeStrategy: 'append' };
}

function describeFailure(failure: ApiFailure): string {
  return failure.status === undefined ? failure.message : `HTTP ${failure.status}: ${failure.message}`;
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? text;
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 1000)}s` : `${ms}ms`;
}

/** Waits for `promise`, or `ms`, whichever comes first; never rejects. */
function within(promise: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    promise.then(done, done);
  });
}
