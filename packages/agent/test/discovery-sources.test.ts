import { ErrorCodes, formatServiceCidrs, type SourceReading } from '@route-controller/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { classifyDryRun, rangeIn } from '../src/discovery/dry-run.js';
import { DryRunSource } from '../src/discovery/dry-run-source.js';
import { kubeadmServiceSubnet } from '../src/discovery/kubeadm.js';
import { KubeadmConfigSource } from '../src/discovery/kubeadm-source.js';
import { primaryFamily, readNodeArgs, serviceCidrFlag } from '../src/discovery/node-args.js';
import { NodeArgsSource } from '../src/discovery/node-args-source.js';
import { ServiceCidrApiSource } from '../src/discovery/service-cidr-source.js';
import type { KubeObject } from '../src/kube-api/reflector.js';
import type { KubeRequest, KubeResponse } from '../src/kube-api/transport.js';
import { createLogger } from '../src/observability/logger.js';
import {
  dryRunInvalid,
  dryRunNoFamily,
  K3S_AGENT,
  K3S_SERVER_ORBSTACK,
  K3S_SERVER_PLAIN,
  K3S_SERVER_TWICE,
  KUBEADM_HAND_MADE,
  KUBEADM_V1BETA2_KIND_121,
  KUBEADM_V1BETA3_MINIKUBE_127,
  k3sAnnotations,
  kubeadmV1beta4Kind132,
  RKE2_SERVER,
} from './discovery-fixtures.js';
import { FakeTransport, list, ok, resources, status } from './kube-transport-fake.js';

const text = (reading: SourceReading) => (reading.kind === 'cidrs' ? formatServiceCidrs(reading.cidrs) : reading.kind);
const nodeWith = (name: string, annotations: Record<string, string>, extra: Partial<KubeObject> = {}): KubeObject => ({
  metadata: { name, resourceVersion: '1', annotations },
  ...extra,
});

describe('kubeadm-config: networking.serviceSubnet, whatever the stored version', () => {
  it('reads v1beta2 (with ClusterStatus), v1beta3 and v1beta4, never branching on apiVersion', () => {
    expect(kubeadmServiceSubnet({ data: KUBEADM_V1BETA2_KIND_121 })).toMatchObject({
      kind: 'subnet',
      cidrs: ['10.96.0.0/16'],
    });
    expect(kubeadmServiceSubnet({ data: KUBEADM_V1BETA3_MINIKUBE_127 })).toMatchObject({
      kind: 'subnet',
      cidrs: ['10.96.0.0/12'],
    });
    expect(kubeadmServiceSubnet({ data: kubeadmV1beta4Kind132() })).toMatchObject({
      kind: 'subnet',
      cidrs: ['10.96.0.0/16'],
    });
    // A version no one has written yet still has networking.serviceSubnet.
    const future = kubeadmV1beta4Kind132().ClusterConfiguration?.replace('kubeadm.k8s.io/v1beta4', 'kubeadm.k8s.io/v1');
    expect(kubeadmServiceSubnet({ data: { ClusterConfiguration: future } })).toMatchObject({ kind: 'subnet' });
  });

  it('dual stack is comma-separated; a bad entry is set aside, not fatal', () => {
    expect(kubeadmServiceSubnet({ data: kubeadmV1beta4Kind132('10.96.0.0/16,fd00:10:96::/112') })).toMatchObject({
      kind: 'subnet',
      cidrs: ['10.96.0.0/16', 'fd00:10:96::/112'],
      rejected: [],
    });
    expect(kubeadmServiceSubnet({ data: kubeadmV1beta4Kind132('10.96.0.0/16, nonsense') })).toMatchObject({
      cidrs: ['10.96.0.0/16'],
      rejected: ['nonsense'],
    });
  });

  it('says why when there is nothing to read: no key, no serviceSubnet, not YAML', () => {
    expect(kubeadmServiceSubnet({ data: {} })).toMatchObject({
      kind: 'none',
      detail: 'kubeadm-config has no ClusterConfiguration key',
    });
    expect(kubeadmServiceSubnet({ data: KUBEADM_HAND_MADE })).toMatchObject({
      kind: 'none',
      detail: 'its ClusterConfiguration names no networking.serviceSubnet',
    });
    expect(kubeadmServiceSubnet({ data: { ClusterConfiguration: 'networking: [unclosed' } })).toMatchObject({
      kind: 'invalid',
    });
    expect(kubeadmServiceSubnet({ data: { ClusterConfiguration: '- a list' } })).toMatchObject({ kind: 'invalid' });
  });
});

describe('k3s/RKE2 node arguments', () => {
  it('reads --service-cidr as k3s writes it (split), as --flag=value, repeated, and as comma lists', () => {
    expect(serviceCidrFlag(['server', '--service-cidr', '10.45.0.0/16'])).toEqual(['10.45.0.0/16']);
    expect(serviceCidrFlag(['server', '--service-cidr=10.45.0.0/16'])).toEqual(['10.45.0.0/16']);
    expect(serviceCidrFlag(['server', '--service-cidr', '10.45.0.0/16', '--service-cidr', 'fd00:45::/112'])).toEqual([
      '10.45.0.0/16',
      'fd00:45::/112',
    ]);
    expect(serviceCidrFlag(JSON.parse(K3S_SERVER_ORBSTACK) as string[])).toEqual([
      '192.168.194.128/25',
      'fd07:b51a:cc66:a:8000::/112',
    ]);
    // Never by position: "--service-cidr" followed by another flag has no value.
    expect(serviceCidrFlag(['server', '--service-cidr', '--cluster-init'])).toEqual([]);
  });

  it('tells servers from agents, k3s from RKE2, and what is not a k3s node', () => {
    expect(readNodeArgs(nodeWith('a', k3sAnnotations(K3S_SERVER_TWICE)))).toMatchObject({
      kind: 'args',
      distribution: 'k3s',
      role: 'server',
      serviceCidrs: ['10.5.0.0/16'],
    });
    expect(readNodeArgs(nodeWith('b', { 'rke2.io/node-args': RKE2_SERVER }))).toMatchObject({
      distribution: 'RKE2',
      role: 'server',
      serviceCidrs: ['100.73.0.0/16'],
    });
    expect(readNodeArgs(nodeWith('c', k3sAnnotations(K3S_AGENT)))).toMatchObject({ role: 'agent', serviceCidrs: [] });
    expect(readNodeArgs(nodeWith('d', {}))).toEqual({ kind: 'absent' });
    expect(readNodeArgs(nodeWith('e', { 'k3s.io/node-args': '["server",' }))).toMatchObject({ kind: 'invalid' });
    expect(readNodeArgs(nodeWith('f', { 'k3s.io/node-args': '{"a":1}' }))).toMatchObject({ kind: 'invalid' });
  });

  it("the default's family follows the node's first IP", () => {
    expect(
      primaryFamily(nodeWith('a', {}, { status: { addresses: [{ type: 'InternalIP', address: 'fd00::5' }] } })),
    ).toBe('ipv6');
    expect(primaryFamily(nodeWith('a', k3sAnnotations(K3S_SERVER_PLAIN, 'fd00::5,172.18.0.2')))).toBe('ipv6');
    expect(primaryFamily(nodeWith('a', k3sAnnotations(K3S_SERVER_PLAIN)))).toBe('ipv4');
  });
});

describe('the dry-run answer', () => {
  it('finds the range after the marker in the wording of 1.23, 1.27 and 1.34', () => {
    for (const version of ['1.23', '1.27', '1.34'] as const) {
      expect(classifyDryRun({ status: 422, body: dryRunInvalid(version, '0.0.0.0', '10.96.0.0/12') }, 'ipv4')).toEqual({
        kind: 'range',
        cidr: '10.96.0.0/12',
      });
      expect(classifyDryRun({ status: 422, body: dryRunInvalid(version, '::', 'fd00:10:96::/112') }, 'ipv6')).toEqual({
        kind: 'range',
        cidr: 'fd00:10:96::/112',
      });
    }
    expect(rangeIn('... The range of valid IPs is 10.96.0.0/16')).toBe('10.96.0.0/16');
    expect(rangeIn('... The range of valid IPs is nonsense')).toBeUndefined();
  });

  it('an answer without a range (1.22 and older accept; a future server may drop the range) is no answer', () => {
    expect(classifyDryRun({ status: 201, body: { kind: 'Service' } }, 'ipv4')).toMatchObject({ kind: 'no-answer' });
    expect(classifyDryRun({ status: 422, body: dryRunInvalid('1.34', '0.0.0.0', undefined) }, 'ipv4')).toMatchObject({
      kind: 'no-answer',
    });
  });

  it('"IPv6 is not configured" is a family that is not there; 403 and a dry-run-unaware webhook are refusals', () => {
    expect(classifyDryRun({ status: 422, body: dryRunNoFamily() }, 'ipv6')).toEqual({ kind: 'no-family' });
    expect(
      classifyDryRun(
        status(403, 'Forbidden', 'services is forbidden: User "x" cannot create resource "services"'),
        'ipv4',
      ),
    ).toMatchObject({ kind: 'refused', status: 403 });
    const webhook = classifyDryRun(
      status(400, 'BadRequest', 'admission webhook "policy.example.com" does not support dry run'),
      'ipv4',
    );
    expect(webhook).toMatchObject({ kind: 'refused', status: 400 });
    expect(webhook.kind === 'refused' && webhook.detail).toContain('sideEffects: None');
    expect(classifyDryRun(status(503, 'ServiceUnavailable', 'x'), 'ipv4')).toMatchObject({ kind: 'failed' });
  });
});

const logger = createLogger('silent');
const sources: { close(): Promise<void> }[] = [];
beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(async () => {
  await Promise.all(sources.splice(0).map((source) => source.close()));
  vi.useRealTimers();
});

function connectTo(transport: FakeTransport) {
  return () => ({ kind: 'ready' as const, transport });
}

/** A source built, started (as the composition root starts it) and remembered for closing. */
function started<T extends { start(): void; close(): Promise<void> }>(source: T): T {
  sources.push(source);
  source.start();
  return source;
}

const common = (transport: FakeTransport) => ({
  connect: connectTo(transport),
  logger,
  random: () => 0,
  now: () => Date.now(),
});

/** Every request as "METHOD path?query", for exact expectations. */
const wire = (transport: FakeTransport) => [
  ...transport.requests.map((r) => `${r.method} ${r.path}${query(r.query)}`),
  ...transport.watchRequests.map((r) => `WATCH ${r.path}${query(r.query)}`),
];
const query = (q: Readonly<Record<string, string>> | undefined) =>
  q && Object.keys(q).length > 0 ? `?${new URLSearchParams(q as Record<string, string>).toString()}` : '';

describe('the sources over a scripted API', () => {
  it('servicecidr: v1 when v1 lists servicecidrs, else v1beta1 when it does, decided by the resource lists', async () => {
    const versions =
      (v1: string[], v1beta1: string[] | undefined) =>
      (request: KubeRequest): KubeResponse => {
        if (request.path === '/apis/networking.k8s.io/v1') return resources(v1);
        if (request.path === '/apis/networking.k8s.io/v1beta1') {
          return v1beta1
            ? resources(v1beta1)
            : status(404, 'NotFound', 'the server could not find the requested resource');
        }
        return list(
          [{ metadata: { name: 'kubernetes', resourceVersion: '5' }, spec: { cidrs: ['10.96.0.0/16'] } }],
          '9',
        );
      };
    const v1 = new FakeTransport(versions(['ingresses', 'servicecidrs'], ['servicecidrs']));
    const a = started(new ServiceCidrApiSource(common(v1)));
    expect(text(await a.read())).toBe('10.96.0.0/16');
    expect(v1.lists()[0]?.path).toBe('/apis/networking.k8s.io/v1/servicecidrs');

    const beta = new FakeTransport(versions(['ingresses', 'networkpolicies'], ['ipaddresses', 'servicecidrs']));
    const b = started(new ServiceCidrApiSource(common(beta)));
    expect(text(await b.read())).toBe('10.96.0.0/16');
    expect(beta.lists()[0]?.path).toBe('/apis/networking.k8s.io/v1beta1/servicecidrs');
    expect(b.statuses()[0]?.resource).toBe('networking.k8s.io/v1beta1 servicecidrs');

    // 1.19-1.21: networking.k8s.io/v1beta1 exists, for Ingresses only.
    const old = new FakeTransport(versions(['ingresses'], ['ingresses']));
    const c = started(new ServiceCidrApiSource(common(old)));
    const reading = await c.read();
    expect(reading).toMatchObject({ kind: 'none' });
    expect(reading.detail).toContain('is not served by this cluster');
    expect(old.lists()).toHaveLength(0);
  });

  it('servicecidr: not served, it asks the discovery pair again only about every 10 minutes, whatever the reads', async () => {
    const transport = new FakeTransport(() =>
      status(404, 'NotFound', 'the server could not find the requested resource'),
    );
    const source = started(new ServiceCidrApiSource(common(transport)));
    expect((await source.read()).kind).toBe('none');
    for (let i = 0; i < 17; i += 1) {
      await vi.advanceTimersByTimeAsync(30_000); // the agent's resync reads the chain every 30 s
      await source.read();
    }
    expect(wire(transport)).toEqual(['GET /apis/networking.k8s.io/v1', 'GET /apis/networking.k8s.io/v1beta1']);
    await vi.advanceTimersByTimeAsync(90_000);
    expect(transport.requests).toHaveLength(4);
  });

  it('reading a source never starts anything: read() before start() asks nothing and says it was not started', async () => {
    const transport = new FakeTransport(() => list([], '1'));
    const idle = [
      new ServiceCidrApiSource(common(transport)),
      new KubeadmConfigSource(common(transport)),
      new NodeArgsSource({ ...common(transport), nodeName: 'n' }),
      new DryRunSource({ ...common(transport), namespace: 'ns' }),
    ];
    sources.push(...idle);
    for (const source of idle) {
      const reading = await source.read();
      expect(reading.kind, source.name).toBe('unavailable');
      expect(reading.detail).toContain('not started');
    }
    await vi.advanceTimersByTimeAsync(60_000);
    expect(transport.all).toBe(0);
  });

  it('servicecidr: 403 before any list is skipped ("none") with the reason, not a stop of the chain', async () => {
    const transport = new FakeTransport((request) =>
      request.path.endsWith('/v1')
        ? resources(['servicecidrs'])
        : status(
            403,
            'Forbidden',
            'servicecidrs.networking.k8s.io is forbidden: User "x" cannot list resource "servicecidrs"',
          ),
    );
    const source = started(new ServiceCidrApiSource(common(transport)));
    const reading = await source.read();
    expect(reading.kind).toBe('none');
    expect(reading.detail).toContain('cannot list resource "servicecidrs"');
    expect(reading.detail).toContain('get, list and watch on servicecidrs');
  });

  it('servicecidr: unreachable before any list stops the chain ("unavailable")', async () => {
    const transport = new FakeTransport(() => status(500, 'InternalError', 'etcdserver: request timed out'));
    const source = started(new ServiceCidrApiSource({ ...common(transport), firstListWaitMs: 500 }));
    const reading = await source.read();
    expect(reading.kind).toBe('unavailable');
    expect(reading.kind === 'unavailable' && reading.error.code).toBe(ErrorCodes.SourceFailed);
  });

  it('kubeadm: one GET of kube-system/kubeadm-config from the cache, no watch; read again about every 10 minutes', async () => {
    let data: Record<string, string> = kubeadmV1beta4Kind132();
    const transport = new FakeTransport(() =>
      ok({ metadata: { name: 'kubeadm-config', namespace: 'kube-system', resourceVersion: '5' }, data }),
    );
    const source = started(new KubeadmConfigSource(common(transport)));
    let notified = 0;
    source.subscribe(() => {
      notified += 1;
    });
    const reading = await source.read();
    expect(text(reading)).toBe('10.96.0.0/16');
    expect(reading.detail).toBe(
      'kube-system/kubeadm-config ClusterConfiguration networking.serviceSubnet 10.96.0.0/16',
    );
    expect(wire(transport)).toEqual(['GET /api/v1/namespaces/kube-system/configmaps/kubeadm-config?resourceVersion=0']);

    const before = notified;
    data = kubeadmV1beta4Kind132('10.100.0.0/16,fd00:100::/112');
    // Re-read after 10 minutes, shortened by up to a tenth at random (random() = 0 here: exactly 10).
    await vi.advanceTimersByTimeAsync(599_999);
    expect(transport.requests).toHaveLength(1);
    expect(notified).toBe(before);
    await vi.advanceTimersByTimeAsync(1);
    expect(transport.requests).toHaveLength(2);
    expect(notified).toBe(before + 1);
    expect(text(await source.read())).toBe('10.100.0.0/16, fd00:100::/112');
    expect(transport.watchRequests).toHaveLength(0);
  });

  it('kubeadm: no ConfigMap (404) is "none"; a failed re-read keeps the last answer and is retried with backoff', async () => {
    const missing = new FakeTransport(() => status(404, 'NotFound', 'configmaps "kubeadm-config" not found'));
    const none = started(new KubeadmConfigSource(common(missing)));
    expect(await none.read()).toMatchObject({
      kind: 'none',
      detail: 'no kube-system/kubeadm-config ConfigMap (not a kubeadm cluster)',
    });

    let down = false;
    const flaky = new FakeTransport(() =>
      down
        ? status(503, 'ServiceUnavailable', 'unavailable')
        : ok({ metadata: { name: 'kubeadm-config' }, data: kubeadmV1beta4Kind132() }),
    );
    const kept = started(new KubeadmConfigSource(common(flaky)));
    expect(text(await kept.read())).toBe('10.96.0.0/16');
    down = true;
    await vi.advanceTimersByTimeAsync(600_000 + 800 + 1_600);
    expect(flaky.requests).toHaveLength(4);
    const reading = await kept.read();
    expect(text(reading)).toBe('10.96.0.0/16');
    expect(reading.detail).toContain('keeping the last answer');
  });

  it('node-args: the own server node answers from one GET; without --service-cidr the k3s default, by family', async () => {
    const nodes: Record<string, KubeObject> = {
      srv: nodeWith('srv', k3sAnnotations(K3S_SERVER_PLAIN)),
      six: nodeWith('six', k3sAnnotations(K3S_SERVER_PLAIN, 'fd00::5')),
      flag: nodeWith('flag', k3sAnnotations('["server","--service-cidr","10.45.0.0/16"]')),
    };
    for (const [name, expected] of [
      ['srv', '10.43.0.0/16'],
      ['six', 'fd00:43::/112'],
      ['flag', '10.45.0.0/16'],
    ] as const) {
      const transport = new FakeTransport((request) => ok(nodes[request.path.split('/').at(-1) ?? '']));
      const source = started(new NodeArgsSource({ ...common(transport), nodeName: name }));
      const reading = await source.read();
      expect(text(reading), name).toBe(expected);
      if (name !== 'flag') expect(reading.detail).toContain('names no --service-cidr: the k3s default');
      expect(wire(transport)).toEqual([`GET /api/v1/nodes/${name}?resourceVersion=0`]);
    }
  });

  it('node-args: an agent node lists the control-plane nodes once (label existence, from the cache), never watches', async () => {
    const agent = nodeWith('worker', k3sAnnotations(K3S_AGENT));
    const server = nodeWith('server-0', k3sAnnotations('["server","--service-cidr","10.45.0.0/16"]'), {
      metadata: {
        name: 'server-0',
        resourceVersion: '2',
        labels: { 'node-role.kubernetes.io/control-plane': 'true' },
        annotations: k3sAnnotations('["server","--service-cidr","10.45.0.0/16"]'),
      },
    });
    const transport = new FakeTransport((request) =>
      request.query?.labelSelector === 'node-role.kubernetes.io/control-plane' ? list([server], '9') : ok(agent),
    );
    const source = started(new NodeArgsSource({ ...common(transport), nodeName: 'worker' }));
    const reading = await source.read();
    expect(text(reading)).toBe('10.45.0.0/16');
    expect(reading.detail).toContain('k3s server node server-0');
    expect(reading.detail).toContain('node worker is a k3s agent node');
    expect(wire(transport)).toEqual([
      'GET /api/v1/nodes/worker?resourceVersion=0',
      'GET /api/v1/nodes?labelSelector=node-role.kubernetes.io%2Fcontrol-plane&resourceVersion=0',
    ]);
    // Ten minutes of resyncs: one more read of both, still no watch.
    for (let i = 0; i < 20; i += 1) {
      await vi.advanceTimersByTimeAsync(30_000);
      await source.read();
    }
    expect(transport.requests).toHaveLength(4);
    expect(transport.watchRequests).toHaveLength(0);
  });

  it('node-args: not a k3s node, and no control-plane node with server arguments, is "none" with reasons', async () => {
    const transport = new FakeTransport((request) =>
      request.query?.labelSelector
        ? list([nodeWith('kind-control-plane', {})], '9')
        : ok(nodeWith('kind-control-plane', {})),
    );
    const source = started(new NodeArgsSource({ ...common(transport), nodeName: 'kind-control-plane' }));
    const reading = await source.read();
    expect(reading.kind).toBe('none');
    expect(reading.detail).toContain('node kind-control-plane is not a k3s or RKE2 node');
    expect(reading.detail).toContain('none of the 1 control-plane node(s) carries k3s or RKE2 server arguments');
  });

  it('without any configuration every source answers "none" at once', async () => {
    const none = () => ({ kind: 'none' as const, message: 'not in a pod, no KUBECONFIG and no ~/.kube/config' });
    const all = [
      started(new NodeArgsSource({ connect: none, logger, nodeName: undefined })),
      started(new NodeArgsSource({ connect: none, logger, nodeName: 'kind-worker' })),
      started(new KubeadmConfigSource({ connect: none, logger })),
      started(new ServiceCidrApiSource({ connect: none, logger })),
    ];
    for (const source of all) {
      const reading = await source.read();
      expect(reading.kind, source.name).toBe('none');
      expect(reading.detail).toContain('no Kubernetes configuration');
    }
  });

  it('dry-run: asks per family with dryRun=All once, not at every read; again about every 10 minutes; keeps the last answer through a fault', async () => {
    let down = false;
    const transport = new FakeTransport((request) => {
      if (down) return status(503, 'ServiceUnavailable', 'the server is currently unable to handle the request');
      const body = request.body as { spec: { clusterIP: string } };
      return body.spec.clusterIP === '::'
        ? { status: 422, body: dryRunNoFamily() }
        : { status: 422, body: dryRunInvalid('1.27', '0.0.0.0', '10.96.0.0/12') };
    });
    const source = started(new DryRunSource({ ...common(transport), namespace: 'route-controller' }));
    expect(text(await source.read())).toBe('10.96.0.0/12');
    expect(wire(transport)).toEqual([
      'POST /api/v1/namespaces/route-controller/services?dryRun=All',
      'POST /api/v1/namespaces/route-controller/services?dryRun=All',
    ]);
    // Read at every resync (30 s): asked again only after 10 minutes.
    for (let i = 0; i < 19; i += 1) {
      await vi.advanceTimersByTimeAsync(30_000);
      await source.read();
    }
    expect(transport.requests).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(transport.requests).toHaveLength(4);
    down = true;
    await vi.advanceTimersByTimeAsync(600_000);
    const kept = await source.read();
    expect(text(kept)).toBe('10.96.0.0/12');
    expect(kept.detail).toContain('keeping the last answer');
  });

  it('dry-run: no namespace, 1.22 (201), a forbidden create and a webhook are "none" with the reason', async () => {
    const noNamespace = started(new DryRunSource({ ...common(new FakeTransport(() => ok({}))), namespace: undefined }));
    expect(await noNamespace.read()).toMatchObject({
      kind: 'none',
      detail: expect.stringContaining('POD_NAMESPACE is not set'),
    });
    const accepted = started(
      new DryRunSource({ ...common(new FakeTransport(() => ({ status: 201, body: {} }))), namespace: 'ns' }),
    );
    expect((await accepted.read()).detail).toContain('1.22 and older');
    const forbidden = started(
      new DryRunSource({
        ...common(new FakeTransport(() => status(403, 'Forbidden', 'services is forbidden'))),
        namespace: 'ns',
      }),
    );
    expect((await forbidden.read()).detail).toContain('create on services');
    const webhook = started(
      new DryRunSource({
        ...common(new FakeTransport(() => status(400, 'BadRequest', 'admission webhook "w" does not support dry run'))),
        namespace: 'ns',
      }),
    );
    expect((await webhook.read()).detail).toContain('sideEffects: None');
    const never = started(
      new DryRunSource({ ...common(new FakeTransport(() => status(500, 'InternalError', 'x'))), namespace: 'ns' }),
    );
    expect((await never.read()).kind).toBe('unavailable');
  });
});
