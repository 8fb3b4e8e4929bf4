import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { type AddressInfo, isIP, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

/**
 * A test Kubernetes API server for what route-controller reads, speaking the real conventions over
 * HTTP or HTTPS: discovery documents (so kubectl works against it), lists (items without
 * apiVersion/kind, as the real server sends built-in types) and gets, watches as a stream of JSON
 * lines from a resourceVersion, field and label selectors, Status bodies for errors, finalizers
 * holding a deleted object as terminating.
 *
 * The watch cache is imitated as kube-apiserver's behaves (k8s.io/apiserver's cacher): a list or
 * get with resourceVersion=0 (or any) is served from the cache, one without from etcd (the request
 * log says which); a watch from a resourceVersion older than the cache's history is answered 200
 * and one ERROR event with a 410 Expired Status; one newer than the cache waits 3 s and is told
 * "Too large resource version" (504, cause ResourceVersionTooLarge); bookmarks go to a watch that
 * asked for them every minute and 2 s before its deadline; a watch without timeoutSeconds ends
 * after [30, 60) minutes; an idle connection is closed after 90 s. An API server restart drops
 * every connection and starts the caches afresh, so every older resourceVersion is gone.
 *
 * Resources: ServiceCIDRs (networking.k8s.io v1 and/or v1beta1, as `serviceCidrVersions` says),
 * ConfigMaps, Nodes, and Services, of which only create is served: with dryRun=All it answers an
 * invalid clusterIP with the 422 Status of the Kubernetes version it imitates (`version`). Pods
 * (list and watch, with the field selector spec.nodeName) and Events (create, list, merge patch). DaemonSets
 * (apps/v1: get, list, watch), deleted in the background or in the foreground as the garbage
 * collector's two propagation policies show it.
 * RBAC is imitated per resource with forbid(); authentication with `authenticate`; faults with
 * failWith() and closeWatchesAtOnce. Every request is in `requests` (method, path, query, status,
 * connection, user, bytes), every TCP connection in `connections`: that is what tests count.
 * Tests drive it through methods (add, update, markTerminating, remove, putConfigMap, putNode,
 * compact, restart, dropWatches, ...).
 */

export const SERVICECIDRS_PATH = '/apis/networking.k8s.io/v1/servicecidrs';
export const SERVICECIDRS_V1BETA1_PATH = '/apis/networking.k8s.io/v1beta1/servicecidrs';
const GROUP = 'networking.k8s.io';

export type ResourceName = 'servicecidrs' | 'configmaps' | 'nodes' | 'services' | 'pods' | 'events' | 'daemonsets';
export type ServiceCidrVersion = 'v1' | 'v1beta1';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid: string;
  resourceVersion: string;
  creationTimestamp: string;
  generation?: number;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  finalizers?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface StoredObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

export interface ServiceCidrObject extends StoredObject {
  kind: 'ServiceCIDR';
  spec: { cidrs: string[] };
  status: Record<string, unknown>;
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
interface HistoryEvent {
  readonly rv: number;
  readonly resource: ResourceName;
  readonly type: EventType;
  readonly object: StoredObject;
}

interface Selector {
  readonly name?: string;
  readonly namespace?: string;
  /** fieldSelector spec.nodeName (pods only, as the real server allows it). */
  readonly nodeName?: string;
  readonly labels?: readonly LabelRequirement[];
}

interface LabelRequirement {
  readonly key: string;
  readonly op: 'exists' | '=' | '!=' | '!';
  readonly value?: string;
}

interface Watcher {
  readonly response: ServerResponse;
  readonly resource: ResourceName;
  /** The apiVersion the watch was opened with (ServiceCIDRs: v1 or v1beta1). */
  readonly apiVersion: string;
  readonly selector: Selector;
  /** The last resourceVersion this watch has been told about (event or bookmark). */
  rv: number;
  readonly bookmarks: boolean;
  readonly timer: NodeJS.Timeout;
  readonly bookmarkTimer?: NodeJS.Timeout;
  readonly deadlineBookmark?: NodeJS.Timeout;
}

/**
 * An injected failure: every matching request gets this HTTP status with a Status body; a watch
 * failed with 410 is answered as the real server answers it (200, then one ERROR event).
 */
export interface Failure {
  readonly code: 403 | 404 | 410 | 429 | 500 | 503;
  /** Only requests whose path starts with this fail (default: every request for `resource`). */
  readonly pathPrefix?: string;
  /** The resource whose requests fail (default servicecidrs); '*': every request, discovery too. */
  readonly resource?: ResourceName | '*';
  /** Fail only watch requests, or only lists. */
  readonly only?: 'watch' | 'list';
  /** Sent as Retry-After (and the Status's retryAfterSeconds), as the real server's 429 and 503 do. */
  readonly retryAfterSeconds?: number;
}

/** One request as the server saw it. `status` and `bytes` are final once `endedAt` is set. */
export interface RequestRecord {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly watch: boolean;
  /** The TCP connection it came on (see `connections`). */
  readonly connection: number;
  /** Who sent it: the bearer token's user, or "anonymous". */
  readonly user: string;
  /** Where a GET was served from: the watch cache (a resourceVersion given) or etcd (none: a quorum read). */
  readonly read: 'cache' | 'etcd' | undefined;
  /** Date.now() when it arrived. */
  readonly at: number;
  status: number;
  /** Response body bytes sent. */
  bytes: number;
  endedAt: number | undefined;
}

/** One TCP connection accepted. */
export interface ConnectionRecord {
  readonly id: number;
  readonly openedAt: number;
  closedAt: number | undefined;
}

export const SERVICE_CIDR_FINALIZER = 'networking.k8s.io/service-cidr-finalizer';

/** Discovery of apps/v1, reduced to DaemonSets. */
const APPS_GROUP = {
  name: 'apps',
  versions: [{ groupVersion: 'apps/v1', version: 'v1' }],
  preferredVersion: { groupVersion: 'apps/v1', version: 'v1' },
};
const APPS_V1_RESOURCES = {
  kind: 'APIResourceList',
  apiVersion: 'v1',
  groupVersion: 'apps/v1',
  resources: [
    {
      name: 'daemonsets',
      singularName: 'daemonset',
      namespaced: true,
      kind: 'DaemonSet',
      verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
      shortNames: ['ds'],
      categories: ['all'],
      storageVersionHash: 'dd7pWHUlMKQ=',
    },
  ],
};
export const SERVICE_ACCOUNT = 'system:serviceaccount:route-controller:route-controller';

/** One RBAC rule, as a Role (in `namespace`) or a ClusterRole (no namespace) grants it. */
export interface RbacGrant {
  readonly namespace?: string;
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly resourceNames?: readonly string[];
  readonly verbs: readonly string[];
}

/** A request as the hook given to `onRequest` sees it, before it is answered. */
export interface IncomingRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly watch: boolean;
}

/** A parsed request path: which resource, in which namespace, which object. */
interface Route {
  readonly resource: ResourceName;
  readonly namespace?: string;
  readonly name?: string;
  /** The apiVersion the object is served in. */
  readonly apiVersion: string;
}

const KINDS: Record<ResourceName, string> = {
  servicecidrs: 'ServiceCIDR',
  configmaps: 'ConfigMap',
  nodes: 'Node',
  services: 'Service',
  pods: 'Pod',
  events: 'Event',
  daemonsets: 'DaemonSet',
};

/** Where and how the server listens: TCP on loopback, or a Unix socket (reachable from other namespaces). */
export type ListenTarget = ({ port?: number; host?: string } | { path: string }) & {
  /** Serve HTTPS with this certificate; with `ca`, client certificates signed by it authenticate too. */
  readonly tls?: { readonly key: string; readonly cert: string; readonly ca?: string };
};

/** kube-apiserver's conventions, as the watch cache and its HTTP server apply them (see the class comment). */
const BOOKMARK_INTERVAL_MS = 60_000;
const BOOKMARK_BEFORE_DEADLINE_MS = 2_000;
const MIN_REQUEST_TIMEOUT_SECONDS = 1_800;
const TOO_LARGE_WAIT_MS = 3_000;
const IDLE_TIMEOUT_MS = 90_000;

export class FakeApiServer {
  readonly #servers: Server[] = [];
  readonly #sockets = new Map<Socket, { readonly record: ConnectionRecord; active: number; idle?: NodeJS.Timeout }>();
  readonly #objects: Record<ResourceName, Map<string, StoredObject>> = {
    servicecidrs: new Map(),
    configmaps: new Map(),
    nodes: new Map(),
    services: new Map(),
    pods: new Map(),
    events: new Map(),
    daemonsets: new Map(),
  };
  readonly #history: HistoryEvent[] = [];
  readonly #watchers = new Set<Watcher>();
  readonly #forbidden = new Set<ResourceName>();
  /** RBAC with resourceNames: only these objects, and a list or watch only with their name's field selector. */
  readonly #onlyNames = new Map<ResourceName, ReadonlySet<string>>();
  /** Every request, in the order they arrived. */
  readonly requests: RequestRecord[] = [];
  /** Every TCP connection accepted, in order. */
  readonly connections: ConnectionRecord[] = [];
  #rv = 100;
  /** The watch caches' history starts after this resourceVersion: a watch from an older one gets 410 Expired. */
  #compactedThrough = 0;
  /** Set while the watch cache is behind (lagCache): what it has seen so far. */
  #cacheRv: number | undefined;
  #failure: Failure | undefined;
  #delayMs = 0;
  #uid = 0;
  #onRequest: ((request: IncomingRequest) => void) | undefined;
  /** How often open watches get a BOOKMARK (when they asked for bookmarks); kube-apiserver: every minute. */
  bookmarkIntervalMs = BOOKMARK_INTERVAL_MS;
  /** A watch that does not say timeoutSeconds ends after [this, twice this) (kube-apiserver's --min-request-timeout). */
  minRequestTimeoutSeconds = MIN_REQUEST_TIMEOUT_SECONDS;
  /** How long a list or watch newer than the watch cache waits before "Too large resource version" (3 s). */
  tooLargeWaitMs = TOO_LARGE_WAIT_MS;
  /** An idle kept-alive connection is closed after this long (kube-apiserver's IdleTimeout: 90 s). */
  idleTimeoutMs = IDLE_TIMEOUT_MS;
  /** Fault: every watch is accepted (200) and closed at once, as a misbehaving proxy or load balancer does. */
  closeWatchesAtOnce = false;
  /**
   * Authentication: the user of a bearer token (undefined without one), or undefined to refuse it
   * (401). By default every request is let in, as the token's holder or "anonymous".
   */
  authenticate: (token: string | undefined) => string | undefined = (token) => token ?? 'anonymous';
  /**
   * RBAC as rules grant it (say, the chart's Roles): a request for a resource is allowed only when a
   * rule names its group, resource and verb (and namespace, and name when the rule has
   * resourceNames: a get of it, or a list or watch with its metadata.name field selector); else 403.
   * Discovery is always allowed. Undefined: no RBAC.
   */
  rbac: readonly RbacGrant[] | undefined;
  /** Which versions serve ServiceCIDRs: ['v1'] is 1.33+, ['v1beta1'] 1.31-1.32 with the beta API, [] older. */
  serviceCidrVersions: ServiceCidrVersion[] = ['v1'];
  /** networking.k8s.io/v1beta1 served with Ingresses only (Kubernetes 1.19-1.21): present, but no ServiceCIDRs. */
  ingressV1beta1 = false;
  /** The Kubernetes version imitated: /version, and the wording of the dry-run Service answer. */
  version = '1.33';
  /** --service-cluster-ip-range: what the bitmap allocator (no ServiceCIDR API) answers from. */
  serviceClusterIpRange: { ipv4?: string; ipv6?: string } = { ipv4: '10.96.0.0/16' };
  /** The upstream proposal that drops "The range of valid IPs is ..." from the message. */
  rangeInMessage = true;
  /** An admission webhook on Services without sideEffects None: dry runs are refused (400). */
  dryRunWebhook: string | undefined;

  /** Listens (more than once: each listener serves the same cluster); returns the URL or socket path. */
  async listen(target: ListenTarget = {}): Promise<string> {
    const handler = (request: IncomingMessage, response: ServerResponse) => {
      this.#handle(request, response).catch((error: unknown) => {
        if (!response.headersSent) this.#status(response, 500, 'InternalError', String(error));
        else response.end();
      });
    };
    const tls = target.tls;
    const server = tls
      ? createTlsServer(
          {
            key: tls.key,
            cert: tls.cert,
            ...(tls.ca ? { ca: tls.ca, requestCert: true, rejectUnauthorized: false } : {}),
          },
          handler,
        )
      : createServer(handler);
    // No Keep-Alive header and no idle close by node: the idle timeout is kept below, as Go's server keeps it.
    server.keepAliveTimeout = 0;
    server.requestTimeout = 0;
    server.on(tls ? 'secureConnection' : 'connection', (socket: Socket) => this.#accepted(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if ('path' in target) server.listen(target.path, resolve);
      else server.listen(target.port ?? 0, target.host ?? '127.0.0.1', resolve);
    });
    this.#servers.push(server);
    const address = server.address();
    if (typeof address === 'string') return address;
    return `${tls ? 'https' : 'http'}://127.0.0.1:${(address as AddressInfo).port}`;
  }

  /** Stops listening and drops every connection (listen() again to come back, with the same objects). */
  async close(): Promise<void> {
    this.dropWatches();
    const servers = this.#servers.splice(0);
    for (const server of servers) server.closeAllConnections();
    for (const socket of this.#sockets.keys()) socket.destroy();
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }

  get resourceVersion(): string {
    return String(this.#rv);
  }

  get openWatches(): number {
    return this.#watchers.size;
  }

  /** Open watches of one resource. */
  watchesOf(resource: ResourceName): number {
    return [...this.#watchers].filter((watcher) => watcher.resource === resource).length;
  }

  /** The ServiceCIDR objects. */
  list(): ServiceCidrObject[] {
    return [...this.#objects.servicecidrs.values()] as ServiceCidrObject[];
  }

  // ---- test controls: ServiceCIDRs ---------------------------------------------------------------

  /** Creates a ServiceCIDR, with the finalizer the real allocator adds. */
  add(
    name: string,
    cidrs: string[],
    options: { finalizer?: boolean; labels?: Record<string, string> } = {},
  ): ServiceCidrObject {
    if (this.#objects.servicecidrs.has(name)) throw new Error(`servicecidr ${name} exists`);
    const object = this.#create('servicecidrs', {
      apiVersion: `${GROUP}/v1`,
      kind: 'ServiceCIDR',
      metadata: {
        ...this.#meta(name),
        generation: 1,
        ...(options.labels ? { labels: { ...options.labels } } : {}),
        ...(options.finalizer === false ? {} : { finalizers: [SERVICE_CIDR_FINALIZER] }),
      },
      spec: { cidrs: [...cidrs] },
      status: {},
    });
    return object as ServiceCidrObject;
  }

  update(name: string, change: (object: ServiceCidrObject) => void): ServiceCidrObject {
    return this.#update('servicecidrs', name, change as (object: StoredObject) => void) as ServiceCidrObject;
  }

  /** What `kubectl delete` does to an object with a finalizer: it stays, terminating. */
  markTerminating(name: string): ServiceCidrObject {
    return this.update(name, (object) => {
      object.metadata.deletionTimestamp = timestamp();
      object.metadata.deletionGracePeriodSeconds = 0;
    });
  }

  /** The object is gone for good: its finalizer removed (as the allocator does once it is unused), or it had none. */
  remove(name: string): void {
    this.#delete('servicecidrs', name);
  }

  // ---- test controls: ConfigMaps and Nodes -------------------------------------------------------

  /** Creates or replaces a ConfigMap's data. */
  putConfigMap(namespace: string, name: string, data: Record<string, string>): StoredObject {
    const key = `${namespace}/${name}`;
    if (this.#objects.configmaps.has(key)) {
      return this.#update('configmaps', key, (object) => {
        object.data = { ...data };
      });
    }
    return this.#create('configmaps', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { ...this.#meta(name), namespace },
      data: { ...data },
    });
  }

  deleteConfigMap(namespace: string, name: string): void {
    this.#delete('configmaps', `${namespace}/${name}`);
  }

  /** Creates or replaces a Node's labels, annotations and addresses. */
  putNode(
    name: string,
    node: {
      labels?: Record<string, string>;
      annotations?: Record<string, string>;
      addresses?: { type: string; address: string }[];
    } = {},
  ): StoredObject {
    const labels = { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', ...node.labels };
    const status = { addresses: node.addresses ?? [{ type: 'Hostname', address: name }] };
    if (this.#objects.nodes.has(name)) {
      return this.#update('nodes', name, (object) => {
        object.metadata.labels = labels;
        object.metadata.annotations = { ...node.annotations };
        object.status = status;
      });
    }
    return this.#create('nodes', {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { ...this.#meta(name), labels, annotations: { ...node.annotations } },
      spec: {},
      status,
    });
  }

  deleteNode(name: string): void {
    this.#delete('nodes', name);
  }

  // ---- test controls: Pods and Events ------------------------------------------------------------

  /** Creates or replaces a Pod scheduled on `nodeName`, with its IPs (the first is status.podIP). */
  putPod(
    namespace: string,
    name: string,
    pod: { nodeName: string; ips: string[]; hostNetwork?: boolean; phase?: string },
  ): StoredObject {
    const key = `${namespace}/${name}`;
    const spec = { nodeName: pod.nodeName, ...(pod.hostNetwork ? { hostNetwork: true } : {}), containers: [] };
    const status = {
      phase: pod.phase ?? 'Running',
      ...(pod.ips[0] ? { podIP: pod.ips[0] } : {}),
      podIPs: pod.ips.map((ip) => ({ ip })),
    };
    if (this.#objects.pods.has(key)) {
      return this.#update('pods', key, (object) => {
        object.spec = spec;
        object.status = status;
      });
    }
    return this.#create('pods', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { ...this.#meta(name), namespace },
      spec,
      status,
    });
  }

  deletePod(namespace: string, name: string): void {
    this.#delete('pods', `${namespace}/${name}`);
  }

  /** An Event gone, as the API server drops it after its TTL. */
  deleteEvent(namespace: string, name: string): void {
    this.#delete('events', `${namespace}/${name}`);
  }

  /** The Events created so far, oldest first. */
  events(): StoredObject[] {
    return [...this.#objects.events.values()];
  }

  // ---- test controls: DaemonSets -----------------------------------------------------------------

  /** Creates a DaemonSet (its spec left out: nothing here reads it). */
  putDaemonSet(namespace: string, name: string): StoredObject {
    return this.#create('daemonsets', {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { ...this.#meta(name), namespace, generation: 1 },
      spec: {},
      status: {},
    });
  }

  /**
   * Deletes a DaemonSet as `kubectl delete` does with each propagation policy: Background (helm
   * uninstall's) removes it at once and leaves its pods to the garbage collector; Foreground keeps
   * it, terminating (deletionTimestamp and the foregroundDeletion finalizer), until its pods are gone.
   */
  deleteDaemonSet(namespace: string, name: string, propagation: 'Background' | 'Foreground' = 'Background'): void {
    const key = `${namespace}/${name}`;
    if (propagation === 'Background') {
      this.#delete('daemonsets', key);
      return;
    }
    this.#update('daemonsets', key, (object) => {
      object.metadata.deletionTimestamp = timestamp();
      object.metadata.deletionGracePeriodSeconds = 0;
      object.metadata.finalizers = ['foregroundDeletion'];
    });
  }

  // ---- test controls: the server ----------------------------------------------------------------

  /**
   * Stands for writes to other resources: the cluster-wide resourceVersion moves on without an
   * event (only a BOOKMARK can tell a watcher). Returns the new resourceVersion.
   */
  advanceResourceVersion(by = 1): string {
    this.#rv += by;
    return this.resourceVersion;
  }

  /**
   * Forgets history, as a watch cache started afresh (an API server restart) or one whose window
   * moved past it: watches from any resourceVersion before now get 410 Expired.
   */
  compact(): void {
    this.#compactedThrough = this.#rv;
    this.#history.length = 0;
  }

  /** Ends every open watch, as a load balancer timeout would. */
  dropWatches(): void {
    for (const watcher of this.#watchers) this.#endWatch(watcher);
  }

  /**
   * An API server restart: every connection (and so every watch) dropped at once, and the watch
   * caches started afresh from etcd, so a watch from any earlier resourceVersion gets 410 Expired.
   */
  restart(): void {
    this.dropWatches();
    for (const socket of this.#sockets.keys()) socket.destroy();
    this.advanceResourceVersion();
    this.compact();
  }

  /**
   * The watch cache stops at the current resourceVersion (an API server whose cache is behind, after
   * a failover) until called with false: a list or watch asking for a newer resourceVersion waits
   * `tooLargeWaitMs` and is answered "Too large resource version", as the real cacher does.
   */
  lagCache(lagging = true): void {
    this.#cacheRv = lagging ? this.#rv : undefined;
  }

  /** Every matching request fails with `failure.code` until cleared with undefined. */
  failWith(failure: Failure | undefined): void {
    this.#failure = failure;
  }

  /** RBAC: every request for `resource` is refused with 403 (as the real server words it) until allowed. */
  forbid(...resources: ResourceName[]): void {
    for (const resource of resources) this.#forbidden.add(resource);
  }

  allow(...resources: ResourceName[]): void {
    for (const resource of resources) {
      this.#forbidden.delete(resource);
      this.#onlyNames.delete(resource);
    }
  }

  /**
   * RBAC as a Role with resourceNames grants it: a get of one of `names`, or a list or watch that
   * carries fieldSelector=metadata.name=<one of names>; anything else on `resource` is 403.
   */
  allowOnlyNames(resource: ResourceName, ...names: string[]): void {
    this.#onlyNames.set(resource, new Set(names));
  }

  /** Delays every response (a slow API server). */
  delay(ms: number): void {
    this.#delayMs = ms;
  }

  /**
   * Calls `hook` with every request as it arrives (before any delay), so a test can change
   * the server between two requests of a client, e.g. compact history between a list and its watch.
   */
  onRequest(hook: ((request: IncomingRequest) => void) | undefined): void {
    this.#onRequest = hook;
  }

  /** Sends a BOOKMARK now to every watch that asked for bookmarks (a test need not wait for the timer). */
  sendBookmarks(): void {
    for (const watcher of this.#watchers) if (watcher.bookmarks) this.#bookmark(watcher);
  }

  // ---- objects --------------------------------------------------------------------------------

  #meta(name: string): ObjectMeta {
    this.#rv += 1;
    this.#uid += 1;
    return {
      name,
      uid: `00000000-0000-4000-8000-${String(this.#uid).padStart(12, '0')}`,
      resourceVersion: String(this.#rv),
      creationTimestamp: timestamp(),
    };
  }

  #create(resource: ResourceName, object: StoredObject): StoredObject {
    // Metadata first, as the real server serialises it (kubectl -o yaml shows it so).
    this.#record(resource, 'ADDED', object);
    return object;
  }

  #update(resource: ResourceName, key: string, change: (object: StoredObject) => void): StoredObject {
    const object = this.#objects[resource].get(key);
    if (!object) throw new Error(`no ${resource} ${key}`);
    const next = structuredClone(object);
    change(next);
    this.#rv += 1;
    next.metadata.resourceVersion = String(this.#rv);
    if (next.metadata.generation !== undefined) {
      // As the real server: the generation counts changes of the spec (and the start of deletion).
      const deleting = !object.metadata.deletionTimestamp && next.metadata.deletionTimestamp;
      if (deleting || JSON.stringify(next.spec) !== JSON.stringify(object.spec)) next.metadata.generation += 1;
    }
    this.#record(resource, 'MODIFIED', next);
    return next;
  }

  #delete(resource: ResourceName, key: string): void {
    const stored = this.#objects[resource].get(key);
    if (!stored) throw new Error(`no ${resource} ${key}`);
    const object = structuredClone(stored);
    this.#rv += 1;
    object.metadata.resourceVersion = String(this.#rv);
    delete object.metadata.finalizers;
    this.#record(resource, 'DELETED', object);
  }

  #record(resource: ResourceName, type: EventType, object: StoredObject): void {
    const key = keyOf(object);
    if (type === 'DELETED') this.#objects[resource].delete(key);
    else this.#objects[resource].set(key, object);
    this.#history.push({ rv: this.#rv, resource, type, object });
    for (const watcher of this.#watchers) {
      if (watcher.resource !== resource || !matches(object, watcher.selector)) continue;
      watcher.rv = this.#rv;
      writeEvent(watcher.response, type, served(object, watcher.apiVersion));
    }
  }

  // ---- HTTP ---------------------------------------------------------------------------------

  #accepted(socket: Socket): void {
    const record: ConnectionRecord = { id: this.connections.length + 1, openedAt: Date.now(), closedAt: undefined };
    this.connections.push(record);
    const state: { readonly record: ConnectionRecord; active: number; idle?: NodeJS.Timeout } = { record, active: 0 };
    this.#sockets.set(socket, state);
    this.#idle(socket);
    socket.on('close', () => {
      record.closedAt = Date.now();
      clearTimeout(this.#sockets.get(socket)?.idle);
      this.#sockets.delete(socket);
    });
  }

  /** Arms the idle timeout of a connection with no request in flight. */
  #idle(socket: Socket): void {
    const state = this.#sockets.get(socket);
    if (!state || state.active > 0) return;
    clearTimeout(state.idle);
    state.idle = setTimeout(() => socket.destroy(), this.idleTimeoutMs);
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://fake');
    const query = Object.fromEntries(url.searchParams);
    const path = url.pathname.replace(/\/$/, '');
    const method = request.method ?? 'GET';
    const isWatch = query.watch === 'true' || query.watch === '1';
    const socket = request.socket;
    const connection = this.#sockets.get(socket);
    const discovery = this.#discovery(path);
    const route = discovery ? undefined : this.#route(path);
    const token = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1];
    // A client certificate signed by the server's CA authenticates its CN, as kube-apiserver's x509 authenticator does.
    const certificate = (socket as TLSSocket).getPeerCertificate?.();
    const commonName = (socket as TLSSocket).authorized ? String(certificate?.subject?.CN ?? '') : '';
    const user = token === undefined && commonName ? commonName : this.authenticate(token);
    const record: RequestRecord = {
      method,
      path,
      query,
      watch: isWatch,
      connection: connection?.record.id ?? 0,
      user: user ?? `unauthenticated (${token ?? 'no token'})`,
      read: method !== 'GET' || !route ? undefined : isWatch || query.resourceVersion ? 'cache' : 'etcd',
      at: Date.now(),
      status: 0,
      bytes: 0,
      endedAt: undefined,
    };
    this.requests.push(record);
    if (connection) {
      connection.active += 1;
      clearTimeout(connection.idle);
    }
    const write = response.write.bind(response);
    const finish = response.end.bind(response);
    const count = (chunk: unknown) => {
      if (typeof chunk === 'string' || chunk instanceof Uint8Array) record.bytes += Buffer.byteLength(chunk);
    };
    response.write = ((chunk: unknown, ...rest: unknown[]) => {
      count(chunk);
      return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
    }) as ServerResponse['write'];
    response.end = ((...args: unknown[]) => {
      if (typeof args[0] !== 'function') count(args[0]);
      return (finish as (...args: unknown[]) => ServerResponse)(...args);
    }) as ServerResponse['end'];
    response.on('close', () => {
      record.status = response.statusCode;
      record.endedAt = Date.now();
      if (connection) connection.active -= 1;
      this.#idle(socket);
    });
    this.#onRequest?.({ method, path, query, watch: isWatch });
    if (this.#delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.#delayMs));

    if (user === undefined) return this.#status(response, 401, 'Unauthorized', 'Unauthorized', {});
    const failure = this.#failure;
    const failed = (resource: ResourceName | undefined) =>
      failure &&
      (failure.resource === '*' || (failure.resource ?? 'servicecidrs') === resource) &&
      (!failure.pathPrefix || path.startsWith(failure.pathPrefix)) &&
      (!failure.only || (failure.only === 'watch') === isWatch);

    if (discovery) {
      if (failure && failed(undefined)) return this.#injected(response, failure, 'get', undefined, isWatch);
      return json(response, 200, discovery);
    }

    if (!route) return this.#status(response, 404, 'NotFound', 'the server could not find the requested resource', {});
    const verb = verbOf(method, route.name, isWatch);
    if (failure && failed(route.resource)) return this.#injected(response, failure, verb, route, isWatch);
    if (this.#forbidden.has(route.resource) || !granted(this.rbac, route, verb, query)) {
      return this.#injected(response, { code: 403 }, verb, route, isWatch);
    }
    const onlyNames = this.#onlyNames.get(route.resource);
    if (onlyNames) {
      const named = route.name ?? /^metadata\.name==?(.*)$/.exec(query.fieldSelector ?? '')?.[1];
      if (named === undefined || !onlyNames.has(named)) {
        return this.#injected(response, { code: 403 }, verb, route, isWatch);
      }
    }
    // A resourceVersion newer than the watch cache: the cacher waits 3 s for it, then gives up.
    const asked = Number(query.resourceVersion ?? '0');
    if (method === 'GET' && this.#cacheRv !== undefined && asked > this.#cacheRv) {
      await new Promise((resolve) => setTimeout(resolve, this.tooLargeWaitMs));
      if (this.#cacheRv !== undefined && asked > this.#cacheRv) return this.#tooLarge(response, asked, isWatch);
    }

    const body = await readBody(request);
    if (route.resource === 'events' && method === 'POST') {
      return this.#createEvent(response, body, route.namespace);
    }
    if (route.resource === 'events' && method === 'PATCH') {
      return this.#patchEvent(response, request.headers['content-type'], body, route);
    }
    if (route.resource === 'services') {
      if (method !== 'POST' || route.name) return this.#methodNotAllowed(response);
      return this.#createService(response, query, body, route.namespace ?? 'default');
    }
    switch (method) {
      case 'GET': {
        if (route.name) {
          const object = this.#objects[route.resource].get(
            route.namespace ? `${route.namespace}/${route.name}` : route.name,
          );
          return object
            ? json(response, 200, served(object, route.apiVersion))
            : this.#notFound(response, route, route.name);
        }
        const selector = parseSelectors(query, route.namespace, route.resource);
        if ('error' in selector) return this.#status(response, 400, 'BadRequest', selector.error, {});
        return isWatch ? this.#watch(response, query, route, selector) : this.#list(response, query, route, selector);
      }
      case 'POST':
        if (route.resource !== 'servicecidrs') return this.#methodNotAllowed(response);
        return this.#createServiceCidr(response, query, body, route.name ?? '');
      case 'DELETE': {
        if (route.resource !== 'servicecidrs' || !route.name) return this.#methodNotAllowed(response);
        const object = this.#objects.servicecidrs.get(route.name);
        if (!object) return this.#notFound(response, route, route.name);
        // An object already being deleted is answered as it is: a second delete changes nothing.
        if (object.metadata.deletionTimestamp) return json(response, 200, served(object, route.apiVersion));
        if (object.metadata.finalizers?.length)
          return json(response, 200, served(this.markTerminating(route.name), route.apiVersion));
        this.remove(route.name);
        return json(response, 200, {
          ...served(object, route.apiVersion),
          metadata: { ...object.metadata, resourceVersion: this.resourceVersion },
        });
      }
      default:
        return this.#methodNotAllowed(response);
    }
  }

  /** Which resource a path names, if it is served. */
  #route(path: string): Route | undefined {
    const servicecidrs = /^\/apis\/networking\.k8s\.io\/(v1|v1beta1)\/servicecidrs(?:\/([^/]+))?$/.exec(path);
    if (servicecidrs) {
      const version = servicecidrs[1] as ServiceCidrVersion;
      if (!this.serviceCidrVersions.includes(version)) return undefined;
      return {
        resource: 'servicecidrs',
        apiVersion: `${GROUP}/${version}`,
        ...(servicecidrs[2] ? { name: decodeURIComponent(servicecidrs[2]) } : {}),
      };
    }
    const nodes = /^\/api\/v1\/nodes(?:\/([^/]+))?$/.exec(path);
    if (nodes)
      return { resource: 'nodes', apiVersion: 'v1', ...(nodes[1] ? { name: decodeURIComponent(nodes[1]) } : {}) };
    const daemonsets = /^\/apis\/apps\/v1\/(?:namespaces\/([^/]+)\/)?daemonsets(?:\/([^/]+))?$/.exec(path);
    if (daemonsets && (daemonsets[1] || !daemonsets[2])) {
      return {
        resource: 'daemonsets',
        apiVersion: 'apps/v1',
        ...(daemonsets[1] ? { namespace: decodeURIComponent(daemonsets[1]) } : {}),
        ...(daemonsets[2] ? { name: decodeURIComponent(daemonsets[2]) } : {}),
      };
    }
    const all = /^\/api\/v1\/(configmaps|services|pods|events)$/.exec(path);
    if (all) return { resource: all[1] as ResourceName, apiVersion: 'v1' };
    const namespaced = /^\/api\/v1\/namespaces\/([^/]+)\/(configmaps|services|pods|events)(?:\/([^/]+))?$/.exec(path);
    if (namespaced) {
      return {
        resource: namespaced[2] as ResourceName,
        namespace: decodeURIComponent(namespaced[1] as string),
        apiVersion: 'v1',
        ...(namespaced[3] ? { name: decodeURIComponent(namespaced[3]) } : {}),
      };
    }
    return undefined;
  }

  /** POST of a core/v1 Event, checked as the real server checks what route-controller sends. */
  #createEvent(response: ServerResponse, body: string, namespace: string | undefined) {
    if (!namespace) return this.#methodNotAllowed(response);
    let event: { metadata?: { name?: string; namespace?: string }; involvedObject?: { kind?: string; name?: string } };
    try {
      event = JSON.parse(body) as typeof event;
    } catch (error) {
      return this.#status(response, 400, 'BadRequest', `the object provided is unrecognized: ${String(error)}`, {});
    }
    const name = event.metadata?.name;
    if (event.metadata?.namespace !== undefined && event.metadata.namespace !== namespace) {
      return this.#status(
        response,
        400,
        'BadRequest',
        'the namespace of the provided object does not match the namespace sent on the request',
        {},
      );
    }
    if (!name || !event.involvedObject?.kind || !event.involvedObject.name) {
      return this.#status(
        response,
        422,
        'Invalid',
        `Event "${name ?? ''}" is invalid: involvedObject or name missing`,
        {
          kind: 'Event',
        },
      );
    }
    if (this.#objects.events.has(`${namespace}/${name}`)) {
      return this.#status(response, 409, 'AlreadyExists', `events "${name}" already exists`, { name, kind: 'events' });
    }
    const created = this.#create('events', {
      ...(event as Record<string, unknown>),
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { ...this.#meta(name), namespace },
    });
    json(response, 201, created);
  }

  /** A JSON merge patch of an Event (what route-controller sends to bump its count), as the real server applies it. */
  #patchEvent(response: ServerResponse, contentType: string | undefined, body: string, route: Route) {
    if (!route.namespace || !route.name) return this.#methodNotAllowed(response);
    if (contentType?.split(';')[0]?.trim() !== 'application/merge-patch+json') {
      return this.#status(
        response,
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format`,
        {},
      );
    }
    const key = `${route.namespace}/${route.name}`;
    if (!this.#objects.events.has(key)) return this.#notFound(response, route, route.name);
    let patch: Record<string, unknown>;
    try {
      patch = JSON.parse(body) as Record<string, unknown>;
    } catch (error) {
      return this.#status(response, 400, 'BadRequest', `the object provided is unrecognized: ${String(error)}`, {});
    }
    const patched = this.#update('events', key, (object) => {
      const fields = object as unknown as Record<string, unknown>;
      for (const [field, value] of Object.entries(patch)) {
        if (field === 'metadata' || field === 'apiVersion' || field === 'kind') continue;
        if (value === null) delete fields[field];
        else fields[field] = value;
      }
    });
    json(response, 200, patched);
  }

  /** POST of a ServiceCIDR, validated as the real API server does (with fieldValidation=Strict, as kubectl sends). */
  #createServiceCidr(response: ServerResponse, query: Record<string, string>, body: string, pathName: string) {
    if (pathName) return this.#methodNotAllowed(response);
    let object: Partial<ServiceCidrObject> & Record<string, unknown>;
    try {
      object = JSON.parse(body) as typeof object;
    } catch (error) {
      this.#status(response, 400, 'BadRequest', `the object provided is unrecognized: ${String(error)}`, {});
      return;
    }
    if (query.fieldValidation === 'Strict') {
      const unknown = unknownFields(object);
      if (unknown.length > 0) {
        const list = unknown.map((field) => `unknown field "${field}"`).join(', ');
        this.#status(
          response,
          400,
          'BadRequest',
          `ServiceCIDR in version "v1" cannot be handled as a ServiceCIDR: strict decoding error: ${list}`,
          {},
        );
        return;
      }
    }
    const name = object.metadata?.name;
    const causes = validateServiceCidr(object);
    if (causes.length > 0) {
      const message = `ServiceCIDR.${GROUP} "${name ?? ''}" is invalid: ${causes.map((c) => `${c.field}: ${c.message}`).join(', ')}`;
      this.#status(response, 422, 'Invalid', message, {
        name: name ?? '',
        group: GROUP,
        kind: 'ServiceCIDR',
        causes: causes.map((c) => ({ reason: 'FieldValueInvalid', message: c.message, field: c.field })),
      });
      return;
    }
    const objectName = name as string;
    if (this.#objects.servicecidrs.has(objectName)) {
      this.#status(response, 409, 'AlreadyExists', `servicecidrs.${GROUP} "${objectName}" already exists`, {
        name: objectName,
        group: GROUP,
        kind: 'servicecidrs',
      });
      return;
    }
    const labels = object.metadata?.labels;
    const created = this.add(objectName, object.spec?.cidrs ?? [], labels ? { labels } : {});
    json(response, 201, created);
  }

  /**
   * POST of a Service. Only the clusterIP is checked, as the Service registry's allocator does it
   * (it runs before the rest of validation): its family must be configured, and the IP must be in
   * that family's range. With dryRun=All nothing is stored, and Kubernetes 1.22 and older skip
   * the allocation altogether (201). The 422 is worded as the imitated version words it.
   */
  #createService(response: ServerResponse, query: Record<string, string>, body: string, namespace: string) {
    let service: { metadata?: { name?: string }; spec?: { clusterIP?: string; clusterIPs?: string[] } };
    try {
      service = JSON.parse(body) as typeof service;
    } catch (error) {
      this.#status(response, 400, 'BadRequest', `the object provided is unrecognized: ${String(error)}`, {});
      return;
    }
    const dryRun = query.dryRun === 'All';
    if (dryRun && this.dryRunWebhook) {
      this.#status(
        response,
        400,
        'BadRequest',
        `admission webhook "${this.dryRunWebhook}" does not support dry run`,
        {},
      );
      return;
    }
    const name = service.metadata?.name ?? '';
    const ip = service.spec?.clusterIP ?? service.spec?.clusterIPs?.[0] ?? '';
    const minor = Number(this.version.split('.')[1] ?? '0');
    const created = () =>
      json(response, 201, {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name, namespace, uid: 'dry-run', creationTimestamp: timestamp() },
        spec: { ...service.spec, type: 'ClusterIP' },
        status: { loadBalancer: {} },
      });
    if (ip === '' || ip === 'None') return created();
    const family = isIP(ip);
    const rendered = minor >= 34 ? `["${ip}"]` : `[]string{"${ip}"}`;
    const invalid = (field: string, detail: string) => {
      const cause = `Invalid value: ${rendered}: ${detail}`;
      this.#status(response, 422, 'Invalid', `Service "${name}" is invalid: ${field}: ${cause}`, {
        name,
        kind: 'Service',
        causes: [{ reason: 'FieldValueInvalid', message: cause, field }],
      });
    };
    if (family === 0)
      return invalid('spec.clusterIPs[0]', 'must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)');
    const familyName = family === 4 ? 'IPv4' : 'IPv6';
    const range = this.#allocatorRange(family === 4 ? 'ipv4' : 'ipv6');
    if (!range) return invalid('spec.clusterIPs[0]', `${familyName} is not configured on this cluster`);
    if (dryRun && minor <= 22) return created();
    if (inRange(ip, range.cidr)) return created();
    if (range.multiCidr && !dryRun) {
      return invalid(
        'spec.clusterIPs',
        `failed to allocate IP ${ip}: the provided network does not match the current range`,
      );
    }
    const reason =
      minor <= 26 ? `provided IP is not in the valid range` : `the provided IP (${ip}) is not in the valid range`;
    const valid = this.rangeInMessage ? `. The range of valid IPs is ${range.cidr}` : '';
    return invalid('spec.clusterIPs', `failed to allocate IP ${ip}: ${reason}${valid}`);
  }

  /**
   * The range the allocator answers from: with ServiceCIDRs served (the ServiceCIDR allocator) a
   * dry run names one ServiceCIDR prefix of the family (the first by name here; a real server
   * picks at random among several); otherwise --service-cluster-ip-range.
   */
  #allocatorRange(family: 'ipv4' | 'ipv6'): { cidr: string; multiCidr: boolean } | undefined {
    if (this.serviceCidrVersions.length > 0) {
      const objects = [...this.#objects.servicecidrs.values()].sort((a, b) =>
        a.metadata.name.localeCompare(b.metadata.name),
      );
      for (const object of objects as ServiceCidrObject[]) {
        const cidr = object.spec.cidrs.find((c) => isIP(c.split('/')[0] ?? '') === (family === 'ipv4' ? 4 : 6));
        if (cidr) return { cidr, multiCidr: true };
      }
    }
    const cidr = this.serviceClusterIpRange[family];
    return cidr ? { cidr, multiCidr: false } : undefined;
  }

  #list(response: ServerResponse, query: Record<string, string>, route: Route, selector: Selector): void {
    const rv = Number(query.resourceVersion ?? '0');
    // An exact list at a compacted version fails as the real server does.
    if (query.resourceVersionMatch === 'Exact' && rv > 0 && rv < this.#compactedThrough) {
      this.#status(response, 410, 'Expired', `too old resource version: ${rv} (${this.#compactedThrough})`);
      return;
    }
    json(response, 200, {
      apiVersion: route.apiVersion,
      kind: `${KINDS[route.resource]}List`,
      metadata: { resourceVersion: this.resourceVersion },
      // The real server leaves apiVersion and kind out of the items of a list of built-in types.
      items: [...this.#objects[route.resource].values()]
        .filter((object) => matches(object, selector))
        .sort((a, b) => keyOf(a).localeCompare(keyOf(b)))
        .map(({ apiVersion: _apiVersion, kind: _kind, ...rest }) => rest),
    });
  }

  #watch(response: ServerResponse, query: Record<string, string>, route: Route, selector: Selector): void {
    const from = query.resourceVersion;
    const objects = this.#objects[route.resource];
    response.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    response.flushHeaders();
    if (this.closeWatchesAtOnce) {
      response.end();
      return;
    }
    // Without a resourceVersion (or "0") the real server starts with synthetic ADDED events.
    if (from === undefined || from === '' || from === '0') {
      for (const object of objects.values()) {
        if (matches(object, selector)) writeEvent(response, 'ADDED', served(object, route.apiVersion));
      }
    } else {
      const rv = Number(from);
      if (!Number.isInteger(rv) || rv < this.#compactedThrough) {
        this.#expired(response, `too old resource version: ${from} (${this.#compactedThrough})`);
        return;
      }
      for (const event of this.#history) {
        if (event.rv > rv && event.resource === route.resource && matches(event.object, selector)) {
          writeEvent(response, event.type, served(event.object, route.apiVersion));
        }
      }
    }
    const asked = Number(query.timeoutSeconds ?? '0');
    // Without a timeout of its own, a watch ends after [--min-request-timeout, twice that), as the real server does.
    const timeoutMs = asked > 0 ? asked * 1000 : Math.floor(this.minRequestTimeoutSeconds * (1 + Math.random())) * 1000;
    const bookmarks = query.allowWatchBookmarks === 'true';
    const watcher: Watcher = {
      response,
      resource: route.resource,
      apiVersion: route.apiVersion,
      selector,
      rv: this.#rv,
      bookmarks,
      timer: setTimeout(() => this.#endWatch(watcher), timeoutMs),
      ...(bookmarks
        ? {
            bookmarkTimer: setInterval(() => this.#bookmark(watcher), this.bookmarkIntervalMs),
            // And one just before the deadline, so the next watch resumes from a fresh resourceVersion.
            deadlineBookmark: setTimeout(
              () => this.#bookmark(watcher),
              Math.max(0, timeoutMs - BOOKMARK_BEFORE_DEADLINE_MS),
            ),
          }
        : {}),
    };
    this.#watchers.add(watcher);
    response.on('close', () => this.#endWatch(watcher));
  }

  #bookmark(watcher: Watcher): void {
    watcher.rv = this.#rv;
    const kind = KINDS[watcher.resource];
    writeEvent(watcher.response, 'BOOKMARK', {
      apiVersion: watcher.apiVersion,
      kind,
      metadata: { resourceVersion: this.resourceVersion, creationTimestamp: null },
      ...(kind === 'ConfigMap' ? {} : { spec: {}, status: {} }),
    });
  }

  #endWatch(watcher: Watcher): void {
    if (!this.#watchers.delete(watcher)) return;
    clearTimeout(watcher.timer);
    clearInterval(watcher.bookmarkTimer);
    clearTimeout(watcher.deadlineBookmark);
    watcher.response.end();
  }

  /** What the real server answers to a watch whose history is gone: 200, one ERROR event (410 Expired), the end. */
  #expired(response: ServerResponse, message: string): void {
    if (!response.headersSent) {
      response.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    }
    writeEvent(response, 'ERROR', { ...statusBody(410, 'Expired', message), details: undefined });
    response.end();
  }

  /** The cacher's answer to a resourceVersion it has not seen: 504 (or an ERROR event on a watch). */
  #tooLarge(response: ServerResponse, asked: number, watch: boolean): void {
    const message = `Too large resource version: ${asked}, current: ${this.#cacheRv ?? this.#rv}`;
    const details = {
      causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
      retryAfterSeconds: 1,
    };
    if (!watch) {
      response.setHeader('Retry-After', '1');
      this.#status(response, 504, 'Timeout', message, details);
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    writeEvent(response, 'ERROR', statusBody(504, 'Timeout', message, details));
    response.end();
  }

  #injected(
    response: ServerResponse,
    failure: Pick<Failure, 'code' | 'retryAfterSeconds'>,
    verb: string,
    route: Route | undefined,
    watch: boolean,
  ): void {
    const { code } = failure;
    if (code === 410 && watch) {
      this.#expired(response, 'too old resource version');
      return;
    }
    const resourceName = route?.resource ?? 'servicecidrs';
    const group = route ? groupOf(route) : GROUP;
    const qualified = group ? `${resourceName}.${group}` : resourceName;
    const subject = route?.name ? `${qualified} "${route.name}"` : qualified;
    const scope = route?.namespace ? `in the namespace "${route.namespace}"` : 'at the cluster scope';
    const resource = { ...(route?.name ? { name: route.name } : {}), ...(group ? { group } : {}), kind: resourceName };
    const retryAfter = failure.retryAfterSeconds ?? (code === 429 ? 1 : undefined);
    const reasons: Record<Failure['code'], [string, string, Record<string, unknown>]> = {
      403: [
        'Forbidden',
        `${subject} is forbidden: User "${SERVICE_ACCOUNT}" cannot ${verb} resource "${resourceName}" in API group "${group}" ${scope}`,
        resource,
      ],
      404: ['NotFound', 'the server could not find the requested resource', {}],
      410: ['Expired', 'too old resource version', {}],
      429: ['TooManyRequests', 'too many requests, please try again later', {}],
      500: [
        'InternalError',
        'Internal error occurred: etcdserver: request timed out',
        { causes: [{ message: 'etcdserver: request timed out' }] },
      ],
      503: ['ServiceUnavailable', 'the server is currently unable to handle the request', {}],
    };
    const [reason, message, details] = reasons[code];
    if (retryAfter !== undefined) response.setHeader('Retry-After', String(retryAfter));
    this.#status(response, code, reason, message, {
      ...details,
      ...(retryAfter === undefined ? {} : { retryAfterSeconds: retryAfter }),
    });
  }

  #notFound(response: ServerResponse, route: Route, name: string): void {
    const group = groupOf(route);
    this.#status(
      response,
      404,
      'NotFound',
      `${group ? `${route.resource}.${group}` : route.resource} "${name}" not found`,
      {
        name,
        ...(group ? { group } : {}),
        kind: route.resource,
      },
    );
  }

  #methodNotAllowed(response: ServerResponse): void {
    this.#status(
      response,
      405,
      'MethodNotAllowed',
      'the server does not allow this method on the requested resource',
      {},
    );
  }

  #status(
    response: ServerResponse,
    code: number,
    reason: string,
    message: string,
    details: Record<string, unknown> = { group: GROUP, kind: 'servicecidrs' },
  ): void {
    json(response, code, statusBody(code, reason, message, details));
  }

  #discovery(path: string): unknown {
    if (path === '/api') {
      return {
        kind: 'APIVersions',
        versions: ['v1'],
        serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1:6443' }],
      };
    }
    const networkingVersions = this.#networkingVersions();
    if (path === '/apis') {
      const versions = networkingVersions.map((version) => ({ groupVersion: `${GROUP}/${version}`, version }));
      return {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: [{ name: GROUP, versions, preferredVersion: versions[0] }, APPS_GROUP],
      };
    }
    if (path === '/apis/apps') return { kind: 'APIGroup', apiVersion: 'v1', ...APPS_GROUP };
    if (path === '/apis/apps/v1') return APPS_V1_RESOURCES;
    if (path === `/apis/${GROUP}`) {
      const versions = networkingVersions.map((version) => ({ groupVersion: `${GROUP}/${version}`, version }));
      return { kind: 'APIGroup', apiVersion: 'v1', name: GROUP, versions, preferredVersion: versions[0] };
    }
    for (const version of networkingVersions) {
      if (path === `/apis/${GROUP}/${version}`) return this.#networkingResources(version);
    }
    if (path === '/api/v1') {
      const verbs = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
      return {
        kind: 'APIResourceList',
        groupVersion: 'v1',
        resources: [
          {
            name: 'configmaps',
            singularName: 'configmap',
            namespaced: true,
            kind: 'ConfigMap',
            verbs,
            shortNames: ['cm'],
            storageVersionHash: 'qFsyl6wFWjQ=',
          },
          {
            name: 'nodes',
            singularName: 'node',
            namespaced: false,
            kind: 'Node',
            verbs,
            shortNames: ['no'],
            storageVersionHash: 'XwShjMxG9Fs=',
          },
          {
            name: 'pods',
            singularName: 'pod',
            namespaced: true,
            kind: 'Pod',
            verbs,
            shortNames: ['po'],
            categories: ['all'],
            storageVersionHash: 'xPOwRZ+Yhw8=',
          },
          {
            name: 'events',
            singularName: 'event',
            namespaced: true,
            kind: 'Event',
            verbs,
            shortNames: ['ev'],
            storageVersionHash: 'r2yiGXH7wu8=',
          },
          {
            name: 'services',
            singularName: 'service',
            namespaced: true,
            kind: 'Service',
            verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
            shortNames: ['svc'],
            categories: ['all'],
            storageVersionHash: '0/CO1lhkEBI=',
          },
        ],
      };
    }
    // OpenAPI v3, just enough for kubectl to see that the server validates fields itself
    // (it then sends fieldValidation=Strict instead of validating client-side).
    if (path === '/openapi/v3') {
      return {
        paths: {
          [`apis/${GROUP}/v1`]: { serverRelativeURL: `/openapi/v3/apis/${GROUP}/v1?hash=FAKE` },
          'api/v1': { serverRelativeURL: '/openapi/v3/api/v1?hash=FAKE' },
        },
      };
    }
    if (path === `/openapi/v3/apis/${GROUP}/v1`) return openApiV3();
    if (path === '/openapi/v3/api/v1') return openApiCoreV1();
    if (path === '/version') {
      const [major, minor] = this.version.split('.');
      return { major, minor, gitVersion: `v${this.version}.0-fake`, platform: 'linux/amd64' };
    }
    return undefined;
  }

  /** The versions of networking.k8s.io served: v1 always (Ingress, NetworkPolicy, ...). */
  #networkingVersions(): string[] {
    const versions = ['v1'];
    if (this.serviceCidrVersions.includes('v1beta1') || this.ingressV1beta1) versions.push('v1beta1');
    return versions;
  }

  #networkingResources(version: string): unknown {
    const verbs = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
    const resource = (name: string, kind: string, namespaced: boolean, extra: Record<string, unknown> = {}) => ({
      name,
      singularName: name.replace(/s$/, '').replace(/sse$/, 'ss'),
      namespaced,
      kind,
      verbs,
      ...extra,
    });
    const resources: unknown[] = [];
    if (version === 'v1') {
      resources.push(
        resource('ingressclasses', 'IngressClass', false),
        resource('ingresses', 'Ingress', true, { shortNames: ['ing'] }),
        resource('networkpolicies', 'NetworkPolicy', true, { shortNames: ['netpol'] }),
      );
    } else if (this.ingressV1beta1 && !this.serviceCidrVersions.includes('v1beta1')) {
      resources.push(resource('ingresses', 'Ingress', true, { shortNames: ['ing'] }));
    }
    if (this.serviceCidrVersions.includes(version as ServiceCidrVersion)) {
      resources.push(
        resource('ipaddresses', 'IPAddress', false, { shortNames: ['ip'] }),
        resource('servicecidrs', 'ServiceCIDR', false, {
          storageVersionHash: version === 'v1' ? 'gNLvruQhW2g=' : '8ufAXOnr3Yg=',
        }),
        {
          name: 'servicecidrs/status',
          singularName: '',
          namespaced: false,
          kind: 'ServiceCIDR',
          verbs: ['get', 'patch', 'update'],
        },
      );
    }
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: `${GROUP}/${version}`, resources };
  }
}

/** The API group a route's resource belongs to: "" for the core group. */
function groupOf(route: Route): string {
  const slash = route.apiVersion.indexOf('/');
  return slash < 0 ? '' : route.apiVersion.slice(0, slash);
}

/** An object as served in `apiVersion` (ServiceCIDRs are stored once and served in either version). */
function served(object: StoredObject, apiVersion: string): StoredObject {
  return object.apiVersion === apiVersion ? object : { ...object, apiVersion };
}

function keyOf(object: StoredObject): string {
  return object.metadata.namespace ? `${object.metadata.namespace}/${object.metadata.name}` : object.metadata.name;
}

function matches(object: StoredObject, selector: Selector): boolean {
  if (selector.namespace !== undefined && object.metadata.namespace !== selector.namespace) return false;
  if (selector.name !== undefined && object.metadata.name !== selector.name) return false;
  if (
    selector.nodeName !== undefined &&
    (object.spec as { nodeName?: string } | undefined)?.nodeName !== selector.nodeName
  )
    return false;
  const labels = object.metadata.labels ?? {};
  for (const requirement of selector.labels ?? []) {
    const value = labels[requirement.key];
    if (requirement.op === 'exists' && value === undefined) return false;
    if (requirement.op === '!' && value !== undefined) return false;
    if (requirement.op === '=' && value !== requirement.value) return false;
    if (requirement.op === '!=' && value === requirement.value) return false;
  }
  return true;
}

function timestamp(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

function statusBody(code: number, reason: string, message: string, details?: Record<string, unknown>) {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

/** The OpenAPI v3 document of networking.k8s.io/v1, reduced to the ServiceCIDR operations kubectl inspects. */
function openApiV3(): unknown {
  const gvk = { group: GROUP, version: 'v1', kind: 'ServiceCIDR' };
  const query = (name: string) => ({ name, in: 'query', schema: { type: 'string', uniqueItems: true } });
  const write = (action: string) => ({
    'x-kubernetes-action': action,
    'x-kubernetes-group-version-kind': gvk,
    parameters: [query('dryRun'), query('fieldManager'), query('fieldValidation')],
    responses: { '200': { description: 'OK' } },
  });
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: 'v1.33.0' },
    paths: {
      [SERVICECIDRS_PATH]: {
        post: write('post'),
        get: {
          'x-kubernetes-action': 'list',
          'x-kubernetes-group-version-kind': gvk,
          responses: { '200': { description: 'OK' } },
        },
      },
      [`${SERVICECIDRS_PATH}/{name}`]: { patch: write('patch'), put: write('put') },
    },
    components: {
      schemas: {
        'io.k8s.api.networking.v1.ServiceCIDR': {
          type: 'object',
          properties: {
            apiVersion: { type: 'string' },
            kind: { type: 'string' },
            metadata: { type: 'object' },
            spec: { type: 'object', properties: { cidrs: { type: 'array', items: { type: 'string' } } } },
            status: { type: 'object' },
          },
          'x-kubernetes-group-version-kind': [gvk],
        },
      },
    },
  };
}

/** The OpenAPI v3 document of the core group, reduced to the Service create kubectl inspects. */
function openApiCoreV1(): unknown {
  const gvk = { group: '', version: 'v1', kind: 'Service' };
  const query = (name: string) => ({ name, in: 'query', schema: { type: 'string', uniqueItems: true } });
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: 'v1.33.0' },
    paths: {
      '/api/v1/namespaces/{namespace}/services': {
        post: {
          'x-kubernetes-action': 'post',
          'x-kubernetes-group-version-kind': gvk,
          parameters: [query('dryRun'), query('fieldManager'), query('fieldValidation')],
          responses: { '201': { description: 'Created' } },
        },
      },
    },
    components: {
      schemas: {
        'io.k8s.api.core.v1.Service': {
          type: 'object',
          properties: {
            apiVersion: { type: 'string' },
            kind: { type: 'string' },
            metadata: { type: 'object' },
            spec: { type: 'object' },
            status: { type: 'object' },
          },
          'x-kubernetes-group-version-kind': [gvk],
        },
      },
    },
  };
}

/** Whether `rbac` lets `verb` on `route` through (see FakeApiServer.rbac). */
function granted(
  rbac: readonly RbacGrant[] | undefined,
  route: Route,
  verb: string,
  query: Record<string, string>,
): boolean {
  if (!rbac) return true;
  const group = route.resource === 'servicecidrs' ? GROUP : '';
  const name = route.name ?? /^metadata\.name==?(.*)$/.exec(query.fieldSelector ?? '')?.[1];
  return rbac.some(
    (rule) =>
      (rule.namespace === undefined || rule.namespace === route.namespace) &&
      rule.apiGroups.includes(group) &&
      rule.resources.includes(route.resource) &&
      rule.verbs.includes(verb) &&
      (!rule.resourceNames || (name !== undefined && rule.resourceNames.includes(name))),
  );
}

/** The verb RBAC would check for this request (and the real server names in a 403). */
function verbOf(method: string, name: string | undefined, watch: boolean): string {
  if (method === 'GET') return watch ? 'watch' : name ? 'get' : 'list';
  if (method === 'POST') return 'create';
  if (method === 'PUT') return 'update';
  return method.toLowerCase();
}

/**
 * The selectors the real server supports for every resource: a fieldSelector on metadata.name and
 * metadata.namespace (= or ==), and label selectors (key, !key, key=value, key!=value, comma-joined).
 * Pods also take spec.nodeName, as the real server's pod field selectors do.
 */
function parseSelectors(
  query: Record<string, string>,
  namespace: string | undefined,
  resource: ResourceName,
): Selector | { error: string } {
  let name: string | undefined;
  let fieldNamespace: string | undefined;
  let nodeName: string | undefined;
  for (const term of (query.fieldSelector ?? '').split(',').filter(Boolean)) {
    const match = /^(metadata\.name|metadata\.namespace|spec\.nodeName)(?:==?)(.*)$/.exec(term);
    if (!match || (match[1] === 'spec.nodeName' && resource !== 'pods')) {
      const field = term.split(/!?=/)[0] ?? term;
      return { error: `"${field}" is not a known field selector: only "metadata.name", "metadata.namespace"` };
    }
    if (match[1] === 'metadata.name') name = match[2] ?? '';
    else if (match[1] === 'spec.nodeName') nodeName = match[2] ?? '';
    else fieldNamespace = match[2] ?? '';
  }
  const labels: LabelRequirement[] = [];
  for (const term of (query.labelSelector ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean)) {
    const match = /^(!?)([A-Za-z0-9./_-]+)(?:\s*(!=|==|=)\s*([A-Za-z0-9._-]*))?$/.exec(term);
    if (!match) return { error: `unable to parse requirement: found '${term}'` };
    const [, not, key = '', op, value] = match;
    if (not) labels.push({ key, op: '!' });
    else if (!op) labels.push({ key, op: 'exists' });
    else labels.push({ key, op: op === '!=' ? '!=' : '=', value: value ?? '' });
  }
  const ns = namespace ?? fieldNamespace;
  return {
    ...(name === undefined ? {} : { name }),
    ...(ns === undefined ? {} : { namespace: ns }),
    ...(nodeName === undefined ? {} : { nodeName }),
    labels,
  };
}

const KNOWN_FIELDS: Record<string, readonly string[]> = {
  '': ['apiVersion', 'kind', 'metadata', 'spec', 'status'],
  metadata: [
    'name',
    'generateName',
    'labels',
    'annotations',
    'finalizers',
    'uid',
    'resourceVersion',
    'creationTimestamp',
    'generation',
    'managedFields',
    'ownerReferences',
    'namespace',
    'deletionTimestamp',
    'deletionGracePeriodSeconds',
    'selfLink',
  ],
  spec: ['cidrs'],
  status: ['conditions'],
};

/** Fields a strict decode would reject, as dotted paths. */
function unknownFields(object: Record<string, unknown>): string[] {
  const unknown: string[] = [];
  for (const [section, known] of Object.entries(KNOWN_FIELDS)) {
    const value = section ? object[section] : object;
    if (typeof value !== 'object' || value === null) continue;
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) unknown.push(section ? `${section}.${key}` : key);
    }
  }
  return unknown;
}

/** The real server's validation of a new ServiceCIDR: a name, and one or two CIDRs, one per family. */
function validateServiceCidr(object: Partial<ServiceCidrObject>): { field: string; message: string }[] {
  const causes: { field: string; message: string }[] = [];
  if (!object.metadata?.name)
    causes.push({ field: 'metadata.name', message: 'Required value: name or generateName is required' });
  const cidrs = object.spec?.cidrs;
  if (!Array.isArray(cidrs) || cidrs.length === 0) {
    causes.push({ field: 'spec.cidrs', message: 'Required value' });
    return causes;
  }
  if (cidrs.length > 2) causes.push({ field: 'spec.cidrs', message: 'Too many: must have at most 2 items' });
  const families = new Set<number>();
  cidrs.forEach((cidr, i) => {
    const family = cidrFamily(cidr);
    if (family === undefined) {
      causes.push({
        field: `spec.cidrs[${i}]`,
        message: `Invalid value: "${cidr}": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)`,
      });
    } else if (families.has(family)) {
      causes.push({
        field: 'spec.cidrs',
        message: `Invalid value: ${JSON.stringify(cidrs)}: may specify no more than one IP for each IP family`,
      });
    } else {
      families.add(family);
    }
  });
  return causes;
}

function cidrFamily(cidr: string): 4 | 6 | undefined {
  const [address, prefix, ...rest] = cidr.split('/');
  if (rest.length > 0 || address === undefined || prefix === undefined || !/^\d{1,3}$/.test(prefix)) return undefined;
  const family = isIP(address);
  if (family === 0 || Number(prefix) > (family === 4 ? 32 : 128)) return undefined;
  return family as 4 | 6;
}

/** Whether `ip` is an allocatable address of `cidr` (the bitmap allocator excludes network and broadcast). */
function inRange(ip: string, cidr: string): boolean {
  const [base = '', prefixText = '0'] = cidr.split('/');
  const family = isIP(ip);
  if (family === 0 || family !== isIP(base)) return false;
  const bits = family === 4 ? 32 : 128;
  const prefix = Number(prefixText);
  const value = toBigInt(ip);
  const network = (toBigInt(base) >> BigInt(bits - prefix)) << BigInt(bits - prefix);
  const last = network + (1n << BigInt(bits - prefix)) - 1n;
  return value > network && value < last;
}

function toBigInt(ip: string): bigint {
  if (isIP(ip) === 4) return ip.split('.').reduce((acc, octet) => (acc << 8n) + BigInt(octet), 0n);
  const [head = '', tail = ''] = ip.split('::');
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const parts = ip.includes('::')
    ? [...headParts, ...Array(8 - headParts.length - tailParts.length).fill('0'), ...tailParts]
    : headParts;
  return parts.reduce((acc, part) => (acc << 16n) + BigInt(Number.parseInt(part || '0', 16)), 0n);
}

function writeEvent(response: ServerResponse, type: string, object: unknown): void {
  response.write(`${JSON.stringify({ type, object })}\n`);
}

function json(response: ServerResponse, code: number, body: unknown): void {
  response.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => resolve(body));
    request.on('error', reject);
  });
}

/** How a kubeconfig authenticates to the test API server (none by default). */
export interface KubeconfigOptions {
  /** A bearer token (the request log's user). */
  readonly token?: string;
  /** An exec credential plugin: client-node runs it, and again when its credential expires. */
  readonly exec?: { readonly command: string; readonly args: readonly string[] };
  /** For an HTTPS server: its CA, and a client certificate to authenticate with. */
  readonly tls?: { readonly ca: string; readonly clientCert?: string; readonly clientKey?: string };
}

/**
 * A kubeconfig that points at `server`, for kubectl and client-node. client-node 1.4 refuses an
 * http:// server unless insecure-skip-tls-verify is set (kubectl does not care).
 */
export function kubeconfigFor(server: string, options: KubeconfigOptions = {}): string {
  const b64 = (pem: string) => Buffer.from(pem).toString('base64');
  const cluster = options.tls
    ? `    certificate-authority-data: ${b64(options.tls.ca)}`
    : '    insecure-skip-tls-verify: true';
  const user: string[] = [];
  if (options.token) user.push(`    token: ${options.token}`);
  if (options.tls?.clientCert && options.tls.clientKey) {
    user.push(`    client-certificate-data: ${b64(options.tls.clientCert)}`);
    user.push(`    client-key-data: ${b64(options.tls.clientKey)}`);
  }
  if (options.exec) {
    user.push(
      '    exec:',
      '      apiVersion: client.authentication.k8s.io/v1',
      `      command: ${JSON.stringify(options.exec.command)}`,
      `      args: ${JSON.stringify(options.exec.args)}`,
      '      interactiveMode: Never',
    );
  }
  return `apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: ${server}
${cluster}
users:
- name: fake
  user:${user.length > 0 ? `\n${user.join('\n')}` : ' {}'}
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
current-context: fake
`;
}
