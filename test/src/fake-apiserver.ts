import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, isIP } from 'node:net';

/**
 * A test Kubernetes API server for ServiceCIDR objects, speaking the real conventions over HTTP:
 * discovery documents (so kubectl works against it), list with a resourceVersion, watch as a
 * stream of JSON lines from a resourceVersion, bookmarks, 410 Expired after compaction, Status
 * bodies for errors, finalizers holding a deleted object as terminating. Tests drive it through
 * methods (add, update, markTerminating, remove, compact, dropWatches, failWith).
 */

export const SERVICECIDRS_PATH = '/apis/networking.k8s.io/v1/servicecidrs';
const GROUP = 'networking.k8s.io';
const VERSION = 'v1';
const API_VERSION = `${GROUP}/${VERSION}`;

export interface ServiceCidrObject {
  apiVersion: string;
  kind: 'ServiceCIDR';
  metadata: {
    name: string;
    uid: string;
    resourceVersion: string;
    creationTimestamp: string;
    generation: number;
    deletionTimestamp?: string;
    deletionGracePeriodSeconds?: number;
    finalizers?: string[];
    labels?: Record<string, string>;
  };
  spec: { cidrs: string[] };
  status: Record<string, unknown>;
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
interface HistoryEvent {
  readonly rv: number;
  readonly type: EventType;
  readonly object: ServiceCidrObject;
}

interface Watcher {
  readonly response: ServerResponse;
  /** The last resourceVersion this watch has been told about (event or bookmark). */
  rv: number;
  readonly bookmarks: boolean;
  /** A fieldSelector on metadata.name: only this object's events. */
  readonly name?: string;
  readonly timer?: NodeJS.Timeout;
  readonly bookmarkTimer?: NodeJS.Timeout;
}

/** An injected failure: every matching request gets this HTTP status with a Status body. */
export interface Failure {
  readonly code: 403 | 404 | 410 | 429 | 500 | 503;
  /** Only requests whose path starts with this fail (default: every ServiceCIDR request). */
  readonly pathPrefix?: string;
  /** Fail only watch requests, or only lists. */
  readonly only?: 'watch' | 'list';
}

export interface RequestRecord {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly status: number;
}

export const SERVICE_CIDR_FINALIZER = 'networking.k8s.io/service-cidr-finalizer';

/** A request as the hook given to `onRequest` sees it, before it is answered. */
export interface IncomingRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly watch: boolean;
}

export class FakeApiServer {
  readonly #server: Server;
  readonly #objects = new Map<string, ServiceCidrObject>();
  readonly #history: HistoryEvent[] = [];
  readonly #watchers = new Set<Watcher>();
  readonly requests: RequestRecord[] = [];
  #rv = 100;
  /** Watches asking for a resourceVersion at or below this get 410 Expired. */
  #compactedThrough = 0;
  #failure: Failure | undefined;
  #delayMs = 0;
  #uid = 0;
  #onRequest: ((request: IncomingRequest) => void) | undefined;
  /** How often open watches get a BOOKMARK (when they asked for bookmarks). */
  bookmarkIntervalMs = 1_000;

  constructor() {
    this.#server = createServer((request, response) => {
      this.#handle(request, response).catch((error: unknown) => {
        if (!response.headersSent) this.#status(response, 500, 'InternalError', String(error));
        else response.end();
      });
    });
  }

  /** Listens on TCP (loopback) or on a Unix socket path (reachable from other network namespaces). */
  async listen(target: { port?: number; host?: string } | { path: string } = {}): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      if ('path' in target) this.#server.listen(target.path, resolve);
      else this.#server.listen(target.port ?? 0, target.host ?? '127.0.0.1', resolve);
    });
    const address = this.#server.address();
    return typeof address === 'string' ? address : `http://127.0.0.1:${(address as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.dropWatches();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  get resourceVersion(): string {
    return String(this.#rv);
  }

  get openWatches(): number {
    return this.#watchers.size;
  }

  list(): ServiceCidrObject[] {
    return [...this.#objects.values()];
  }

  // ---- test controls -------------------------------------------------------------------------

  /** Creates a ServiceCIDR, with the finalizer the real allocator adds. */
  add(
    name: string,
    cidrs: string[],
    options: { finalizer?: boolean; labels?: Record<string, string> } = {},
  ): ServiceCidrObject {
    if (this.#objects.has(name)) throw new Error(`servicecidr ${name} exists`);
    this.#rv += 1;
    this.#uid += 1;
    const object: ServiceCidrObject = {
      apiVersion: API_VERSION,
      kind: 'ServiceCIDR',
      metadata: {
        name,
        uid: `00000000-0000-4000-8000-${String(this.#uid).padStart(12, '0')}`,
        resourceVersion: String(this.#rv),
        creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        generation: 1,
        ...(options.labels ? { labels: { ...options.labels } } : {}),
        ...(options.finalizer === false ? {} : { finalizers: [SERVICE_CIDR_FINALIZER] }),
      },
      spec: { cidrs: [...cidrs] },
      status: {},
    };
    this.#record('ADDED', object);
    return object;
  }

  update(name: string, change: (object: ServiceCidrObject) => void): ServiceCidrObject {
    const object = this.#mustGet(name);
    const next = structuredClone(object);
    change(next);
    this.#rv += 1;
    next.metadata.resourceVersion = String(this.#rv);
    // As the real server: the generation counts changes of the spec (and the start of deletion).
    const deleting = !object.metadata.deletionTimestamp && next.metadata.deletionTimestamp;
    if (deleting || JSON.stringify(next.spec) !== JSON.stringify(object.spec)) next.metadata.generation += 1;
    this.#record('MODIFIED', next);
    return next;
  }

  /** What `kubectl delete` does to an object with a finalizer: it stays, terminating. */
  markTerminating(name: string): ServiceCidrObject {
    return this.update(name, (object) => {
      object.metadata.deletionTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      object.metadata.deletionGracePeriodSeconds = 0;
    });
  }

  /** The object is gone for good: its finalizer removed (as the allocator does once it is unused), or it had none. */
  remove(name: string): void {
    const object = structuredClone(this.#mustGet(name));
    this.#rv += 1;
    object.metadata.resourceVersion = String(this.#rv);
    delete object.metadata.finalizers;
    this.#record('DELETED', object);
  }

  /**
   * Stands for writes to other resources: the cluster-wide resourceVersion moves on without a
   * ServiceCIDR event (only a BOOKMARK can tell a watcher). Returns the new resourceVersion.
   */
  advanceResourceVersion(by = 1): string {
    this.#rv += by;
    return this.resourceVersion;
  }

  /** Forgets history: watches from any resourceVersion before now get 410 Expired. */
  compact(): void {
    this.#compactedThrough = this.#rv;
    this.#history.length = 0;
  }

  /** Ends every open watch, as an API server restart or a load balancer timeout would. */
  dropWatches(): void {
    for (const watcher of this.#watchers) this.#endWatch(watcher);
  }

  /** Every matching request fails with `failure.code` until cleared with undefined. */
  failWith(failure: Failure | undefined): void {
    this.#failure = failure;
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

  // ---- HTTP ---------------------------------------------------------------------------------

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://fake');
    const query = Object.fromEntries(url.searchParams);
    const path = url.pathname.replace(/\/$/, '');
    const method = request.method ?? 'GET';
    const finish = response.end.bind(response);
    response.end = ((...args: Parameters<ServerResponse['end']>) => {
      this.requests.push({ method, path, query, status: response.statusCode });
      return finish(...args);
    }) as ServerResponse['end'];
    const isWatch = query.watch === 'true' || query.watch === '1';
    this.#onRequest?.({ method, path, query, watch: isWatch });
    if (this.#delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.#delayMs));

    const discovery = this.#discovery(path);
    if (discovery) return json(response, 200, discovery);

    if (path !== SERVICECIDRS_PATH && !path.startsWith(`${SERVICECIDRS_PATH}/`)) {
      return this.#status(response, 404, 'NotFound', 'the server could not find the requested resource', {});
    }
    const name = decodeURIComponent(path.slice(SERVICECIDRS_PATH.length + 1));
    const failure = this.#failure;
    if (
      failure &&
      path.startsWith(failure.pathPrefix ?? SERVICECIDRS_PATH) &&
      (!failure.only || (failure.only === 'watch') === isWatch)
    ) {
      return this.#injected(response, failure.code, verbOf(method, name, isWatch), name);
    }
    const body = await readBody(request);
    switch (method) {
      case 'GET': {
        if (name) {
          const object = this.#objects.get(name);
          return object ? json(response, 200, object) : this.#notFound(response, name);
        }
        const selector = parseFieldSelector(query.fieldSelector);
        if ('error' in selector) return this.#status(response, 400, 'BadRequest', selector.error, {});
        return isWatch ? this.#watch(response, query, selector.name) : this.#list(response, query, selector.name);
      }
      case 'POST':
        return this.#create(response, query, body, name);
      case 'DELETE': {
        if (!name) {
          return this.#status(
            response,
            405,
            'MethodNotAllowed',
            'the server does not allow this method on the requested resource',
            {},
          );
        }
        const object = this.#objects.get(name);
        if (!object) return this.#notFound(response, name);
        // An object already being deleted is answered as it is: a second delete changes nothing.
        if (object.metadata.deletionTimestamp) return json(response, 200, object);
        if (object.metadata.finalizers?.length) return json(response, 200, this.markTerminating(name));
        this.remove(name);
        return json(response, 200, {
          ...object,
          metadata: { ...object.metadata, resourceVersion: this.resourceVersion },
        });
      }
      default:
        return this.#status(
          response,
          405,
          'MethodNotAllowed',
          'the server does not allow this method on the requested resource',
          {},
        );
    }
  }

  /** POST, validated as the real API server does (with fieldValidation=Strict, as kubectl sends). */
  #create(response: ServerResponse, query: Record<string, string>, body: string, pathName: string): void {
    if (pathName) {
      this.#status(
        response,
        405,
        'MethodNotAllowed',
        'the server does not allow this method on the requested resource',
        {},
      );
      return;
    }
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
    if (this.#objects.has(objectName)) {
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

  #list(response: ServerResponse, query: Record<string, string>, onlyName: string | undefined): void {
    const rv = Number(query.resourceVersion ?? '0');
    // An exact list at a compacted version fails as the real server does.
    if (query.resourceVersionMatch === 'Exact' && rv > 0 && rv < this.#compactedThrough) {
      this.#status(response, 410, 'Expired', `too old resource version: ${rv} (${this.#compactedThrough})`);
      return;
    }
    json(response, 200, {
      apiVersion: API_VERSION,
      kind: 'ServiceCIDRList',
      metadata: { resourceVersion: this.resourceVersion },
      items: [...this.#objects.values()]
        .filter((object) => onlyName === undefined || object.metadata.name === onlyName)
        .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)),
    });
  }

  #watch(response: ServerResponse, query: Record<string, string>, onlyName: string | undefined): void {
    const from = query.resourceVersion;
    const matches = (object: ServiceCidrObject) => onlyName === undefined || object.metadata.name === onlyName;
    response.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    response.flushHeaders();
    // Without a resourceVersion (or "0") the real server starts with synthetic ADDED events.
    if (from === undefined || from === '' || from === '0') {
      for (const object of this.#objects.values()) if (matches(object)) writeEvent(response, 'ADDED', object);
    } else {
      const rv = Number(from);
      if (!Number.isInteger(rv) || rv < this.#compactedThrough) {
        // The real server answers 200 and then one ERROR event carrying a 410 Expired Status.
        writeEvent(response, 'ERROR', {
          ...statusBody(410, 'Expired', `too old resource version: ${from} (${this.#compactedThrough})`),
          details: undefined,
        });
        response.end();
        return;
      }
      for (const event of this.#history) {
        if (event.rv > rv && matches(event.object)) writeEvent(response, event.type, event.object);
      }
    }
    const timeoutSeconds = Number(query.timeoutSeconds ?? '0');
    const bookmarks = query.allowWatchBookmarks === 'true';
    const watcher: Watcher = {
      response,
      rv: this.#rv,
      bookmarks,
      ...(onlyName === undefined ? {} : { name: onlyName }),
      ...(timeoutSeconds > 0 ? { timer: setTimeout(() => this.#endWatch(watcher), timeoutSeconds * 1000) } : {}),
      ...(bookmarks ? { bookmarkTimer: setInterval(() => this.#bookmark(watcher), this.bookmarkIntervalMs) } : {}),
    };
    this.#watchers.add(watcher);
    response.on('close', () => this.#endWatch(watcher));
  }

  /** Sends a BOOKMARK now to every watch that asked for bookmarks (a test need not wait for the timer). */
  sendBookmarks(): void {
    for (const watcher of this.#watchers) if (watcher.bookmarks) this.#bookmark(watcher);
  }

  #bookmark(watcher: Watcher): void {
    watcher.rv = this.#rv;
    writeEvent(watcher.response, 'BOOKMARK', {
      apiVersion: API_VERSION,
      kind: 'ServiceCIDR',
      metadata: { resourceVersion: this.resourceVersion, creationTimestamp: null },
      spec: {},
      status: {},
    });
  }

  #endWatch(watcher: Watcher): void {
    if (!this.#watchers.delete(watcher)) return;
    clearTimeout(watcher.timer);
    clearInterval(watcher.bookmarkTimer);
    watcher.response.end();
  }

  #record(type: EventType, object: ServiceCidrObject): void {
    if (type === 'DELETED') this.#objects.delete(object.metadata.name);
    else this.#objects.set(object.metadata.name, object);
    this.#history.push({ rv: this.#rv, type, object });
    for (const watcher of this.#watchers) {
      if (watcher.name !== undefined && watcher.name !== object.metadata.name) continue;
      watcher.rv = this.#rv;
      writeEvent(watcher.response, type, object);
    }
  }

  #mustGet(name: string): ServiceCidrObject {
    const object = this.#objects.get(name);
    if (!object) throw new Error(`no servicecidr ${name}`);
    return object;
  }

  #injected(response: ServerResponse, code: Failure['code'], verb: string, name: string): void {
    const subject = name ? `servicecidrs.${GROUP} "${name}"` : `servicecidrs.${GROUP}`;
    const resource = { ...(name ? { name } : {}), group: GROUP, kind: 'servicecidrs' };
    const reasons: Record<Failure['code'], [string, string, Record<string, unknown>]> = {
      403: [
        'Forbidden',
        `${subject} is forbidden: User "system:serviceaccount:route-controller:route-controller" cannot ${verb} resource "servicecidrs" in API group "${GROUP}" at the cluster scope`,
        resource,
      ],
      404: ['NotFound', 'the server could not find the requested resource', {}],
      410: ['Expired', 'too old resource version', {}],
      429: ['TooManyRequests', 'too many requests, please try again later', { retryAfterSeconds: 1 }],
      500: [
        'InternalError',
        'Internal error occurred: etcdserver: request timed out',
        { causes: [{ message: 'etcdserver: request timed out' }] },
      ],
      503: ['ServiceUnavailable', 'the server is currently unable to handle the request', {}],
    };
    const [reason, message, details] = reasons[code];
    this.#status(response, code, reason, message, details);
  }

  #notFound(response: ServerResponse, name: string): void {
    this.#status(response, 404, 'NotFound', `servicecidrs.${GROUP} "${name}" not found`, {
      name,
      group: GROUP,
      kind: 'servicecidrs',
    });
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
    if (path === '/apis') {
      const version = { groupVersion: API_VERSION, version: VERSION };
      return {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: [{ name: GROUP, versions: [version], preferredVersion: version }],
      };
    }
    if (path === `/apis/${GROUP}/${VERSION}`) {
      return {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: API_VERSION,
        resources: [
          {
            name: 'servicecidrs',
            singularName: 'servicecidr',
            namespaced: false,
            kind: 'ServiceCIDR',
            verbs: ['create', 'delete', 'get', 'list', 'watch'],
            storageVersionHash: 'fake',
          },
        ],
      };
    }
    if (path === '/api/v1') return { kind: 'APIResourceList', groupVersion: 'v1', resources: [] };
    // OpenAPI v3, just enough for kubectl to see that the server validates fields itself
    // (it then sends fieldValidation=Strict instead of validating client-side).
    if (path === '/openapi/v3') {
      return {
        paths: {
          [`apis/${GROUP}/${VERSION}`]: { serverRelativeURL: `/openapi/v3/apis/${GROUP}/${VERSION}?hash=FAKE` },
        },
      };
    }
    if (path === `/openapi/v3/apis/${GROUP}/${VERSION}`) return openApiV3();
    if (path === '/version') return { major: '1', minor: '33', gitVersion: 'v1.33.0-fake', platform: 'linux/amd64' };
    return undefined;
  }
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
  const gvk = { group: GROUP, version: VERSION, kind: 'ServiceCIDR' };
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

/** The verb RBAC would check for this request (and the real server names in a 403). */
function verbOf(method: string, name: string, watch: boolean): string {
  if (method === 'GET') return watch ? 'watch' : name ? 'get' : 'list';
  if (method === 'POST') return 'create';
  if (method === 'PUT') return 'update';
  return method.toLowerCase();
}

/** The field selectors the real server supports for every resource: metadata.name (= or ==). */
function parseFieldSelector(selector: string | undefined): { name?: string } | { error: string } {
  if (!selector) return {};
  const match = /^metadata\.name(?:==?)(.*)$/.exec(selector);
  if (!match) {
    const field = selector.split(/!?=/)[0] ?? selector;
    return { error: `"${field}" is not a known field selector: only "metadata.name", "metadata.namespace"` };
  }
  return { name: match[1] ?? '' };
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

/**
 * A kubeconfig that points at `server` (plain HTTP, no auth), for kubectl and client-node.
 * client-node 1.4 refuses an http:// server unless insecure-skip-tls-verify is set (kubectl does not care).
 */
export function kubeconfigFor(server: string): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: ${server}
    insecure-skip-tls-verify: true
users:
- name: fake
  user: {}
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
current-context: fake
`;
}
