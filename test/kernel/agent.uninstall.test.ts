import { type AgentProcess, LAB, LoopLab } from '@route-controller/lab';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { agentCli, startAgent } from '../src/agent-bin.js';
import { FakeApiServer } from '../src/fake-apiserver.js';
import { type KubernetesApi, startKubernetesApi } from '../src/kubernetes-api.js';
import { describeKernel } from '../src/prerequisites.js';

/**
 * The uninstall check with a real agent in the loop lab: at SIGTERM the agent reads its own
 * DaemonSet from the test API server and removes its rules only when that DaemonSet is going away,
 * whatever else stops it (a rolling update) keeping them. SERVICE_CIDRS is set, as with a chart
 * given explicit CIDRs: the API is used for this check alone. Each outcome is proven on the node's
 * firewall and with packets.
 */

const SERVICE_CIDRS = `${LAB.serviceCidr.ipv4},${LAB.serviceCidr.ipv6}`;
const NAMESPACE = 'route-controller';
const NAME = 'route-controller';
const LISTEN_ADDRESS = '127.0.0.1:9771';

describeKernel('agent: uninstalled or rolled, told apart at SIGTERM', () => {
  let lab: LoopLab;
  let api: KubernetesApi;
  let clean: string;

  beforeAll(async () => {
    lab = await LoopLab.create();
    api = await startKubernetesApi(lab.node);
    clean = await lab.nodeFirewall();
  });
  afterAll(async () => {
    await api?.close();
    await lab?.destroy();
  });
  beforeEach(async () => {
    // A fresh cluster holding the DaemonSet, and the Role the chart grants: get on that one name.
    const server = new FakeApiServer();
    server.putDaemonSet(NAMESPACE, NAME);
    server.allowOnlyNames('daemonsets', NAME);
    await api.serve(server);
    await agentCli(lab.node, ['cleanup']);
  });

  /** An agent with the chart's DAEMONSET_NAME, its rules in place and its DaemonSet seen. */
  async function started(env: Record<string, string> = {}): Promise<AgentProcess> {
    const agent = startAgent(lab.node, {
      SERVICE_CIDRS,
      KUBECONFIG: api.kubeconfig,
      DAEMONSET_NAME: NAME,
      POD_NAMESPACE: NAMESPACE,
      LISTEN_ADDRESS,
      ...env,
    });
    await agent.waitUntilReady(15_000);
    return agent;
  }

  async function stopped(agent: AgentProcess): Promise<void> {
    expect((await agent.stop('SIGTERM')).exitCode, agent.dump()).toBe(0);
  }

  const installed = async () => (await lab.nodeFirewall()) !== clean;

  it('the DaemonSet in place (a rolling update, a drain, a deleted pod): keeps the rules, no gap', async () => {
    const agent = await started();
    await agent.waitForMessage('own daemonset seen');
    await stopped(agent);
    expect(agent.logs.find((line) => line.msg === 'stop decided')).toMatchObject({ remove: false });
    expect(await installed()).toBe(true);
    expect(await lab.measureLoop('ipv4', 3)).toBe(0);
  });

  it('the DaemonSet deleted (helm uninstall: background propagation, the API answers 404): removes the rules', async () => {
    const agent = await started();
    await agent.waitForMessage('own daemonset seen');
    api.server.deleteDaemonSet(NAMESPACE, NAME, 'Background');
    await stopped(agent);
    expect(agent.logs.find((line) => line.msg === 'rules removed')).toBeDefined();
    expect(await lab.nodeFirewall()).toBe(clean);
    expect(await lab.measureLoop('ipv4', 3)).toBeGreaterThan(20);
  });

  it('the DaemonSet being deleted (kubectl delete --cascade=foreground: a deletionTimestamp): removes the rules', async () => {
    const agent = await started();
    await agent.waitForMessage('own daemonset seen');
    api.server.deleteDaemonSet(NAMESPACE, NAME, 'Foreground');
    await stopped(agent);
    expect(await lab.nodeFirewall()).toBe(clean);
  });

  it("the grant withdrawn after it was seen (helm deletes the chart's Role right after the DaemonSet): removes the rules", async () => {
    const agent = await started();
    await agent.waitForMessage('own daemonset seen');
    api.server.deleteDaemonSet(NAMESPACE, NAME, 'Background');
    api.server.forbid('daemonsets');
    await stopped(agent);
    expect(agent.logs.find((line) => line.msg === 'stop decided')).toMatchObject({
      remove: true,
      found: { kind: 'refused', status: 403 },
    });
    expect(await lab.nodeFirewall()).toBe(clean);
  });

  it('the API down at SIGTERM: keeps the rules (fail-static) and says why', async () => {
    const agent = await started();
    await agent.waitForMessage('own daemonset seen');
    await api.server.close();
    await stopped(agent);
    expect(agent.logs.find((line) => line.msg === 'stop decided')).toMatchObject({
      remove: false,
      found: { kind: 'unknown' },
    });
    expect(await installed()).toBe(true);
    expect(await lab.measureLoop('ipv4', 3)).toBe(0);
  });

  it('a DaemonSet it never saw (forbidden from the start) is never taken for gone: keeps the rules', async () => {
    api.server.forbid('daemonsets');
    const agent = await started();
    await agent.waitForMessage('own daemonset not seen');
    await stopped(agent);
    expect(agent.logs.find((line) => line.msg === 'stop decided')).toMatchObject({ remove: false });
    expect(await installed()).toBe(true);
  });
});
