import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse } from 'yaml';
import { helmBinary } from '../src/helm.js';
import { run } from '../src/image-exec.js';
import { alerts, type RuleGroup, renderedRuleGroups, ruleFile } from '../src/monitoring.js';
import { describeWithTools, PROMETHEUS_TOOLS } from '../src/prerequisites.js';

/**
 * The chart's alerts as the PrometheusRule renders them, checked by Prometheus's own promtool:
 * `check rules` (syntax, templates) and `test rules` (promtool/route-controller.test.yaml: each alert
 * fires on series that should fire it, `for` included, and stays quiet on series that should not).
 */
const UNIT_TESTS = fileURLToPath(new URL('./promtool/route-controller.test.yaml', import.meta.url));

interface UnitTests {
  tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
}

describeWithTools('the chart alerts under promtool', PROMETHEUS_TOOLS, () => {
  let dir: string;
  let groups: RuleGroup[];

  beforeAll(async () => {
    await helmBinary();
    dir = mkdtempSync(join(tmpdir(), 'rc-promtool-'));
    groups = await renderedRuleGroups();
  }, 600_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** `promtool test rules` of the unit tests against `rendered`, in a directory of their own. */
  async function unitTest(rendered: readonly RuleGroup[], name: string) {
    writeFileSync(join(dir, 'rules.yaml'), ruleFile(rendered));
    copyFileSync(UNIT_TESTS, join(dir, `${name}.test.yaml`));
    return run('promtool', ['test', 'rules', `${name}.test.yaml`], { cwd: dir, timeoutMs: 60_000 });
  }

  it('promtool check rules passes on the rendered groups, one rule per alert', async () => {
    writeFileSync(join(dir, 'check.yaml'), ruleFile(groups));
    const result = await run('promtool', ['check', 'rules', join(dir, 'check.yaml')], { timeoutMs: 60_000 });
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain(`SUCCESS: ${alerts(groups).length} rules found`);
  });

  it('promtool test rules: every alert fires where it should and stays quiet where it should not', async () => {
    const result = await unitTest(groups, 'chart');
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain('SUCCESS');
  });

  it('the unit tests cover every alert, each with a firing case and a quiet case', () => {
    const tests = parse(readFileSync(UNIT_TESTS, 'utf8')) as UnitTests;
    const cases = tests.tests.flatMap((test) => test.alert_rule_test ?? []);
    for (const alert of alerts(groups)) {
      const mine = cases.filter((c) => c.alertname === alert.alert);
      expect(
        mine.some((c) => c.exp_alerts.length > 0),
        `a case where ${alert.alert} fires`,
      ).toBe(true);
      expect(
        mine.some((c) => c.exp_alerts.length === 0),
        `a case where ${alert.alert} stays quiet`,
      ).toBe(true);
    }
  });

  it('an override reaches Prometheus: a longer `for` keeps the alert pending where the chart would fire', async () => {
    const longer = await renderedRuleGroups({ alerts: { RouteControllerAgentNotReady: { for: '1h' } } });
    const result = await unitTest(longer, 'longer-for');
    expect(result.exitCode).not.toBe(0);
    expect(result.stdout + result.stderr).toContain('alertname: RouteControllerAgentNotReady');
    // Only that alert's expectation fails.
    expect((result.stdout + result.stderr).match(/alertname: /g)).toHaveLength(1);
  });

  it('promtool check rules passes with overrides and rules of your own', async () => {
    const changed = await renderedRuleGroups({
      alerts: { RouteControllerStaleClusterIPDialled: { for: '30m', labels: { severity: 'info' } } },
      additionalRules: [
        { record: 'route_controller:blocked_packets:rate5m', expr: 'rate(route_controller_blocked_packets_total[5m])' },
      ],
      runbookURL: 'https://git.example.com/rc/README.md',
    });
    writeFileSync(join(dir, 'changed.yaml'), ruleFile(changed));
    const result = await run('promtool', ['check', 'rules', join(dir, 'changed.yaml')], { timeoutMs: 60_000 });
    expect(result.exitCode, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain(`SUCCESS: ${alerts(groups).length + 1} rules found`);
  });
});
