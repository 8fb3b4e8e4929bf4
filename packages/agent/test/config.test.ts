import { ErrorCodes, MAX_CIDRS_PER_FAMILY, type RouteControllerError } from '@route-controller/core';
import { describe, expect, it } from 'vitest';
import { InvalidSettingsError, loadConfig } from '../src/config/config.js';
import { formatDuration, parseDuration } from '../src/config/duration.js';

/** The problems loadConfig refused the input with; fails the test if it accepted it. */
function configProblems(env: Record<string, string>, flags = {}): readonly RouteControllerError[] {
  try {
    loadConfig(env, flags);
  } catch (error) {
    if (error instanceof InvalidSettingsError) return error.problems;
    throw error;
  }
  throw new Error('loadConfig accepted the input');
}

function configError(env: Record<string, string>, flags = {}): RouteControllerError {
  const problems = configProblems(env, flags);
  expect(problems).toHaveLength(1);
  return problems[0] as RouteControllerError;
}

describe('loadConfig', () => {
  it('has sensible defaults', () => {
    expect(loadConfig({})).toEqual({
      serviceCidrs: undefined,
      backend: 'auto',
      action: 'drop',
      resyncIntervalMs: 30_000,
      logLevel: 'info',
      cleanupOnExit: false,
      listen: { host: '0.0.0.0', port: 9771 },
      // As kube-proxy: health on every address for the kubelet, metrics on loopback only.
      metricsListen: { host: '127.0.0.1', port: 9772 },
      kubeconfig: undefined,
      iptablesLockWaitSeconds: 5,
      discoverySources: ['servicecidr', 'kubeadm', 'node-args'],
      nodeName: undefined,
      podNamespace: undefined,
      podLookup: false,
      staleEvents: false,
      daemonSet: undefined,
    });
  });

  it('reads every variable', () => {
    const config = loadConfig({
      SERVICE_CIDRS: '10.96.0.0/12',
      FIREWALL_BACKEND: 'iptables-legacy',
      BLOCK_ACTION: 'reject',
      RESYNC_INTERVAL: '2s',
      LOG_LEVEL: 'debug',
      CLEANUP_ON_EXIT: 'true',
      LISTEN_ADDRESS: '127.0.0.1:9000',
      KUBECONFIG: '/etc/kube/config',
      IPTABLES_LOCK_WAIT: '30s',
      METRICS_LISTEN_ADDRESS: '0.0.0.0:9773',
      DISCOVERY_SOURCES: 'dry-run,servicecidr',
      NODE_NAME: 'kind-worker2',
      POD_NAMESPACE: 'route-controller',
      POD_LOOKUP: 'false',
      DAEMONSET_NAME: 'route-controller',
    });
    expect(config).toEqual({
      serviceCidrs: '10.96.0.0/12',
      backend: 'iptables-legacy',
      action: 'reject',
      resyncIntervalMs: 2000,
      logLevel: 'debug',
      cleanupOnExit: true,
      listen: { host: '127.0.0.1', port: 9000 },
      metricsListen: { host: '0.0.0.0', port: 9773 },
      kubeconfig: '/etc/kube/config',
      iptablesLockWaitSeconds: 30,
      // Always in their fixed order, whatever the order written.
      discoverySources: ['servicecidr', 'dry-run'],
      nodeName: 'kind-worker2',
      podNamespace: 'route-controller',
      podLookup: false,
      staleEvents: false,
      daemonSet: { namespace: 'route-controller', name: 'route-controller' },
    });
    expect(loadConfig({ STALE_CLUSTERIP_EVENTS: 'true', NODE_NAME: 'kind-worker2' }).staleEvents).toBe(true);
  });

  it('takes health and metrics on one port when they cannot collide: distinct hosts, or one of them off', () => {
    expect(
      loadConfig({ LISTEN_ADDRESS: '127.0.0.1:9771', METRICS_LISTEN_ADDRESS: '127.0.0.2:9771' }).metricsListen,
    ).toEqual({ host: '127.0.0.2', port: 9771 });
    expect(loadConfig({ LISTEN_ADDRESS: 'off', METRICS_LISTEN_ADDRESS: ':9771' }).metricsListen).toEqual({
      host: '0.0.0.0',
      port: 9771,
    });
    expect(loadConfig({ METRICS_LISTEN_ADDRESS: '127.0.0.1:9772' }).metricsListen).toEqual({
      host: '127.0.0.1',
      port: 9772,
    });
  });

  it('lets flags win over the environment', () => {
    expect(loadConfig({ BLOCK_ACTION: 'reject' }, { action: 'drop' }).action).toBe('drop');
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ FIREWALL_BACKEND: '' }).backend).toBe('auto');
  });

  it('parses listen addresses', () => {
    expect(loadConfig({ LISTEN_ADDRESS: ':8080' }).listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(loadConfig({ LISTEN_ADDRESS: '[::1]:8080' }).listen).toEqual({ host: '::1', port: 8080 });
    expect(loadConfig({ LISTEN_ADDRESS: 'off' }).listen).toBeUndefined();
    expect(loadConfig({ METRICS_LISTEN_ADDRESS: 'off' }).metricsListen).toBeUndefined();
    expect(loadConfig({ METRICS_LISTEN_ADDRESS: ':9772' }).metricsListen).toEqual({ host: '0.0.0.0', port: 9772 });
  });

  const bad: [string, Record<string, string>, string, string][] = [
    [
      'FIREWALL_BACKEND',
      { FIREWALL_BACKEND: 'pf' },
      ErrorCodes.InvalidConfig,
      'auto, nft, iptables-nft, iptables-legacy',
    ],
    [
      'FIREWALL_BACKEND',
      { FIREWALL_BACKEND: 'NFT' },
      ErrorCodes.InvalidConfig,
      'auto, nft, iptables-nft, iptables-legacy',
    ],
    ['BLOCK_ACTION', { BLOCK_ACTION: 'accept' }, ErrorCodes.InvalidConfig, 'drop, reject'],
    ['RESYNC_INTERVAL', { RESYNC_INTERVAL: '30' }, ErrorCodes.InvalidConfig, 'such as 30s'],
    ['RESYNC_INTERVAL', { RESYNC_INTERVAL: '10ms' }, ErrorCodes.InvalidConfig, 'between 100ms and 24h'],
    ['LOG_LEVEL', { LOG_LEVEL: 'verbose' }, ErrorCodes.InvalidConfig, 'info'],
    ['CLEANUP_ON_EXIT', { CLEANUP_ON_EXIT: 'maybe' }, ErrorCodes.InvalidConfig, 'true or false'],
    ['CLEANUP_ON_EXIT', { CLEANUP_ON_EXIT: 'yes' }, ErrorCodes.InvalidConfig, 'true or false'],
    ['LISTEN_ADDRESS', { LISTEN_ADDRESS: 'localhost' }, ErrorCodes.InvalidConfig, 'host:port'],
    ['LISTEN_ADDRESS', { LISTEN_ADDRESS: ':99999' }, ErrorCodes.InvalidConfig, 'host:port'],
    ['METRICS_LISTEN_ADDRESS', { METRICS_LISTEN_ADDRESS: '9772' }, ErrorCodes.InvalidConfig, 'host:port'],
    [
      'IPTABLES_LOCK_WAIT',
      { IPTABLES_LOCK_WAIT: '500ms' },
      ErrorCodes.InvalidConfig,
      'whole seconds between 1s and 5m',
    ],
    ['IPTABLES_LOCK_WAIT', { IPTABLES_LOCK_WAIT: '10m' }, ErrorCodes.InvalidConfig, 'whole seconds between 1s and 5m'],
    [
      'SERVICE_CIDRS',
      { SERVICE_CIDRS: '10.96.0.0/33' },
      ErrorCodes.InvalidCidr,
      'Write an address and a prefix length',
    ],
    ['SERVICE_CIDRS', { SERVICE_CIDRS: '0.0.0.0/0' }, ErrorCodes.CidrTooBroad, 'refuses ipv4 prefixes shorter than /8'],
    [
      'DISCOVERY_SOURCES',
      { DISCOVERY_SOURCES: 'kubeadm,etcd' },
      ErrorCodes.InvalidConfig,
      'servicecidr, kubeadm, node-args, dry-run',
    ],
    ['DISCOVERY_SOURCES', { DISCOVERY_SOURCES: 'kubeadm,kubeadm' }, ErrorCodes.InvalidConfig, 'each at most once'],
    ['DISCOVERY_SOURCES', { DISCOVERY_SOURCES: 'kubeadm,,node-args' }, ErrorCodes.InvalidConfig, 'comma-separated'],
    [
      'DISCOVERY_SOURCES',
      { DISCOVERY_SOURCES: 'Kubeadm' },
      ErrorCodes.InvalidConfig,
      'such as servicecidr,kubeadm,node-args',
    ],
    ['DISCOVERY_SOURCES', { DISCOVERY_SOURCES: ' ' }, ErrorCodes.InvalidConfig, 'comma-separated'],
    ['NODE_NAME', { NODE_NAME: 'Kind_Worker' }, ErrorCodes.InvalidConfig, 'spec.nodeName'],
    ['POD_NAMESPACE', { POD_NAMESPACE: 'a.b' }, ErrorCodes.InvalidConfig, 'metadata.namespace'],
    ['POD_LOOKUP', { POD_LOOKUP: 'on' }, ErrorCodes.InvalidConfig, 'true or false'],
    ['STALE_CLUSTERIP_EVENTS', { STALE_CLUSTERIP_EVENTS: 'yes' }, ErrorCodes.InvalidConfig, 'true or false'],
    [
      'DAEMONSET_NAME',
      { DAEMONSET_NAME: 'Route_Controller', POD_NAMESPACE: 'route-controller' },
      ErrorCodes.InvalidConfig,
      'a DaemonSet name',
    ],
    ['DAEMONSET_NAME', { DAEMONSET_NAME: 'route-controller' }, ErrorCodes.InvalidConfig, 'Set POD_NAMESPACE'],
    // Both listeners on one port: the second could not bind, found before anything is probed.
    [
      'METRICS_LISTEN_ADDRESS',
      { METRICS_LISTEN_ADDRESS: '0.0.0.0:9771' },
      ErrorCodes.InvalidConfig,
      'a port of its own',
    ],
    [
      'METRICS_LISTEN_ADDRESS',
      { METRICS_LISTEN_ADDRESS: '127.0.0.1:9771' },
      ErrorCodes.InvalidConfig,
      'a port of its own',
    ],
    [
      'METRICS_LISTEN_ADDRESS',
      { METRICS_LISTEN_ADDRESS: '127.0.0.1:9000', LISTEN_ADDRESS: '127.0.0.1:9000' },
      ErrorCodes.InvalidConfig,
      'a port of its own',
    ],
    [
      'METRICS_LISTEN_ADDRESS',
      { METRICS_LISTEN_ADDRESS: '[::1]:9000', LISTEN_ADDRESS: '[::]:9000' },
      ErrorCodes.InvalidConfig,
      'a port of its own',
    ],
    // LISTEN_ADDRESS on the default metrics address (127.0.0.1:9772): the health listener is the one named.
    ['LISTEN_ADDRESS', { LISTEN_ADDRESS: '0.0.0.0:9772' }, ErrorCodes.InvalidConfig, 'another port'],
  ];
  for (const [variable, env, code, expected] of bad) {
    const value = Object.values(env)[0];
    it(`refuses ${variable}=${value} with ${code}, naming the variable, the value and the fix`, () => {
      const error = configError(env);
      expect(error.code).toBe(code);
      expect(error.message).toContain(`${variable}=${JSON.stringify(value)}`);
      expect(error.hint).toContain(expected);
      expect(error.details).toMatchObject({ variable, value });
    });
  }

  it(`refuses more than ${MAX_CIDRS_PER_FAMILY} SERVICE_CIDRS in a family with ERR_RC_TOO_MANY_CIDRS, naming the variable and the fix`, () => {
    const many = Array.from({ length: MAX_CIDRS_PER_FAMILY + 1 }, (_, i) => `10.${64 + (i >> 8)}.${i % 256}.0/24`);
    const error = configError({ SERVICE_CIDRS: many.join(',') });
    expect(error.code).toBe(ErrorCodes.TooManyCidrs);
    expect(error.message).toMatch(/^SERVICE_CIDRS is invalid: /);
    expect(error.hint).toMatch(/^[A-Z].*\.$/);
    expect(error.details).toMatchObject({ variable: 'SERVICE_CIDRS', family: 'ipv4', limit: MAX_CIDRS_PER_FAMILY });
    // At the cap itself, and with the cap in each family, the value is accepted.
    const v6 = Array.from({ length: MAX_CIDRS_PER_FAMILY }, (_, i) => `fd00:1::${i.toString(16)}:0/112`);
    expect(loadConfig({ SERVICE_CIDRS: [...many.slice(1), ...v6].join(',') }).serviceCidrs).toBeDefined();
  });

  it('writes every hint as whole sentences, composed once', () => {
    for (const [, env] of bad) {
      const { hint } = configError(env);
      expect(hint).toMatch(/^[A-Z].*\.$/);
      expect(hint).not.toMatch(/to (Write|Use|Set) /);
    }
  });

  it('reports every bad value at once, each with its own code', () => {
    const problems = configProblems({
      SERVICE_CIDRS: '10.96.0.0/12,bogus,0.0.0.0/0',
      FIREWALL_BACKEND: 'pf',
      RESYNC_INTERVAL: 'soon',
    });
    expect(problems.map((p) => [p.code, p.details.variable])).toEqual([
      [ErrorCodes.InvalidCidr, 'SERVICE_CIDRS'],
      [ErrorCodes.CidrTooBroad, 'SERVICE_CIDRS'],
      [ErrorCodes.InvalidConfig, 'FIREWALL_BACKEND'],
      [ErrorCodes.InvalidConfig, 'RESYNC_INTERVAL'],
    ]);
    expect(problems.map((p) => p.details.entry)).toEqual(['bogus', '0.0.0.0/0', undefined, undefined]);
  });

  it('takes the discovery sources in any order and with spaces, and refuses each bad one in one line', () => {
    expect(loadConfig({ DISCOVERY_SOURCES: ' node-args , kubeadm ' }).discoverySources).toEqual([
      'kubeadm',
      'node-args',
    ]);
    expect(loadConfig({ DISCOVERY_SOURCES: 'servicecidr,kubeadm,node-args,dry-run' }).discoverySources).toEqual([
      'servicecidr',
      'kubeadm',
      'node-args',
      'dry-run',
    ]);
    expect(loadConfig({}, { discoverySources: 'servicecidr' }).discoverySources).toEqual(['servicecidr']);
    const problems = configProblems({ DISCOVERY_SOURCES: 'etcd', NODE_NAME: 'UPPER', RESYNC_INTERVAL: 'soon' });
    expect(problems.map((p) => p.details.variable)).toEqual(['RESYNC_INTERVAL', 'DISCOVERY_SOURCES', 'NODE_NAME']);
  });

  it('refuses STALE_CLUSTERIP_EVENTS=true with SERVICE_CIDRS: no Kubernetes API to create Events with', () => {
    const error = configError({ SERVICE_CIDRS: '10.96.0.0/12', STALE_CLUSTERIP_EVENTS: 'true' });
    expect(error.code).toBe(ErrorCodes.InvalidConfig);
    expect(error.message).toBe(
      'STALE_CLUSTERIP_EVENTS="true" needs the Kubernetes API, which the agent uses only when SERVICE_CIDRS is not set',
    );
    expect(error.hint).toMatch(/^Unset SERVICE_CIDRS .*or set STALE_CLUSTERIP_EVENTS=false\.$/);
    // Pod lookup is on by default: with SERVICE_CIDRS it simply does nothing.
    expect(loadConfig({ SERVICE_CIDRS: '10.96.0.0/12', POD_LOOKUP: 'true' }).podLookup).toBe(true);
    expect(loadConfig({ SERVICE_CIDRS: '10.96.0.0/12', STALE_CLUSTERIP_EVENTS: 'false' }).staleEvents).toBe(false);
  });

  it('names the flag when the bad value came from a flag', () => {
    const error = configError({}, { backend: 'pf' });
    expect(error.message).toContain('--backend="pf"');
    expect(error.hint).toBe('Set --backend to one of auto, nft, iptables-nft, iptables-legacy.');
  });

  it('keeps the CIDR error as the cause, and its hint about separators', () => {
    const error = configError({ SERVICE_CIDRS: '10.96.0.0/12;fd00::/108' });
    expect(error.code).toBe(ErrorCodes.InvalidCidr);
    expect((error.cause as RouteControllerError).code).toBe(ErrorCodes.InvalidCidr);
    expect(error.message).toContain('10.96.0.0/12;fd00::/108');
    expect(error.hint).toContain('Separate entries with commas');
  });
});

describe('durations', () => {
  it.each([
    ['30s', 30_000],
    ['2s', 2000],
    ['500ms', 500],
    ['1m30s', 90_000],
    ['1h', 3_600_000],
    ['1.5s', 1500],
  ])('%s is %i ms', (text, ms) => expect(parseDuration(text)).toBe(ms));
  it.each(['', '30', 's', '-1s', '1d', '1 s'])('%j is not a duration', (text) =>
    expect(parseDuration(text)).toBeUndefined(),
  );
  it('formats', () => {
    expect([formatDuration(30_000), formatDuration(120_000), formatDuration(250)]).toEqual(['30s', '2m', '250ms']);
  });
});
