import type { AddressInfo } from 'node:net';
import { type FirewallBackend, isEmptyDesiredState } from '@route-controller/core';
import type { Selection } from './backends/backend-selector.js';
import type { FirewallCommands } from './backends/serial-command-runner.js';
import type { AgentConfig } from './config/config.js';
import { formatDuration } from './config/duration.js';
import { inject, injectable } from './di.js';
import { type AgentIdentity, AgentSocket, type AgentState } from './lifecycle/agent-socket.js';
import { UninstallCheck } from './lifecycle/uninstall-check.js';
import { HealthServer } from './observability/health-server.js';
import type { Logger } from './observability/logger.js';
import { ChangeFollower } from './reconcile/change-follower.js';
import { Reconciler } from './reconcile/reconciler.js';
import { StaleReporter } from './stale/stale-reporter.js';
import { StartupChores } from './startup/startup-chores.js';
import { TOKENS } from './tokens.js';
import { VERSION } from './version.js';

/**
 * The `run` process: holds the node's agent socket, serves health, keeps the rules in step until
 * stopped, then keeps them (a restart, a rolling update) or removes them (CLEANUP_ON_EXIT, or an
 * uninstall found by the UninstallCheck).
 */
@injectable()
export class Agent {
  readonly #log: Logger;
  #address: AddressInfo | undefined;
  #state: AgentState = 'starting';

  constructor(
    @inject(TOKENS.Config) private readonly config: AgentConfig,
    @inject(TOKENS.Selection) private readonly selection: Selection,
    @inject(TOKENS.Backend) private readonly backend: FirewallBackend,
    @inject(Reconciler) readonly reconciler: Reconciler,
    @inject(ChangeFollower) private readonly follower: ChangeFollower,
    @inject(HealthServer) private readonly server: HealthServer,
    @inject(StartupChores) private readonly chores: StartupChores,
    @inject(TOKENS.Logger) logger: Logger,
    @inject(StaleReporter) private readonly stale: StaleReporter,
    @inject(AgentSocket) private readonly socket: AgentSocket,
    @inject(UninstallCheck) private readonly uninstall: UninstallCheck,
    @inject(TOKENS.FirewallCommands) private readonly commands: FirewallCommands,
  ) {
    this.#log = logger.child({ component: 'agent' });
  }

  /** The endpoint's bound address (undefined when disabled). */
  get address(): AddressInfo | undefined {
    return this.#address;
  }

  /**
   * Everything that can refuse (the node's agent socket, the listeners) comes before the first
   * apply, so a start that fails has installed nothing. A failed start undoes what it started
   * (listeners closed, loops and their children stopped) before it throws; rules it installed stay,
   * as after a crash: a restart adopts them, and removing them could open a gap under a pod that
   * is still protecting the node.
   */
  async start(): Promise<void> {
    const { selection, config } = this;
    // The one human summary of the process: the only log line whose message carries values.
    this.#log.info(
      {
        summary: true,
        version: VERSION,
        action: config.action,
        resyncInterval: formatDuration(config.resyncIntervalMs),
        requested: config.backend,
        backend: selection.backend,
        reason: selection.reason,
        availability: selection.availability,
        detection: selection.detection,
        // Milliseconds since the process started: start-up cost at a glance.
        uptimeMs: Math.round(performance.now()),
      },
      `route-controller ${VERSION} starting with ${selection.backend} (${selection.reason}); ${config.action}, resync every ${formatDuration(config.resyncIntervalMs)}`,
    );
    for (const warning of selection.warnings)
      this.#log.warn({ backend: selection.backend, warning }, 'backend warning');
    try {
      await this.socket.bind(() => this.#identity());
      await this.#listen();
      await this.reconciler.start();
      // After the first apply, so its echo is not the first thing the stream reports; the stream
      // reconciles once when it is up, for whatever changed in between.
      this.follower.start();
      // Once the rules are in: who dials stale ClusterIPs, read once per resync.
      this.stale.start();
      this.uninstall.start();
      await this.chores.afterRules();
    } catch (error) {
      await this.#shutDown().catch((undo: unknown) => this.#log.error({ err: undo }, 'could not undo a failed start'));
      throw error;
    }
    this.#state = 'running';
  }

  /**
   * /healthz and /readyz on LISTEN_ADDRESS, where the kubelet probes them; /metrics always on an
   * address of its own (METRICS_LISTEN_ADDRESS, loopback by default), as kube-proxy splits them.
   */
  async #listen(): Promise<void> {
    const { listen, metricsListen } = this.config;
    if (listen) {
      this.#address = await this.server.listen({ ...listen, variable: 'LISTEN_ADDRESS' }, new Set(['health'] as const));
      this.#log.info({ address: this.#address, paths: ['/healthz', '/readyz'] }, 'serving health endpoints');
    }
    if (metricsListen) {
      const address = await this.server.listen(
        { ...metricsListen, variable: 'METRICS_LISTEN_ADDRESS' },
        new Set(['metrics'] as const),
      );
      this.#log.info({ address, paths: ['/metrics'] }, 'serving metrics');
    }
  }

  /**
   * Stops promptly. Keeps the rules (no gap during a rolling update) unless CLEANUP_ON_EXIT, or
   * the DaemonSet is going away (DAEMONSET_NAME). `deadline` aborts the removal of the rules when
   * stopping takes too long.
   */
  async stop(signal: string, deadline?: AbortSignal): Promise<void> {
    this.#state = 'stopping';
    this.#log.info({ signal }, 'stopping');
    // Asked now, while the loops stop: the answer may take a while (see UNINSTALL_CHECK_TIMEOUT_MS).
    const uninstall = this.config.cleanupOnExit ? undefined : this.uninstall.decide();
    try {
      await this.#stopLoops();
      const installed = this.reconciler.installed();
      const decision = await uninstall;
      const backend = this.backend.name;
      if (this.config.cleanupOnExit || decision?.remove) {
        const result = await this.backend.cleanup(deadline ? { signal: deadline } : {});
        const why = this.config.cleanupOnExit ? 'CLEANUP_ON_EXIT=true' : decision?.reason;
        this.#log.info({ backend, summary: result.summary, why }, 'rules removed');
      } else if (!installed || isEmptyDesiredState(installed)) {
        this.#log.info({ backend }, 'no rules of ours were installed; nothing to keep');
      } else {
        const why = decision?.reason ?? 'CLEANUP_ON_EXIT is false and DAEMONSET_NAME is not set';
        this.#log.info({ backend, why }, 'rules kept');
      }
    } finally {
      await this.#close();
    }
  }

  #identity(): AgentIdentity {
    return {
      agent: 'route-controller',
      version: VERSION,
      pid: process.pid,
      state: this.#state,
      backend: this.selection.backend,
    };
  }

  /** The event stream first (its monitor process must not outlive us), then the loops; rules stay. */
  async #stopLoops(): Promise<void> {
    await this.follower.stop();
    await this.stale.stop();
    const reconciler = this.reconciler.stop();
    // A read that hangs (a firewall tool stuck until its timeout) must not hold the stop up.
    this.commands.interrupt();
    await reconciler;
  }

  async #close(): Promise<void> {
    await this.server.close();
    await this.socket.close();
  }

  /** A failed start: everything started is stopped, every listener closed; the rules stay. */
  async #shutDown(): Promise<void> {
    this.#state = 'stopping';
    try {
      this.uninstall.stop();
      await this.#stopLoops();
    } finally {
      await this.#close();
    }
  }
}
