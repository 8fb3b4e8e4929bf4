import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { helmBinary } from '../src/helm.js';
import { run } from '../src/image-exec.js';
import { type Dashboard, dashboardQueries, renderedDashboard, ruleFile, substitute } from '../src/monitoring.js';
import { describeWithTools, PROMETHEUS_TOOLS } from '../src/prerequisites.js';

/**
 * The Grafana dashboard's structure, as the chart's ConfigMap carries it. Grafana cannot run here:
 * this checks what a test can without it (rows, panels, targets, the datasource and node variables
 * and their use); test/kernel/prometheus.test.ts runs every query against a real Prometheus.
 */
const ROWS = [
  'Readiness per node',
  'Dropped packets to Service ranges',
  'Stale ClusterIPs and who dials them',
  'Drift repairs and change events',
  'Discovery and the Kubernetes API',
];
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JavaScript template.
const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };
/** Series selectors in PromQL: `name{matchers}`. */
const SELECTOR = /([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/g;

describe('the Grafana dashboard', () => {
  let dashboard: Dashboard;

  beforeAll(async () => {
    await helmBinary();
    ({ dashboard } = await renderedDashboard());
  }, 600_000);

  it('is one dashboard with a stable uid, a title and a schema version', () => {
    expect(dashboard.uid).toBe('route-controller');
    expect(dashboard.title).toBe('route-controller');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
  });

  it('has a datasource variable, and a node variable from that datasource with "All" as .*', () => {
    const [datasource, node, ...others] = dashboard.templating.list;
    expect(others).toEqual([]);
    expect(datasource).toMatchObject({ name: 'datasource', type: 'datasource', query: 'prometheus' });
    expect(node).toMatchObject({
      name: 'node',
      type: 'query',
      datasource: DATASOURCE,
      definition: 'label_values(route_controller_build_info{job="route-controller"}, node)',
      includeAll: true,
      multi: true,
      allValue: '.*',
    });
    expect((node?.query as { query?: string } | undefined)?.query).toBe(node?.definition);
  });

  it('has one row per concern, in order, each with panels', () => {
    const rows = dashboard.panels.flatMap((panel, i) => (panel.type === 'row' ? [{ title: panel.title, at: i }] : []));
    expect(rows.map((row) => row.title)).toEqual(ROWS);
    rows.forEach((row, i) => {
      const next = rows[i + 1]?.at ?? dashboard.panels.length;
      expect(next - row.at - 1, `panels under ${row.title}`).toBeGreaterThanOrEqual(1);
    });
  });

  it('queries the datasource variable in every panel and target', () => {
    const panels = dashboard.panels.filter((panel) => panel.type !== 'row' && panel.type !== 'text');
    expect(panels.length).toBeGreaterThanOrEqual(15);
    for (const panel of panels) {
      expect(panel.datasource, panel.title).toEqual(DATASOURCE);
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) {
        expect(target.datasource, `${panel.title} ${target.refId}`).toEqual(DATASOURCE);
        expect(target.expr.trim(), `${panel.title} ${target.refId}`).not.toBe('');
      }
      expect(new Set(panel.targets?.map((t) => t.refId)).size, panel.title).toBe(panel.targets?.length);
    }
  });

  it('selects every series by node with =~ (so "All" works), and ours by job="route-controller"', () => {
    for (const { panel, target } of dashboardQueries(dashboard)) {
      const selectors = [...target.expr.matchAll(SELECTOR)];
      expect(selectors.length, panel).toBeGreaterThan(0);
      for (const [, name, matchers] of selectors) {
        expect(matchers, `${panel}: ${name}`).toContain('node=~"$node"');
        // kube-state-metrics' series are not ours: they carry their own job.
        if (!name?.startsWith('kube_')) expect(matchers, `${panel}: ${name}`).toContain('job="route-controller"');
      }
      // No metric without a selector (it would ignore the node variable).
      const bare = target.expr.replace(SELECTOR, '').match(/\b(route_controller_\w+|process_\w+|up)\b/g);
      expect(bare, panel).toBeNull();
      expect(target.expr, panel).not.toMatch(/node="\$node"/);
    }
  });

  it('lays its panels out on the 24-column grid without overlaps, with unique ids', () => {
    const ids = dashboard.panels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const { title, gridPos } of dashboard.panels) {
      expect(gridPos.x + gridPos.w, title).toBeLessThanOrEqual(24);
      for (let x = gridPos.x; x < gridPos.x + gridPos.w; x += 1) {
        for (let y = gridPos.y; y < gridPos.y + gridPos.h; y += 1) {
          expect(cells.has(`${x},${y}`), `${title} overlaps at ${x},${y}`).toBe(false);
          cells.add(`${x},${y}`);
        }
      }
    }
  });
});

describeWithTools('the Grafana dashboard queries under promtool', PROMETHEUS_TOOLS, () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rc-dashboard-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('every query is valid PromQL once Grafana has substituted its variables', async () => {
    const { dashboard } = await renderedDashboard();
    const queries = dashboardQueries(dashboard);
    // As recording rules: promtool parses each expression.
    const rules = queries.map(({ target }, i) => ({
      record: `dashboard:query${i}`,
      expr: substitute(target.expr, '.*'),
    }));
    const file = join(dir, 'queries.yaml');
    writeFileSync(file, ruleFile([{ name: 'dashboard', rules }]));
    const result = await run('promtool', ['check', 'rules', file], { timeoutMs: 60_000 });
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain(`SUCCESS: ${queries.length} rules found`);
  });
});
