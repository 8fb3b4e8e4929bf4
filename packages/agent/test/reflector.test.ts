import { afterEach, describe, expect, it } from 'vitest';
import { KubernetesConnection } from '../src/kube-api/connection.js';
import { Reflector, type ReflectorOptions, type ReflectorTimings } from '../src/kube-api/reflector.js';
import { TransportError } from '../src/kube-api/transport.js';
import { createLogger } from '../src/observability/logger.js';
import { FakeTransport, list, status, waitFor } from './kube-transport-fake.js';

/** The generic list-then-watch reflector against a scripted transport: no network, short timings. */

interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly [key: string]: unknown;
}

const TIMINGS: Partial<ReflectorTimings> = {
  backoffInitialMs: 20,
  backoffMaxMs: 200,
  jitter: 0,
  recheckMs: 100,
  watchTimeoutSeconds: 60,
  requestTimeoutMs: 1_000,
};

const node = (name: string, rv: string, labels: Record<string, string> = {}) => ({
  metadata: { name, resourceVersion: rv, labels },
});

const reflectors: Reflector[] = [];
afterEach(async () => {
  await Promise.all(reflectors.splice(0).map((reflector) => reflector.stop()));
});

function make(transport: FakeTransport, options: Partial<ReflectorOptions> = {}) {
  const logs: LogLine[] = [];
  const logger = createLogger('debug', { write: (line: string) => logs.push(JSON.parse(line) as LogLine) });
  let changes = 0;
  const reflector = new Reflector({
    subject: { noun: 'Nodes', permission: 'get, list and watch on nodes' },
    connect: () => ({ kind: 'ready', transport }),
    resolve: async () => ({
      kind: 'served',
      target: { path: '/api/v1/nodes', query: { labelSelector: 'role' }, resource: 'nodes' },
    }),
    logger,
    timings: TIMINGS,
    ...options,
  });
  reflector.subscribe(() => {
    changes += 1;
  });
  reflectors.push(reflector);
  const names = () => [...reflector.objects().keys()].sort();
  return { reflector, logs, names, changes: () => changes };
}

describe('Reflector', () => {
  it('lists, then watches from the list resourceVersion with bookmarks, the selector on both', async () => {
    const transport = new FakeTransport(() => list([node('a', '5')], '10'));
    const { reflector, names } = make(transport);
    await reflector.start(1_000);
    await waitFor('the watch', () => transport.watches.length === 1);
    expect(names()).toEqual(['a']);
    expect(transport.requests[0]).toMatchObject({
      method: 'GET',
      path: '/api/v1/nodes',
      query: { labelSelector: 'role' },
    });
    expect(transport.watchRequests[0]?.query).toEqual({
      labelSelector: 'role',
      watch: 'true',
      resourceVersion: '10',
      allowWatchBookmarks: 'true',
      timeoutSeconds: '60',
    });
    expect(reflector.status()).toMatchObject({ state: 'synced', synced: true, objects: 1, resourceVersion: '10' });
  });

  it('applies events in order; a bookmark moves the resourceVersion; a close re-watches from it, no relist', async () => {
    const transport = new FakeTransport(() => list([node('a', '5')], '10'));
    const { reflector, names, changes } = make(transport);
    await reflector.start(1_000);
    await waitFor('the watch', () => transport.watches.length === 1);
    const before = changes();
    transport.current?.push('ADDED', node('b', '11'));
    transport.current?.push('MODIFIED', node('a', '12'));
    transport.current?.push('DELETED', node('b', '13'));
    transport.current?.push('BOOKMARK', { metadata: { resourceVersion: '20' } });
    await waitFor('the bookmark', () => reflector.status().resourceVersion === '20');
    expect(names()).toEqual(['a']);
    expect(changes() - before).toBe(3);
    transport.current?.end();
    await waitFor('the re-watch', () => transport.watches.length === 2);
    expect(transport.watchRequests[1]?.query?.resourceVersion).toBe('20');
    expect(transport.lists()).toHaveLength(1);
  });

  it('relists after an ERROR event carrying 410 Expired, and after a watch refused with 410', async () => {
    let rv = 10;
    const transport = new FakeTransport(() => {
      rv += 10;
      return list([node('a', '5')], String(rv));
    });
    const { reflector, logs } = make(transport);
    await reflector.start(1_000);
    await waitFor('the watch', () => transport.watches.length === 1);
    transport.current?.push('ERROR', {
      kind: 'Status',
      code: 410,
      reason: 'Expired',
      message: 'too old resource version: 1 (5)',
    });
    await waitFor('the relist', () => transport.lists().length === 2);
    expect(logs.some((line) => line.msg.includes('410 Expired'))).toBe(true);
    transport.watchRefusals.push(status(410, 'Gone', 'gone'));
    transport.current?.end();
    await waitFor('another relist', () => transport.lists().length === 3);
    expect(reflector.status().state).toBe('synced');
  });

  it('an unexpected error in the watch loop shows in the state, is logged, and the reflector restarts', async () => {
    const transport = new FakeTransport(() => list([node('a', '5')], '10'));
    const { reflector, logs } = make(transport);
    await reflector.start(1_000);
    await waitFor('the watch', () => transport.watches.length === 1);
    // Not an API or network failure: something the loop did not foresee (a bug).
    transport.current?.throw(new TypeError("Cannot read properties of undefined (reading 'metadata')"));
    await waitFor('the error state', () => reflector.status().state === 'error');
    expect(reflector.status().lastError).toContain('unexpected error: Cannot read properties of undefined');
    const error = logs.find((line) => line.level === 'error');
    expect(error?.msg).toContain('the watch of Nodes failed unexpectedly');
    expect(error?.msg).toContain('restarting it with a fresh list');
    // It does not stay down: a fresh list, then a watch, and the state says so.
    await waitFor('the restart', () => transport.lists().length === 2 && transport.watches.length === 2);
    await waitFor('synced again', () => reflector.status().state === 'synced');
    // The cache was kept throughout (fail-static).
    expect(reflector.status().objects).toBe(1);
  });

  it('an unexpected error in an event handler restarts the reflector the same way', async () => {
    const transport = new FakeTransport(() => list([], '10'));
    let thrown = false;
    const { reflector } = make(transport, {
      onEvent: () => {
        if (!thrown) {
          thrown = true;
          throw new RangeError('handler bug');
        }
      },
    });
    await reflector.start(1_000);
    await waitFor('the watch', () => transport.watches.length === 1);
    transport.current?.push('ADDED', node('a', '11'));
    await waitFor('the error state', () => reflector.status().state === 'error');
    expect(reflector.status().lastError).toContain('handler bug');
    await waitFor('synced again', () => reflector.status().state === 'synced' && transport.lists().length === 2);
  });

  it('a line that is not a watch event is a failure, not skipped: the reflector relists', async () => {
    const transport = new FakeTransport(() => list([], '10'));
    const { reflector } = make(transport);
    await reflector.start(1_000);
    await waitFor('the watch', () => transport.watches.length === 1);
    transport.current?.throw(new TransportError('malformed', 'a watch line is not JSON: {"type":"ADD'));
    await waitFor('unreachable', () => reflector.status().state === 'unreachable');
    expect(reflector.status().lastError).toContain('not JSON');
    await waitFor('the relist', () => transport.lists().length === 2);
  });

  it('replaces a watch that has been silent past its timeout (the watchdog)', async () => {
    const transport = new FakeTransport(() => list([], '10'));
    const { reflector, logs } = make(transport, { timings: { ...TIMINGS, watchTimeoutSeconds: 0, watchGraceMs: 100 } });
    await reflector.start(1_000);
    await waitFor('the watch', () => transport.watches.length === 1);
    await waitFor('a second watch', () => transport.watches.length === 2, 1_000);
    expect(transport.watches[0]?.aborted).toBe(true);
    expect(
      logs.some((line) => line.level === 'warn' && line.msg.includes('has been silent for 100ms; replacing it')),
    ).toBe(true);
    expect(transport.lists()).toHaveLength(1);
  });

  it('abandons a watch whose headers never come', async () => {
    const transport = new FakeTransport(() => list([], '10'));
    transport.hangWatches = true;
    const { reflector } = make(transport, { timings: { ...TIMINGS, requestTimeoutMs: 100 } });
    await reflector.start(1_000);
    await waitFor('the timeout', () =>
      (reflector.status().lastError ?? '').includes('did not answer the watch within 100 ms'),
    );
    expect(reflector.status().state).toBe('unreachable');
    expect(transport.watchRequests.length).toBeGreaterThanOrEqual(1);
  });

  it('backs off exponentially with jitter (up only) while the list fails, then recovers', async () => {
    let failing = true;
    const at: number[] = [];
    const transport = new FakeTransport(() => {
      at.push(performance.now());
      return failing ? status(500, 'InternalError', 'etcdserver: request timed out') : list([node('a', '1')], '10');
    });
    const { reflector, logs } = make(transport, {
      timings: { ...TIMINGS, backoffInitialMs: 40, backoffMaxMs: 1_000, jitter: 0.5 },
      random: () => 1,
    });
    await reflector.start(1_000);
    expect(reflector.status()).toMatchObject({ state: 'unreachable', synced: false });
    await waitFor('four attempts', () => at.length >= 4, 3_000);
    const gaps = at.slice(1).map((t, i) => t - (at[i] as number));
    // 40, 80, 160 ms, each plus half of itself: 60, 120, 240.
    expect(gaps[0]).toBeGreaterThanOrEqual(58);
    expect(gaps[1]).toBeGreaterThanOrEqual(118);
    expect(gaps[2]).toBeGreaterThanOrEqual(238);
    expect(
      logs.filter((line) => line.level === 'warn' && line.msg.includes('cannot reach')).length,
    ).toBeLessThanOrEqual(2);
    failing = false;
    await waitFor('recovery', () => reflector.status().state === 'synced', 3_000);
  });

  it('fail-static: once synced, failing lists and watches never empty the store', async () => {
    let failing = false;
    const transport = new FakeTransport(() =>
      failing ? status(503, 'ServiceUnavailable', 'unavailable') : list([node('a', '1'), node('b', '2')], '10'),
    );
    const { reflector } = make(transport);
    await reflector.start(1_000);
    await waitFor('the watch', () => transport.watches.length === 1);
    failing = true;
    transport.watchRefusals.push(
      status(403, 'Forbidden', 'nodes is forbidden'),
      status(503, 'ServiceUnavailable', 'x'),
    );
    transport.current?.end();
    await waitFor('a failed relist', () => transport.lists().length >= 2 && reflector.status().state === 'unreachable');
    expect(reflector.status()).toMatchObject({ synced: true, objects: 2 });
  });

  it('403 before the first list: forbidden, with the message, and retried with backoff', async () => {
    const transport = new FakeTransport(() =>
      status(
        403,
        'Forbidden',
        'nodes is forbidden: User "x" cannot list resource "nodes" in API group "" at the cluster scope',
      ),
    );
    const { reflector, logs } = make(transport);
    await reflector.start(1_000);
    expect(reflector.status()).toMatchObject({ state: 'forbidden', synced: false });
    const warning = logs.find((line) => line.level === 'warn')?.msg;
    expect(warning).toContain('forbidden to read Nodes');
    expect(warning).toContain('cannot list resource "nodes"');
    expect(warning).toContain('needs get, list and watch on nodes');
    await waitFor('a retry', () => transport.lists().length >= 2);
  });

  it('an API that is not served is looked for again now and then, and found', async () => {
    let served = false;
    const transport = new FakeTransport(() => list([node('a', '1')], '10'));
    const { reflector } = make(transport, {
      resolve: async () =>
        served
          ? { kind: 'served', target: { path: '/api/v1/nodes', resource: 'nodes' } }
          : { kind: 'not-served', detail: 'the Node API is not served here' },
    });
    await reflector.start(1_000);
    expect(reflector.status()).toMatchObject({
      state: 'not-found',
      lastError: 'HTTP 404: the Node API is not served here',
    });
    served = true;
    await waitFor('found', () => reflector.status().state === 'synced', 1_000);
  });

  it('no configuration: not-configured, looked for again', async () => {
    let connects = 0;
    const transport = new FakeTransport(() => list([], '1'));
    const { reflector } = make(transport, {
      connect: () => (++connects < 3 ? { kind: 'none', message: 'not in a pod' } : { kind: 'ready', transport }),
    });
    await reflector.start(1_000);
    expect(reflector.status().state).toBe('not-configured');
    await waitFor('configured', () => reflector.status().state === 'synced', 1_000);
  });

  it('a network failure is unreachable, not unexpected', async () => {
    const transport = new FakeTransport(() => {
      throw new TransportError('network', 'connect ECONNREFUSED 127.0.0.1:6443');
    });
    const { reflector } = make(transport);
    await reflector.start(1_000);
    expect(reflector.status()).toMatchObject({
      state: 'unreachable',
      lastError: 'connect ECONNREFUSED 127.0.0.1:6443',
    });
  });

  it('stop() ends promptly during a watch, a hanging list and a backoff, and keeps the store', async () => {
    const transport = new FakeTransport(() => list([node('a', '1')], '10'));
    const { reflector } = make(transport);
    await reflector.start(1_000);
    await waitFor('the watch', () => transport.watches.length === 1);
    let started = performance.now();
    await reflector.stop();
    expect(performance.now() - started).toBeLessThan(200);
    expect(transport.current?.aborted).toBe(true);
    expect(reflector.status()).toMatchObject({ state: 'stopped', objects: 1 });

    const hanging = new FakeTransport(() => new Promise(() => {}));
    const { reflector: second } = make(hanging);
    void second.start();
    await waitFor('the list', () => hanging.requests.length === 1);
    started = performance.now();
    await second.stop();
    expect(performance.now() - started).toBeLessThan(200);

    const failing = new FakeTransport(() => status(500, 'InternalError', 'x'));
    const { reflector: third } = make(failing, {
      timings: { ...TIMINGS, backoffInitialMs: 10_000, backoffMaxMs: 10_000 },
    });
    await third.start(1_000);
    started = performance.now();
    await third.stop();
    expect(performance.now() - started).toBeLessThan(200);
  });

  it('the shared connection reports a missing explicit kubeconfig as invalid, never falling back', () => {
    const connection = new KubernetesConnection('/nonexistent/kubeconfig', createLogger('silent'));
    const result = connection.connect();
    expect(result.kind).toBe('invalid');
    expect(result.kind === 'invalid' && result.message).toMatch(
      /KUBECONFIG=".*kubeconfig" cannot be used: the file does not exist/,
    );
  });
});
