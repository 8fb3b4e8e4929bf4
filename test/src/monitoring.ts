import { stringify } from 'yaml';
import { helmTemplate, type Manifest } from './helm.js';

/** A Prometheus rule as a rule group holds it. */
export interface Rule {
  readonly alert?: string;
  readonly record?: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}

export interface RuleGroup {
  readonly name: string;
  readonly rules: readonly Rule[];
}

/** The objects the chart renders with these values; throws with helm's refusal. */
export async function renderChart(values: unknown, namespace = 'route-controller'): Promise<Manifest[]> {
  const { result, manifests } = await helmTemplate(values, { namespace });
  if (result.exitCode !== 0) throw new Error(`helm template failed: ${result.stderr}`);
  return manifests;
}

/**
 * The rule groups of the chart's PrometheusRule, as rendered with `prometheusRule` (merged into
 * metrics.prometheusRule, enabled): what promtool and a Prometheus are given.
 */
export async function renderedRuleGroups(prometheusRule: Record<string, unknown> = {}): Promise<RuleGroup[]> {
  const manifests = await renderChart({ metrics: { prometheusRule: { enabled: true, ...prometheusRule } } });
  const rule = manifests.find((m) => m.kind === 'PrometheusRule') as
    | (Manifest & { spec: { groups: RuleGroup[] } })
    | undefined;
  if (!rule) throw new Error('the chart rendered no PrometheusRule');
  return rule.spec.groups;
}

/** Rule groups as a rule file (`promtool check rules`, Prometheus's rule_files). */
export function ruleFile(groups: readonly RuleGroup[]): string {
  return stringify({ groups });
}

/** The chart's alerts by name, from rendered groups. */
export function alerts(groups: readonly RuleGroup[]): Rule[] {
  return groups.flatMap((group) => group.rules.filter((rule) => rule.alert !== undefined));
}

/** The parts of a Grafana dashboard the tests look at. */
export interface DashboardTarget {
  readonly refId: string;
  readonly expr: string;
  readonly datasource?: { readonly type: string; readonly uid: string };
  readonly instant?: boolean;
}

export interface DashboardPanel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly gridPos: { readonly x: number; readonly y: number; readonly w: number; readonly h: number };
  readonly datasource?: { readonly type: string; readonly uid: string };
  readonly targets?: readonly DashboardTarget[];
}

export interface TemplateVariable {
  readonly name: string;
  readonly type: string;
  readonly query: unknown;
  readonly datasource?: { readonly type: string; readonly uid: string };
  readonly definition?: string;
  readonly includeAll?: boolean;
  readonly multi?: boolean;
  readonly allValue?: string;
}

export interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly schemaVersion: number;
  readonly templating: { readonly list: readonly TemplateVariable[] };
  readonly panels: readonly DashboardPanel[];
}

/** The dashboard as the chart's ConfigMap carries it (metrics.dashboard.enabled), and the ConfigMap. */
export async function renderedDashboard(
  dashboard: Record<string, unknown> = {},
): Promise<{ readonly configMap: Manifest & { data: Record<string, string> }; readonly dashboard: Dashboard }> {
  const manifests = await renderChart({ metrics: { dashboard: { enabled: true, ...dashboard } } });
  const configMap = manifests.find((m) => m.kind === 'ConfigMap') as
    | (Manifest & { data: Record<string, string> })
    | undefined;
  if (!configMap) throw new Error('the chart rendered no dashboard ConfigMap');
  const text = configMap.data['route-controller.json'];
  if (text === undefined) throw new Error('the dashboard ConfigMap holds no route-controller.json');
  return { configMap, dashboard: JSON.parse(text) as Dashboard };
}

/** Every query of the dashboard's panels, with where it is. */
export function dashboardQueries(dashboard: Dashboard): { readonly panel: string; readonly target: DashboardTarget }[] {
  return dashboard.panels.flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({ panel: `${panel.title} ${target.refId}`, target })),
  );
}

/**
 * A dashboard query as Grafana sends it: `$node` replaced by the node variable's value (`.*` for
 * "All", its allValue), the rate interval by a window that holds several scrapes.
 */
export function substitute(expr: string, node: string, rateInterval = '1m'): string {
  return expr.replaceAll('$__rate_interval', rateInterval).replaceAll('$node', node);
}
