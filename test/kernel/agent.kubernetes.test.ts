import { type AgentProcess, httpGet, LAB, LoopLab } from '@route-controller/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { agentCli, startAgent } from '../src/agent-bin.js';
import { type FakeApiServer, SERVICECIDRS_PATH } from '../src/fake-apiserver.js';
import { type KubernetesApi, startKubernetesApi } from '../src/kubernetes-api.js';
import { describeKernel } from '../src/prerequisites.js';

/**
 * The agent, discovering Service CIDRs from ServiceCIDR objects only (no SERVICE_CIDRS), in the
 * loop lab's node namespace. The test API server runs in this process on a Unix socket; a
 * forwarder inside the node namespace makes it http://127.0.0.1:6443 there, as an API server
 * on a kind node would be. Each step proves its effect with packets, not only with logs.
 */

const AGENT = 'http://127.0.0.1:9771';
const METRICS = 'http://127.0.0.1:9772';
const LAB_CIDRS = [LAB.serviceCidr.ipv4, LAB.serviceCidr.ipv6];
/** With the rules missing, 10 pings to a stale ClusterIP bounce about 31 times each. */
const LOOPING = 200;

describeKernel('agent with Kubernetes discovery in the loop lab', () => {
  let lab: LoopLab;
  let api: KubernetesApi;
  let server: FakeApiServer;
  let agent: AgentProcess;
  let env: Record<string, string>;

  const lists = () => server.requests.filter((r) => r.path === SERVICECIDRS_PATH && r.query.watch === undefined);
  const metrics = async () => (await httpGet(lab.node, `${METRICS}/metrics`)).body;

  /** Waits for the next "rules applied" after log line `from`; returns ms from `since` to its timestamp. */
  async function applied(from: number, since: number, timeoutMs = 5_000): Promise<{ cidrs: unknown; ms: number }> {
    const line = await agent.waitForMessage('rules applied', timeoutMs, from);
    return { cidrs: line.cidrs, ms: Date.parse(line.time) - since };
  }

  beforeAll(async () => {
    lab = await LoopLab.create();
    api = await startKubernetesApi(lab.node);
    server = api.server;
    env = {
      KUBECONFIG: api.kubeconfig,
      RESYNC_INTERVAL: '30s',
      LISTEN_ADDRESS: '127.0.0.1:9771',
      METRICS_LISTEN_ADDRESS: '127.0.0.1:9772',
    };
    // One agent for the whole sequence below, so it is the suite's; it starts while the API fails.
    server.failWith({ code: 500 });
    agent = startAgent(lab.node, env);
  });

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await api?.close();
    await lab?.destroy();
  });

  /** The next log line with this constant message (and these fields), after log line `from`. */
  const said = (msg: string, fields: Record<string, unknown> = {}, timeoutMs = 10_000, from = 0) =>
    agent.waitForLog(
      (line) => line.msg === msg && Object.entries(fields).every(([key, value]) => line[key] === value),
      timeoutMs,
      from,
    );

  it('starts while the API server fails: loads the Kubernetes client, serves health, is not ready', async () => {
    await said('loading the kubernetes client for discovery', { why: 'SERVICE_CIDRS is not set' });
    await said('kubernetes api chosen', { server: api.url });
    await said('servicecidr api found', { resource: 'networking.k8s.io/v1 servicecidrs', server: api.url });
    await said('api unreachable', { level: 'warn', subject: 'ServiceCIDRs', status: 500 });
    await agent.waitForLine('Service CIDR source unavailable', { source: 'servicecidr' });
    expect((await httpGet(lab.node, `${AGENT}/healthz`)).status).toBe(200);
    const ready = await httpGet(lab.node, `${AGENT}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body).toContain('Service CIDR source unavailable');
    expect(await metrics()).toContain(
      'route_controller_kubernetes_api_state{source="servicecidr",state="unreachable"} 1',
    );
  });

  it('with no ServiceCIDR after the first list, the loop is still there, it says so, and it is not ready', async () => {
    const from = agent.logs.length;
    server.failWith(undefined);
    // The backoff after the 500s is 30 s at most.
    await said('listed', { subject: 'ServiceCIDRs', objects: 0 }, 35_000, from);
    const none = await agent.waitForMessage('no Service CIDRs found', 5_000, from);
    // The later sources were asked too, and said why they had nothing.
    expect(none.skipped).toEqual(
      expect.arrayContaining([
        { source: 'servicecidr', detail: expect.stringContaining('no ServiceCIDR objects in the cluster') },
        {
          source: 'kubeadm',
          detail: expect.stringContaining('no kube-system/kubeadm-config ConfigMap (not a kubeadm cluster)'),
        },
        { source: 'node-args', detail: expect.stringContaining('NODE_NAME is not set') },
      ]),
    );
    const ready = await httpGet(lab.node, `${AGENT}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body).toMatch(
      /^not protecting this node: no Service CIDRs found \(.*servicecidr: no ServiceCIDR objects in the cluster/,
    );
    expect(await lab.measureLoop('ipv4', 10)).toBeGreaterThan(LOOPING);
    const text = await metrics();
    expect(text).toContain('route_controller_kubernetes_api_state{source="servicecidr",state="synced"} 1');
    expect(text).toContain('route_controller_kubernetes_api_state{source="kubeadm",state="synced"} 1');
    expect(text).toContain('route_controller_kubernetes_servicecidr_objects 0');
  });

  it('a ServiceCIDR with the lab ranges ends the IPv4 and IPv6 loops within a second', async () => {
    const from = agent.logs.length;
    const at = Date.now();
    server.add('kubernetes', LAB_CIDRS);
    const rules = await applied(from, at);
    expect(rules.cidrs).toEqual([LAB.serviceCidr.ipv4, LAB.serviceCidr.ipv6]);
    // The watch, not the 30 s resync, carried it; the latency target is `pnpm bench`'s.
    expect(rules.ms).toBeLessThan(10_000);
    expect(await lab.measureLoop('ipv4', 10)).toBe(0);
    expect(await lab.measureLoop('ipv6', 10)).toBe(0);
    // The live Service still works.
    expect(await lab.pingLiveServiceFromPod('ipv4')).toEqual({ sent: 3, received: 3 });
  });

  it('/metrics and `status` show the source and the API connection', async () => {
    const text = await metrics();
    expect(text).toContain('route_controller_cidr_source_info{source="servicecidr"} 1');
    expect(text).toContain('route_controller_kubernetes_api_state{source="servicecidr",state="synced"} 1');
    expect(text).toContain('route_controller_kubernetes_servicecidr_objects 1');
    expect(text).toMatch(/route_controller_service_cidrs\{family="ipv6"\} 1/);

    const status = await agentCli(lab.node, ['status', '--json'], { KUBECONFIG: env.KUBECONFIG as string });
    expect(status.exitCode, status.stderr).toBe(0);
    const parsed = JSON.parse(status.stdout) as {
      source: string;
      discovery: { ipv4: string[]; ipv6: string[] };
      kubernetes: { source: string; state: string; objects: number; server: string }[];
      backends: { backend: string; installed?: { present: boolean } }[];
    };
    expect(parsed.source).toBe('servicecidr');
    expect(parsed.discovery).toMatchObject({ ipv4: [LAB.serviceCidr.ipv4], ipv6: [LAB.serviceCidr.ipv6] });
    expect(parsed.kubernetes).toEqual([
      expect.objectContaining({ source: 'servicecidr', state: 'synced', objects: 1, server: api.url }),
    ]);
    expect(parsed.backends.find((b) => b.backend === 'nft')?.installed?.present).toBe(true);

    const human = await agentCli(lab.node, ['status'], { KUBECONFIG: env.KUBECONFIG as string });
    expect(human.stdout).toContain(
      `Service CIDRs: ${LAB.serviceCidr.ipv4}, ${LAB.serviceCidr.ipv6} (from servicecidr:`,
    );
    expect(human.stdout).toContain(
      `Kubernetes API at ${api.url}, servicecidr networking.k8s.io/v1 servicecidrs: synced (1 object(s)`,
    );
  });

  it('a terminating ServiceCIDR keeps its rule', async () => {
    const from = agent.logs.length;
    server.markTerminating('kubernetes');
    await said('servicecidr terminating', { servicecidr: 'kubernetes' }, 5_000, from);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await lab.measureLoop('ipv4', 10)).toBe(0);
    expect(agent.logs.slice(from).some((line) => line.msg.startsWith('rules applied'))).toBe(false);
  });

  it('once the terminating ServiceCIDR is gone, its rule goes and the loop returns', async () => {
    const from = agent.logs.length;
    const at = Date.now();
    server.remove('kubernetes');
    const rules = await applied(from, at);
    expect(rules.cidrs).toEqual([]);
    // The watch, not the 30 s resync, carried it; the latency target is `pnpm bench`'s.
    expect(rules.ms).toBeLessThan(10_000);
    expect(await lab.measureLoop('ipv4', 10)).toBeGreaterThan(LOOPING);
  });

  it('after all watches drop and history is compacted, a new ServiceCIDR still arrives (relist)', async () => {
    const listsBefore = lists().length;
    const from = agent.logs.length;
    // Dropped, then the object is added and history compacted past it (other writes moved the
    // resourceVersion on too): resuming the watch is impossible, only a relist can see it.
    server.dropWatches();
    server.add('kubernetes-again', LAB_CIDRS);
    server.advanceResourceVersion(5);
    server.compact();
    // Through the backoff: it carries on from the 500s at start (it resets after 2 quiet minutes), 30 s at most.
    await applied(from, Date.now(), 35_000);
    expect(await lab.measureLoop('ipv4', 10)).toBe(0);
    expect(lists().length).toBeGreaterThan(listsBefore);
    // From what the agent had seen, from the watch cache: never a quorum read of etcd.
    expect(lists().map((r) => r.read)).not.toContain('etcd');
  });

  it('while the API server fails (503s, then gone) the rules stay; it comes back, and a change arrives', async () => {
    const from = agent.logs.length;
    server.failWith({ code: 503 });
    server.dropWatches();
    // After the backoff, which carries on from the earlier faults (30 s at most).
    const warning = await said('api unreachable', { level: 'warn', status: 503 }, 35_000, from);
    expect(warning).toMatchObject({ subject: 'ServiceCIDRs', keeping: 1 });
    expect(await metrics()).toContain(
      'route_controller_kubernetes_api_state{source="servicecidr",state="unreachable"} 1',
    );
    expect(await lab.measureLoop('ipv4', 10)).toBe(0);

    // The API server process goes away entirely.
    await server.close();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(await lab.measureLoop('ipv4', 10)).toBe(0);
    expect(await lab.measureLoop('ipv6', 10)).toBe(0);
    const ready = await httpGet(lab.node, `${AGENT}/readyz`);
    expect(ready.status).toBe(200);
    expect(agent.logs.slice(from).some((line) => line.msg.startsWith('rules applied'))).toBe(false);

    // It comes back with its data (the backoff is 30 s at most): the agent lists and watches again.
    server.failWith(undefined);
    await server.listen({ path: api.socketPath });
    await agent.waitForLog((line) => line.msg === 'listed' || line.msg === 'watch re-established', 35_000, from);
    await expect
      .poll(async () => metrics(), { timeout: 35_000 })
      .toContain('route_controller_kubernetes_api_state{source="servicecidr",state="synced"} 1');
    await expect.poll(() => server.watchesOf('servicecidrs'), { timeout: 35_000 }).toBe(1);
    const at = Date.now();
    const changed = agent.logs.length;
    server.update('kubernetes-again', (object) => {
      object.spec.cidrs = [LAB.serviceCidr.ipv4];
    });
    const rules = await applied(changed, at);
    expect(rules.cidrs).toEqual([LAB.serviceCidr.ipv4]);
    expect(await lab.measureLoop('ipv6', 10)).toBeGreaterThan(LOOPING);
    expect(await lab.measureLoop('ipv4', 10)).toBe(0);
    // The one watch of the agent: ServiceCIDRs. The chain reached kubeadm-config and the Nodes
    // while there was no ServiceCIDR, and read them; it watches neither.
    expect(server.openWatches).toBe(1);
    expect(server.requests.filter((r) => r.watch && r.path !== SERVICECIDRS_PATH)).toEqual([]);
  });

  it('the ServiceCIDR API no longer served: a warning saying so, and the rules stay (fail-static)', async () => {
    const from = agent.logs.length;
    server.serviceCidrVersions = [];
    server.dropWatches();
    const warning = await said('api not served', { level: 'warn' }, 35_000, from);
    expect(warning).toMatchObject({ subject: 'ServiceCIDRs', keeping: 1 });
    expect(await lab.measureLoop('ipv4', 10)).toBe(0);
    expect(await metrics()).toContain(
      'route_controller_kubernetes_api_state{source="servicecidr",state="not-found"} 1',
    );
  });

  it('stops within a second while it waits to look again (about 10 minutes), with the rules left in place', async () => {
    const exit = await agent.stop('SIGTERM');
    // It ended by itself, not by its 5 s stop deadline.
    expect(exit.exitCode).toBe(0);
    expect(agent.logs.some((line) => line.msg === 'stop deadline passed')).toBe(false);
    expect(await lab.measureLoop('ipv4', 10)).toBe(0);
  });
});
