import type { CommandRunner } from '@route-controller/core';
import { BackendSelector, type Selection } from '../backends/backend-selector.js';
import type { BackendSet } from '../backends/backend-set.js';
import { kubeProxyReport } from '../backends/kube-proxy-report.js';
import { inject, injectable } from '../di.js';
import type { Logger } from '../observability/logger.js';
import { Reconciler } from '../reconcile/reconciler.js';
import { TOKENS } from '../tokens.js';

/**
 * What `run` does once after the first apply: the removal of an earlier run's rules from the other
 * backends and the iptables flavour warnings (both read every table, so they wait until the node is
 * protected), and a word on kube-proxy when it already drops traffic to unallocated ClusterIPs.
 */
@injectable()
export class StartupChores {
  readonly #log: Logger;

  constructor(
    @inject(TOKENS.Selection) private readonly selection: Selection,
    @inject(TOKENS.Backends) private readonly backends: BackendSet,
    @inject(BackendSelector) private readonly selector: BackendSelector,
    @inject(TOKENS.CommandRunner) private readonly runner: CommandRunner,
    @inject(Reconciler) private readonly reconciler: Reconciler,
    @inject(TOKENS.Logger) logger: Logger,
  ) {
    this.#log = logger.child({ component: 'agent' });
  }

  async afterRules(): Promise<void> {
    await this.#removeLeftovers();
    const warnings = await this.selector.flavourWarnings(this.selection).catch(() => []);
    for (const warning of warnings)
      this.#log.warn({ backend: this.selection.backend, warning }, 'iptables flavour warning');
    await this.#kubeProxyNotice();
  }

  /** kube-proxy in nftables mode may already cover this node: say so (our rules stay all the same). */
  async #kubeProxyNotice(): Promise<void> {
    try {
      const installed = this.reconciler.installed();
      const discovered = installed
        ? { ipv4: installed.cidrs.ipv4.map((c) => c.text), ipv6: installed.cidrs.ipv6.map((c) => c.text) }
        : undefined;
      const report = await kubeProxyReport(this.runner, discovered);
      if (report.notice) {
        this.#log.info(
          {
            kubeProxy: { ipv4: report.ipv4, ipv6: report.ipv6 },
            coversDiscovered: report.coversDiscovered,
            notice: report.notice,
          },
          'kube-proxy already drops unallocated ClusterIPs',
        );
      } else
        this.#log.debug({ unknown: report.unknown }, 'kube-proxy has no drop of unallocated ClusterIPs on this node');
    } catch (error) {
      this.#log.debug({ err: error }, 'kube-proxy check failed');
    }
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
        this.#log.info({ backend: name, summary: result.summary }, 'leftovers of an earlier run removed');
      } catch (error) {
        this.#log.warn({ backend: name, err: error }, 'leftover check failed');
      }
    }
  }
}
