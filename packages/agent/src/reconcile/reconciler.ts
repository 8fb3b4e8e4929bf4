import {
  cidrTexts,
  type DesiredState,
  type Discovery,
  type DiscoveryChain,
  describeDesiredState,
  describeNote,
  ErrorCodes,
  type FirewallBackend,
  formatServiceCidrs,
  isEmptyDesiredState,
  isRouteControllerError,
  RouteControllerError,
  type ServiceCidrs,
  type SkippedSource,
  sameDesiredState,
  sameServiceCidrs,
} from '@route-controller/core';
import type { AgentConfig } from '../config/config.js';
import { formatDuration } from '../config/duration.js';
import { inject, injectable } from '../di.js';
import { assertSafeServiceCidrs } from '../node/cidr-safety.js';
import type { NodeNetworkReader } from '../node/node-network.js';
import type { Liveness, Readiness } from '../observability/health-server.js';
import type { Logger } from '../observability/logger.js';
import { AgentMetrics } from '../observability/metrics.js';
import { TOKENS } from '../tokens.js';
import { Backoff } from '../util/backoff.js';
import { SaidOnce } from '../util/said-once.js';
import { desiredFromDiscovery } from './desired-from-discovery.js';

/**
 * Why a reconcile runs: start, a discovery change, the resync timer, a retry, a kernel change event,
 * or a poll of our table while change events pause for another tool's churn.
 */
export type ReconcileTrigger = 'start' | 'change' | 'resync' | 'retry' | 'event' | 'poll';

/** When triggers wait together, the run carries the weightiest: it is the one its outcome is about. */
const TRIGGER_RANK: Readonly<Record<ReconcileTrigger, number>> = {
  resync: 0,
  poll: 1,
  event: 1,
  retry: 2,
  change: 2,
  start: 3,
};

/** How drift was noticed, for the "drift repaired" line. */
const NOTICED_BY: Readonly<Record<ReconcileTrigger, string>> = {
  start: 'at start',
  change: 'on a discovery change',
  resync: 'by the resync',
  retry: 'on a retry',
  event: 'from a kernel change event',
  poll: 'by a poll during foreign churn',
};

export interface ReconcileOutcome {
  readonly trigger: ReconcileTrigger;
  readonly ok: boolean;
  readonly changed: boolean;
  readonly driftRepaired: boolean;
}

/**
 * How fast a failed apply is retried: from RETRY_INITIAL_MS, doubling, capped near the resync
 * interval, each delay shortened by up to RETRY_JITTER at random so that nodes that failed together
 * (a kube-proxy restart holding the xtables lock everywhere) do not retry together.
 */
export const RETRY_INITIAL_MS = 500;
export const RETRY_JITTER = 0.2;
export const retryCapMs = (resyncMs: number): number => Math.min(30_000, Math.max(1_000, resyncMs));

/** kube-proxy's healthz convention: the loop is alive while attempts complete within 3 resyncs. */
export const LIVENESS_RESYNCS = 3;
/** A reconcile running longer than this (or than one resync) leaves the rules unverified: not ready. */
export const MIN_VERIFY_MS = 1_000;

/**
 * Keeps the kernel in step with the discovered Service CIDRs: applies on start, on every change,
 * every resync tick and every kernel change event (both repair drift). Runs are serialised and
 * coalesced: triggers that arrive during a run collapse into one more run (single-flight with a
 * dirty flag), so the echo of our own write costs one read that writes nothing. A failure keeps the
 * rules in place and retries with backoff.
 */
@injectable()
export class Reconciler {
  readonly #log: Logger;
  readonly #discoveryLog: Logger;
  readonly #backoff: Backoff;
  #running: Promise<void> | undefined;
  #active = false;
  #pending: ReconcileTrigger | undefined;
  #resyncTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  #stopped = false;
  /** Aborted by stop(): ends a write in flight (an iptables-restore waiting for the xtables lock). */
  readonly #abort = new AbortController();
  /** The last state applied successfully: what fail-static keeps, and what drift is measured against. */
  #applied: DesiredState | undefined;
  #readiness: Readiness = { ready: false, reason: 'starting: no reconcile has finished yet' };
  /** Whether this process has said at info level what the node enforces (once per start). */
  #announced = false;
  /** Why no source has CIDRs, while that is so: the node is not protected, so not ready. */
  #unprotected: string | undefined;
  #checkedSafeCidrs: ServiceCidrs | undefined;
  readonly #outcomes: ((outcome: ReconcileOutcome) => void)[] = [];
  readonly #said = new SaidOnce();
  /** When start() was called, when the last attempt ended, and the one running: for /healthz and /readyz. */
  #startedAt: number | undefined;
  #lastAttemptAt: number | undefined;
  #attempt: { readonly since: number; waitingOn: string } | undefined;

  constructor(
    @inject(TOKENS.Config) private readonly config: AgentConfig,
    @inject(TOKENS.Backend) private readonly backend: FirewallBackend,
    @inject(TOKENS.Discovery) private readonly discovery: DiscoveryChain,
    @inject(TOKENS.NodeNetwork) private readonly network: NodeNetworkReader,
    @inject(AgentMetrics) private readonly metrics: AgentMetrics,
    @inject(TOKENS.Logger) logger: Logger,
    @inject(TOKENS.Clock) private readonly now: () => number,
  ) {
    this.#log = logger.child({ component: 'reconciler' });
    // A sibling of the reconciler's logger, not its child: one `component` per line.
    this.#discoveryLog = logger.child({ component: 'discovery' });
    this.#backoff = new Backoff({
      initialMs: RETRY_INITIAL_MS,
      maxMs: retryCapMs(config.resyncIntervalMs),
      jitter: RETRY_JITTER,
    });
  }

  /** Reconciles once (awaited), then follows discovery changes and resyncs on a timer. */
  async start(): Promise<void> {
    this.#startedAt = this.now();
    this.metrics.backendChosen(this.backend);
    this.#unsubscribe = this.discovery.subscribe(() => this.trigger('change'));
    await this.trigger('start');
    if (this.#stopped) return;
    this.#resyncTimer = setInterval(() => void this.trigger('resync'), this.config.resyncIntervalMs);
  }

  /** Asks for a reconcile; resolves when the run that covers it has finished. */
  trigger(reason: ReconcileTrigger): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#pending === undefined || TRIGGER_RANK[reason] > TRIGGER_RANK[this.#pending]) this.#pending = reason;
    if (!this.#active) {
      this.#active = true;
      this.#running = this.#drain();
    }
    return this.#running ?? Promise.resolve();
  }

  /**
   * Stops timers, waits for a run in progress, then closes the discovery sources (the Kubernetes
   * watch). Never removes rules.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unsubscribe?.();
    clearInterval(this.#resyncTimer);
    clearTimeout(this.#retryTimer);
    this.#abort.abort();
    await this.#running;
    await this.discovery.close();
  }

  /**
   * Ready when the last reconcile left the kernel in step, and none has been running so long that
   * this is no longer known (a firewall tool that hangs until its timeout, 30 s or more).
   */
  readiness(): Readiness {
    const attempt = this.#attempt;
    const limit = Math.max(MIN_VERIFY_MS, this.config.resyncIntervalMs);
    if (attempt && !this.#stopped && this.now() - attempt.since > limit) {
      const running = formatDuration(roundedSeconds(this.now() - attempt.since));
      return {
        ready: false,
        reason: `cannot verify the rules: a reconcile has been waiting on ${attempt.waitingOn} for ${running}`,
      };
    }
    return this.#readiness;
  }

  /**
   * Alive while reconcile attempts, failed ones included, keep completing: none for 3 resync
   * intervals means a loop stuck behind something that never returns, which a restart can cure.
   */
  liveness(): Liveness {
    const since = this.#lastAttemptAt ?? this.#startedAt;
    const limit = LIVENESS_RESYNCS * this.config.resyncIntervalMs;
    if (since === undefined || this.#stopped || this.now() - since <= limit) return { alive: true, reason: 'ok' };
    const waitingOn = this.#attempt ? `; the one running waits on ${this.#attempt.waitingOn}` : '';
    return {
      alive: false,
      reason: `no reconcile attempt has completed for ${formatDuration(roundedSeconds(this.now() - since))}, more than ${LIVENESS_RESYNCS} resync intervals (${formatDuration(limit)})${waitingOn}`,
    };
  }

  /** What the last successful reconcile left in the kernel (undefined before the first one). */
  installed(): DesiredState | undefined {
    return this.#applied;
  }

  /** Tells `listener` the outcome of every reconcile (tests watch the loop through it). */
  onOutcome(listener: (outcome: ReconcileOutcome) => void): void {
    this.#outcomes.push(listener);
  }

  async #drain(): Promise<void> {
    try {
      // The loop test and the reset of #active run in one synchronous step after the last await,
      // so a trigger can never slip in between and be lost.
      while (this.#pending !== undefined && !this.#stopped) {
        const trigger = this.#pending;
        this.#pending = undefined;
        this.#attempt = { since: this.now(), waitingOn: 'the Service CIDR sources' };
        const outcome = await this.#reconcile(trigger).finally(() => {
          this.#attempt = undefined;
          this.#lastAttemptAt = this.now();
        });
        for (const listener of this.#outcomes) listener(outcome);
      }
    } finally {
      this.#active = false;
    }
  }

  async #reconcile(trigger: ReconcileTrigger): Promise<ReconcileOutcome> {
    const failed = { trigger, ok: false, changed: false, driftRepaired: false };
    let desired: DesiredState;
    let source: string;
    try {
      const discovery = await this.discovery.resolve();
      this.#logDiscovery(discovery);
      this.#unprotected = discovery.kind === 'none' ? unprotectedReason(discovery.skipped) : undefined;
      const outcome = desiredFromDiscovery(discovery, this.config.action, this.backend.capabilities.families);
      if (outcome.kind === 'keep') {
        const kept = this.#applied ? describeDesiredState(this.#applied) : 'nothing installed yet';
        this.#setReadiness(
          this.#applied !== undefined,
          `Service CIDR source unavailable (${outcome.reason}); keeping: ${kept}`,
        );
        return { ...failed, ok: this.#applied !== undefined };
      }
      // Once per change of what is left out, not on every reconcile.
      if (this.#said.said('dropped families', outcome.dropped.join(',')) && outcome.dropped.length > 0) {
        this.#log.warn(
          { families: outcome.dropped, backend: this.backend.name },
          'Service CIDRs of a family the backend cannot enforce on this node are ignored',
        );
      }
      desired = outcome.desired;
      source = outcome.source;
      await this.#assertSafe(desired);
    } catch (error) {
      return this.#failure(trigger, error, 'desired state failed', 'could not work out the desired state', false);
    }

    try {
      if (this.#attempt) this.#attempt.waitingOn = `the ${this.backend.name} commands`;
      const result = await this.backend.apply(desired, { signal: this.#abort.signal });
      // Said once by the backend, when it finds out (the iptables fallback to filter FORWARD).
      for (const warning of result.warnings ?? [])
        this.#log.warn({ backend: this.backend.name, warning }, 'apply warning');
      // Whatever noticed it (the resync, a change event, a retry): the kernel no longer held what we
      // had applied, and we had not asked for anything new.
      const driftRepaired = result.changed && this.#applied !== undefined && sameDesiredState(this.#applied, desired);
      const at = new Date();
      this.metrics.applied(result.changed, at);
      // What the kernel enforces now: only after the safety check and a successful apply.
      this.metrics.cidrs(source, desired.cidrs);
      if (driftRepaired) {
        this.metrics.driftRepaired();
        this.#log.warn(
          { backend: this.backend.name, trigger, noticed: NOTICED_BY[trigger], summary: result.summary },
          'drift repaired',
        );
      } else if (result.changed) {
        this.#log.info(
          {
            backend: this.backend.name,
            trigger,
            action: desired.action,
            cidrs: allCidrs(desired.cidrs),
            summary: result.summary,
            writes: result.writes,
            uptimeMs: Math.round(performance.now()),
          },
          'rules applied',
        );
      } else if (!this.#announced && !isEmptyDesiredState(desired)) {
        // A restart over rules already in place (every rolling update): say the node is protected.
        this.#log.info(
          {
            backend: this.backend.name,
            trigger,
            action: desired.action,
            cidrs: allCidrs(desired.cidrs),
            uptimeMs: Math.round(performance.now()),
          },
          'rules already in step',
        );
      } else {
        this.#log.debug({ trigger }, 'rules in step');
      }
      if (!isEmptyDesiredState(desired)) this.#announced = true;
      this.#applied = desired;
      this.#backoff.reset();
      if (this.#unprotected) this.#setReadiness(false, this.#unprotected);
      else this.#setReadiness(true, `in step: ${describeDesiredState(desired)} (${this.backend.name})`);
      return { trigger, ok: true, changed: result.changed, driftRepaired };
    } catch (error) {
      if (this.#stopped && isRouteControllerError(error, ErrorCodes.CommandCanceled)) {
        this.#log.info(
          { backend: this.backend.name, kept: this.#applied ? describeDesiredState(this.#applied) : 'nothing' },
          'apply stopped',
        );
        return { trigger, ok: false, changed: false, driftRepaired: false };
      }
      return this.#failure(trigger, error, 'apply failed', `apply with ${this.backend.name} failed`, true);
    }
  }

  /** `message` is the log line's (constant), `what` the readiness text's (for people). */
  #failure(
    trigger: ReconcileTrigger,
    error: unknown,
    message: 'desired state failed' | 'apply failed',
    what: string,
    retry: boolean,
  ): ReconcileOutcome {
    this.metrics.failed();
    const delay = retry ? this.#backoff.next() : undefined;
    const coded = error instanceof RouteControllerError ? error : undefined;
    const kept = this.#applied ? describeDesiredState(this.#applied) : 'nothing installed';
    // The rules in place are kept: fail-static.
    this.#log.error(
      { err: error, code: coded?.code, hint: coded?.hint, backend: this.backend.name, trigger, retryInMs: delay, kept },
      message,
    );
    // The code for machines, the message for people: /readyz is where an operator looks first.
    this.#setReadiness(false, `${what}: ${coded ? `${coded.code}: ${coded.message}` : String(error)}`);
    if (delay !== undefined && !this.#stopped) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = setTimeout(() => void this.trigger('retry'), delay);
    }
    return { trigger, ok: false, changed: false, driftRepaired: false };
  }

  /** Checks a new CIDR set against the node's own addresses; an unchanged set is not re-read. */
  async #assertSafe(desired: DesiredState): Promise<void> {
    if (isEmptyDesiredState(desired)) return;
    if (this.#checkedSafeCidrs && sameServiceCidrs(this.#checkedSafeCidrs, desired.cidrs)) return;
    assertSafeServiceCidrs(desired.cidrs, await this.network.read());
    this.#checkedSafeCidrs = desired.cidrs;
  }

  #logDiscovery(discovery: Discovery): void {
    const key =
      discovery.kind === 'cidrs' ? `${discovery.source}:${formatServiceCidrs(discovery.cidrs)}` : discovery.kind;
    if (!this.#said.said('discovery', key)) return;
    const log = this.#discoveryLog;
    if (discovery.kind === 'cidrs') {
      // Which source answered, from what, and why the ones before it did not.
      log.info(
        {
          source: discovery.source,
          cidrs: allCidrs(discovery.cidrs),
          detail: discovery.detail,
          skipped: discovery.skipped,
        },
        'Service CIDRs found',
      );
      for (const note of discovery.notes) log.warn({ ...note, note: describeNote(note) }, 'Service CIDR normalised');
    } else if (discovery.kind === 'none') {
      // Nothing is installed: the node is not protected until SERVICE_CIDRS is set.
      log.warn(
        {
          skipped: discovery.skipped,
          hint: 'Set SERVICE_CIDRS (Helm: routeController.serviceCIDRs) to protect this node.',
        },
        'no Service CIDRs found',
      );
    } else {
      // The rules in place are kept (fail-static).
      log.warn(
        { source: discovery.source, detail: discovery.detail, err: discovery.error },
        'Service CIDR source unavailable',
      );
    }
  }

  #setReadiness(ready: boolean, reason: string): void {
    this.#readiness = { ready, reason };
    this.metrics.ready(ready);
  }
}

/** The /readyz body while no source has Service CIDRs: why, and the fix. */
function unprotectedReason(skipped: readonly SkippedSource[]): string {
  const why = skipped.map((s) => `${s.source}: ${s.detail}`).join('; ');
  return `not protecting this node: no Service CIDRs found (${why}). Set SERVICE_CIDRS (Helm: routeController.serviceCIDRs) to the cluster's Service range`;
}

function roundedSeconds(ms: number): number {
  return Math.max(1, Math.round(ms / 1000)) * 1000;
}

/** Both families' CIDRs as text, for log fields. */
function allCidrs(cidrs: ServiceCidrs): string[] {
  return [...cidrTexts(cidrs.ipv4), ...cidrTexts(cidrs.ipv6)];
}
