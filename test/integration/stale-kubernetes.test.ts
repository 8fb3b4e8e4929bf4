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

  it('lists again for an address it does not know, but not more than every 15 s, and at least every minute', async () => {
    let now = 0;
    const lookup = pods(() => now);
    await lookup.names(['10.244.0.7']);
    server.putPod('team-a', 'api-5d8b9', { nodeName: NODE, ips: ['10.244.0.11'] });
    now = 5_000;
    expect(Object.fromEntries(await lookup.names(['10.244.0.7', '10.244.0.11']))).toEqual({
      '10.244.0.7': 'default/web-7f9c4',
    });
    expect(podLists()).toHaveLength(1);
    now = 15_000;
    expect((await lookup.names(['10.244.0.11'])).get('10.244.0.11')).toBe('team-a/api-5d8b9');
    expect(podLists()).toHaveLength(2);
    // Known addresses are served from the list, until it is a minute old (addresses are reused).
    server.deletePod('default', 'web-7f9c4');
    now = 30_000;
    expect((await lookup.names(['10.244.0.7'])).get('10.244.0.7')).toBe('default/web-7f9c4');
    now = 75_000;
    expect((await lookup.names(['10.244.0.7'])).size).toBe(0);
    expect(podLists()).toHaveLength(3);
  });

  it('without permission: addresses stay addresses, one warning naming the permission, a retry minutes later', async () => {
    let now = 0;
    const lookup = pods(() => now);
    server.forbid('pods');
    expect((await lookup.names(['10.244.0.7'])).size).toBe(0);
    now = 20_000;
    expect((await lookup.names(['10.244.0.7'])).size).toBe(0);
    expect(podLists()).toHaveLength(1);
    const warnings = logs.filter((line) => line.level === 'warn').map((line) => line.msg);
    expect(warnings).toEqual([
      expect.stringMatching(
        /^cannot list the pods of node kind-worker to name the sources of stale ClusterIP traffic \(HTTP 403: pods is forbidden: .*; it needs get and list on pods/,
      ),
    ]);
    server.allow('pods');
    now = 320_000;
    expect((await lookup.names(['10.244.0.7'])).get('10.244.0.7')).toBe('default/web-7f9c4');
  });

  it("through the agent's own lazy wiring: on with Kubernetes discovery and NODE_NAME, off with SERVICE_CIDRS", async () => {
    const log = logger();
    const connection = async () => new KubernetesConnection(kubeconfig, log);
    const on = createPodNames(loadConfig({ KUBECONFIG: kubeconfig, NODE_NAME: NODE }), connection, log);
    expect(Object.fromEntries(await on.names(['10.244.0.7']))).toEqual({ '10.244.0.7': 'default/web-7f9c4' });
    const lists = podLists().length;
    for (const env of [
      { KUBECONFIG: kubeconfig, NODE_NAME: NODE, SERVICE_CIDRS: '10.96.0.0/16' },
      { KUBECONFIG: kubeconfig, NODE_NAME: NODE, POD_LOOKUP: 'false' },
      { KUBECONFIG: kubeconfig },
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

  it('creates a Warning Event on this node, in the default namespace, as kubelet does for nodes', async () => {
    const log = logger();
    const connection = new KubernetesConnection(kubeconfig, log);
    const events = new NodeEvents({
      connect: () => connection.connect(),
      nodeName: NODE,
      logger: log,
      now: () => new Date('2025-01-02T03:04:05Z'),
    });
    await events.record('10.96.5.5', message);
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

  it('without permission: one warning naming it, and no throw', async () => {
    server.forbid('events');
    const log = logger();
    const sink = createStaleEvents(
      loadConfig({ KUBECONFIG: kubeconfig, NODE_NAME: NODE, STALE_CLUSTERIP_EVENTS: 'true' }),
      async () => new KubernetesConnection(kubeconfig, log),
      log,
    );
    await sink.record('10.96.5.5', message);
    await sink.record('10.96.0.99', message);
    expect(server.events()).toEqual([]);
    expect(logs.filter((line) => line.level === 'warn').map((line) => line.msg)).toEqual([
      expect.stringMatching(
        /^cannot create StaleClusterIP Events on node kind-worker \(HTTP 403: .*; it needs create on events in the default namespace/,
      ),
    ]);
  });
});
