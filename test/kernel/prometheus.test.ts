import { type AgentProcess, LAB, LoopLab } from '@route-controller/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent } from '../src/agent-bin.js';
import { helmBinary } from '../src/helm.js';
import { type KubernetesApi, startKubernetesApi } from '../src/kubernetes-api.js';
import {
  alerts,
  type Dashboard,
  dashboardQueries,
  type RuleGroup,
  renderedDashboard,
  renderedRuleGroups,
  ruleFile,
  substitute,
} from '../src/monitoring.js';
import { describeKernel, PROMETHEUS_TOOLS } from '../src/prerequisites.js';
import { PrometheusServer } from '../src/prometheus-server.js';

/**
 * The chart's dashboard and alerts against a real Prometheus scraping a real agent: the agent (nft,
 * the servicecidr source from the test API server) in the loop lab's node, a Prometheus beside it on
 * that namespace's loopback, scraping every second with the labels the chart's ServiceMonitor gives
 * (job, node, namespace, pod) and evaluating the chart's rules. A pod dials stale ClusterIPs; then
 * every dashboard query and every alert expression is asked through Prometheus's HTTP API.
 */
const NODE = 'lab-node';
const JOB = 'route-controller';
const STALE_ALERT = 'RouteControllerStaleClusterIPDialled';
/** Queries of series from kube-state-metrics, which the lab does not run: asked, but empty here. */
const needsKubeStateMetrics = (expr: string) => /\bkube_\w+\{/.test(expr);
/** The labels of every `by (...)` of an expression. */
const groupedBy = (expr: string) =>
  [...expr.matchAll(/\bby \(([^)]*)\)/g)].flatMap((match) => (match[1] ?? '').split(',').map((label) => label.trim()));

describeKernel(
  "a real Prometheus scraping a real agent: the chart's dashboard queries and alert expressions",
  () => {
    let lab: LoopLab;
    let api: KubernetesApi;
    let agent: AgentProcess;
    let prometheus: PrometheusServer;
    let groups: RuleGroup[];
    let dashboard: Dashboard;
    const staleExpr = () => alerts(groups).find((rule) => rule.alert === STALE_ALERT)?.expr ?? '';

    beforeAll(async () => {
      await helmBinary();
      groups = await renderedRuleGroups();
      ({ dashboard } = await renderedDashboard());
      lab = await LoopLab.create();
      api = await startKubernetesApi(lab.node);
      api.server.add('kubernetes', [LAB.serviceCidr.ipv4, LAB.serviceCidr.ipv6]);
      agent = startAgent(lab.node, {
        KUBECONFIG: api.kubeconfig,
        NODE_NAME: NODE,
        DISCOVERY_SOURCES: 'servicecidr',
        FIREWALL_BACKEND: 'nft',
        RESYNC_INTERVAL: '1s',
        LISTEN_ADDRESS: '127.0.0.1:9771',
        METRICS_LISTEN_ADDRESS: '127.0.0.1:9772',
      });
      await agent.waitUntilReady(20_000);
      prometheus = await PrometheusServer.start(lab.node, {
        targets: ['127.0.0.1:9772'],
        job: JOB,
        labels: { node: NODE, namespace: 'route-controller', pod: 'route-controller-lab' },
        rules: ruleFile(groups),
      });
    }, 600_000);

    afterAll(async () => {
      await prometheus?.stop();
      await agent?.stop('SIGKILL');
      await api?.close();
      await lab?.destroy();
    });

    it('scrapes the agent, and loads every chart rule', async () => {
      await prometheus.until(`up{job="${JOB}"} == 1`, (samples) => samples.length === 1);
      const loaded = await prometheus.rules();
      expect(loaded.map((rule) => rule.name).sort()).toEqual(
        alerts(groups)
          .map((rule) => rule.alert)
          .sort(),
      );
    });

    it('the stale ClusterIP alert expression is empty before a pod dials a stale ClusterIP, and holds after', async () => {
      // Several scrapes of the counters at 0 first (2 s apart), so an increase can be seen.
      await prometheus.until(
        `count_over_time(route_controller_blocked_packets_total{job="${JOB}", family="ipv4"}[1m])`,
        (samples) => Number(samples[0]?.value[1] ?? 0) >= 3,
        30_000,
      );
      expect(await prometheus.query(staleExpr())).toEqual([]);
      for (const family of ['ipv4', 'ipv6'] as const) {
        expect(await lab.dial('pod', LAB.staleService[family], 5)).toEqual({ sent: 5, received: 0 });
      }
      const firing = await prometheus.until(staleExpr(), (samples) => samples.length > 0);
      expect(firing.map((sample) => sample.metric)).toEqual([
        { namespace: 'route-controller', pod: 'route-controller-lab', node: NODE },
      ]);
    });

    it('every dashboard query returns a series, for "All" and for the node; the node variable lists the node', async () => {
      const definition = dashboard.templating.list.find((variable) => variable.name === 'node')?.definition ?? '';
      const match = /^label_values\((.+), node\)$/.exec(definition)?.[1] ?? '';
      expect(await prometheus.labelValues('node', match)).toEqual([NODE]);
      const asked: string[] = [];
      for (const { panel, target } of dashboardQueries(dashboard)) {
        for (const node of ['.*', NODE]) {
          const expr = substitute(target.expr, node);
          if (needsKubeStateMetrics(expr)) {
            expect(await prometheus.query(expr), `${panel}: ${expr}`).toEqual([]);
            asked.push(`0 series  ${expr}`);
            continue;
          }
          // Asked again for a while if empty: a scrape that failed on a busy machine marks every
          // series stale until the next one. A misspelt metric stays empty, and fails.
          const samples = await prometheus.until(expr, (found) => found.length > 0).catch(() => []);
          asked.push(`${samples.length} series  ${expr}`);
          expect(samples.length, `${panel}: ${expr}`).toBeGreaterThan(0);
          // Every label the query groups by exists on what it returns (a misspelt one would be empty).
          for (const sample of samples) {
            for (const label of groupedBy(expr))
              expect(sample.metric[label], `${panel}: ${label} in ${expr}`).toBeTruthy();
          }
        }
      }
      console.log(`[prometheus] dashboard queries:\n${asked.join('\n')}`);
      // Only the memory limit's target needs kube-state-metrics.
      expect(dashboardQueries(dashboard).filter(({ target }) => needsKubeStateMetrics(target.expr))).toHaveLength(1);
      // Each query is a process in the namespace: seconds apiece on a busy machine.
    }, 300_000);

    it('every alert expression evaluates, and only the stale ClusterIP one holds; Prometheus evaluates every rule without error', async () => {
      for (const rule of alerts(groups)) {
        // Asked again for a while if not as expected: one failed scrape on a busy machine makes
        // `up == 0` hold for a moment. An expression that always (or never) holds still fails.
        const holds = rule.alert === STALE_ALERT;
        const samples = await prometheus
          .until(rule.expr, (found) => found.length > 0 === holds)
          .catch(() => prometheus.query(rule.expr));
        console.log(`[prometheus] ${rule.alert}: ${samples.length} series`);
        expect(samples.length > 0, `${rule.alert} holds: ${rule.expr}`).toBe(holds);
      }
      for (const rule of await prometheus.rules()) {
        expect(rule.health, `${rule.name}: ${rule.lastError}`).toBe('ok');
      }
    });
  },
  PROMETHEUS_TOOLS,
);
