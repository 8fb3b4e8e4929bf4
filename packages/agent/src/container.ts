import {
  type CommandRunner,
  DiscoveryChain,
  EnvServiceCidrSource,
  LazySource,
  once,
  ProcessCommandRunner,
  ProcessStreamRunner,
  type ServiceCidrSource,
  type StreamRunner,
} from '@route-controller/core';
import { Agent } from './agent.js';
import { BackendSelector, type Selection } from './backends/backend-selector.js';
import { type BackendSet, backendOf, createBackendSet } from './backends/backend-set.js';
import { type FirewallCommands, SerialCommandRunner } from './backends/serial-command-runner.js';
import type { AgentConfig } from './config/config.js';
import type { BackendName, DiscoverySourceName } from './config/settings.js';
import { container, type DependencyContainer, instanceCachingFactory } from './di.js';
import type { KubernetesSource } from './discovery/sources.js';
import { AGENT_SOCKET_NAME, type AgentPresence, AgentSocket, findAgent } from './lifecycle/agent-socket.js';
import { UninstallCheck } from './lifecycle/uninstall-check.js';
import { type NodeNetworkReader, ProcNodeNetworkReader } from './node/node-network.js';
import type { LivenessProbe, ReadinessProbe } from './observability/health-server.js';
import { HealthServer } from './observability/health-server.js';
import { createLogger, type Logger } from './observability/logger.js';
import { AgentMetrics } from './observability/metrics.js';
import { ChangeFollower } from './reconcile/change-follower.js';
import { Reconciler } from './reconcile/reconciler.js';
import {
  type ConnectionLoader,
  createPodNames,
  createStaleEvents,
  type PodNames,
} from './stale/kubernetes-features.js';
import { StaleReporter } from './stale/stale-reporter.js';
import { preflight } from './startup/preflight.js';
import { StartupChores } from './startup/startup-chores.js';
import { TOKENS } from './tokens.js';
import { VERSION } from './version.js';

/*
 * The composition root: the only place that registers or resolves anything. Two containers, each
 * complete from the moment it exists, so nothing depends on what was resolved first:
 *
 *   node container (createAgentContainer): the node and its tools; config, logger, command runner,
 *     every backend (each running its commands one at a time), the backend selector, discovery, the
 *     node's network, metrics, the name of the agent socket. The one-shot commands (probe, plan,
 *     status, cleanup) work with this alone.
 *   run container (composeAgent): a child made once the backend is chosen, with the choice in it
 *     from the start; the reconciler, the change event follower, the health endpoint, the start-up
 *     chores, the agent socket, the uninstall check and the agent.
 *
 * Tests pass `overrides` to replace registrations (a fake command runner, memory backends) in
 * their own child container.
 */
export interface AgentContainerOptions {
  readonly logger?: Logger;
  /**
   * For the one-shot commands: discovery sources report their state in the command's own output,
   * so they do not log (no "looking again now and then" from a process that exits at once).
   */
  readonly oneShot?: boolean;
  readonly overrides?: (container: DependencyContainer) => void;
}

export function createAgentContainer(config: AgentConfig, options: AgentContainerOptions = {}): DependencyContainer {
  const c = container.createChildContainer();
  c.register(TOKENS.Config, { useValue: config });
  c.register(TOKENS.Logger, { useValue: options.logger ?? createLogger(config.logLevel) });
  c.register(TOKENS.CommandRunner, { useValue: new ProcessCommandRunner() });
  c.register(TOKENS.StreamRunner, { useValue: new ProcessStreamRunner() });
  c.register(TOKENS.Clock, { useValue: () => performance.now() });
  c.register(TOKENS.AgentSocketName, { useValue: AGENT_SOCKET_NAME });
  // Each backend runs its commands one at a time, through a runner of its own.
  const serial = new Map<BackendName, SerialCommandRunner>();
  c.register(TOKENS.FirewallCommands, {
    useValue: {
      interrupt: () => {
        for (const runner of serial.values()) runner.interrupt();
      },
    } satisfies FirewallCommands,
  });
  c.register(TOKENS.Backends, {
    useFactory: instanceCachingFactory((d) => {
      const runner = d.resolve<CommandRunner>(TOKENS.CommandRunner);
      const runnerFor = (name: BackendName) => {
        const own = serial.get(name) ?? new SerialCommandRunner(runner);
        serial.set(name, own);
        return own;
      };
      return createBackendSet(runnerFor, d.resolve<StreamRunner>(TOKENS.StreamRunner), {
        iptablesLockWaitSeconds: config.iptablesLockWaitSeconds,
      });
    }),
  });
  c.register(TOKENS.FlavourDetector, {
    useFactory: (d) => async () => {
      const { detectIptablesFlavour } = await import('@route-controller/backend-iptables');
      return detectIptablesFlavour(d.resolve<CommandRunner>(TOKENS.CommandRunner));
    },
  });
  c.register(TOKENS.KubernetesConnection, {
    useFactory: instanceCachingFactory((d) =>
      lazyConnection(config, sourceLogger(d.resolve<Logger>(TOKENS.Logger), options.oneShot)),
    ),
  });
  c.register(TOKENS.Discovery, {
    useFactory: instanceCachingFactory(
      (d) =>
        new DiscoveryChain([
          new EnvServiceCidrSource(config.serviceCidrs),
          ...kubernetesSources(
            config,
            sourceLogger(d.resolve<Logger>(TOKENS.Logger), options.oneShot),
            d.resolve(AgentMetrics),
            d.resolve<ConnectionLoader>(TOKENS.KubernetesConnection),
          ),
        ]),
    ),
  });
  // Stale ClusterIP reporting: pod names (run and status) and Events (run), each loaded on first use.
  c.register(TOKENS.PodNames, {
    useFactory: instanceCachingFactory((d) =>
      createPodNames(
        config,
        d.resolve<ConnectionLoader>(TOKENS.KubernetesConnection),
        sourceLogger(d.resolve<Logger>(TOKENS.Logger), options.oneShot),
      ),
    ),
  });
  c.register(TOKENS.StaleEvents, {
    useFactory: instanceCachingFactory((d) =>
      createStaleEvents(
        config,
        d.resolve<ConnectionLoader>(TOKENS.KubernetesConnection),
        sourceLogger(d.resolve<Logger>(TOKENS.Logger), options.oneShot),
      ),
    ),
  });
  c.register(TOKENS.NodeNetwork, { useValue: new ProcNodeNetworkReader() });
  c.register(AgentMetrics, { useValue: new AgentMetrics(VERSION) });
  c.registerSingleton(BackendSelector);
  options.overrides?.(c);
  return c;
}

/** The one API connection, its module imported on first use (never with SERVICE_CIDRS alone). */
function lazyConnection(config: AgentConfig, logger: Logger): ConnectionLoader {
  return once(async () => {
    const { KubernetesConnection } = await import('./kube-api/connection.js');
    return new KubernetesConnection(config.kubeconfig, logger);
  });
}

function sourceLogger(logger: Logger, oneShot = false): Logger {
  const log = logger.child({ component: 'kubernetes' });
  if (oneShot) log.level = 'silent';
  return log;
}

/**
 * The cluster sources DISCOVERY_SOURCES enables, in their fixed order. All of them sit behind one
 * lazy import, made only when the chain first reaches one: with SERVICE_CIDRS set the Kubernetes
 * client (hundreds of milliseconds of start-up, and its own chunk in a bundle) is never loaded.
 */
function kubernetesSources(
  config: AgentConfig,
  logger: Logger,
  metrics: AgentMetrics,
  connection: ConnectionLoader,
): LazySource[] {
  const load = once(async (): Promise<ReadonlyMap<DiscoverySourceName, ServiceCidrSource & KubernetesSource>> => {
    logger.info(
      { sources: config.discoverySources, why: 'SERVICE_CIDRS is not set' },
      'loading the kubernetes client for discovery',
    );
    const [{ createKubernetesSources }, shared] = await Promise.all([import('./discovery/sources.js'), connection()]);
    return createKubernetesSources({
      kubeconfig: config.kubeconfig,
      logger,
      nodeName: config.nodeName,
      podNamespace: config.podNamespace,
      connection: shared,
    });
  });
  return config.discoverySources.map(
    (name) =>
      new LazySource(name, async () => {
        const source = (await load()).get(name);
        if (!source) throw new Error(`no Kubernetes source ${name}`);
        metrics.kubernetesSource(name, () => source.statuses());
        // Started when the chain first reaches it: a source the chain never needs never asks the API.
        source.start();
        return source;
      }),
  );
}

/** The run container: a child of the node container, made once the backend is chosen. */
export function createRunContainer(node: DependencyContainer, selection: Selection): DependencyContainer {
  const c = node.createChildContainer();
  c.register(TOKENS.Selection, { useValue: selection });
  c.register(TOKENS.Backend, { useValue: backendOf(node.resolve<BackendSet>(TOKENS.Backends), selection.backend) });
  c.registerSingleton(Reconciler);
  c.registerSingleton(ChangeFollower);
  c.register(TOKENS.Readiness, {
    useFactory: (d): ReadinessProbe => {
      const reconciler = d.resolve(Reconciler);
      return () => reconciler.readiness();
    },
  });
  c.register(TOKENS.Liveness, {
    useFactory: (d): LivenessProbe => {
      const reconciler = d.resolve(Reconciler);
      return () => reconciler.liveness();
    },
  });
  c.registerSingleton(HealthServer);
  c.register(AgentSocket, {
    useFactory: instanceCachingFactory(
      (d) => new AgentSocket(d.resolve<string>(TOKENS.AgentSocketName), d.resolve<Logger>(TOKENS.Logger)),
    ),
  });
  c.registerSingleton(UninstallCheck);
  c.registerSingleton(StaleReporter);
  c.registerSingleton(StartupChores);
  c.registerSingleton(Agent);
  return c;
}

/**
 * Checks the configuration against the node, selects the backend (probing the node), then builds
 * the agent around the choice.
 */
export async function composeAgent(node: DependencyContainer): Promise<Agent> {
  await preflight(node.resolve<AgentConfig>(TOKENS.Config), node.resolve<NodeNetworkReader>(TOKENS.NodeNetwork));
  const probing = performance.now();
  const selection = await node.resolve(BackendSelector).select();
  node
    .resolve<Logger>(TOKENS.Logger)
    .debug(
      { probeMs: Math.round(performance.now() - probing), uptimeMs: Math.round(performance.now()) },
      'backend selection finished',
    );
  return createRunContainer(node, selection).resolve(Agent);
}

/** What the one-shot commands (probe, plan, status, cleanup) work with. */
export interface Toolbox {
  readonly config: AgentConfig;
  readonly logger: Logger;
  readonly selector: BackendSelector;
  readonly backends: BackendSet;
  readonly discovery: DiscoveryChain;
  readonly network: NodeNetworkReader;
  /** For the few reads of other tools' state (kube-proxy's nftables chain). */
  readonly runner: CommandRunner;
  /** Names the pods behind stale ClusterIP sources (none when the lookup is off). */
  readonly pods: PodNames;
  /** Who holds the agent socket on this node: the running agent, if any. */
  readonly agent: () => Promise<AgentPresence>;
}

export function composeToolbox(node: DependencyContainer): Toolbox {
  return {
    config: node.resolve<AgentConfig>(TOKENS.Config),
    logger: node.resolve<Logger>(TOKENS.Logger),
    selector: node.resolve(BackendSelector),
    backends: node.resolve<BackendSet>(TOKENS.Backends),
    discovery: node.resolve<DiscoveryChain>(TOKENS.Discovery),
    network: node.resolve<NodeNetworkReader>(TOKENS.NodeNetwork),
    runner: node.resolve<CommandRunner>(TOKENS.CommandRunner),
    pods: node.resolve<PodNames>(TOKENS.PodNames),
    agent: () => findAgent(node.resolve<string>(TOKENS.AgentSocketName)),
  };
}
