import { IPTABLES_CAPABILITIES } from '@route-controller/backend-iptables/capabilities';
import { NftBackend } from '@route-controller/backend-nft';
import type { CommandRunner, FirewallBackend, StreamRunner } from '@route-controller/core';
import type { BackendName } from '../config/settings.js';
import { LazyBackend } from './lazy-backend.js';

/** One instance of every backend, by name, in order of preference. */
export type BackendSet = ReadonlyMap<BackendName, FirewallBackend>;

export interface BackendSetOptions {
  /** Seconds iptables-restore waits for the xtables lock. */
  readonly iptablesLockWaitSeconds: number;
}

/**
 * nft is loaded at once (the usual choice); the iptables backend only when something asks for it.
 * `runnerFor` gives each backend the runner of its commands (one of its own: see
 * SerialCommandRunner); `streams` starts the change event monitors (nft, iptables-nft).
 */
export function createBackendSet(
  runnerFor: (backend: BackendName) => CommandRunner,
  streams: StreamRunner,
  options: BackendSetOptions,
): BackendSet {
  const iptables = (mode: 'nft' | 'legacy') =>
    new LazyBackend(`iptables-${mode}`, IPTABLES_CAPABILITIES[mode], async () => {
      const { IptablesBackend } = await import('@route-controller/backend-iptables');
      const runner = runnerFor(`iptables-${mode}`);
      return new IptablesBackend({ mode, runner, streams, lockWaitSeconds: options.iptablesLockWaitSeconds });
    });
  return new Map<BackendName, FirewallBackend>([
    ['nft', new NftBackend({ runner: runnerFor('nft'), streams })],
    ['iptables-nft', iptables('nft')],
    ['iptables-legacy', iptables('legacy')],
  ]);
}

export function backendOf(backends: BackendSet, name: BackendName): FirewallBackend {
  const backend = backends.get(name);
  if (!backend) throw new Error(`backend ${name} is not registered`);
  return backend;
}
