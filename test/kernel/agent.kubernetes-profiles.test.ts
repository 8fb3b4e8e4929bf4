import { type AgentProcess, httpGet, LAB, LoopLab } from '@route-controller/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readKubeProxyDrops } from '../../packages/backend-nft/src/kube-proxy.js';
import { agentCli, startAgent } from '../src/agent-bin.js';
import {
  ALL_SOURCES,
  type ClusterProfile,
  forbidding,
  KIND_132,
  KIND_134,
  k3sAgent,
  k3sServer,
  MINIKUBE_127,
  NONE_130,
  type ProfileRange,
  V1BETA1_132,
} from '../src/cluster-profiles.js';
import { FakeApiServer } from '../src/fake-apiserver.js';
import { type KubernetesApi, startKubernetesApi } from '../src/kubernetes-api.js';
import { describeKernel } from '../src/prerequisites.js';

/**
 * The agent in the loop lab with no SERVICE_CIDRS, against the test API server dressed as each
 * local cluster in turn: in every profile it ends the loop (the cluster with none of the sources
 * gets the warning, and the loop stays). One lab and one agent at a time; each agent removes its
 * rules on exit (CLEANUP_ON_EXIT), so the next profile starts from a node with nothing installed.
 *
 * The lab's node also holds kube-proxy's nftables chain cluster-ips-check with its drop of the lab's
 * Service range, as kube-proxy 1.33+ in nftables mode writes it, but not the base chain that jumps
 * to it: that would drop the loop by itself and hide what the agent does. The agent's start log,
 * probe and status must say kube-proxy already covers the node.
 */

const AGENT = 'http://127.0.0.1:9773';
const LAB_RANGE: ProfileRange = { ipv4: LAB.serviceCidr.ipv4, ipv6: LAB.serviceCidr.ipv6 };
/** With the rules missing, 10 pings to a stale ClusterIP bounce about 31 times each. */
const LOOPING = 200;

const KUBE_PROXY = `
table ip kube-proxy {
  set cluster-ips { type ipv4_addr; comment "Active ClusterIPs"; }
  chain cluster-ips-check {
    ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"
    ip daddr { ${LAB.serviceCidr.ipv4} } drop comment "Drop traffic to unallocated ClusterIPs"
  }
}
table ip6 kube-proxy {
  set cluster-ips { type ipv6_addr; comment "Active ClusterIPs"; }
  chain cluster-ips-check {
    ip6 daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"
    ip6 daddr { ${LAB.serviceCidr.ipv6} } drop comment "Drop traffic to unallocated ClusterIPs"
  }
}
`;

describeKernel('the agent in each local cluster profile, with no SERVICE_CIDRS', () => {
  let lab: LoopLab;
  let api: KubernetesApi;
  let agent: AgentProcess | undefined;

  beforeAll(async () => {
    lab = await LoopLab.create();
    await lab.node.must('nft', ['-f', '-'], KUBE_PROXY);
    api = await startKubernetesApi(lab.node);
  });

  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await api?.close();
    await lab?.destroy();
  });

  /** A fresh API server as `profile`, and an agent started against it; returns the agent. */
  async function start(profile: ClusterProfile, range: ProfileRange = LAB_RANGE): Promise<AgentProcess> {
    await stop();
    const server = new FakeApiServer();
    profile.apply(server, range);
    await api.serve(server);
    agent = startAgent(lab.node, {
      KUBECONFIG: api.kubeconfig,
      LISTEN_ADDRESS: '127.0.0.1:9773',
      RESYNC_INTERVAL: '30s',
      CLEANUP_ON_EXIT: 'true',
      ...profile.env,
    });
    return agent;
  }

  async function stop(): Promise<void> {
    if (!agent) return;
    const exit = await agent.stop('SIGTERM');
    expect(exit.exitCode, agent.dump()).toBe(0);
    agent = undefined;
  }

  /** The agent applies `cidrs` from `source`; then the loop is over (IPv4 always, IPv6 when given). */
  async function endsTheLoop(
    profile: ClusterProfile,
    source: string,
    cidrs: string,
    families: readonly ('ipv4' | 'ipv6')[] = ['ipv4'],
  ) {
    const running = await start(profile, profile === MINIKUBE_127 ? { ipv4: '10.96.0.0/12' } : LAB_RANGE);
    const found = await running.waitForLog(
      (line) =>
        line.msg === 'Service CIDRs found' &&
        line.source === source &&
        JSON.stringify(line.cidrs) === JSON.stringify(cidrs.split(', ')),
      20_000,
    );
    await running.waitForMessage('rules applied', 10_000);
    await running.waitUntilReady(10_000);
    for (const family of families) expect(await lab.measureLoop(family, 10), `${profile.name}: ${family}`).toBe(0);
    // What the line says in its fields: what the source read, and why the sources before it had nothing.
    const skipped = (found.skipped as { source: string; detail: string }[]).map((s) => `${s.source}: ${s.detail}`);
    return { running, from: { said: `${String(found.detail)}; skipped ${skipped.join('; ')}` } };
  }

  const DUAL = `${LAB.serviceCidr.ipv4}, ${LAB.serviceCidr.ipv6}`;

  /** A test whose agent ends with it (SIGTERM, which removes its rules), pass or fail. */
  const profileIt = (name: string, body: () => Promise<void>) =>
    it(name, async () => {
      try {
        await body();
      } finally {
        await stop();
      }
    });

  profileIt(
    'kind 1.32: kubeadm-config (v1beta4) answers; the start log, probe and status say kube-proxy covers it',
    async () => {
      const { running, from } = await endsTheLoop(KIND_132, 'kubeadm', DUAL, ['ipv4', 'ipv6']);
      expect(from.said).toContain('kube-system/kubeadm-config ClusterConfiguration networking.serviceSubnet');
      expect(from.said).toContain('skipped env: SERVICE_CIDRS is not set');
      expect(from.said).toContain('servicecidr: the ServiceCIDR API');
      const notice = String(
        (await running.waitForMessage('kube-proxy already drops unallocated ClusterIPs', 10_000)).notice,
      );
      expect(notice).toContain(`unallocated ClusterIPs in ${DUAL}`);
      expect(notice).toContain('every discovered Service CIDR included');
      expect(notice).toContain('route-controller installs its own rules all the same');

      const env = { KUBECONFIG: api.kubeconfig, ...KIND_132.env };
      const probe = await agentCli(lab.node, ['probe'], env);
      expect(probe.exitCode, probe.stderr).toBe(0);
      expect(probe.stdout).toContain(`Service CIDRs: ${DUAL} (from kubeadm:`);
      expect(probe.stdout).toContain('Note: kube-proxy (nftables mode) already drops forwarded packets');
      const status = await agentCli(lab.node, ['status', '--json'], env);
      expect(status.exitCode, status.stderr).toBe(0);
      const parsed = JSON.parse(status.stdout) as {
        source: string;
        discovery: { skipped: { source: string }[] };
        kubeProxy: { ipv4: string[]; ipv6: string[]; coversDiscovered: boolean; notice: string };
      };
      expect(parsed.source).toBe('kubeadm');
      expect(parsed.discovery.skipped.map((s) => s.source)).toEqual(['env', 'servicecidr']);
      expect(parsed.kubeProxy).toMatchObject({
        ipv4: [LAB.serviceCidr.ipv4],
        ipv6: [LAB.serviceCidr.ipv6],
        coversDiscovered: true,
      });
      // The reader itself, against the kernel: exactly kube-proxy's two chains.
      expect(await readKubeProxyDrops(lab.node.runner)).toEqual({
        ipv4: { kind: 'drops', cidrs: [LAB.serviceCidr.ipv4] },
        ipv6: { kind: 'drops', cidrs: [LAB.serviceCidr.ipv6] },
      });
    },
  );

  profileIt('kind 1.34: the ServiceCIDR v1 API answers', async () => {
    await endsTheLoop(KIND_134, 'servicecidr', DUAL);
  });

  profileIt('minikube on 1.27: kubeadm-config (v1beta3) answers 10.96.0.0/12', async () => {
    await endsTheLoop(MINIKUBE_127, 'kubeadm', '10.96.0.0/12');
  });

  profileIt('k3s 1.31 server: its own node-args answer', async () => {
    const { from } = await endsTheLoop(k3sServer(true), 'node-args', DUAL);
    expect(from.said).toContain('k3s server node k3s-server (k3s.io/node-args): --service-cidr');
  });

  profileIt('k3s 1.31 agent node: the server node answers', async () => {
    const { from } = await endsTheLoop(k3sAgent(true), 'node-args', DUAL);
    expect(from.said).toContain('node k3s-agent is a k3s agent node');
  });

  profileIt('1.32 with only v1beta1: the ServiceCIDRs from v1beta1 answer', async () => {
    const { from } = await endsTheLoop(V1BETA1_132, 'servicecidr', DUAL);
    expect(from.said).toContain('networking.k8s.io/v1beta1 servicecidrs');
  });

  profileIt('403 on servicecidrs: skipped with the reason, kubeadm-config answers', async () => {
    const { from } = await endsTheLoop(forbidding(KIND_134, ['servicecidrs'], 'kubeadm'), 'kubeadm', DUAL);
    expect(from.said).toContain('cannot list resource "servicecidrs"');
  });

  profileIt('403 on configmaps: skipped; the opt-in dry-run answers', async () => {
    const profile = forbidding(KIND_132, ['configmaps'], 'dry-run', { DISCOVERY_SOURCES: ALL_SOURCES });
    const { from } = await endsTheLoop(profile, 'dry-run', DUAL);
    expect(from.said).toContain('cannot get resource "configmaps"');
  });

  profileIt('403 on nodes (k3s): skipped; the opt-in dry-run answers', async () => {
    const profile = forbidding(k3sServer(true), ['nodes'], 'dry-run', { DISCOVERY_SOURCES: ALL_SOURCES });
    const { from } = await endsTheLoop(profile, 'dry-run', DUAL);
    expect(from.said).toContain('cannot get resource "nodes"');
  });

  profileIt('none of these: the warning naming every source, the loop stays, and the agent is not ready', async () => {
    const running = await start(NONE_130);
    const warning = await running.waitForMessage('no Service CIDRs found', 20_000);
    // Each source's reason in `skipped`, the fix in `hint`.
    const said = JSON.stringify(warning);
    expect(said).toContain('"source":"servicecidr","detail":"the ServiceCIDR API');
    expect(said).toContain('"source":"kubeadm","detail":"no kube-system/kubeadm-config ConfigMap');
    expect(said).toContain('"source":"node-args","detail":"node node-1 is not a k3s or RKE2 node');
    expect(warning.hint).toContain('Set SERVICE_CIDRS');
    const ready = await httpGet(lab.node, `${AGENT}/readyz`);
    expect(ready.status).toBe(503);
    expect(await lab.measureLoop('ipv4', 10)).toBeGreaterThan(LOOPING);
  });
});
