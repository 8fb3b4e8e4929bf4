import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Discovery, type DiscoveryChain, formatServiceCidrs } from '@route-controller/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../packages/agent/src/config/config.js';
import { createAgentContainer } from '../../packages/agent/src/container.js';
import { createLogger } from '../../packages/agent/src/observability/logger.js';
import { TOKENS } from '../../packages/agent/src/tokens.js';
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
import { FakeApiServer, kubeconfigFor, type RbacGrant } from '../src/fake-apiserver.js';
import { helmTemplate } from '../src/helm.js';

/**
 * The agent's discovery chain, as its composition root builds it (no SERVICE_CIDRS: every
 * Kubernetes source behind the one lazy import), against the test API server dressed as each
 * local cluster in turn. The kernel tests prove the same profiles with packets.
 */

const RANGE: ProfileRange = { ipv4: '10.96.0.0/16', ipv6: 'fd00:10:96::/112' };

let server: FakeApiServer;
let dir: string;
let kubeconfig: string;
const chains: DiscoveryChain[] = [];

beforeEach(async () => {
  server = new FakeApiServer();
  dir = await mkdtemp(join(tmpdir(), 'rc-profiles-'));
  kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, kubeconfigFor(await server.listen()));
});

afterEach(async () => {
  await Promise.all(chains.splice(0).map((chain) => chain.close()));
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

function chainFor(env: Readonly<Record<string, string>>): DiscoveryChain {
  const container = createAgentContainer(loadConfig({ KUBECONFIG: kubeconfig, LISTEN_ADDRESS: 'off', ...env }), {
    logger: createLogger('silent'),
  });
  const chain = container.resolve<DiscoveryChain>(TOKENS.Discovery);
  chains.push(chain);
  return chain;
}

async function discover(profile: ClusterProfile, range = RANGE, env: Record<string, string> = {}): Promise<Discovery> {
  profile.apply(server, range);
  return chainFor({ ...profile.env, ...env }).resolve();
}

const cidrs = (discovery: Discovery) =>
  discovery.kind === 'cidrs' ? formatServiceCidrs(discovery.cidrs) : discovery.kind;
const skipped = (discovery: Discovery) => discovery.skipped.map((s) => s.source);

describe('discovery in each local cluster, with no SERVICE_CIDRS', () => {
  it('kind 1.32: no ServiceCIDR API, so kubeadm-config (stored as v1beta4) answers', async () => {
    const discovery = await discover(KIND_132);
    expect(discovery).toMatchObject({ kind: 'cidrs', source: 'kubeadm' });
    expect(cidrs(discovery)).toBe('10.96.0.0/16, fd00:10:96::/112');
    expect(skipped(discovery)).toEqual(['env', 'servicecidr']);
    expect(discovery.skipped[1]?.detail).toContain('is not served by this cluster');
    // Only the one ConfigMap was asked for: one GET by name, from the watch cache, and no watch.
    const configmaps = server.requests.filter((r) => r.path.startsWith('/api/v1/namespaces/kube-system/configmaps'));
    expect(configmaps.map((r) => [r.method, r.path, r.query, r.read])).toEqual([
      ['GET', '/api/v1/namespaces/kube-system/configmaps/kubeadm-config', { resourceVersion: '0' }, 'cache'],
    ]);
    expect(server.openWatches).toBe(0);
  });

  it('kind 1.34: ServiceCIDR v1 answers, before kubeadm-config (which is never read)', async () => {
    const discovery = await discover(KIND_134);
    expect(discovery).toMatchObject({ kind: 'cidrs', source: 'servicecidr' });
    expect(cidrs(discovery)).toBe('10.96.0.0/16, fd00:10:96::/112');
    expect(server.requests.some((r) => r.path.includes('/configmaps'))).toBe(false);
  });

  it('minikube on 1.27: kubeadm-config stored as v1beta3, 10.96.0.0/12', async () => {
    const discovery = await discover(MINIKUBE_127, { ipv4: '10.96.0.0/12' });
    expect(discovery).toMatchObject({ kind: 'cidrs', source: 'kubeadm' });
    expect(cidrs(discovery)).toBe('10.96.0.0/12');
  });

  it('k3s 1.31 server with --service-cidr: its own node-args', async () => {
    const discovery = await discover(k3sServer(true), { ipv4: '10.45.0.0/16' });
    expect(discovery).toMatchObject({ kind: 'cidrs', source: 'node-args' });
    expect(cidrs(discovery)).toBe('10.45.0.0/16');
    expect(skipped(discovery)).toEqual(['env', 'servicecidr', 'kubeadm']);
    expect(discovery.skipped[2]?.detail).toBe('no kube-system/kubeadm-config ConfigMap (not a kubeadm cluster)');
  });

  it('k3s 1.31 server without --service-cidr: the k3s default 10.43.0.0/16, saying so', async () => {
    const discovery = await discover(k3sServer(false));
    expect(cidrs(discovery)).toBe('10.43.0.0/16');
    expect(discovery.kind === 'cidrs' && discovery.detail).toContain(
      'names no --service-cidr: the k3s default 10.43.0.0/16',
    );
  });

  it('k3s 1.31 agent node: reads the server nodes (control-plane label), with and without --service-cidr', async () => {
    const withFlag = await discover(k3sAgent(true), { ipv4: '10.45.0.0/16' });
    expect(withFlag).toMatchObject({ kind: 'cidrs', source: 'node-args' });
    expect(cidrs(withFlag)).toBe('10.45.0.0/16');
    expect(withFlag.kind === 'cidrs' && withFlag.detail).toContain('node k3s-agent is a k3s agent node');
    // Its own Node (one GET), then the control-plane Nodes (one list by label), both from the watch
    // cache; never a watch, least of all a label-selected one.
    const nodes = server.requests.filter((r) => r.path.startsWith('/api/v1/nodes'));
    expect(nodes.map((r) => [r.path, r.query, r.read])).toEqual([
      ['/api/v1/nodes/k3s-agent', { resourceVersion: '0' }, 'cache'],
      ['/api/v1/nodes', { labelSelector: 'node-role.kubernetes.io/control-plane', resourceVersion: '0' }, 'cache'],
    ]);
    expect(server.requests.filter((r) => r.watch)).toEqual([]);
  });

  it('k3s 1.31 agent node whose server names no --service-cidr: the default', async () => {
    expect(cidrs(await discover(k3sAgent(false)))).toBe('10.43.0.0/16');
  });

  it('1.32 with only v1beta1: the ServiceCIDRs from v1beta1', async () => {
    const discovery = await discover(V1BETA1_132);
    expect(discovery).toMatchObject({ kind: 'cidrs', source: 'servicecidr' });
    expect(discovery.kind === 'cidrs' && discovery.detail).toContain('networking.k8s.io/v1beta1 servicecidrs');
  });

  it('none of these: "none", every source with its reason (the warning of today)', async () => {
    const discovery = await discover(NONE_130);
    expect(discovery.kind).toBe('none');
    expect(discovery.skipped.map((s) => [s.source, s.detail])).toEqual([
      ['env', expect.stringContaining('SERVICE_CIDRS')],
      ['servicecidr', expect.stringContaining('is not served by this cluster')],
      ['kubeadm', 'no kube-system/kubeadm-config ConfigMap (not a kubeadm cluster)'],
      ['node-args', expect.stringContaining('node node-1 is not a k3s or RKE2 node')],
    ]);
  });

  it('none of these, with the dry-run source on: the API server names its range', async () => {
    const discovery = await discover(NONE_130, RANGE, { DISCOVERY_SOURCES: ALL_SOURCES });
    expect(discovery).toMatchObject({ kind: 'cidrs', source: 'dry-run' });
    expect(cidrs(discovery)).toBe('10.96.0.0/16, fd00:10:96::/112');
    const posts = server.requests.filter((r) => r.method === 'POST');
    expect(posts.map((r) => [r.path, r.query.dryRun])).toEqual([
      ['/api/v1/namespaces/route-controller/services', 'All'],
      ['/api/v1/namespaces/route-controller/services', 'All'],
    ]);
  });
});

describe('each 403, skipped with its reason', () => {
  it('servicecidrs forbidden on kind 1.34: skipped, kubeadm-config answers', async () => {
    const discovery = await discover(forbidding(KIND_134, ['servicecidrs'], 'kubeadm'));
    expect(discovery).toMatchObject({ kind: 'cidrs', source: 'kubeadm' });
    expect(discovery.skipped[1]?.detail).toContain(
      'cannot list resource "servicecidrs" in API group "networking.k8s.io" at the cluster scope',
    );
    expect(discovery.skipped[1]?.detail).toContain('it needs get, list and watch on servicecidrs');
  });

  it('configmaps forbidden on kind 1.32: skipped; with dry-run on, the API server answers', async () => {
    const off = await discover(forbidding(KIND_132, ['configmaps'], 'none'));
    expect(off.kind).toBe('none');
    expect(off.skipped.find((s) => s.source === 'kubeadm')?.detail).toContain(
      'cannot get resource "configmaps" in API group "" in the namespace "kube-system"',
    );
    await Promise.all(chains.splice(0).map((chain) => chain.close()));
    const on = await chainFor({ ...KIND_132.env, DISCOVERY_SOURCES: ALL_SOURCES }).resolve();
    expect(on).toMatchObject({ kind: 'cidrs', source: 'dry-run' });
    expect(cidrs(on)).toBe('10.96.0.0/16, fd00:10:96::/112');
  });

  it('nodes forbidden on k3s: skipped; services forbidden too: "none", naming create on services', async () => {
    const discovery = await discover(forbidding(k3sServer(true), ['nodes', 'services'], 'none'), RANGE, {
      DISCOVERY_SOURCES: ALL_SOURCES,
    });
    expect(discovery.kind).toBe('none');
    expect(discovery.skipped.find((s) => s.source === 'node-args')?.detail).toContain(
      'cannot get resource "nodes" in API group "" at the cluster scope',
    );
    expect(discovery.skipped.find((s) => s.source === 'dry-run')?.detail).toContain(
      'cannot create resource "services" in API group "" in the namespace "route-controller"',
    );
  });

  it('a Role with resourceNames: [kubeadm-config] and the verb get is enough: one GET by name', async () => {
    KIND_132.apply(server, RANGE);
    server.allowOnlyNames('configmaps', 'kubeadm-config');
    const chain = chainFor(KIND_132.env);
    expect(await chain.resolve()).toMatchObject({ kind: 'cidrs', source: 'kubeadm' });
    const configmaps = server.requests.filter((r) => r.path.includes('/configmaps'));
    expect(configmaps.map((r) => [r.method, r.status, r.watch])).toEqual([['GET', 200, false]]);
  });
});

describe("the chart's RBAC, and nothing more", () => {
  /** The rules the chart renders (default values, or these sources), as the test API server enforces them. */
  async function chartGrants(sources?: string[]): Promise<RbacGrant[]> {
    const values = { routeController: sources ? { discovery: { sources } } : {} };
    const { result, manifests } = await helmTemplate(values, { namespace: 'route-controller' });
    expect(result.exitCode, result.stderr).toBe(0);
    return manifests
      .filter((m) => m.kind === 'Role' || m.kind === 'ClusterRole')
      .flatMap((m) =>
        (m.rules as Omit<RbacGrant, 'namespace'>[]).map((rule) => ({
          ...rule,
          ...(m.kind === 'Role' ? { namespace: m.metadata.namespace } : {}),
        })),
      );
  }

  it('is all the agent needs in every profile: no request is refused, and only ServiceCIDRs are watched', async () => {
    const defaults = await chartGrants();
    for (const profile of [KIND_134, KIND_132, MINIKUBE_127, V1BETA1_132, k3sServer(true), k3sAgent(true), NONE_130]) {
      await Promise.all(chains.splice(0).map((chain) => chain.close()));
      await server.close();
      server = new FakeApiServer();
      await writeFile(kubeconfig, kubeconfigFor(await server.listen()));
      server.rbac = defaults;
      const discovery = await discover(profile);
      expect(discovery.kind === 'cidrs' ? discovery.source : 'none', profile.name).toBe(profile.answers);
      expect(
        server.requests.filter((r) => r.status === 403),
        profile.name,
      ).toEqual([]);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(
        server.requests.filter((r) => r.watch && !r.path.endsWith('/servicecidrs')),
        profile.name,
      ).toEqual([]);
    }
  });

  it('with the opt-in dry-run source, its Role is enough too', async () => {
    server.rbac = await chartGrants(['servicecidr', 'kubeadm', 'node-args', 'dry-run']);
    const discovery = await discover(NONE_130, RANGE, { DISCOVERY_SOURCES: ALL_SOURCES });
    expect(discovery).toMatchObject({ kind: 'cidrs', source: 'dry-run' });
    expect(server.requests.filter((r) => r.status === 403)).toEqual([]);
  });

  it('refuses what the chart does not grant (the check itself): a watch of Nodes or of kubeadm-config is 403', async () => {
    server.rbac = await chartGrants();
    const url = (await server.listen()) as string;
    const watchNodes = await fetch(
      `${url}/api/v1/nodes?watch=true&labelSelector=node-role.kubernetes.io/control-plane`,
    );
    expect(watchNodes.status).toBe(403);
    const watchConfig = await fetch(
      `${url}/api/v1/namespaces/kube-system/configmaps?watch=true&fieldSelector=metadata.name%3Dkubeadm-config`,
    );
    expect(watchConfig.status).toBe(403);
    const getConfig = await fetch(`${url}/api/v1/namespaces/kube-system/configmaps/kubeadm-config?resourceVersion=0`);
    expect(getConfig.status).toBe(404);
  });
});

describe('followed live, and only what changes', () => {
  it('a ServiceCIDR change reaches the chain through the one watch; kubeadm-config and Nodes are never watched', async () => {
    const chain = chainFor(KIND_134.env);
    KIND_134.apply(server, RANGE);
    expect(cidrs(await chain.resolve())).toBe('10.96.0.0/16, fd00:10:96::/112');
    let changes = 0;
    chain.subscribe(() => {
      changes += 1;
    });
    await waitFor(() => server.openWatches === 1);
    server.add('bigger', ['10.100.0.0/16']);
    await waitFor(() => changes > 0);
    expect(cidrs(await chain.resolve())).toBe('10.96.0.0/16, 10.100.0.0/16, fd00:10:96::/112');
    expect(server.requests.filter((r) => r.watch).map((r) => r.path)).toEqual([
      '/apis/networking.k8s.io/v1/servicecidrs',
    ]);
  });

  it('a k3s agent node and a kubeadm cluster open no watch at all', async () => {
    const k3s = chainFor(k3sAgent(true).env);
    k3sAgent(true).apply(server, { ipv4: '10.45.0.0/16' });
    expect(cidrs(await k3s.resolve())).toBe('10.45.0.0/16');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(server.requests.filter((r) => r.watch)).toEqual([]);
    expect(server.openWatches).toBe(0);
  });
});

async function waitFor(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const start = performance.now();
  while (!check()) {
    if (performance.now() - start > timeoutMs) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
