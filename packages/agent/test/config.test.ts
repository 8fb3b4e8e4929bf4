import { ErrorCodes, RouteControllerError } from '@route-controller/core';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { formatDuration, parseDuration } from '../src/config/duration.js';

function configError(env: Record<string, string>, flags = {}): RouteControllerError {
  try {
    loadConfig(env, flags);
  } catch (error) {
    if (error instanceof RouteControllerError) return error;
    throw error;
  }
  throw new Error('loadConfig accepted the input');
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
      kubeconfig: undefined,
      iptablesLockWaitSeconds: 5,
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
    });
    expect(config).toEqual({
      serviceCidrs: '10.96.0.0/12',
      backend: 'iptables-legacy',
      action: 'reject',
      resyncIntervalMs: 2000,
      logLevel: 'debug',
      cleanupOnExit: true,
      listen: { host: '127.0.0.1', port: 9000 },
      kubeconfig: '/etc/kube/config',
      iptablesLockWaitSeconds: 30,
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
  });

  const bad: [string, Record<string, string>, string][] = [
    ['FIREWALL_BACKEND', { FIREWALL_BACKEND: 'pf' }, 'auto, nft, iptables-nft, iptables-legacy'],
    ['BLOCK_ACTION', { BLOCK_ACTION: 'accept' }, 'drop, reject'],
    ['RESYNC_INTERVAL', { RESYNC_INTERVAL: '30' }, 'such as 30s'],
    ['RESYNC_INTERVAL', { RESYNC_INTERVAL: '10ms' }, 'between 100ms and 24h'],
    ['LOG_LEVEL', { LOG_LEVEL: 'verbose' }, 'info'],
    ['CLEANUP_ON_EXIT', { CLEANUP_ON_EXIT: 'maybe' }, 'true or false'],
    ['LISTEN_ADDRESS', { LISTEN_ADDRESS: 'localhost' }, 'host:port'],
    ['LISTEN_ADDRESS', { LISTEN_ADDRESS: ':99999' }, 'host:port'],
    ['IPTABLES_LOCK_WAIT', { IPTABLES_LOCK_WAIT: '500ms' }, 'whole seconds between 1s and 5m'],
    ['IPTABLES_LOCK_WAIT', { IPTABLES_LOCK_WAIT: '10m' }, 'whole seconds between 1s and 5m'],
    ['SERVICE_CIDRS', { SERVICE_CIDRS: '10.96.0.0/33' }, 'address and a prefix length'],
    ['SERVICE_CIDRS', { SERVICE_CIDRS: '0.0.0.0/0' }, 'refuses ipv4 prefixes shorter than /8'],
  ];
  for (const [variable, env, expected] of bad) {
    it(`refuses ${variable}=${Object.values(env)[0]}, naming the variable, the value and the choices`, () => {
      const error = configError(env);
      expect(error.code).toBe(ErrorCodes.InvalidConfig);
      expect(error.message).toContain(`${variable}=${JSON.stringify(Object.values(env)[0])}`);
      expect(error.hint).toContain(expected);
      expect(error.details).toMatchObject({ variable, value: Object.values(env)[0] });
    });
  }

  it('names the flag when the bad value came from a flag', () => {
    const error = configError({}, { backend: 'pf' });
    expect(error.message).toContain('--backend="pf"');
  });

  it('keeps the CIDR error as the cause', () => {
    const error = configError({ SERVICE_CIDRS: '10.96.0.0/12;fd00::/108' });
    expect((error.cause as RouteControllerError).code).toBe(ErrorCodes.InvalidCidr);
    expect(error.message).toContain('10.96.0.0/12;fd00::/108');
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
