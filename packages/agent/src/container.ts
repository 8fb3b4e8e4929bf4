import {
  type CommandRunner,
  DiscoveryChain,
  EnvServiceCidrSource,
  LazySource,
  ProcessCommandRunner,
} from '@route-controller/core';
import { Agent } from './agent.js';
import { BackendSelector } from './backends/backend-selector.js';
import { type BackendSet, backendOf, createBackendSet } from './backends/backend-set.js';
import type { AgentConfig } from './config/config.js';
import { container, type DependencyContainer, instanceCachingFactory } from './di.js';
import { type NodeNetworkReader, ProcNodeNetworkReader } from './node/node-network.js';
import { createLogger, type Logger } from './observability/logger.js';
import { AgentMetrics } from './observability/metrics.js';
import { Reconciler } from './reconcile/reconciler.js';
import { TOKENS } from './tokens.js';
import { VERSION } from './version.js';

/**
 * The composition root: the only place that registers or resolves anything. Tests pass
 * `overrides` to replace registrations (a fake command runner, a memory backend) in their own
 * child container.
 */
export function createAgentContainer(
  config: AgentConfig,
  options: { logger?: Logger; overrides?: (container: DependencyContainer) => void } = {},
): DependencyContainer {
  const c = container.createChildContainer();
  c.register(TOKENS.Config, { useValue: config });
  c.register(TOKENS.Logger, { useValue: options.logger ?? createLogger(config.logLevel) });
  c.register(TOKENS.CommandRunner, { useValue: new ProcessCommandRunner() });
  c.register(TOKENS.Backends, {
    useFactory: instanceCachingFactory((d) => createBackendSet(d.resolve<CommandRunner>(TOKENS.CommandRunner))),
  });
  c.register(TOKENS.FlavourDetector, {
    useFactory: (d) => async () => {
      const { detectIptablesFlavour } = await import('@route-controller/backend-iptables');
      return detectIptablesFlavour(d.resolve<CommandRunner>(TOKENS.CommandRunner));
    },
  });
  c.register(TOKENS.Discovery, {
    useFactory: instanceCachingFactory(
      (d) =>
        new DiscoveryChain([
          new EnvServiceCidrSource(config.serviceCidrs),
          kubernetesSource(config, d.resolve<Logger>(TOKENS.Logger), d.resolve(AgentMetrics)),
        ]),
    ),
  });
  c.register(TOKENS.NodeNetwork, { useValue: new ProcNodeNetworkReader() });
  c.register(AgentMetrics, { useValue: new AgentMetrics(VERSION) });
  c.registerSingleton(BackendSelector);
  c.registerSingleton(Reconciler);
  c.registerSingleton(Agent);
  options.overrides?.(c);
  return c;
}

/**
 * The ServiceCIDR API source, loaded only when the chain reaches it: with SERVICE_CIDRS set the
 * Kubernetes client (hundreds of milliseconds of start-up) is never imported.
 */
function kubernetesSource(config: AgentConfig, logger: Logger, metrics: AgentMetrics): LazySource {
  return new LazySource('kubernetes', async () => {
    const log = logger.child({ component: 'kubernetes' });
    log.info('SERVICE_CIDRS is not set: loading the Kubernetes client to discover ServiceCIDR objects');
    const { KubernetesServiceCidrSource } = await import('./kubernetes/service-cidr-source.js');
    const source = new KubernetesServiceCidrSource({ kubeconfig: config.kubeconfig, logger: log });
    metrics.kubernetesSource(() => source.status());
    return source;
  });
}

/** Selects the backend (probing the node) and builds the agent around it. */
export async function composeAgent(container: DependencyContainer): Promise<Agent> {
  const probing = performance.now();
  const selection = await container.resolve(BackendSelector).select();
  container
    .resolve(TOKENS.Logger)
    .debug(
      { probeMs: Math.round(performance.now() - probing), uptimeMs: Math.round(performance.now()) },
      'backend selection finished',
    );
  container.register(TOKENS.Selection, { useValue: selection });
  container.register(TOKENS.Backend, { useValue: backendOf(container.resolve(TOKENS.Backends), selection.backend) });
  return container.resolve(Agent);
}

/** What the one-shot commands (probe, plan, status, cleanup) work with. */
export interface Toolbox {
  readonly config: AgentConfig;
  readonly logger: Logger;
  readonly selector: BackendSelector;
  readonly backends: BackendSet;
  readonly discovery: DiscoveryChain;
  readonly network: NodeNetworkReader;
}

export function composeToolbox(container: DependencyContainer): Toolbox {
  return {
    config: container.resolve(TOKENS.Config),
    logger: container.resolve(TOKENS.Logger),
    selector: container.resolve(BackendSelector),
    backends: container.resolve(TOKENS.Backends),
    discovery: container.resolve(TOKENS.Discovery),
    network: container.resolve(TOKENS.NodeNetwork),
  };
}
