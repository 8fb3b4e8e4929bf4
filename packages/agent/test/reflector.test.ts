import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { KubernetesConnection } from '../src/kube-api/connection.js';
import { Reflector, type ReflectorOptions, type ReflectorTimings } from '../src/kube-api/reflector.js';
import { TransportError } from '../src/kube-api/transport.js';
import { createLogger } from '../src/observability/logger.js';
import { FakeTransport, list, resources, settle, status, until } from './kube-transport-fake.js';

/**
 * The list-then-watch reflector against a scripted transport, on vitest's fake timers: every wait
 * (backoff, recheck, watch timeout, request timeout) is fake time, injected as the reflector's
 * clock, so the timings are asserted exactly and nothing depends on how busy the machine is.
 */

interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly [key: string]: unknown;
}

/** No jitter (random() = 0): each wait is exactly the backoff's step. */
const TIMINGS: Partial<ReflectorTimings> = { jitter: 0 };

const node = (name: string, rv: string) => ({ metadata: { name, resourceVersion: rv } });
const expired = { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 1 (5)' };
const tooLarge = {
  kind: 'Status',
  code: 504,
  reason: 'Timeout',
  message: 'Too large resource version: 20, current: 12',
  details: { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }] },
};

const reflectors: Reflector[] = [];
beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(async () => {
  await Promise.all(reflectors.splice(0).map((reflector) => reflector.stop()));
  vi.useRealTimers();
});

function make(transport: FakeTransport, options: Partial<ReflectorOptions> = {}) {
  const logs: LogLine[] = [];
  const logger = createLogger('debug', { write: (line: string) => logs.push(JSON.parse(line) as LogLine) });
  let changes = 0;
  const reflector = new Reflector({
    subject: { noun: 'ServiceCIDRs', permission: 'get, list and watch on servicecidrs' },
    connect: () => ({ kind: 'ready', transport }),
    resolve: async () => ({
      kind: 'served',
      target: { path: '/apis/networking.k8s.io/v1/servicecidrs', resource: 'servicecidrs' },
    }),
    logger,
    timings: TIMINGS,
    random: () => 0,
    now: () => Date.now(),
    ...options,
  });
  reflector.subscribe(() => {
    changes += 1;
  });
  reflectors.push(reflector);
  const names = () => [...reflector.objects().keys()].sort();
  /** ms of fake time at each list and each watch request. */
  const at: { what: 'list' | 'watch'; ms: number; resourceVersion: string | undefined }[] = [];
  const started = Date.now();
  const answer = transport.answer;
  transport.answer = (request) => {
    at.push({ what: 'list', ms: Date.now() - started, resourceVersion: request.query?.resourceVersion });
    return answer(request);
  };
  const watch = transport.watch.bind(transport);
  transport.watch = (request) => {
    at.push({ what: 'watch', ms: Date.now() - started, resourceVersion: request.query?.resourceVersion });
    return watch(request);
  };
  /** Fake ms since make(), the scale of `at`. */
  const since = () => Date.now() - started;
  return { reflector, logs, names, changes: () => changes, at, since };
}

/** Starts the reflector and waits (in fake time) for its first watch. */
async function watching(transport: FakeTransport, reflector: Reflector, count = 1): Promise<void> {
  reflector.start();
  await until('the watch', () => transport.watches.length === count);
}

describe('Reflector: client-go list and watch conventions', () => {
  it('lists first from the watch cache (resourceVersion=0), then watches from the list with bookmarks', async () => {
    const transport = new FakeTransport(() => list([node('a', '5')], '10'));
    const { reflector, names } = make(transport);
    await watching(transport, reflector);
    expect(names()).toEqual(['a']);
    expect(transport.requests[0]).toMatchObject({
      method: 'GET',
      path: '/apis/networking.k8s.io/v1/servicecidrs',
      query: { resourceVersion: '0' },
    });
    expect(transport.watchRequests[0]?.query).toEqual({
      watch: 'true',
      resourceVersion: '10',
      allowWatchBookmarks: 'true',
      timeoutSeconds: '300',
    });
    expect(reflector.status()).toMatchObject({ state: 'synced', synced: true, objects: 1, resourceVersion: '10' });
  });

  it('draws each watch timeout from [300, 600) seconds, so watches broken together do not re-watch in step', async () => {
    for (const [draw, seconds] of [
      [0, '300'],
      [0.5, '450'],
      [0.9999, '599'],
    ] as const) {
      const transport = new FakeTransport(() => list([], '10'));
      const { reflector } = make(transport, { random: () => draw });
      await watching(transport, reflector);
      expect(transport.watchRequests[0]?.query?.timeoutSeconds).toBe(seconds);
    }
  });

  it('applies events; a bookmark moves the resourceVersion; a watch ending at its timeout is resumed at once, no relist', async () => {
    const transport = new FakeTransport(() => list([node('a', '5')], '10'));
    const { reflector, names, changes, at, since } = make(transport);
    await watching(transport, reflector);
    const before = changes();
    transport.current?.push('ADDED', node('b', '11'));
    transport.current?.push('MODIFIED', node('a', '12'));
    transport.current?.push('DELETED', node('b', '13'));
    transport.current?.push('BOOKMARK', { metadata: { resourceVersion: '20' } });
    await until('the bookmark', () => reflector.status().resourceVersion === '20');
    expect(names()).toEqual(['a']);
    expect(changes() - before).toBe(3);
    await vi.advanceTimersByTimeAsync(300_000);
    const endedAt = since();
    transport.current?.end();
    await until('the re-watch', () => transport.watches.length === 2);
    expect(transport.watchRequests[1]?.query?.resourceVersion).toBe('20');
    expect(at.at(-1)?.ms).toBe(endedAt); // no wait at all
    expect(transport.lists()).toHaveLength(1);
  });

  it('a watch that ends early (after events, within a minute) is resumed after the backoff, without a relist', async () => {
    const transport = new FakeTransport(() => list([], '10'));
    const { reflector, at } = make(transport);
    await watching(transport, reflector);
    await vi.advanceTimersByTimeAsync(5_000);
    transport.current?.push('ADDED', node('a', '11'));
    transport.current?.end();
    const ended = Date.now();
    await until('the re-watch', () => transport.watches.length === 2);
    expect(Date.now() - ended).toBe(800);
    expect(at.filter((a) => a.what === 'list')).toHaveLength(1);
    expect(transport.watchRequests[1]?.query?.resourceVersion).toBe('11');
  });

  it('every watch answered 410: one relist (from the last resourceVersion, never etcd) per backoff step, <= 24 requests a minute', async () => {
    const transport = new FakeTransport(() => list([node('a', '5')], '10'));
    const { reflector, at, logs } = make(transport);
    reflector.start();
    // Every watch: accepted, then one ERROR event carrying 410 Expired and the end, as the real server answers.
    let answered = 0;
    const stopAt = Date.now() + 60_000;
    while (Date.now() < stopAt) {
      for (const watch of transport.watches.slice(answered)) {
        watch.push('ERROR', expired);
        watch.end();
      }
      answered = transport.watches.length;
      await vi.advanceTimersByTimeAsync(10);
    }
    const lists = at.filter((a) => a.what === 'list');
    const watches = at.filter((a) => a.what === 'watch');
    expect(lists.length + watches.length).toBeLessThanOrEqual(24);
    // The waits between lists follow the backoff: 0.8, 1.6, 3.2, 6.4, 12.8, 25.6 s (give or take a tick).
    const gaps = lists.slice(1).map((a, i) => a.ms - (lists[i] as { ms: number }).ms);
    expect(gaps.slice(0, 6).map((gap) => Math.round(gap / 100) * 100)).toEqual([
      800, 1_600, 3_200, 6_400, 12_800, 25_600,
    ]);
    expect(lists.slice(1).every((a) => a.resourceVersion === '10')).toBe(true);
    expect(reflector.status()).toMatchObject({ synced: true, objects: 1 });
    expect(logs.filter((line) => line.msg === 'watch expired, relisting').length).toBe(watches.length);
  });

  it('watches accepted and closed at once: relists through the backoff, said once, <= 24 requests a minute', async () => {
    const transport = new FakeTransport(() => list([node('a', '5')], '10'));
    const { reflector, at, logs } = make(transport);
    reflector.start();
    let closed = 0;
    const stopAt = Date.now() + 60_000;
    while (Date.now() < stopAt) {
      for (const watch of transport.watches.slice(closed)) watch.end();
      closed = transport.watches.length;
      await vi.advanceTimersByTimeAsync(10);
    }
    expect(at.length).toBeLessThanOrEqual(24);
    expect(at.filter((a) => a.what === 'list').length).toBeGreaterThanOrEqual(6);
    const warnings = logs.filter((line) => line.level === 'warn' && line.msg === 'api unreachable');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ err: 'the watch was closed at once, without an event', keeping: 1 });
    expect(reflector.status().objects).toBe(1);
  });

  it('the backoff resets only after 2 minutes without a failure, not on every 200', async () => {
    let failing = true;
    const transport = new FakeTransport(() =>
      failing ? status(500, 'InternalError', 'etcdserver: request timed out') : list([], '10'),
    );
    const { reflector, at } = make(transport);
    reflector.start();
    await until('three failed lists', () => at.length === 3); // waits 0.8, 1.6
    failing = false;
    await until('the watch', () => transport.watches.length === 1); // after 3.2
    // Healthy for a minute, then the watch fails: the backoff carries on from where it was.
    await vi.advanceTimersByTimeAsync(60_000);
    failing = true;
    transport.current?.throw(new TransportError('network', 'read ECONNRESET'));
    const failedAt = Date.now();
    await until('a re-watch', () => transport.watchRequests.length === 2);
    expect(Date.now() - failedAt).toBe(6_400);
    // Healthy for more than 2 minutes: the next failure starts again from 0.8 s.
    await vi.advanceTimersByTimeAsync(121_000);
    transport.current?.throw(new TransportError('network', 'read ECONNRESET'));
    const again = Date.now();
    await until('another re-watch', () => transport.watchRequests.length === 3);
    expect(Date.now() - again).toBe(800);
  });

  it('a 410 on the list relists at once from etcd (resourceVersion ""), then from the cache again', async () => {
    const answers = [list([], '10'), status(410, 'Expired', 'too old'), list([], '30'), list([], '40')];
    const transport = new FakeTransport(() => answers.shift() ?? list([], '50'));
    const { reflector, at } = make(transport);
    await watching(transport, reflector);
    transport.current?.push('ERROR', expired);
    transport.current?.end();
    await until('the relists', () => transport.watches.length === 2);
    const lists = at.filter((a) => a.what === 'list');
    expect(lists.map((a) => a.resourceVersion)).toEqual(['0', '10', undefined]);
    expect(lists[2]?.ms).toBe(lists[1]?.ms);
    transport.current?.push('ERROR', expired);
    transport.current?.end();
    await until('the next relist', () => transport.watches.length === 3);
    expect(at.filter((a) => a.what === 'list').at(-1)?.resourceVersion).toBe('30');
  });

  it('"Too large resource version" relists from etcd: at once after a list, after the backoff after a watch', async () => {
    const answers = [
      list([], '10'),
      list([], '12'),
      status(504, 'Timeout', tooLarge.message, { details: tooLarge.details }),
      list([], '13'),
    ];
    const transport = new FakeTransport(() => answers.shift() ?? list([], '13'));
    const { reflector, at, since } = make(transport);
    await watching(transport, reflector);
    const watchedAt = since();
    transport.current?.push('BOOKMARK', { metadata: { resourceVersion: '20' } });
    transport.current?.push('ERROR', tooLarge);
    transport.current?.end();
    await until('the relist from etcd', () => transport.watches.length === 2);
    const lists = at.filter((a) => a.what === 'list');
    // The watch's "too large" marks the resourceVersion unavailable: the next list, after the backoff, is from etcd.
    expect(lists.map((a) => a.resourceVersion)).toEqual(['0', undefined]);
    expect((lists[1]?.ms ?? 0) - watchedAt).toBe(800);
    // A list answered "too large" is retried at once, from etcd.
    transport.watchRefusals.push(status(500, 'InternalError', 'x'));
    transport.current?.end();
    await until('two more lists', () => at.filter((a) => a.what === 'list').length === 4, 120_000);
    const more = at.filter((a) => a.what === 'list').slice(2);
    expect(more.map((a) => a.resourceVersion)).toEqual(['12', undefined]);
    expect((more[1]?.ms ?? 0) - (more[0]?.ms ?? 0)).toBe(0);
  });

  it("429 honours Retry-After: the watch is re-opened (no relist) after the server's wait when it is longer", async () => {
    const transport = new FakeTransport(() => list([], '10'));
    const { reflector, at } = make(transport);
    await watching(transport, reflector);
    await vi.advanceTimersByTimeAsync(60_000);
    transport.watchRefusals.push(status(429, 'TooManyRequests', 'slow down', { retryAfterMs: 5_000 }));
    transport.current?.end();
    await until('the refused re-watch', () => transport.watchRequests.length === 3, 120_000);
    const watches = at.filter((a) => a.what === 'watch');
    expect((watches[2]?.ms ?? 0) - (watches[1]?.ms ?? 0)).toBe(5_000);
    expect(at.filter((a) => a.what === 'list')).toHaveLength(1);
  });

  it('429 and 5xx on the list honour Retry-After; a 500 on the watch relists after the backoff', async () => {
    const answers = [
      status(503, 'ServiceUnavailable', 'unavailable', { retryAfterMs: 7_000 }),
      status(429, 'TooManyRequests', 'slow down', { retryAfterMs: 4_000 }),
      list([], '10'),
    ];
    const transport = new FakeTransport(() => answers.shift() ?? list([], '11'));
    const { reflector, at } = make(transport);
    await watching(transport, reflector);
    expect(at.map((a) => [a.what, a.ms])).toEqual([
      ['list', 0],
      ['list', 7_000],
      ['list', 11_000],
      ['watch', 11_000],
    ]);
    transport.watchRefusals.push(status(500, 'InternalError', 'etcdserver: request timed out'));
    transport.current?.end();
    await until('the relist', () => at.filter((a) => a.what === 'list').length === 4, 120_000);
  });

  it('an unexpected error shows in the state, is logged, and the reflector restarts with a fresh list', async () => {
    const transport = new FakeTransport(() => list([node('a', '5')], '10'));
    const { reflector, logs } = make(transport);
    await watching(transport, reflector);
    // Not an API or network failure: something the loop did not foresee (a bug).
    transport.current?.throw(new TypeError("Cannot read properties of undefined (reading 'metadata')"));
    await until('the error state', () => reflector.status().state === 'error');
    expect(reflector.status().lastError).toContain('unexpected error: Cannot read properties of undefined');
    expect(logs.find((line) => line.level === 'error')).toMatchObject({
      msg: 'api loop failed unexpectedly',
      subject: 'ServiceCIDRs',
      retryInMs: 800,
    });
    await until('the restart', () => transport.lists().length === 2 && transport.watches.length === 2);
    expect(reflector.status()).toMatchObject({ state: 'synced', objects: 1 });
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
    await watching(transport, reflector);
    transport.current?.push('ADDED', node('a', '11'));
    await until('the error state', () => reflector.status().state === 'error');
    expect(reflector.status().lastError).toContain('handler bug');
    await until('synced again', () => reflector.status().state === 'synced' && transport.lists().length === 2);
  });

  it('a line that is not a watch event is a failure, not skipped: the reflector relists', async () => {
    const transport = new FakeTransport(() => list([], '10'));
    const { reflector } = make(transport);
    await watching(transport, reflector);
    transport.current?.throw(new TransportError('malformed', 'a watch line is not JSON: {"type":"ADD'));
    await until('unreachable', () => reflector.status().state === 'unreachable');
    expect(reflector.status().lastError).toContain('not JSON');
    await until('the relist', () => transport.lists().length === 2);
  });

  it('replaces a watch that has been silent past its timeout (the watchdog), after the backoff', async () => {
    const transport = new FakeTransport(() => list([], '10'));
    const { reflector, logs, at, since } = make(transport, { timings: { ...TIMINGS, watchGraceMs: 30_000 } });
    await watching(transport, reflector);
    await vi.advanceTimersByTimeAsync(330_000 - 1 - (since() - (at.at(-1)?.ms ?? 0)));
    expect(transport.watches[0]?.aborted).toBe(false);
    await until('a second watch', () => transport.watches.length === 2, 2_000, 1);
    expect(transport.watches[0]?.aborted).toBe(true);
    expect(at.at(-1)?.ms).toBe(330_000 + 800);
    expect(logs.find((line) => line.msg === 'watch silent, replacing it')).toMatchObject({ silentMs: 330_000 });
    expect(transport.lists()).toHaveLength(1);
  });

  it('abandons a watch whose headers never come, after the request timeout', async () => {
    const transport = new FakeTransport(() => list([], '10'));
    transport.hangWatches = true;
    const { reflector } = make(transport, { timings: { ...TIMINGS, requestTimeoutMs: 5_000 } });
    reflector.start();
    const waited = await until('the timeout', () =>
      (reflector.status().lastError ?? '').includes('did not answer the watch within 5000 ms'),
    );
    expect(waited).toBe(5_000);
    expect(reflector.status().state).toBe('unreachable');
  });

  it('fail-static: once synced, failing lists and watches never empty the store', async () => {
    let failing = false;
    const transport = new FakeTransport(() =>
      failing ? status(503, 'ServiceUnavailable', 'unavailable') : list([node('a', '1'), node('b', '2')], '10'),
    );
    const { reflector } = make(transport);
    await watching(transport, reflector);
    failing = true;
    transport.watchRefusals.push(status(503, 'ServiceUnavailable', 'x'));
    transport.current?.end();
    await until('a failed relist', () => transport.lists().length >= 2 && reflector.status().state === 'unreachable');
    expect(reflector.status()).toMatchObject({ synced: true, objects: 2 });
  });

  it('403 before the first list: forbidden, the grant named, looked at again after the recheck interval', async () => {
    const transport = new FakeTransport(() =>
      status(
        403,
        'Forbidden',
        'servicecidrs.networking.k8s.io is forbidden: User "x" cannot list resource "servicecidrs"',
      ),
    );
    const { reflector, logs, at } = make(transport);
    reflector.start();
    await until('forbidden', () => reflector.status().state === 'forbidden');
    expect(reflector.status().synced).toBe(false);
    expect(logs.find((line) => line.level === 'warn')).toMatchObject({
      msg: 'api forbidden',
      permission: 'get, list and watch on servicecidrs',
      err: expect.stringContaining('cannot list resource "servicecidrs"'),
      retryInMs: 600_000,
    });
    await until('a recheck', () => at.length === 2, 700_000, 1_000);
    expect(at[1]?.ms).toBe(600_000);
  });

  it('where the API is served is asked once, kept across relists, and asked again about every 10 minutes while not served', async () => {
    let served = false;
    const transport = new FakeTransport((request) => {
      if (request.path === '/apis/networking.k8s.io/v1') return resources(served ? ['servicecidrs'] : ['ingresses']);
      return list([node('a', '1')], '10');
    });
    const resolve: ReflectorOptions['resolve'] = async (t, signal) => {
      const response = await t.request({ method: 'GET', path: '/apis/networking.k8s.io/v1', signal });
      const names = (response.body as { resources: { name: string }[] }).resources.map((r) => r.name);
      return names.includes('servicecidrs')
        ? { kind: 'served', target: { path: '/apis/networking.k8s.io/v1/servicecidrs', resource: 'servicecidrs' } }
        : { kind: 'not-served', detail: 'the ServiceCIDR API is not served here' };
    };
    const { reflector, logs } = make(transport, { resolve });
    const discovery = () => transport.requests.filter((r) => r.path === '/apis/networking.k8s.io/v1').length;
    reflector.start();
    await until('not found', () => reflector.status().state === 'not-found');
    expect(reflector.status().lastError).toBe('HTTP 404: the ServiceCIDR API is not served here');
    await vi.advanceTimersByTimeAsync(599_000);
    expect(discovery()).toBe(1);
    served = true;
    await until('found', () => reflector.status().state === 'synced', 2_000, 100);
    expect(discovery()).toBe(2);
    expect(logs.filter((line) => line.msg === 'api not served')).toHaveLength(1);
    // Relists (after a 410) do not ask again where the API is served.
    transport.current?.push('ERROR', expired);
    transport.current?.end();
    await until('the relist', () => transport.watches.length === 2);
    expect(discovery()).toBe(2);
  });

  it('no configuration: not-configured, looked for again after the recheck interval', async () => {
    let connects = 0;
    const transport = new FakeTransport(() => list([], '1'));
    const { reflector } = make(transport, {
      connect: () => (++connects < 2 ? { kind: 'none', message: 'not in a pod' } : { kind: 'ready', transport }),
    });
    reflector.start();
    await settle();
    expect(reflector.status().state).toBe('not-configured');
    await until('configured', () => reflector.status().state === 'synced', 700_000, 1_000);
  });

  it('a network failure is unreachable, not unexpected', async () => {
    const transport = new FakeTransport(() => {
      throw new TransportError('network', 'connect ECONNREFUSED 127.0.0.1:6443');
    });
    const { reflector } = make(transport);
    reflector.start();
    await settle();
    expect(reflector.status()).toMatchObject({
      state: 'unreachable',
      lastError: 'connect ECONNREFUSED 127.0.0.1:6443',
    });
  });

  it('stop() ends a watch, a hanging list and a backoff without any time passing, and keeps the store', async () => {
    const transport = new FakeTransport(() => list([node('a', '1')], '10'));
    const { reflector } = make(transport);
    await watching(transport, reflector);
    await reflector.stop();
    expect(transport.current?.aborted).toBe(true);
    expect(reflector.status()).toMatchObject({ state: 'stopped', objects: 1 });

    const hanging = new FakeTransport(() => new Promise(() => {}));
    const { reflector: second } = make(hanging);
    second.start();
    await until('the list', () => hanging.requests.length === 1);
    let before = Date.now();
    await second.stop();
    expect(Date.now()).toBe(before);

    const failing = new FakeTransport(() => status(500, 'InternalError', 'x'));
    const { reflector: third } = make(failing);
    third.start();
    await until('a failure', () => third.status().state === 'unreachable');
    before = Date.now();
    await third.stop();
    expect(Date.now()).toBe(before);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(failing.requests).toHaveLength(1);
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
