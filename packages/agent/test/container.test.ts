import { desiredState, parseCidrList } from '@route-controller/core';
import { MemoryBackend, MemoryKernel } from '@route-controller/core/testing';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { BackendSet } from '../src/backends/backend-set.js';
import { loadConfig } from '../src/config/config.js';
import type { BackendName } from '../src/config/settings.js';
import { composeAgent, createAgentContainer } from '../src/container.js';
import type { NodeNetworkReader } from '../src/node/node-network.js';
import { TOKENS } from '../src/tokens.js';

/** The real composition root, with the kernel-facing pieces replaced in the test's own child container. */
function compose(env: Record<string, string>) {
  const kernels = new Map<BackendName, MemoryKernel>();
  const backends = new Map<BackendName, MemoryBackend>();
  for (const name of ['nft', 'iptables-nft', 'iptables-legacy'] as const) {
    const kernel = new MemoryKernel();
    kernels.set(name, kernel);
    backends.set(name, new MemoryBackend(kernel, { name }));
  }
  const network: NodeNetworkReader = { read: async () => ({ addresses: [], gateways: [] }) };
  const container = createAgentContainer(loadConfig({ LISTEN_ADDRESS: 'off', ...env }), {
    logger: pino({ level: 'silent' }),
    overrides: (c) => {
      c.register(TOKENS.Backends, { useValue: backends as BackendSet });
      c.register(TOKENS.NodeNetwork, { useValue: network });
      c.register(TOKENS.FlavourDetector, {
        useValue: async () => ({
          mode: 'nft' as const,
          reason: 'scripted',
          evidence: { nftHint: true, legacyHint: false, nftRules: 0, legacyRules: 0 },
        }),
      });
    },
  });
  const elements = (name: BackendName) => [
    ...(kernels.get(name)?.objects.get('route-controller/set/ipv4')?.elements ?? []),
  ];
  return { container, backends, elements };
}

describe('the composition root', () => {
  it('wires a working agent: SERVICE_CIDRS to the chosen backend, rules kept on stop', async () => {
    const { container, elements } = compose({ SERVICE_CIDRS: '10.96.0.0/16' });
    const agent = await composeAgent(container);
    await agent.start();
    expect(elements('nft')).toEqual(['10.96.0.0/16']);
    expect(agent.reconciler.readiness().ready).toBe(true);
    await agent.stop('SIGTERM');
    expect(elements('nft')).toEqual(['10.96.0.0/16']);
  });

  it('honours a forced backend and removes leftovers of an earlier run from the others', async () => {
    const { container, backends, elements } = compose({
      SERVICE_CIDRS: '10.96.0.0/16',
      FIREWALL_BACKEND: 'iptables-legacy',
    });
    await backends.get('nft')?.apply(desiredState(parseCidrList('10.200.0.0/16').cidrs));
    const agent = await composeAgent(container);
    await agent.start();
    expect(elements('iptables-legacy')).toEqual(['10.96.0.0/16']);
    expect((await backends.get('nft')?.observe())?.present).toBe(false);
    await agent.stop('SIGTERM');
  });

  it('CLEANUP_ON_EXIT removes the rules on stop', async () => {
    const { container, backends } = compose({ SERVICE_CIDRS: '10.96.0.0/16', CLEANUP_ON_EXIT: 'true' });
    const agent = await composeAgent(container);
    await agent.start();
    await agent.stop('SIGTERM');
    expect((await backends.get('nft')?.observe())?.present).toBe(false);
  });

  it('does not load the Kubernetes source when SERVICE_CIDRS is set', async () => {
    const { container } = compose({ SERVICE_CIDRS: '10.96.0.0/16' });
    const agent = await composeAgent(container);
    await agent.start();
    const discovery = container.resolve(TOKENS.Discovery);
    const lazy = discovery.sources.find((source) => source.name === 'kubernetes') as { loaded?: boolean } | undefined;
    expect(lazy?.loaded).toBe(false);
    await agent.stop('SIGTERM');
  });
});
