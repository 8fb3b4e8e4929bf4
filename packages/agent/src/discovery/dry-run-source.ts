import { formatServiceCidrs, normalizeCidrs, type SourceReading } from '@route-controller/core';
import { ApiError } from '../kube-api/api-failure.js';
import type { ApiSubject } from '../kube-api/api-loop.js';
import { PeriodicRead } from '../kube-api/periodic-read.js';
import type { KubeTransport } from '../kube-api/transport.js';
import type { Logger } from '../observability/logger.js';
import { SaidOnce } from '../util/said-once.js';
import { LoopSource } from './api-source.js';
import { classifyDryRun, DRY_RUN_SERVICE_NAME, type DryRunAnswer, probeService } from './dry-run.js';
import type { SourceCommonOptions } from './service-cidr-source.js';

export interface DryRunSourceOptions extends SourceCommonOptions {
  /** The agent's namespace (POD_NAMESPACE, from the downward API), where the Service is "created". */
  readonly namespace: string | undefined;
}

const SUBJECT: ApiSubject = {
  noun: 'the dry-run Service create',
  permission: 'create on services in its own namespace (a Role; the Helm chart renders it when dry-run is enabled)',
};

/** What one asking gave: the ranges named, or why there are none. */
type DryRunRead =
  | { readonly kind: 'ranges'; readonly ranges: readonly string[] }
  | { readonly kind: 'none'; readonly detail: string };

/**
 * Opt-in: the API server's own answer. A create of a Service with dryRun=All and an invalid
 * clusterIP (0.0.0.0, ::) is refused naming the valid range; nothing is persisted. Asked once per
 * family, and again about every 10 minutes (it cannot be watched). Comes after the ServiceCIDR API:
 * with several ServiceCIDRs a dry run names only one of them.
 *
 * Fail-static: once it has answered, a failure to ask again (API down, 5xx) keeps the last answer.
 */
export class DryRunSource extends LoopSource {
  readonly name = 'dry-run';
  protected readonly subject = SUBJECT;
  protected readonly loop: PeriodicRead<DryRunRead>;
  readonly #namespace: string | undefined;
  readonly #log: Logger;
  readonly #said = new SaidOnce();

  constructor(options: DryRunSourceOptions) {
    super(options.firstListWaitMs);
    this.#namespace = options.namespace;
    this.#log = options.logger;
    this.loop = this.follow(
      new PeriodicRead({
        subject: SUBJECT,
        resource: `services (dryRun=All) in ${options.namespace ?? '?'}`,
        connect: options.connect,
        read: (transport, signal) => this.#ask(transport, options.namespace ?? '', signal),
        logger: options.logger,
        ...(options.timings ? { timings: options.timings } : {}),
        ...(options.random ? { random: options.random } : {}),
        ...(options.now ? { now: options.now } : {}),
      }),
    );
  }

  /** Without a namespace there is nothing to ask. */
  override start(): void {
    if (this.#namespace) super.start();
  }

  override async read(): Promise<SourceReading> {
    if (!this.#namespace)
      return { kind: 'none', detail: 'POD_NAMESPACE is not set (the downward API gives it in a pod)' };
    return super.read();
  }

  async #ask(transport: KubeTransport, namespace: string, signal: AbortSignal): Promise<DryRunRead> {
    const answers: DryRunAnswer[] = [];
    for (const family of ['ipv4', 'ipv6'] as const) {
      const response = await transport.request({
        method: 'POST',
        path: `/api/v1/namespaces/${namespace}/services`,
        query: { dryRun: 'All' },
        body: probeService(family),
        signal,
      });
      const answer = classifyDryRun(response, family);
      // A fault (5xx, "allocator not ready") is retried with the backoff; a refusal by RBAC is a 403.
      if (answer.kind === 'failed' || (answer.kind === 'refused' && answer.status !== 400)) {
        throw new ApiError({
          status: answer.status,
          message:
            answer.kind === 'refused' && answer.status === 404
              ? `the dry-run Service create was refused (HTTP 404: ${answer.detail})`
              : answer.detail,
          ...(response.retryAfterMs ? { retryAfterMs: response.retryAfterMs } : {}),
        });
      }
      answers.push(answer);
    }
    const refused = answers.find((answer) => answer.kind === 'refused');
    if (refused?.kind === 'refused') {
      return {
        kind: 'none',
        detail: `the dry-run Service create was refused (HTTP ${refused.status}: ${refused.detail})`,
      };
    }
    const ranges = answers.flatMap((answer) => (answer.kind === 'range' ? [answer.cidr] : []));
    if (ranges.length > 0) return { kind: 'ranges', ranges };
    const noAnswer = answers.find((answer) => answer.kind === 'no-answer');
    return {
      kind: 'none',
      detail: noAnswer?.kind === 'no-answer' ? noAnswer.detail : 'the API server named no range for either family',
    };
  }

  protected answer(): SourceReading {
    const reading = this.#reading();
    // Said once until it changes: readings are recomputed at every resync.
    if (this.#said.said('answer', reading.detail)) {
      this.#log.info({ kind: reading.kind, detail: reading.detail }, 'dry-run answer');
    }
    return reading;
  }

  #reading(): SourceReading {
    const read = this.loop.value() as DryRunRead;
    if (read.kind === 'none') return read;
    const { cidrs, notes } = normalizeCidrs(read.ranges);
    const detail = `the API server's answer to a dry-run Service ${DRY_RUN_SERVICE_NAME} in ${this.#namespace}: ${formatServiceCidrs(cidrs)}`;
    return { kind: 'cidrs', cidrs, notes, detail };
  }
}
