import type { AddressInfo } from 'node:net';
import { type DiscoveryChain, type FirewallBackend, parseCidrList } from '@route-controller/core';
import { BackendSelector, type Selection } from './backends/backend-selector.js';
import type { BackendSet } from './backends/backend-set.js';
import type { AgentConfig } from './config/config.js';
import { formatDuration } from './config/duration.js';
import { inject, injectable } from './di.js';
import { assertSafeServiceCidrs } from './node/cidr-safety.js';
import type { NodeNetworkReader } from './node/node-network.js';
import { HealthServer } from './observability/health-server.js';
import type { Logger } from './observability/logger.js';
import { AgentMetrics } from './observability/metrics.js';
import { Reconciler } from './reconcile/reconciler.js';
import { TOKENS } from './tokens.js';
import { VERSION } from './version.js';

/** The `run` process: serves health, keeps the rules in step, and removes other backends' leftovers. */
@injectable()
export class Agent {
  readonly #log: Logger;
  readonly #server: HealthServer;
  #address: AddressInfo | undefined;

  constructor(
    @inject(TOKENS.Config) private readonly config: AgentConfig,
    @inject(TOKENS.Selection) private readonly selection: Selection,
    @inject(TOKENS.Backend) private readonly backend: FirewallBackend,
    @inject(TOKENS.Backends) private readonly backends: BackendSet,
    @inject(BackendSelector) private readonly selector: BackendSelector,
    @inject(TOKENS.Discovery) private readonly discovery: DiscoveryChain,
    @inject(TOKENS.NodeNetwork) private readonly network: NodeNetworkReader,
    @inject(Reconciler) readonly reconciler: Reconciler,
    @inject(AgentMetrics) private readonly metrics: AgentMetrics,
    @inject(TOKENS.Logger) logger: Logger,
  ) {
    this.#log = logger.child({ component: 'agent' });
    this.#server = new HealthServer(metrics, () => reconciler.readiness(), logger.child({ component: 'http' }));
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
    await this.#refuseUnsafeConfiguredCidrs();
    this.metrics.backendChosen(this.backend);
    if (config.listen) {
      this.#address = await this.#server.listen(config.listen);
      this.#log.info(
        { address: this.#address },
        `serving /healthz, /readyz and /metrics on ${config.listen.host}:${this.#address.port}`,
      );
    }
    await this.reconciler.start();
    await this.#removeLeftovers();
    for (const warning of await this.selector.flavourWarnings(selection).catch(() => [])) {
      this.#log.warn({ backend: selection.backend }, warning);
    }
  }

  /** Stops promptly. Keeps the rules (no gap during a rolling update) unless CLEANUP_ON_EXIT. */
  async stop(signal: string): Promise<void> {
    this.#log.info({ signal }, `${signal} received, stopping`);
    await this.reconciler.stop();
    if (this.config.cleanupOnExit) {
      const result = await this.backend.cleanup();
      this.#log.info({ backend: this.backend.name, summary: result.summary }, 'CLEANUP_ON_EXIT=true: rules removed');
    } else {
      this.#log.info(
        { backend: this.backend.name },
        'rules kept in place (set CLEANUP_ON_EXIT=true to remove them on exit)',
      );
    }
    await Promise.all([this.#server.close(), this.discovery.close()]);
  }

  /**
   * SERVICE_CIDRS is configuration: a range that contains the node's own address or gateway stops
   * the agent at once, before anything is installed. (Ranges from the API are refused by the
   * reconciler instead, which keeps running.)
   */
  async #refuseUnsafeConfiguredCidrs(): Promise<void> {
    if (this.config.serviceCidrs === undefined) return;
    const { cidrs } = parseCidrList(this.config.serviceCidrs);
    assertSafeServiceCidrs(cidrs, await this.network.read());
  }

  /** Rules of ours left in other backends by an earlier run (before a backend switch). */
  async #removeLeftovers(): Promise<void> {
    for (const [name, other] of this.backends) {
      if (name === this.backend.name) continue;
      try {
        const availability = await this.selector.probe(name);
        if (!availability.available) continue;
        if (!(await other.observe()).present) continue;
        const result = await other.cleanup();
        this.#log.info({ backend: name, summary: result.summary }, `removed leftovers of an earlier run from ${name}`);
      } catch (error) {
        this.#log.warn({ backend: name, err: error }, `could not check ${name} for leftovers of an earlier run`);
      }
    }
  }
}
