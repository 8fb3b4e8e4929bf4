import type { AgentConfig, DaemonSetRef } from '../config/config.js';
import { inject, injectable } from '../di.js';
import type { KubernetesConnection } from '../kube-api/connection.js';
import type { Logger } from '../observability/logger.js';
import { TOKENS } from '../tokens.js';
import { Backoff } from '../util/backoff.js';
import { SaidOnce } from '../util/said-once.js';
import { sleep } from '../util/sleep.js';
import { type DaemonSetReading, decideAtStop, readDaemonSet, type StopDecision } from './own-daemonset.js';

/** How long the GET at SIGTERM may take: well inside the stop deadline, which cleanup needs too. */
export const UNINSTALL_CHECK_TIMEOUT_MS = 2_000;
/** A GET while the agent runs: patient, nobody waits for it. */
const READ_TIMEOUT_MS = 10_000;

/** Opens (once) the Kubernetes API connection. */
type ConnectionLoader = () => Promise<KubernetesConnection>;

/**
 * Whether a stop is an uninstall (DAEMONSET_NAME): reads the agent's DaemonSet once after start, so
 * there is something to compare with and the Kubernetes client is loaded before it is needed (a
 * retry with backoff until it is seen), then once more at SIGTERM, within a short deadline.
 */
@injectable()
export class UninstallCheck {
  readonly #log: Logger;
  readonly #stop = new AbortController();
  readonly #said = new SaidOnce();
  /** What the last read while the agent ran found: the DaemonSet present ends the reads. */
  #seen: DaemonSetReading | undefined;

  constructor(
    @inject(TOKENS.Config) private readonly config: AgentConfig,
    @inject(TOKENS.KubernetesConnection) private readonly connection: ConnectionLoader,
    @inject(TOKENS.Logger) logger: Logger,
  ) {
    this.#log = logger.child({ component: 'uninstall-check' });
  }

  start(): void {
    const ref = this.config.daemonSet;
    if (ref && !this.config.cleanupOnExit) void this.#lookUntilSeen(ref);
  }

  /** Ends the reads of a start that failed. */
  stop(): void {
    this.#stop.abort();
  }

  /**
   * Whether the rules go at this stop (undefined: no DAEMONSET_NAME). Called at SIGTERM, in parallel
   * with the loops stopping, and answered within UNINSTALL_CHECK_TIMEOUT_MS, well inside the stop
   * deadline.
   */
  async decide(): Promise<StopDecision | undefined> {
    this.#stop.abort();
    const ref = this.config.daemonSet;
    if (!ref) return undefined;
    const now = await this.#read(ref, AbortSignal.timeout(UNINSTALL_CHECK_TIMEOUT_MS));
    const decision = decideAtStop(this.#seen, now);
    this.#log.info(
      { daemonSet: name(ref), found: now, remove: decision.remove, reason: decision.reason },
      'stop decided',
    );
    return decision;
  }

  async #lookUntilSeen(ref: DaemonSetRef): Promise<void> {
    const backoff = new Backoff({ initialMs: 1_000, maxMs: 300_000, jitter: 0.2 });
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      const reading = await this.#read(ref, AbortSignal.any([signal, AbortSignal.timeout(READ_TIMEOUT_MS)]));
      if (signal.aborted) return;
      this.#seen = reading;
      if (reading.kind === 'present') {
        this.#log.info({ daemonSet: name(ref), uid: reading.uid }, 'own daemonset seen');
        return;
      }
      const retryInMs = backoff.next();
      if (this.#said.said('reading', JSON.stringify(reading))) {
        // The rules would be kept at an uninstall; say why while it can still be fixed.
        this.#log.warn({ daemonSet: name(ref), found: reading, retryInMs }, 'own daemonset not seen');
      }
      await sleep(retryInMs, signal);
    }
  }

  async #read(ref: DaemonSetRef, signal: AbortSignal): Promise<DaemonSetReading> {
    try {
      const connection = (await this.connection()).connect();
      if (connection.kind !== 'ready') return { kind: 'unknown', message: connection.message };
      return await readDaemonSet(connection.transport, ref, signal);
    } catch (error) {
      return { kind: 'unknown', message: error instanceof Error ? error.message : String(error) };
    }
  }
}

function name(ref: DaemonSetRef): string {
  return `${ref.namespace}/${ref.name}`;
}
