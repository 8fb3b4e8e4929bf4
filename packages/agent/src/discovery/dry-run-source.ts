import {
  ErrorCodes,
  formatServiceCidrs,
  normalizeCidrs,
  RouteControllerError,
  type ServiceCidrSource,
  type ServiceCidrs,
  type SourceReading,
} from '@route-controller/core';
import type { Connection } from '../kube-api/connection.js';
import { TransportError } from '../kube-api/transport.js';
import type { ApiConnectionState } from '../observability/api-state.js';
import type { Logger } from '../observability/logger.js';
import { classifyDryRun, DRY_RUN_SERVICE_NAME, type DryRunAnswer, type DryRunFamily, probeService } from './dry-run.js';
import type { KubernetesSource, KubernetesSourceStatus } from './watched-source.js';

export interface DryRunSourceOptions {
  readonly connect: () => Connection;
  readonly logger: Logger;
  /** The agent's namespace (POD_NAMESPACE, from the downward API), where the Service is "created". */
  readonly namespace: string | undefined;
  readonly requestTimeoutMs?: number;
}

const PERMISSION =
  'create on services in its own namespace (a Role; the Helm chart renders it when dry-run is enabled)';

/**
 * Opt-in: the API server's own answer. A create of a Service with dryRun=All and an invalid
 * clusterIP (0.0.0.0, ::) is refused naming the valid range; nothing is persisted. Asked again on
 * every read, so on every resync while it is the answering source (it cannot be watched). Comes
 * after the ServiceCIDR API: with several ServiceCIDRs a dry run names only one of them.
 *
 * Fail-static: once it has answered, a failure to ask again (API down, 5xx) keeps the last answer.
 */
export class DryRunSource implements ServiceCidrSource, KubernetesSource {
  readonly name = 'dry-run';
  readonly #options: DryRunSourceOptions;
  readonly #log: Logger;
  #last: { cidrs: ServiceCidrs; detail: string } | undefined;
  #state: ApiConnectionState = 'connecting';
  #lastError: string | undefined;
  #server: string | undefined;
  #said = '';
  #closed = false;
  readonly #abort = new AbortController();

  constructor(options: DryRunSourceOptions) {
    this.#options = options;
    this.#log = options.logger;
  }

  statuses(): readonly KubernetesSourceStatus[] {
    return [
      {
        source: this.name,
        state: this.#state,
        synced: this.#last !== undefined,
        objects: 0,
        resourceVersion: '',
        resource: `services (dryRun=All) in ${this.#options.namespace ?? '?'}`,
        ...(this.#server ? { server: this.#server } : {}),
        ...(this.#lastError ? { lastError: this.#lastError } : {}),
      },
    ];
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#state = 'stopped';
    this.#abort.abort();
  }

  async read(): Promise<SourceReading> {
    const namespace = this.#options.namespace;
    if (!namespace) {
      return { kind: 'none', detail: 'POD_NAMESPACE is not set (the downward API gives it in a pod)' };
    }
    const connection = this.#options.connect();
    if (connection.kind === 'none') {
      this.#state = 'not-configured';
      return { kind: 'none', detail: `no Kubernetes configuration (${connection.message})` };
    }
    if (connection.kind === 'invalid') return this.#failed('unreachable', connection.message);
    const { transport } = connection;
    this.#server = transport.server;

    const answers: Partial<Record<DryRunFamily, DryRunAnswer>> = {};
    for (const family of ['ipv4', 'ipv6'] as const) {
      const signal = AbortSignal.any([
        this.#abort.signal,
        AbortSignal.timeout(this.#options.requestTimeoutMs ?? 10_000),
      ]);
      try {
        const response = await transport.request({
          method: 'POST',
          path: `/api/v1/namespaces/${namespace}/services`,
          query: { dryRun: 'All' },
          body: probeService(family),
          signal,
        });
        answers[family] = classifyDryRun(response, family);
      } catch (error) {
        if (this.#closed) return this.#failed('stopped', 'stopped');
        if (!(error instanceof TransportError) && !(error instanceof Error && /abort|timeout/i.test(error.name)))
          throw error;
        return this.#failed(
          'unreachable',
          error instanceof TransportError ? error.message : 'the API server did not answer in time',
        );
      }
    }
    const all = Object.values(answers);
    const failed = all.find((answer) => answer.kind === 'failed');
    if (failed?.kind === 'failed') return this.#failed('unreachable', `HTTP ${failed.status}: ${failed.detail}`);
    const refused = all.find((answer) => answer.kind === 'refused');
    if (refused?.kind === 'refused') {
      this.#state = refused.status === 403 ? 'forbidden' : refused.status === 404 ? 'not-found' : 'unreachable';
      this.#lastError = `HTTP ${refused.status}: ${refused.detail}`;
      const detail =
        refused.status === 403
          ? `not allowed (${refused.detail}); it needs ${PERMISSION}`
          : `the dry-run Service create was refused (HTTP ${refused.status}: ${refused.detail})`;
      this.#say('warn', detail);
      return { kind: 'none', detail };
    }
    const ranges = all.flatMap((answer) => (answer.kind === 'range' ? [answer.cidr] : []));
    this.#state = 'synced';
    this.#lastError = undefined;
    if (ranges.length === 0) {
      const noAnswer = all.find((answer) => answer.kind === 'no-answer');
      const detail =
        noAnswer?.kind === 'no-answer' ? noAnswer.detail : 'the API server named no range for either family';
      this.#say('info', `dry-run: ${detail}`);
      return { kind: 'none', detail };
    }
    const { cidrs, notes } = normalizeCidrs(ranges);
    const detail = `the API server's answer to a dry-run Service ${DRY_RUN_SERVICE_NAME} in ${namespace}: ${formatServiceCidrs(cidrs)}`;
    this.#last = { cidrs, detail };
    this.#say('info', detail);
    return { kind: 'cidrs', cidrs, notes, detail };
  }

  /** The last answer if there is one (fail-static), else "unavailable": the chain stops there. */
  #failed(state: ApiConnectionState, why: string): SourceReading {
    this.#state = state;
    this.#lastError = why;
    if (this.#last)
      return {
        kind: 'cidrs',
        cidrs: this.#last.cidrs,
        detail: `${this.#last.detail}; asking again failed (${why}), keeping the last answer`,
      };
    this.#say(
      'warn',
      `cannot ask the API server for its Service range by a dry run (${why}); retried at the next resync`,
    );
    return {
      kind: 'unavailable',
      detail: `no answer to the dry-run Service create yet (${why})`,
      error: new RouteControllerError(ErrorCodes.SourceFailed, `the dry-run source cannot ask the API server: ${why}`, {
        hint: 'Check that the API server is reachable from the node, or set SERVICE_CIDRS (Helm: routeController.serviceCIDRs).',
        details: { state },
      }),
    };
  }

  /** Logs a message once until it changes: the source is asked on every resync. */
  #say(level: 'info' | 'warn', message: string): void {
    if (message === this.#said) return;
    this.#said = message;
    this.#log[level]({ source: this.name }, message);
  }
}
