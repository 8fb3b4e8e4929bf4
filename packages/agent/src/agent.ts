import type { AddressInfo } from 'node:net';
import { type FirewallBackend, isEmptyDesiredState } from '@route-controller/core';
import type { Selection } from './backends/backend-selector.js';
import type { AgentConfig } from './config/config.js';
import { formatDuration } from './config/duration.js';
import { inject, injectable } from './di.js';
import { HealthServer } from './observability/health-server.js';
import type { Logger } from './observability/logger.js';
import { ChangeFollower } from './reconcile/change-follower.js';
import { Reconciler } from './reconcile/reconciler.js';
import { StaleReporter } from './stale/stale-reporter.js';
import { StartupChores } from './startup/startup-chores.js';
import { TOKENS } from './tokens.js';
import { VERSION } from './version.js';

/** The `run` process: serves health, keeps the rules in step until stopped, then keeps or removes them. */
@injectable()
export class Agent {
  readonly #log: Logger;
  #address: AddressInfo | undefined;

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
  ) {
    this.#log = logger.child({ component: 'agent' });
  }

  /** The endpoint's bound address (undefined when disabled). */
  get address(): AddressInfo | undefined {
    return this.#address;
  }

  async start(): Promise<void> {
    const { selection, config } = this;
    this.#log.info(
      {
        version: VERSION,
        action: config.action,
        resyncInterval: formatDuration(config.resyncIntervalMs),
        requested: config.backend,
        // Milliseconds since the process started: start-up cost at a glance.
        uptimeMs: Math.round(performance.now()),
      },
      `route-controller ${VERSION} starting`,
    );
    this.#log.info(
      { backend: selection.backend, availability: selection.availability, detection: selection.detection },
      `backend ${selection.backend} chosen: ${selection.reason}`,
    );
    for (const warning of selection.warnings) this.#log.warn({ backend: selection.backend }, warning);
    await this.#listen();
    await this.reconciler.start();
    // After the first apply, so its echo is not the first thing the stream reports; the stream
    // reconciles once when it is up, for whatever changed in between.
    this.follower.start();
    // Once the rules are in: who dials stale ClusterIPs, read once per resync.
    this.stale.start();
    await this.chores.afterRules();
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

  /** Stops promptly. Keeps the rules (no gap during a rolling update) unless CLEANUP_ON_EXIT. */
  async stop(signal: string): Promise<void> {
    this.#log.info({ signal }, `${signal} received, stopping`);
    // First the event stream (its monitor process must not outlive us), then the reconciler.
    await this.follower.stop();
    await this.stale.stop();
    await this.reconciler.stop();
    const installed = this.reconciler.installed();
    if (this.config.cleanupOnExit) {
      const result = await this.backend.cleanup();
      this.#log.info({ backend: this.backend.name, summary: result.summary }, 'CLEANUP_ON_EXIT=true: rules removed');
    } else if (!installed || isEmptyDesiredState(installed)) {
      this.#log.info({ backend: this.backend.name }, 'no rules of ours were installed; nothing to keep');
    } else {
      this.#log.info(
        { backend: this.backend.name },
        'rules kept in place (set CLEANUP_ON_EXIT=true to remove them on exit)',
      );
    }
    await this.server.close();
  }
}
