import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeApiServer, kubeconfigFor, SERVICE_CIDR_FINALIZER, SERVICECIDRS_PATH } from '../src/fake-apiserver.js';

/**
 * The test API server checked against the real kubectl: if kubectl reads, creates, deletes and
 * watches ServiceCIDRs through it and reports its errors as it does against a real cluster, its
 * conventions are real ones. kubectl runs asynchronously: this process serves its requests.
 */

const KUBECTL_TIMEOUT_MS = 20_000;

let server: FakeApiServer;
let dir: string;
let env: Record<string, string>;

function kubectl(args: readonly string[], input?: string) {
  return execa('kubectl', [...args, '--request-timeout=10s'], {
    env,
    extendEnv: false,
    reject: false,
    timeout: KUBECTL_TIMEOUT_MS,
    ...(input === undefined ? {} : { input }),
  });
}

/** A kubectl that streams (get --watch): its stdout lines as they come, and a way to stop it. */
function kubectlStream(args: readonly string[]) {
  const child = execa('kubectl', [...args], {
    env,
    extendEnv: false,
    reject: false,
    timeout: KUBECTL_TIMEOUT_MS,
    buffer: false,
  });
  const lines: string[] = [];
  let pending = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    pending += chunk;
    const parts = pending.split('\n');
    pending = parts.pop() ?? '';
    lines.push(...parts.filter((line) => line.trim() !== ''));
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });
  return {
    lines,
    stderr: () => stderr,
    async waitForLines(count: number, timeoutMs = 5_000): Promise<void> {
      const start = Date.now();
      while (lines.length < count) {
        if (Date.now() - start > timeoutMs) {
          throw new Error(`kubectl printed ${lines.length} of ${count} lines:\n${lines.join('\n')}\n${stderr}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    async stop() {
      child.kill('SIGTERM');
      return child;
    },
    result: child,
  };
}

const MANIFEST = `apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata:
  name: extra
  labels:
    owner: route-controller-tests
spec:
  cidrs:
  - 10.100.0.0/16
  - fd00:100::/112
`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rc-kubectl-'));
  // A HOME of its own: kubectl's discovery cache must not leak between servers (or into /root).
  env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, KUBECONFIG: join(dir, 'kubeconfig') };
  const version = await execa('kubectl', ['version', '--client'], { env, extendEnv: false, reject: false });
  if (version.exitCode !== 0) throw new Error(`kubectl is needed for these tests: ${version.stderr}`);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  server = new FakeApiServer();
  const url = await server.listen();
  await writeFile(env.KUBECONFIG as string, kubeconfigFor(url));
  server.add('kubernetes', ['10.96.0.0/16', 'fd00:10:96::/112']);
  return async () => {
    await server.close();
  };
});

describe('the test API server, as kubectl sees it', () => {
  it('lists and gets ServiceCIDRs (table, JSON, by name)', async () => {
    const table = await kubectl(['get', 'servicecidrs']);
    expect(table.exitCode, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^NAME\s+AGE\n/);
    expect(table.stdout).toMatch(/^kubernetes\s+\d+s$/m);

    const list = await kubectl(['get', 'servicecidrs', '-o', 'json']);
    expect(list.exitCode, list.stderr).toBe(0);
    const parsed = JSON.parse(list.stdout) as { items: { metadata: { name: string }; spec: { cidrs: string[] } }[] };
    expect(parsed.items.map((item) => [item.metadata.name, item.spec.cidrs])).toEqual([
      ['kubernetes', ['10.96.0.0/16', 'fd00:10:96::/112']],
    ]);

    const one = await kubectl(['get', 'servicecidr', 'kubernetes', '-o', 'jsonpath={.spec.cidrs[*]}']);
    expect(one.stdout).toBe('10.96.0.0/16 fd00:10:96::/112');
    // kubectl paged the list as it does against a real server.
    expect(server.requests.some((r) => r.path === SERVICECIDRS_PATH && r.query.limit === '500')).toBe(true);

    const missing = await kubectl(['get', 'servicecidr', 'nope']);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain('Error from server (NotFound): servicecidrs.networking.k8s.io "nope" not found');
  });

  it('creates from a manifest, validated on the server as kubectl asks (fieldValidation=Strict)', async () => {
    const created = await kubectl(['create', '-f', '-'], MANIFEST);
    expect(created.exitCode, created.stderr).toBe(0);
    expect(created.stdout).toBe('servicecidr.networking.k8s.io/extra created');
    const object = server.list().find((o) => o.metadata.name === 'extra');
    expect(object?.spec.cidrs).toEqual(['10.100.0.0/16', 'fd00:100::/112']);
    expect(object?.metadata.labels).toEqual({ owner: 'route-controller-tests' });
    expect(object?.metadata.finalizers).toEqual([SERVICE_CIDR_FINALIZER]);
    // kubectl found fieldValidation in the OpenAPI v3 document and left validation to the server.
    const post = server.requests.find((r) => r.method === 'POST');
    expect(post?.query).toMatchObject({ fieldManager: 'kubectl-create', fieldValidation: 'Strict' });

    const again = await kubectl(['create', '-f', '-'], MANIFEST);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toContain(
      'Error from server (AlreadyExists): error when creating "STDIN": servicecidrs.networking.k8s.io "extra" already exists',
    );

    const unknownField = await kubectl(
      ['create', '-f', '-'],
      MANIFEST.replace('name: extra', 'name: unknown-field').replace('spec:', 'spec:\n  bogus: 1'),
    );
    expect(unknownField.exitCode).toBe(1);
    expect(unknownField.stderr).toContain('Error from server (BadRequest)');
    expect(unknownField.stderr).toContain('strict decoding error: unknown field "spec.bogus"');

    const badCidr = await kubectl(
      ['create', '-f', '-'],
      MANIFEST.replace('name: extra', 'name: bad-cidr').replace('10.100.0.0/16', '10.100.0.0/99'),
    );
    expect(badCidr.exitCode).toBe(1);
    expect(badCidr.stderr).toContain(
      'The ServiceCIDR "bad-cidr" is invalid: spec.cidrs[0]: Invalid value: "10.100.0.0/99"',
    );
  });

  it('delete: the finalizer keeps the object terminating; kubectl waits until it is removed', async () => {
    server.add('extra', ['10.100.0.0/16']);
    const noWait = await kubectl(['delete', 'servicecidr', 'extra', '--wait=false']);
    expect(noWait.exitCode, noWait.stderr).toBe(0);
    expect(noWait.stdout).toBe('servicecidr.networking.k8s.io "extra" deleted');

    const got = await kubectl(['get', 'servicecidr', 'extra', '-o', 'json']);
    expect(got.exitCode, got.stderr).toBe(0);
    const terminating = JSON.parse(got.stdout) as {
      metadata: { deletionTimestamp?: string; finalizers?: string[]; deletionGracePeriodSeconds?: number };
    };
    expect(terminating.metadata.deletionTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(terminating.metadata.finalizers).toEqual([SERVICE_CIDR_FINALIZER]);
    expect(terminating.metadata.deletionGracePeriodSeconds).toBe(0);
    const listed = await kubectl(['get', 'servicecidrs', '-o', 'name']);
    expect(listed.stdout.split('\n')).toContain('servicecidr.networking.k8s.io/extra');

    // A plain delete waits for the object to be gone, through a watch on metadata.name.
    const waitWatch = server.requests.length; // (requests are logged as they arrive)
    const waiting = kubectlStream(['delete', 'servicecidr', 'extra']);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(waiting.result.exitCode).toBeNull(); // still waiting
    server.remove('extra');
    const done = await waiting.result;
    expect(done.exitCode, waiting.stderr()).toBe(0);
    expect(waiting.lines).toEqual(['servicecidr.networking.k8s.io "extra" deleted']);
    const watch = server.requests.slice(waitWatch).find((r) => r.query.watch === 'true');
    expect(watch?.query.fieldSelector).toBe('metadata.name=extra');

    const gone = await kubectl(['get', 'servicecidr', 'extra']);
    expect(gone.exitCode).toBe(1);
    expect(gone.stderr).toContain('Error from server (NotFound): servicecidrs.networking.k8s.io "extra" not found');
  });

  it('delete of an object without a finalizer removes it at once', async () => {
    server.add('plain', ['10.101.0.0/16'], { finalizer: false });
    const deleted = await kubectl(['delete', 'servicecidr', 'plain']);
    expect(deleted.exitCode, deleted.stderr).toBe(0);
    expect(server.list().map((o) => o.metadata.name)).toEqual(['kubernetes']);
  });

  it('get --watch -o json --output-watch-events streams ADDED, MODIFIED and DELETED', async () => {
    const watch = kubectlStream(['get', 'servicecidrs', '--watch', '-o', 'json', '--output-watch-events']);
    await watch.waitForLines(1);
    server.add('w1', ['10.50.0.0/16']);
    await watch.waitForLines(2);
    server.update('w1', (object) => {
      object.spec.cidrs = ['10.51.0.0/16'];
    });
    await watch.waitForLines(3);
    server.markTerminating('w1');
    await watch.waitForLines(4);
    server.remove('w1');
    await watch.waitForLines(5);
    await watch.stop();
    const events = watch.lines.map(
      (line) =>
        JSON.parse(line) as {
          type: string;
          object: { metadata: { name: string; deletionTimestamp?: string }; spec: { cidrs: string[] } };
        },
    );
    expect(events.map((e) => [e.type, e.object.metadata.name])).toEqual([
      ['ADDED', 'kubernetes'],
      ['ADDED', 'w1'],
      ['MODIFIED', 'w1'],
      ['MODIFIED', 'w1'],
      ['DELETED', 'w1'],
    ]);
    expect(events[2]?.object.spec.cidrs).toEqual(['10.51.0.0/16']);
    expect(events[3]?.object.metadata.deletionTimestamp).toBeDefined();
    // kubectl listed, then watched from the list's resourceVersion.
    const watchRequest = server.requests.find((r) => r.query.watch === 'true');
    expect(watchRequest?.query.resourceVersion).toBe('101');
  });

  it('history compacted between kubectl’s list and its watch: kubectl reports Expired, too old resource version', async () => {
    // Every watch request arrives just after a write and a compaction past kubectl's list.
    let raced = 0;
    server.onRequest((request) => {
      if (!request.watch) return;
      raced += 1;
      server.add(`raced-${raced}`, ['10.52.0.0/16']);
      server.compact();
    });
    const result = await kubectl(['get', 'servicecidrs', '--watch']);
    expect(result.stdout).toMatch(/^Failure\s+Expired\s+too old resource version: 101 \(102\)$/m);

    const json = await kubectl(['get', 'servicecidrs', '--watch', '-o', 'json', '--output-watch-events']);
    const last = JSON.parse(json.stdout.trim().split('\n').at(-1) as string) as {
      type: string;
      object: { kind: string; code: number; reason: string; message: string };
    };
    expect(last).toMatchObject({
      type: 'ERROR',
      object: { kind: 'Status', code: 410, reason: 'Expired' },
    });
    expect(last.object.message).toMatch(/^too old resource version: \d+ \(\d+\)$/);
  });

  it('a raw watch from a compacted resourceVersion gets one ERROR event with a 410 Expired Status', async () => {
    server.add('later', ['10.53.0.0/16']);
    server.compact();
    const raw = await kubectl(['get', '--raw', `${SERVICECIDRS_PATH}?watch=true&resourceVersion=101`]);
    expect(raw.exitCode, raw.stderr).toBe(0);
    expect(JSON.parse(raw.stdout)).toEqual({
      type: 'ERROR',
      object: {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: 'too old resource version: 101 (102)',
        reason: 'Expired',
        code: 410,
      },
    });
    // From the current resourceVersion the watch is fine (it ends at its timeout).
    const ok = await kubectl(['get', '--raw', `${SERVICECIDRS_PATH}?watch=true&resourceVersion=102&timeoutSeconds=1`]);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stdout).toBe('');
  });

  it('a raw watch with bookmarks gets BOOKMARK events carrying the current resourceVersion', async () => {
    server.bookmarkIntervalMs = 200;
    const rv = server.advanceResourceVersion(3);
    const raw = await kubectl([
      'get',
      '--raw',
      `${SERVICECIDRS_PATH}?watch=true&resourceVersion=101&allowWatchBookmarks=true&timeoutSeconds=1`,
    ]);
    expect(raw.exitCode, raw.stderr).toBe(0);
    const events = raw.stdout
      .trim()
      .split('\n')
      .map(
        (line) => JSON.parse(line) as { type: string; object: { kind: string; metadata: { resourceVersion: string } } },
      );
    expect(events.length).toBeGreaterThanOrEqual(3);
    for (const event of events) {
      expect(event).toMatchObject({
        type: 'BOOKMARK',
        object: { kind: 'ServiceCIDR', metadata: { resourceVersion: rv } },
      });
    }
  });

  it('403, 404 and 500 come out as kubectl’s own "Error from server" lines', async () => {
    server.failWith({ code: 403 });
    const forbidden = await kubectl(['get', 'servicecidrs']);
    expect(forbidden.exitCode).toBe(1);
    expect(forbidden.stderr.trim()).toBe(
      'Error from server (Forbidden): servicecidrs.networking.k8s.io is forbidden: User "system:serviceaccount:route-controller:route-controller" cannot list resource "servicecidrs" in API group "networking.k8s.io" at the cluster scope',
    );
    const forbiddenGet = await kubectl(['get', 'servicecidr', 'kubernetes']);
    expect(forbiddenGet.stderr).toContain('"kubernetes" is forbidden: User');
    expect(forbiddenGet.stderr).toContain('cannot get resource "servicecidrs"');

    server.failWith({ code: 404 });
    const notFound = await kubectl(['get', 'servicecidrs']);
    expect(notFound.exitCode).toBe(1);
    expect(notFound.stderr).toContain('Error from server (NotFound)');
    expect(notFound.stderr).toContain('the server could not find the requested resource');

    server.failWith({ code: 500 });
    const internal = await kubectl(['get', 'servicecidrs']);
    expect(internal.exitCode).toBe(1);
    expect(internal.stderr).toContain(
      'Error from server (InternalError): Internal error occurred: etcdserver: request timed out',
    );

    server.failWith(undefined);
    expect((await kubectl(['get', 'servicecidrs'])).exitCode).toBe(0);
  });

  it('a dropped watch ends kubectl’s get --watch the way a server restart does', async () => {
    const watch = kubectlStream(['get', 'servicecidrs', '--watch', '-o', 'name']);
    await watch.waitForLines(1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    server.dropWatches();
    const result = await watch.result;
    expect(result.exitCode).toBe(0);
    expect(watch.lines).toEqual(['servicecidr.networking.k8s.io/kubernetes']);
  });

  it('logs every request with its TCP connection: client-go (kubectl) reuses its kept-alive connections', async () => {
    const result = await kubectl(['get', 'servicecidrs', '-o', 'name']);
    expect(result.exitCode, result.stderr).toBe(0);
    // client-go asks for discovery in parallel (several connections), and reuses them: the list rides on one.
    expect(server.requests.length).toBeGreaterThan(server.connections.length);
    const list0 = server.requests.find((r) => r.path === SERVICECIDRS_PATH);
    expect(server.requests.filter((r) => r.connection === list0?.connection).length).toBeGreaterThan(1);
    const list = server.requests.find((r) => r.path === SERVICECIDRS_PATH);
    expect(list).toMatchObject({ read: 'etcd', status: 200, user: 'anonymous' });
    expect(list?.bytes).toBeGreaterThan(100);
    const raw = await kubectl(['get', '--raw', `${SERVICECIDRS_PATH}?resourceVersion=0`]);
    expect(raw.exitCode, raw.stderr).toBe(0);
    expect(server.requests.at(-1)).toMatchObject({ read: 'cache', bytes: Buffer.byteLength(raw.stdout) });
  });

  it('a list or watch newer than a lagging watch cache gets "Too large resource version", as client-go knows it', async () => {
    server.tooLargeWaitMs = 50;
    server.lagCache();
    const ahead = Number(server.resourceVersion) + 5;
    const list = await kubectl(['get', '--raw', `${SERVICECIDRS_PATH}?resourceVersion=${ahead}`]);
    expect(list.exitCode).toBe(1);
    expect(list.stderr).toContain(`Error from server (Timeout): Too large resource version: ${ahead}, current: `);
    const watch = await kubectl(['get', '--raw', `${SERVICECIDRS_PATH}?watch=true&resourceVersion=${ahead}`]);
    expect(watch.exitCode, watch.stderr).toBe(0);
    expect(JSON.parse(watch.stdout)).toMatchObject({
      type: 'ERROR',
      object: {
        kind: 'Status',
        code: 504,
        reason: 'Timeout',
        details: { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }] },
      },
    });
    server.lagCache(false);
    expect(
      (await kubectl(['get', '--raw', `${SERVICECIDRS_PATH}?resourceVersion=${server.resourceVersion}`])).exitCode,
    ).toBe(0);
  });

  it("a 429 with Retry-After is honoured by client-go: kubectl retries after the server's wait, then succeeds", async () => {
    server.failWith({ code: 429, retryAfterSeconds: 1 });
    const started = Date.now();
    const pending = kubectl(['get', '--raw', SERVICECIDRS_PATH]);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    server.failWith(undefined);
    const result = await pending;
    expect(result.exitCode, result.stderr).toBe(0);
    const tries = server.requests.filter((r) => r.path === SERVICECIDRS_PATH);
    expect(tries.map((r) => r.status)).toEqual([429, 429, 200]);
    expect((tries[1]?.at ?? 0) - (tries[0]?.at ?? 0)).toBeGreaterThanOrEqual(950);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_900);
  });

  it('a watch failed with 410 is answered as the real server does (200, one ERROR event); a watch without a timeout gets the server default', async () => {
    server.failWith({ code: 410, only: 'watch' });
    const raw = await kubectl([
      'get',
      '--raw',
      `${SERVICECIDRS_PATH}?watch=true&resourceVersion=${server.resourceVersion}`,
    ]);
    expect(raw.exitCode, raw.stderr).toBe(0);
    expect(JSON.parse(raw.stdout)).toMatchObject({ type: 'ERROR', object: { code: 410, reason: 'Expired' } });
    server.failWith(undefined);
    server.minRequestTimeoutSeconds = 1;
    const started = Date.now();
    const ok = await kubectl([
      'get',
      '--raw',
      `${SERVICECIDRS_PATH}?watch=true&resourceVersion=${server.resourceVersion}`,
    ]);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
  });

  it('bookmarks come every minute and once, 2 s before the deadline, carrying the current resourceVersion', async () => {
    const rv = server.advanceResourceVersion(3);
    const started = Date.now();
    const raw = await kubectl([
      'get',
      '--raw',
      `${SERVICECIDRS_PATH}?watch=true&resourceVersion=101&allowWatchBookmarks=true&timeoutSeconds=3`,
    ]);
    expect(raw.exitCode, raw.stderr).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(3_000);
    // Shorter than the minute: only the one before the deadline.
    expect(
      raw.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line)),
    ).toEqual([
      {
        type: 'BOOKMARK',
        object: expect.objectContaining({ metadata: { resourceVersion: rv, creationTimestamp: null } }),
      },
    ]);
  });

  it('serves ServiceCIDRs from v1beta1 only when told so (1.31-1.32 with the beta API), and none at all before', async () => {
    server.serviceCidrVersions = ['v1beta1'];
    const beta = await kubectl(['get', 'servicecidrs.v1beta1.networking.k8s.io', '-o', 'name']);
    expect(beta.exitCode, beta.stderr).toBe(0);
    expect(beta.stdout).toBe('servicecidr.networking.k8s.io/kubernetes');
    const resources = await kubectl(['api-resources', '--api-group=networking.k8s.io', '-o', 'wide']);
    expect(resources.stdout).toMatch(/^servicecidrs\s+networking\.k8s\.io\/v1beta1\s+false\s+ServiceCIDR/m);
    expect(resources.stdout).toMatch(/^ingresses\s+ing\s+networking\.k8s\.io\/v1\s+true\s+Ingress/m);
    const v1 = await kubectl(['get', '--raw', SERVICECIDRS_PATH]);
    expect(v1.exitCode).toBe(1);
    expect(v1.stderr).toContain('the server could not find the requested resource');

    server.serviceCidrVersions = [];
    const none = await kubectl(['api-resources', '--api-group=networking.k8s.io', '-o', 'name']);
    expect(none.stdout).not.toContain('servicecidrs');
    const gone = await kubectl(['get', 'servicecidrs']);
    expect(gone.exitCode).toBe(1);
    expect(gone.stderr).toContain(`the server doesn't have a resource type "servicecidrs"`);
  });

  it('serves ConfigMaps and Nodes: get, list (items without apiVersion/kind), selectors, watch', async () => {
    server.putConfigMap('kube-system', 'kubeadm-config', {
      ClusterConfiguration: 'networking:\n  serviceSubnet: 10.96.0.0/16\n',
    });
    server.putConfigMap('kube-system', 'other', { a: 'b' });
    server.putNode('k3s-server', {
      labels: { 'node-role.kubernetes.io/control-plane': 'true' },
      annotations: { 'k3s.io/node-args': '["server"]' },
      addresses: [{ type: 'InternalIP', address: '172.18.0.2' }],
    });
    server.putNode('k3s-agent', { annotations: { 'k3s.io/node-args': '["agent"]' } });

    const cm = await kubectl([
      'get',
      'cm',
      '-n',
      'kube-system',
      'kubeadm-config',
      '-o',
      'jsonpath={.data.ClusterConfiguration}',
    ]);
    expect(cm.exitCode, cm.stderr).toBe(0);
    expect(cm.stdout).toBe('networking:\n  serviceSubnet: 10.96.0.0/16');
    const byField = await kubectl([
      'get',
      'configmaps',
      '-n',
      'kube-system',
      '--field-selector',
      'metadata.name=kubeadm-config',
      '-o',
      'name',
    ]);
    expect(byField.stdout).toBe('configmap/kubeadm-config');
    const listed = server.requests.find((r) => r.path === '/api/v1/namespaces/kube-system/configmaps');
    expect(listed?.query.fieldSelector).toBe('metadata.name=kubeadm-config');
    const raw = JSON.parse((await kubectl(['get', '--raw', '/api/v1/namespaces/kube-system/configmaps'])).stdout) as {
      kind: string;
      items: Record<string, unknown>[];
    };
    expect(raw.kind).toBe('ConfigMapList');
    expect(raw.items.map((item) => [item.apiVersion, item.kind])).toEqual([
      [undefined, undefined],
      [undefined, undefined],
    ]);

    const servers = await kubectl(['get', 'nodes', '-l', 'node-role.kubernetes.io/control-plane', '-o', 'name']);
    expect(servers.exitCode, servers.stderr).toBe(0);
    expect(servers.stdout).toBe('node/k3s-server');
    const notServers = await kubectl(['get', 'no', '-l', '!node-role.kubernetes.io/control-plane', '-o', 'name']);
    expect(notServers.stdout).toBe('node/k3s-agent');
    const args = await kubectl([
      'get',
      'node',
      'k3s-server',
      '-o',
      'jsonpath={.metadata.annotations.k3s\\.io/node-args}',
    ]);
    expect(args.stdout).toBe('["server"]');
    const missing = await kubectl(['get', 'node', 'nope']);
    expect(missing.stderr).toContain('Error from server (NotFound): nodes "nope" not found');

    const watch = kubectlStream([
      'get',
      'nodes',
      '--watch',
      '-o',
      'name',
      '--field-selector',
      'metadata.name=k3s-agent',
    ]);
    await watch.waitForLines(1);
    server.putNode('k3s-agent', { annotations: { 'k3s.io/node-args': '["agent","--node-ip","172.18.0.3"]' } });
    server.putNode('k3s-other');
    await watch.waitForLines(2);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await watch.stop();
    expect(watch.lines).toEqual(['node/k3s-agent', 'node/k3s-agent']);
  });

  it('403 per resource, worded for its scope and namespace', async () => {
    server.forbid('configmaps', 'nodes');
    const cm = await kubectl(['get', 'configmaps', '-n', 'kube-system']);
    expect(cm.stderr.trim()).toBe(
      'Error from server (Forbidden): configmaps is forbidden: User "system:serviceaccount:route-controller:route-controller" cannot list resource "configmaps" in API group "" in the namespace "kube-system"',
    );
    const nodes = await kubectl(['get', 'nodes']);
    expect(nodes.stderr).toContain('cannot list resource "nodes" in API group "" at the cluster scope');
    expect((await kubectl(['get', 'servicecidrs'])).exitCode).toBe(0);
    server.allow('configmaps', 'nodes');
    expect((await kubectl(['get', 'nodes'])).exitCode).toBe(0);
  });

  it('serves a DaemonSet by name, its foreground deletion, and the NotFound and 403 a real server gives', async () => {
    const ns = ['-n', 'route-controller'];
    server.putDaemonSet('route-controller', 'route-controller');
    const got = await kubectl(['get', 'daemonset', 'route-controller', ...ns, '-o', 'json']);
    expect(got.exitCode, got.stderr).toBe(0);
    expect(JSON.parse(got.stdout)).toMatchObject({
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'route-controller', namespace: 'route-controller' },
    });
    server.deleteDaemonSet('route-controller', 'route-controller', 'Foreground');
    const deleting = await kubectl(['get', 'ds', 'route-controller', ...ns, '-o', 'json']);
    expect(JSON.parse(deleting.stdout).metadata).toMatchObject({
      deletionTimestamp: expect.any(String),
      finalizers: ['foregroundDeletion'],
    });
    server.deleteDaemonSet('route-controller', 'route-controller');
    // --raw: `get ds` would go on to ask for the namespace, which this server does not serve.
    const gone = await kubectl([
      'get',
      '--raw',
      '/apis/apps/v1/namespaces/route-controller/daemonsets/route-controller',
    ]);
    expect(gone.exitCode).toBe(1);
    expect(gone.stderr.trim()).toBe('Error from server (NotFound): daemonsets.apps "route-controller" not found');
    server.allowOnlyNames('daemonsets', 'another');
    const forbidden = await kubectl(['get', 'ds', 'route-controller', ...ns]);
    expect(forbidden.stderr.trim()).toBe(
      'Error from server (Forbidden): daemonsets.apps "route-controller" is forbidden: User "system:serviceaccount:route-controller:route-controller" cannot get resource "daemonsets" in API group "apps" in the namespace "route-controller"',
    );
  });

  it('a dry-run Service create with an invalid clusterIP gets the 422 of the version imitated', async () => {
    // From a manifest: kubectl sends JSON (`kubectl create service` would send protobuf, which this
    // server does not speak); without client-side validation, which would need the core OpenAPI schema.
    const create = (ip: string) =>
      kubectl(
        ['create', '--dry-run=server', '--validate=false', '-n', 'default', '-o', 'name', '-f', '-'],
        `apiVersion: v1\nkind: Service\nmetadata:\n  name: probe\nspec:\n  clusterIP: "${ip}"\n  ports:\n  - port: 443\n`,
      );
    server.version = '1.32';
    server.serviceCidrVersions = [];
    server.serviceClusterIpRange = { ipv4: '10.96.0.0/12' };
    const v4 = await create('0.0.0.0');
    expect(v4.exitCode).toBe(1);
    expect(v4.stderr.trim()).toBe(
      'The Service "probe" is invalid: spec.clusterIPs: Invalid value: []string{"0.0.0.0"}: failed to allocate IP 0.0.0.0: the provided IP (0.0.0.0) is not in the valid range. The range of valid IPs is 10.96.0.0/12',
    );
    const post = server.requests.find((r) => r.method === 'POST');
    expect(post?.query).toMatchObject({ dryRun: 'All', fieldManager: 'kubectl-create' });
    const v6 = await create('::');
    expect(v6.stderr.trim()).toBe(
      'The Service "probe" is invalid: spec.clusterIPs[0]: Invalid value: []string{"::"}: IPv6 is not configured on this cluster',
    );
    const inRange = await create('10.96.0.50');
    expect(inRange.exitCode, inRange.stderr).toBe(0);
    expect(inRange.stdout).toBe('service/probe');

    server.version = '1.34';
    server.serviceCidrVersions = ['v1'];
    expect((await create('0.0.0.0')).stderr).toContain(
      'Invalid value: ["0.0.0.0"]: failed to allocate IP 0.0.0.0: the provided IP (0.0.0.0) is not in the valid range. The range of valid IPs is 10.96.0.0/16',
    );
    server.version = '1.25';
    server.serviceCidrVersions = [];
    expect((await create('0.0.0.0')).stderr).toContain(
      'failed to allocate IP 0.0.0.0: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12',
    );
    server.version = '1.22';
    expect((await create('0.0.0.0')).exitCode).toBe(0);
    server.version = '1.33';
    server.dryRunWebhook = 'policy.example.com';
    expect((await create('0.0.0.0')).stderr).toContain(
      'Error from server (BadRequest): error when creating "STDIN": admission webhook "policy.example.com" does not support dry run',
    );
  });
});
