import { parseCidrList } from '@route-controller/core';
import { BackendSelector, type Selection } from '../backends/backend-selector.js';
import type { BackendSet } from '../backends/backend-set.js';
import type { AgentConfig } from '../config/config.js';
import { inject, injectable } from '../di.js';
import { assertSafeServiceCidrs } from '../node/cidr-safety.js';
import type { NodeNetworkReader } from '../node/node-network.js';
import type { Logger } from '../observability/logger.js';
import { TOKENS } from '../tokens.js';

/**
 * What `run` does once around the reconcile loop: a check of the configuration against the node
 * before any rule is written, and after the first apply, the removal of an earlier run's rules
 * from the other backends and the iptables flavour warnings (both read every table, so they wait
 * until the node is protected).
 */
@injectable()
export class StartupChores {
  readonly #log: Logger;

  constructor(
    @inject(TOKENS.Config) private readonly config: AgentConfig,
    @inject(TOKENS.Selection) private readonly selection: Selection,
    @inject(TOKENS.Backends) private readonly backends: BackendSet,
    @inject(BackendSelector) private readonly selector: BackendSelector,
    @inject(TOKENS.NodeNetwork) private readonly network: NodeNetworkReader,
    @inject(TOKENS.Logger) logger: Logger,
  ) {
    this.#log = logger.child({ component: 'agent' });
  }

  /**
   * SERVICE_CIDRS is configuration: a range that contains the node's own address or gateway stops
   * the agent at once, before anything is installed. (Ranges from the API are refused by the
   * reconciler instead, which keeps running.)
   */
  async beforeRules(): Promise<void> {
    if (this.config.serviceCidrs === undefined) return;
    const { cidrs } = parseCidrList(this.config.serviceCidrs);
    assertSafeServiceCidrs(cidrs, await this.network.read());
  }

  async afterRules(): Promise<void> {
    await this.#removeLeftovers();
    const warnings = await this.selector.flavourWarnings(this.selection).catch(() => []);
    for (const warning of warnings) this.#log.warn({ backend: this.selection.backend }, warning);
  }

  /**
   * Rules of ours left in the other backends by an earlier run (before a backend switch). cleanup()
   * directly, not observe() first: a leftover we cannot parse must still be removed.
   */
  async #removeLeftovers(): Promise<void> {
    for (const [name, other] of this.backends) {
      if (name === this.selection.backend) continue;
      try {
        const availability = await this.selector.probe(name);
        if (!availability.available) continue;
        const result = await other.cleanup();
        if (!result.removed) continue;
        this.#log.info({ backend: name, summary: result.summary }, `removed leftovers of an earlier run from ${name}`);
      } catch (error) {
        this.#log.warn({ backend: name, err: error }, `could not check ${name} for leftovers of an earlier run`);
      }
    }
  }
}
