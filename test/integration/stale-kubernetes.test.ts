import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../packages/agent/src/config/config.js';
import { KubernetesConnection } from '../../packages/agent/src/kube-api/connection.js';
import { createLogger } from '../../packages/agent/src/observability/logger.js';
import { createPodNames, createStaleEvents } from '../../packages/agent/src/stale/kubernetes-features.js';
import { NodeEvents } from '../../packages/agent/src/stale/node-events.js';
import { NodePods } from '../../packages/agent/src/stale/pods.js';
import { FakeApiServer, kubeconfigFor } from '../src/fake-apiserver.js';

/**
 * Naming the pods behind stale ClusterIP sources, and StaleClusterIP Events, over the agent's real
 * HTTP transport (client-node's KubeConfig) against the test API server on loopback.
 */

interface LogLine {
  readonly level: string;
  readonly msg: string;
}

const NODE = 'kind-worker';
let server: FakeApiServer;
let dir: string;
let kubeconfig: string;
let logs: LogLine[];
const logger = () =>
  createLogger('debug', {
    write: (line: string) => {
      logs.push(JSON.parse(line) as LogLine);
    },
  });
const podLists = () => server.requests.filter((r) => r.path === '/api/v1/pods');

beforeEach(async () => {
  server = new FakeApiServer();
  const url = await server.listen();
  dir = await mkdtemp(join(tmpdir(), 'rc-stale-kube-'));
  kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, kubeconfigFor(url));
  logs = [];
  server.putPod('default', 'web-7f9c4', { nodeName: NODE, ips: ['10.244.0.7', 'fd00:10:244::7'] });
  server.putPod('kube-system', 'kube-proxy-x2x4q', { nodeName: NODE, ips: ['172.18.0.2'], hostNetwork: true });
  server.putPod('default', 'job-done', { nodeName: NODE, ips: ['10.244.0.9'], phase: 'Succeeded' });
  server.putPod('default', 'elsewhere', { nodeName: 'kind-worker2', ips: ['10.244.1.5'] });
});

afterEach(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

function pods(now: () => number = Date.now) {
  const log = logger();
  const connection = new KubernetesConnection(kubeconfig, log);
  return new NodePods({ connect: () => connection.connect(), nodeName: NODE, logger: log, now });
}

describe('naming the pods behind stale ClusterIP sources', () => {
  it("lists this node's pods once with spec.nodeName, and names only running pods of their own addresses", async () => {
    const names = await pods().names([
      '10.244.0.7',
      'fd00:10:244::7',
      '172.18.0.2',
      '10.244.0.9',
      '10.244.1.5',
      '172.18.0.1',
    ]);
    expect(Object.fromEntries(names)).toEqual({
      '10.244.0.7': 'default/web-7f9c4',
      'fd00:10:244::7': 'default/web-7f9c4',
    });
    expect(podLists()).toEqual([
      expect.objectContaining({
        method: 'GET',
        query: { fieldSelector: `spec.nodeName=${NODE}`, resourceVersion: '0' },
        status: 200,
      }),
    ]);
  });

  it('an address it does not name stays unnamed until the list is a minute old: it never triggers a list', async () => {
    let now = 0;
    const lookup = pods(() => now);
    await lookup.names(['10.244.0.7']);
    server.putPod('team-a', 'api-5d8b9', { nodeName: NODE, ips: ['10.244.0.11'] });
    // A pod dialling from an address that is no pod's (or not yet listed) asks again and again.
    for (now = 1_000; now < 60_000; now += 1_000) {
      expect(Object.fromEntries(await lookup.names(['10.244.0.7', '10.244.0.11', '172.18.0.1']))).toEqual({
        '10.244.0.7': 'default/web-7f9c4',
      });
    }
    expect(podLists()).toHaveLength(1);
    // The scheduled re-list (the list is a minute old) names the new pod, and drops the deleted one.
    server.deletePod('default', 'web-7f9c4');
    now = 60_000;
    expect(Object.fromEntries(await lookup.names(['10.244.0.7', '10.244.0.11']))).toEqual({
      '10.244.0.11': 'team-a/api-5d8b9',
    });
    expect(podLists()).toHaveLength(2);
  });

  it('without permission: addresses stay addresses, one warning naming the permission, a retry minutes later', async () => {
    let now = 0;
    const lookup = pods(() => now);
    server.forbid('pods');
    expect((await lookup.names(['10.244.0.7'])).size).toBe(0);
    now = 20_000;
    expect((await lookup.names(['10.244.0.7'])).size).toBe(0);
    expect(podLists()).toHaveLength(1);
    const warnings = logs.filter((line) => line.level === 'warn');
    expect(warnings).toEqual([
      expect.objectContaining({
        msg: 'cannot list pods to name stale ClusterIP sources; they are shown as addresses',
        reason: expect.stringMatching(/^HTTP 403: pods is forbidden: /),
        needs: expect.stringMatching(/^list on pods/),
      }),
    ]);
    server.allow('pods');
    now = 320_000;
    expect((await lookup.names(['10.244.0.7'])).get('10.244.0.7')).toBe('default/web-7f9c4');
  });

  it("through the agent's own lazy wiring: on with POD_LOOKUP=true, discovery and NODE_NAME; off by default", async () => {
    const log = logger();
    const connection = async () => new KubernetesConnection(kubeconfig, log);
    const on = createPodNames(
      loadConfig({ KUBECONFIG: kubeconfig, NODE_NAME: NODE, POD_LOOKUP: 'true' }),
      connection,
      log,
    );
    expect(Object.fromEntries(await on.names(['10.244.0.7']))).toEqual({ '10.244.0.7': 'default/web-7f9c4' });
    const lists = podLists().length;
    for (const env of [
      { KUBECONFIG: kubeconfig, NODE_NAME: NODE, POD_LOOKUP: 'true', SERVICE_CIDRS: '10.96.0.0/16' },
      { KUBECONFIG: kubeconfig, NODE_NAME: NODE, POD_LOOKUP: 'false' },
      // Off unless asked for: it needs a cluster-wide read of pods.
      { KUBECONFIG: kubeconfig, NODE_NAME: NODE },
      { KUBECONFIG: kubeconfig, POD_LOOKUP: 'true' },
    ]) {
      const off = createPodNames(loadConfig(env), connection, log);
      expect((await off.names(['10.244.0.7'])).size).toBe(0);
    }
    expect(podLists()).toHaveLength(lists);
  });
});

describe('StaleClusterIP Events on the Node', () => {
  const message =
    'stale ClusterIP 10.96.5.5 dialled by default/web-7f9c4 (10.244.0.7) (3 packets in the last minute): no Service owns this address';
  const nodeEvents = (at: () => Date) => {
    const log = logger();
    const connection = new KubernetesConnection(kubeconfig, log);
    return new NodeEvents({ connect: () => connection.connect(), nodeName: NODE, logger: log, now: at });
  };
  const eventRequests = () => server.requests.filter((r) => r.path.startsWith('/api/v1/namespaces/default/events'));

  it('creates a Warning Event on this node, in the default namespace, as kubelet does for nodes', async () => {
    await nodeEvents(() => new Date('2025-01-02T03:04:05Z')).record({ destination: '10.96.5.5', message, count: 1 });
    const [event] = server.events();
    expect(event).toMatchObject({
      kind: 'Event',
      metadata: { namespace: 'default', name: expect.stringMatching(/^kind-worker\.[0-9a-f]{16}$/) },
      involvedObject: { apiVersion: 'v1', kind: 'Node', name: NODE, uid: NODE },
      reason: 'StaleClusterIP',
      type: 'Warning',
      message,
      source: { component: 'route-controller', host: NODE },
      firstTimestamp: '2025-01-02T03:04:05.000Z',
      count: 1,
    });
  });

  it('bumps the count of the one Event per destination (a merge PATCH), and creates it anew once the server has lost it', async () => {
    let at = new Date('2025-01-02T03:04:05Z');
    const events = nodeEvents(() => at);
    await events.record({ destination: '10.96.5.5', message, count: 1 });
    await events.record({ destination: '10.96.0.99', message: 'other', count: 1 });
    at = new Date('2025-01-02T03:14:05Z');
    await events.record({ destination: '10.96.5.5', message: 'later', count: 7 });
    expect(server.events()).toHaveLength(2);
    expect(server.events()[0]).toMatchObject({
      message: 'later',
      count: 7,
      firstTimestamp: '2025-01-02T03:04:05.000Z',
      lastTimestamp: '2025-01-02T03:14:05.000Z',
    });
    expect(eventRequests().map((r) => `${r.method} ${r.status}`)).toEqual(['POST 201', 'POST 201', 'PATCH 200']);
    // The API server forgets Events after an hour: the bump finds none, and writes one anew.
    const [first] = server.events();
    server.deleteEvent('default', String(first?.metadata.name));
    await events.record({ destination: '10.96.5.5', message: 'again', count: 8 });
    expect(
      eventRequests()
        .slice(3)
        .map((r) => `${r.method} ${r.status}`),
    ).toEqual(['PATCH 404', 'POST 201']);
    expect(server.events().find((event) => event.message === 'again')).toMatchObject({ count: 8 });
  });

  it('without permission: one warning naming it, and no throw', async () => {
    server.forbid('events');
    const log = logger();
    const sink = createStaleEvents(
      loadConfig({ KUBECONFIG: kubeconfig, NODE_NAME: NODE, STALE_CLUSTERIP_EVENTS: 'true' }),
      async () => new KubernetesConnection(kubeconfig, log),
      log,
    );
    await sink.record({ destination: '10.96.5.5', message, count: 1 });
    await sink.record({ destination: '10.96.0.99', message, count: 1 });
    expect(server.events()).toEqual([]);
    expect(logs.filter((line) => line.level === 'warn')).toEqual([
      expect.objectContaining({
        msg: 'cannot write stale ClusterIP Events; the log still has them',
        reason: expect.stringMatching(/^HTTP 403: /),
        needs: expect.stringMatching(/^create and patch on events in the default namespace/),
      }),
    ]);
  });
});
