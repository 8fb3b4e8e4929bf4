import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, formatServiceCidrs, type SourceReading } from '@route-controller/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ServiceCidrApiSource } from '../../packages/agent/src/discovery/service-cidr-source.js';
import { KubernetesConnection } from '../../packages/agent/src/kube-api/connection.js';
import type { ReflectorTimings } from '../../packages/agent/src/kube-api/reflector.js';
import { createLogger } from '../../packages/agent/src/observability/logger.js';
import { FakeApiServer, type IncomingRequest, kubeconfigFor, SERVICECIDRS_PATH } from '../src/fake-apiserver.js';

/**
 * The real servicecidr source (the reflector over the HTTP transport, with client-node's KubeConfig)
 * against the test API server on loopback: list + watch, re-watch, relist, faults and fail-static,
 * with short timings (and no jitter: random() = 0, so each watch asks for exactly watchTimeoutSeconds).
 */

interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly [key: string]: unknown;
}

interface Seen extends IncomingRequest {
  readonly at: number;
}

interface SourceOptions extends Partial<ReflectorTimings> {
  readonly kubeconfig?: string;
  readonly firstListWaitMs?: number;
}

const FAST: SourceOptions = {
  backoffInitialMs: 50,
  backoffMaxMs: 200,
  jitter: 0,
  recheckMs: 200,
  firstListWaitMs: 1_500,
  watchTimeoutSeconds: 30,
};

const connections: KubernetesConnection[] = [];

let server: FakeApiServer;
let dir: string;
let kubeconfig: string;
let port: number;
let seen: Seen[];
let logs: LogLine[];
const sources: ServiceCidrApiSource[] = [];

beforeEach(async () => {
  server = new FakeApiServer();
  const url = await server.listen();
  port = Number(new URL(url).port);
  dir = await mkdtemp(join(tmpdir(), 'rc-kube-source-'));
  kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, kubeconfigFor(url));
  seen = [];
  server.onRequest((request) => seen.push({ ...request, at: Date.now() }));
  logs = [];
});

afterEach(async () => {
  await Promise.all(sources.splice(0).map((source) => source.close()));
  for (const connection of connections.splice(0)) connection.close();
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

function makeSource(options: SourceOptions = {}) {
  const logger = createLogger('debug', {
    write: (line: string) => {
      logs.push(JSON.parse(line) as LogLine);
    },
  });
  const { kubeconfig: file, firstListWaitMs, ...timings } = { ...FAST, kubeconfig, ...options };
  const connection = new KubernetesConnection(file, logger);
  connections.push(connection);
  const source = new ServiceCidrApiSource({
    connect: () => connection.connect(),
    logger,
    timings,
    random: () => 0,
    ...(firstListWaitMs === undefined ? {} : { firstListWaitMs }),
  });
  sources.push(source);
  source.start();
  let notifications = 0;
  let base = 0;
  source.subscribe(() => {
    notifications += 1;
  });
  /** Notifications since the last call of settle() (the first list notifies too). */
  return {
    source,
    notifications: () => notifications - base,
    settle: () => {
      base = notifications;
    },
  };
}

const lists = () => seen.filter((r) => r.method === 'GET' && r.path === SERVICECIDRS_PATH && !r.watch);
const watches = () => seen.filter((r) => r.path === SERVICECIDRS_PATH && r.watch);

function text(reading: SourceReading): string {
  return reading.kind === 'cidrs' ? formatServiceCidrs(reading.cidrs) : reading.kind;
}

/** Polls `check` until it returns true; fails with `what` after `timeoutMs`. Returns the time taken. */
async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 1_000): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (await check()) return performance.now() - start;
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const status = (source: ServiceCidrApiSource) => {
  const [first] = source.statuses();
  if (!first) throw new Error('no status');
  return first;
};

const warnings = () => logs.filter((line) => line.level === 'warn').map((line) => line.msg);

describe('the servicecidr source against the test API server', () => {
  it('answers the first read from a list, then holds one watch from the list resourceVersion', async () => {
    server.add('kubernetes', ['10.96.0.0/16', 'fd00:10:96::/112']);
    const { source } = makeSource();
    const reading = await source.read();
    expect(reading.kind).toBe('cidrs');
    expect(text(reading)).toBe('10.96.0.0/16, fd00:10:96::/112');
    expect(reading.kind === 'cidrs' && reading.detail).toContain(
      '1 ServiceCIDR object(s) (networking.k8s.io/v1 servicecidrs)',
    );
    await waitFor('the watch', () => server.openWatches === 1);
    // The first list from the watch cache (resourceVersion=0), never a quorum read of etcd.
    expect(
      server.requests.filter((r) => r.path === SERVICECIDRS_PATH).map((r) => [r.query.resourceVersion, r.read]),
    ).toEqual([
      ['0', 'cache'],
      [server.resourceVersion, 'cache'],
    ]);
    expect(watches()[0]?.query).toMatchObject({
      resourceVersion: server.resourceVersion,
      allowWatchBookmarks: 'true',
      timeoutSeconds: '30',
    });
    // Discovery, list and watch, one after the other on one kept-alive connection.
    expect(new Set(server.requests.map((r) => r.connection)).size).toBe(1);
    expect(server.connections).toHaveLength(1);
    expect(status(source)).toMatchObject({
      state: 'synced',
      synced: true,
      objects: 1,
      resourceVersion: server.resourceVersion,
      server: `http://127.0.0.1:${port}`,
      resource: 'networking.k8s.io/v1 servicecidrs',
    });
  });

  it('no ServiceCIDR objects is an answer ("none"), not a fault', async () => {
    const { source } = makeSource();
    const reading = await source.read();
    expect(reading).toMatchObject({
      kind: 'none',
      detail: 'no ServiceCIDR objects in the cluster (networking.k8s.io/v1 servicecidrs)',
    });
    expect(status(source).state).toBe('synced');
  });

  it('passes added, changed and deleted objects to subscribers and the reading within a second', async () => {
    server.add('kubernetes', ['10.96.0.0/16']);
    const { source, notifications, settle } = makeSource();
    await source.read();
    await waitFor('the watch', () => server.openWatches === 1);
    settle();

    server.add('extra', ['10.100.0.0/16']);
    const added = await waitFor('the add', () => notifications() === 1);
    expect(added).toBeLessThan(1_000);
    expect(text(await source.read())).toBe('10.96.0.0/16, 10.100.0.0/16');

    server.update('extra', (object) => {
      object.spec.cidrs = ['10.101.0.0/16', 'fd00:101::/112'];
    });
    expect(await waitFor('the change', () => notifications() === 2)).toBeLessThan(1_000);
    expect(text(await source.read())).toBe('10.96.0.0/16, 10.101.0.0/16, fd00:101::/112');

    server.remove('extra');
    expect(await waitFor('the delete', () => notifications() === 3)).toBeLessThan(1_000);
    expect(text(await source.read())).toBe('10.96.0.0/16');
    // Still one list: everything came through the watch.
    expect(lists()).toHaveLength(1);
    expect(logs.filter((line) => line.servicecidr === 'extra').map((line) => [line.msg, line.cidrs])).toEqual([
      ['servicecidr added', ['10.100.0.0/16']],
      ['servicecidr changed', ['10.101.0.0/16', 'fd00:101::/112']],
      ['servicecidr deleted', ['10.101.0.0/16', 'fd00:101::/112']],
    ]);
  });

  it('keeps the CIDRs of a terminating object until it is gone', async () => {
    server.add('kubernetes', ['10.96.0.0/16']);
    server.add('extra', ['10.100.0.0/16']);
    const { source, notifications, settle } = makeSource();
    await source.read();
    await waitFor('the watch', () => server.openWatches === 1);
    settle();

    server.markTerminating('extra');
    await waitFor('terminating seen', () => status(source).terminating === 1);
    const reading = await source.read();
    expect(text(reading)).toBe('10.96.0.0/16, 10.100.0.0/16');
    expect(reading.kind === 'cidrs' && reading.detail).toContain('1 terminating');
    expect(notifications()).toBe(0); // the CIDRs did not change
    expect(logs.some((line) => line.msg === 'servicecidr terminating' && line.servicecidr === 'extra')).toBe(true);

    server.remove('extra');
    await waitFor('the removal', () => notifications() === 1);
    expect(text(await source.read())).toBe('10.96.0.0/16');
  });

  it('a terminating object found by the first list also keeps its CIDRs', async () => {
    server.add('kubernetes', ['10.96.0.0/16']);
    server.add('old', ['10.200.0.0/16']);
    server.markTerminating('old');
    const { source } = makeSource();
    expect(text(await source.read())).toBe('10.96.0.0/16, 10.200.0.0/16');
    expect(status(source).terminating).toBe(1);
  });

  it('answers the union of all objects, normalised: a new range containing the default is merged', async () => {
    server.add('kubernetes', ['10.96.0.0/16', 'fd00:10:96::/112']);
    const { source, notifications, settle } = makeSource();
    await source.read();
    await waitFor('the watch', () => server.openWatches === 1);
    settle();
    // The documented way to grow the Service range: a larger ServiceCIDR that contains the default.
    server.add('bigger', ['10.96.0.0/12', 'fd00:10:96::/108']);
    await waitFor('the add', () => notifications() === 1);
    const reading = await source.read();
    expect(text(reading)).toBe('10.96.0.0/12, fd00:10:96::/108');
    expect(reading.kind === 'cidrs' && reading.notes?.map((note) => note.kind)).toEqual(['contained', 'contained']);
    // Duplicates across objects count once; host bits are cleared.
    server.add('same', ['10.96.0.0/12', '10.112.0.5/16']);
    await waitFor('the add', () => notifications() === 2);
    expect(text(await source.read())).toBe('10.96.0.0/12, 10.112.0.0/16, fd00:10:96::/108');
  });

  it('ignores an entry it cannot use, with a warning, and keeps the rest', async () => {
    server.add('kubernetes', ['10.96.0.0/16', 'not-a-cidr']);
    const { source } = makeSource();
    expect(text(await source.read())).toBe('10.96.0.0/16');
    expect(logs.find((line) => line.msg === 'servicecidr entry unusable, ignored')).toMatchObject({
      level: 'warn',
      entry: 'not-a-cidr',
    });
  });

  it('re-watches from the last resourceVersion (after the backoff) when watches are dropped, without relisting', async () => {
    server.add('kubernetes', ['10.96.0.0/16']);
    const { source, notifications, settle } = makeSource();
    await source.read();
    await waitFor('the watch', () => server.openWatches === 1);
    settle();
    server.add('first', ['10.101.0.0/16']);
    await waitFor('the add', () => notifications() === 1);
    const rv = server.resourceVersion;

    server.dropWatches();
    server.add('after-drop', ['10.102.0.0/16']);
    await waitFor('the add after the drop', () => notifications() === 2);
    expect(text(await source.read())).toBe('10.96.0.0/16, 10.101.0.0/16, 10.102.0.0/16');
    expect(lists()).toHaveLength(1);
    expect(watches()).toHaveLength(2);
    expect(watches()[1]?.query.resourceVersion).toBe(rv);
  });

  it('re-watches after the server-side watch timeout, still without relisting', async () => {
    server.add('kubernetes', ['10.96.0.0/16']);
    const { source, notifications } = makeSource({ watchTimeoutSeconds: 1 });
    await source.read();
    await waitFor('two watch timeouts', () => watches().length >= 3, 3_500);
    server.add('late', ['10.103.0.0/16']);
    await waitFor('the add', () => notifications() === 1);
    expect(lists()).toHaveLength(1);
    expect(status(source).state).toBe('synced');
  });

  it('relists after 410 Expired (history compacted while the watch was down) and catches up', async () => {
    server.add('kubernetes', ['10.96.0.0/16']);
    server.add('doomed', ['10.104.0.0/16']);
    const { source, notifications, settle } = makeSource();
    await source.read();
    await waitFor('the watch', () => server.openWatches === 1);
    settle();

    // The watch goes down; meanwhile objects change and the history moves past it (a restart).
    server.sendBookmarks();
    server.dropWatches();
    server.remove('doomed');
    server.add('missed', ['10.105.0.0/16']);
    server.compact();

    await waitFor('the relist', () => lists().length === 2, 2_000);
    await waitFor('the catch-up', () => notifications() >= 1);
    expect(text(await source.read())).toBe('10.96.0.0/16, 10.105.0.0/16');
    expect(logs.some((line) => line.msg === 'watch expired, relisting')).toBe(true);
    // The relist asks the watch cache for what it last saw, not etcd.
    expect(lists()[1]?.query.resourceVersion).not.toBe('');

    // And the new watch, from the relist's resourceVersion, carries new objects.
    await waitFor('the new watch', () => server.openWatches === 1);
    server.add('new', ['10.106.0.0/16']);
    await waitFor('the add', () => status(source).objects === 3);
    expect(text(await source.read())).toBe('10.96.0.0/16, 10.105.0.0/16, 10.106.0.0/16');
  });

  it('relists when a watch started right after the list meets a compaction (ERROR 410 event)', async () => {
    server.add('kubernetes', ['10.96.0.0/16']);
    let compacted = false;
    server.onRequest((request) => {
      seen.push({ ...request, at: Date.now() });
      if (request.watch && !compacted) {
        compacted = true;
        server.add('raced', ['10.107.0.0/16']);
        server.compact();
      }
    });
    const { source } = makeSource();
    await source.read();
    await waitFor('the relist', () => lists().length === 2);
    await waitFor('the raced object', () => status(source).objects === 2);
    expect(text(await source.read())).toBe('10.96.0.0/16, 10.107.0.0/16');
  });

  it('bookmarks advance the resourceVersion, so a re-watch after compaction needs no relist', async () => {
    server.add('kubernetes', ['10.96.0.0/16']);
    const { source } = makeSource();
    await source.read();
    await waitFor('the watch', () => server.openWatches === 1);
    const listed = status(source).resourceVersion;
    // Other resources are written: the cluster's resourceVersion moves on without a ServiceCIDR event.
    const now = server.advanceResourceVersion(5);
    server.sendBookmarks();
    await waitFor('the bookmark', () => status(source).resourceVersion === now);
    expect(now).not.toBe(listed);

    server.compact();
    server.dropWatches();
    await waitFor('the re-watch', () => watches().length === 2 && server.openWatches === 1);
    expect(watches()[1]?.query.resourceVersion).toBe(now);
    expect(lists()).toHaveLength(1);
  });

  it('waits for a slow API server at start: unavailable first, then the list arrives', async () => {
    server.add('kubernetes', ['10.96.0.0/16']);
    server.delay(700);
    const { source, notifications } = makeSource({ firstListWaitMs: 100 });
    const first = await source.read();
    expect(first).toMatchObject({ kind: 'unavailable', error: { code: ErrorCodes.SourceFailed } });
    expect(status(source).state).toBe('connecting');
    await waitFor('the slow list', () => notifications() >= 1 && status(source).synced, 2_000);
    expect(text(await source.read())).toBe('10.96.0.0/16');
  });

  it('answers unavailable while the API fails at start, retries with growing backoff, then recovers', async () => {
    server.add('kubernetes', ['10.96.0.0/16']);
    server.failWith({ code: 500 });
    const { source, notifications } = makeSource({ backoffInitialMs: 100, backoffMaxMs: 800 });
    const started = performance.now();
    const first = await source.read();
    // Answered at the first failure, not after the whole first-list wait.
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(first.kind).toBe('unavailable');
    expect(first.kind === 'unavailable' && first.error.hint).toContain('SERVICE_CIDRS');
    expect(status(source)).toMatchObject({ state: 'unreachable', synced: false });
    expect(status(source).lastError).toContain('HTTP 500');
    expect(logs.find((line) => line.msg === 'api unreachable')).toMatchObject({ level: 'warn', status: 500 });

    await waitFor('four attempts', () => lists().length >= 4, 3_000);
    const at = lists().map((r) => r.at);
    const gaps = at.slice(1).map((t, i) => t - (at[i] as number));
    // Waits of 100, 200, 400 ms (plus request time): growing, not a fixed retry interval.
    expect(gaps[0]).toBeGreaterThanOrEqual(95);
    expect(gaps[2]).toBeGreaterThanOrEqual(395);
    expect(gaps[2] as number).toBeGreaterThan(gaps[0] as number);
    // Not a warning per retry: said once, then the backoff speaks.
    expect(warnings().filter((msg) => msg === 'api unreachable')).toHaveLength(1);

    server.failWith(undefined);
    await waitFor('recovery', () => status(source).state === 'synced', 2_000);
    expect(notifications()).toBeGreaterThanOrEqual(1);
    expect(text(await source.read())).toBe('10.96.0.0/16');
  });

  it('fail-static: after the first list, 500s and a server that is gone keep the last CIDRs', async () => {
    server.add('kubernetes', ['10.96.0.0/16', 'fd00:10:96::/112']);
    const { source, notifications, settle } = makeSource();
    await source.read();
    await waitFor('the watch', () => server.openWatches === 1);
    settle();

    server.failWith({ code: 500 });
    server.dropWatches();
    await waitFor('the failing re-watch', () => status(source).state === 'unreachable');
    const during = await source.read();
    expect(text(during)).toBe('10.96.0.0/16, fd00:10:96::/112');
    expect(during.kind === 'cidrs' && during.detail).toContain('keeping the last answer');

    // The API server goes away entirely.
    await server.close();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(text(await source.read())).toBe('10.96.0.0/16, fd00:10:96::/112');
    expect(status(source).lastError).toMatch(/ECONNREFUSED|HTTP 500/);
    expect(notifications()).toBe(0);
    expect(logs.find((line) => line.msg === 'api unreachable')).toMatchObject({ level: 'warn', keeping: 1 });

    // It comes back, with its history: the watch resumes and a new object arrives.
    server.failWith(undefined);
    await server.listen({ port });
    await waitFor('reconnect', () => status(source).state === 'synced' && server.openWatches === 1, 2_000);
    server.add('extra', ['10.100.0.0/16']);
    await waitFor('the add', () => notifications() === 1);
    expect(text(await source.read())).toBe('10.96.0.0/16, 10.100.0.0/16, fd00:10:96::/112');
  });

  it('not served (neither v1 nor v1beta1 lists servicecidrs): "none", one warning, and found once served', async () => {
    server.add('kubernetes', ['10.96.0.0/16']);
    server.serviceCidrVersions = [];
    const { source, notifications } = makeSource({ recheckMs: 150 });
    const reading = await source.read();
    expect(reading.kind).toBe('none');
    expect(reading.detail).toContain('is not served by this cluster');
    expect(reading.detail).toContain('older than 1.33');
    expect(status(source).state).toBe('not-found');
    const discovery = () => seen.filter((r) => r.path === '/apis/networking.k8s.io/v1');
    await waitFor('rechecks', () => discovery().length >= 3, 2_000);
    expect(lists()).toHaveLength(0);
    // One warning, not one per recheck.
    expect(warnings().filter((msg) => msg === 'api not served')).toHaveLength(1);
    server.serviceCidrVersions = ['v1'];
    await waitFor('the API found', () => status(source).state === 'synced', 1_000);
    expect(notifications()).toBeGreaterThanOrEqual(2); // none -> cidrs
    expect(text(await source.read())).toBe('10.96.0.0/16');
  });

  it('only v1beta1 serves servicecidrs (1.31-1.32 with the beta API): the same objects from v1beta1', async () => {
    server.add('kubernetes', ['10.96.0.0/16', 'fd00:10:96::/112']);
    server.serviceCidrVersions = ['v1beta1'];
    const { source, notifications, settle } = makeSource();
    expect(text(await source.read())).toBe('10.96.0.0/16, fd00:10:96::/112');
    expect(status(source).resource).toBe('networking.k8s.io/v1beta1 servicecidrs');
    await waitFor('the watch', () => server.openWatches === 1);
    settle();
    server.add('extra', ['10.100.0.0/16']);
    await waitFor('the add', () => notifications() === 1);
    expect(seen.filter((r) => r.path === '/apis/networking.k8s.io/v1beta1/servicecidrs').length).toBe(2);
  });

  it('404 on the list of a served version: not-found, rechecked, then found', async () => {
    server.add('kubernetes', ['10.96.0.0/16']);
    server.failWith({ code: 404 });
    const { source } = makeSource({ recheckMs: 150 });
    expect((await source.read()).kind).toBe('none');
    expect(status(source).state).toBe('not-found');
    server.failWith(undefined);
    await waitFor('the API found', () => status(source).state === 'synced', 1_000);
  });

  it('403: skipped ("none") with the reason, a warning naming get, list and watch on servicecidrs', async () => {
    server.add('kubernetes', ['10.96.0.0/16']);
    server.forbid('servicecidrs');
    const { source } = makeSource();
    const reading = await source.read();
    expect(reading.kind).toBe('none');
    expect(reading.detail).toContain('get, list and watch on servicecidrs (API group networking.k8s.io)');
    expect(reading.detail).toContain('cannot list resource "servicecidrs"');
    expect(status(source).state).toBe('forbidden');
    expect(logs.find((line) => line.msg === 'api forbidden')).toMatchObject({
      level: 'warn',
      permission: 'get, list and watch on servicecidrs (API group networking.k8s.io)',
      err: expect.stringContaining('cannot list resource "servicecidrs"'),
    });

    server.allow('servicecidrs');
    await waitFor('granted', () => status(source).state === 'synced', 2_000);
  });

  it('403 on the watch only (RBAC without "watch") keeps the listed CIDRs and backs off', async () => {
    server.add('kubernetes', ['10.96.0.0/16']);
    server.failWith({ code: 403, only: 'watch' });
    const { source } = makeSource({ backoffInitialMs: 50, backoffMaxMs: 1_000 });
    expect(text(await source.read())).toBe('10.96.0.0/16');
    await waitFor('forbidden', () => status(source).state === 'forbidden');
    expect(logs.find((line) => line.msg === 'api forbidden')?.permission).toContain(
      'get, list and watch on servicecidrs',
    );
    expect(status(source).lastError).toContain('cannot watch resource "servicecidrs"');
    await new Promise((resolve) => setTimeout(resolve, 800));
    // list, watch 403, recheck after 200 ms, list, watch 403, ... (about 4 in 800 ms), not a hot loop.
    expect(watches().length).toBeLessThan(6);
    expect(text(await source.read())).toBe('10.96.0.0/16');
  });

  it('never falls back from an explicit kubeconfig that does not exist: unavailable, naming the file', async () => {
    const { source } = makeSource({ kubeconfig: join(dir, 'missing') });
    const reading = await source.read();
    expect(reading).toMatchObject({ kind: 'unavailable' });
    expect(status(source).lastError).toMatch(/KUBECONFIG=".*missing" cannot be used: the file does not exist/);
  });

  it('reports a kubeconfig it cannot load as unavailable, with the reason', async () => {
    const broken = join(dir, 'broken');
    await writeFile(broken, 'clusters: [ this is not yaml');
    const { source } = makeSource({ kubeconfig: broken });
    const reading = await source.read();
    expect(reading.kind).toBe('unavailable');
    expect(status(source).lastError).toContain('cannot load the Kubernetes configuration');
  });

  it('close() ends promptly with a watch open', async () => {
    server.add('kubernetes', ['10.96.0.0/16']);
    const { source } = makeSource();
    await source.read();
    await waitFor('the watch', () => server.openWatches === 1);
    const started = performance.now();
    await source.close();
    expect(performance.now() - started).toBeLessThan(500);
    await waitFor('the watch closed on the server', () => server.openWatches === 0);
    expect(status(source).state).toBe('stopped');
    // The cache is kept: a late read still answers the last CIDRs.
    expect(text(await source.read())).toBe('10.96.0.0/16');
  });

  it('close() ends promptly while a list hangs, and aborts that request', async () => {
    server.delay(10_000);
    const { source } = makeSource({ firstListWaitMs: 50 });
    await source.read();
    // The first request (API discovery) hangs like every other.
    await waitFor('the first request', () => seen.length === 1);
    const started = performance.now();
    await source.close();
    expect(performance.now() - started).toBeLessThan(500);
  });

  it('close() ends promptly while backing off', async () => {
    server.failWith({ code: 503 });
    const { source } = makeSource({ backoffInitialMs: 10_000, backoffMaxMs: 10_000 });
    await source.read();
    const started = performance.now();
    await source.close();
    expect(performance.now() - started).toBeLessThan(100);
    const attempts = lists().length;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(lists()).toHaveLength(attempts);
  });

  it('abandons a list that never answers and tries again', async () => {
    server.add('kubernetes', ['10.96.0.0/16']);
    server.delay(10_000);
    const { source } = makeSource({ requestTimeoutMs: 200, firstListWaitMs: 50 });
    await source.read();
    await waitFor('the timeout', () => (status(source).lastError ?? '').includes('did not answer within 200 ms'));
    server.delay(0);
    await waitFor('the retry', () => status(source).synced, 2_000);
    expect(text(await source.read())).toBe('10.96.0.0/16');
  });

  it('follows a kubeconfig list (KUBECONFIG style), as client-node resolves it', async () => {
    const other = join(dir, 'other');
    await writeFile(
      other,
      kubeconfigFor('http://127.0.0.1:1')
        .replaceAll('fake', 'other')
        .replace(/current-context: .*\n/, ''),
    );
    server.add('kubernetes', ['10.96.0.0/16']);
    const { source } = makeSource({ kubeconfig: `${kubeconfig}:${other}` });
    expect(text(await source.read())).toBe('10.96.0.0/16');
    expect(status(source).server).toBe(`http://127.0.0.1:${port}`);
  });
});
