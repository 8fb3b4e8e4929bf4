import { errorMessage } from '@route-controller/core';
import type { ApiConnectionState } from '../observability/api-state.js';
import type { Logger } from '../observability/logger.js';
import { Backoff } from '../util/backoff.js';
import { SaidOnce } from '../util/said-once.js';
import { sleep } from '../util/sleep.js';
import { ApiError, type ApiFailure, describeFailure } from './api-failure.js';
import type { Connection } from './connection.js';
import { type KubeTransport, TransportError } from './transport.js';

/** What a loop reads, for logs and for the grant a 403 asks for. */
export interface ApiSubject {
  /** "ServiceCIDRs", "the kubeadm-config ConfigMap", "this node's Node object". */
  readonly noun: string;
  /** The grant a 403 asks for: "get, list and watch on servicecidrs (API group networking.k8s.io)". */
  readonly permission: string;
}

export interface LoopTimings {
  /** First wait after a failure, doubled per failure in a row up to backoffMaxMs (client-go's 0.8 s to 30 s). */
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  /** Each wait is shortened by up to this fraction at random, so agents that failed together spread out. */
  readonly jitter: number;
  /** The backoff starts over once no wait was asked for this long (client-go: 2 minutes of health). */
  readonly backoffResetMs: number;
  /**
   * While the API is not served, refused (403) or not configured, it is looked at again after this
   * long (shortened by up to a tenth at random): these are answers that change rarely.
   */
  readonly recheckMs: number;
  /** A request (a list, a read, a watch whose headers have not come) is abandoned after this long. */
  readonly requestTimeoutMs: number;
}

const LOOP_TIMINGS: LoopTimings = {
  backoffInitialMs: 800,
  backoffMaxMs: 30_000,
  jitter: 0.5,
  backoffResetMs: 120_000,
  recheckMs: 600_000,
  requestTimeoutMs: 30_000,
};

export interface ApiLoopOptions {
  readonly subject: ApiSubject;
  readonly connect: () => Connection;
  readonly logger: Logger;
  readonly timings?: Partial<LoopTimings>;
  /** For the jitter; Math.random unless a test fixes it. */
  readonly random?: () => number;
  /** A monotonic clock in ms (performance.now unless a test injects one). */
  readonly now?: () => number;
}

/** One loop's state, as status and metrics show it. */
export interface ApiLoopStatus {
  readonly state: ApiConnectionState;
  /** A first answer has come: what the loop holds is authoritative, and stays so through faults. */
  readonly synced: boolean;
  readonly server?: string;
  readonly resource?: string;
  readonly lastError?: string;
}

export type Outcome<T> =
  | { readonly kind: 'ok'; readonly value: T }
  | { readonly kind: 'failed'; readonly failure: ApiFailure }
  | { readonly kind: 'stopped' };

/**
 * What the reflector (list and watch) and the periodic read share: one loop of attempts against
 * the API server, started explicitly and stopped at once; one jittered backoff for every fault
 * (and the server's Retry-After when it asks for longer); a slow recheck for answers that are
 * configuration (403, 404, no kubeconfig); the state shown in status and metrics; and the failure
 * log, said when it changes, not at every attempt.
 *
 * An error the loop did not foresee (a bug in the agent's own code) is shown as the state 'error'
 * and logged, and the loop carries on after a backoff: it never stops for good while its status
 * says all is well. Fail-static: what a loop holds is never dropped by a fault.
 */
export abstract class ApiLoop {
  protected readonly log: Logger;
  protected readonly subject: ApiSubject;
  protected readonly timings: LoopTimings;
  protected readonly random: () => number;
  protected readonly now: () => number;
  /** The one backoff of this loop: every failed cycle and every early end of a watch waits on it. */
  protected readonly backoff: Backoff;
  readonly #connect: () => Connection;
  readonly #listeners = new Set<() => void>();
  readonly #stop = new AbortController();
  readonly #said = new SaidOnce();
  #state: ApiConnectionState = 'connecting';
  #synced = false;
  #lastFailure: ApiFailure | undefined;
  #server: string | undefined;
  #resource: string | undefined;
  #loop: Promise<void> | undefined;
  #attempted = false;
  /** When a failure was last reported, and whether one was said aloud since the last success. */
  #lastReportAt = Number.NEGATIVE_INFINITY;
  #loud = false;
  readonly #firstAttempt: Promise<void>;
  #firstAttemptDone: () => void = () => {};

  constructor(options: ApiLoopOptions) {
    this.log = options.logger;
    this.subject = options.subject;
    this.timings = { ...LOOP_TIMINGS, ...options.timings };
    this.random = options.random ?? Math.random;
    this.now = options.now ?? (() => performance.now());
    this.#connect = options.connect;
    this.backoff = new Backoff({
      initialMs: this.timings.backoffInitialMs,
      maxMs: this.timings.backoffMaxMs,
      jitter: this.timings.jitter,
      resetAfterMs: this.timings.backoffResetMs,
      random: this.random,
      now: this.now,
    });
    this.#firstAttempt = new Promise((resolve) => {
      this.#firstAttemptDone = resolve;
    });
  }

  /** Starts the loop (once). */
  start(): void {
    if (this.#loop || this.stopped) return;
    // Begun on the next microtask: a first failure notifies listeners, and none of them runs inside start().
    this.#loop = Promise.resolve().then(() => this.#run());
  }

  get started(): boolean {
    return this.#loop !== undefined;
  }

  /** Resolves once the first attempt has an outcome (or the loop stopped), or after `waitMs`. */
  async firstAttempt(waitMs: number): Promise<void> {
    if (this.#attempted || !this.started) return;
    const waited = new AbortController();
    await Promise.race([this.#firstAttempt, sleep(waitMs, waited.signal)]);
    waited.abort();
  }

  status(): ApiLoopStatus {
    return {
      state: this.#state,
      synced: this.#synced,
      ...(this.#server ? { server: this.#server } : {}),
      ...(this.#resource ? { resource: this.#resource } : {}),
      ...(this.#lastFailure ? { lastError: describeFailure(this.#lastFailure) } : {}),
    };
  }

  /** The last failure, while the state is not 'synced'. */
  get lastFailure(): ApiFailure | undefined {
    return this.#lastFailure;
  }

  /** Called whenever what the loop holds or its state changes. Returns an unsubscribe. */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops at once: the request, watch or wait in flight is ended; what the loop holds is kept. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.#stop.abort();
    this.#state = 'stopped';
    this.attempted();
    await this.#loop;
  }

  protected get stopped(): boolean {
    return this.#stop.signal.aborted;
  }

  /** One attempt with a connected transport; returns how long to wait before the next one. */
  protected abstract cycle(transport: KubeTransport): Promise<number>;

  /** The first attempt has an outcome: a read waiting for it may answer now. */
  protected attempted(): void {
    this.#attempted = true;
    this.#firstAttemptDone();
  }

  /** Waits, or until stopped. */
  protected pause(ms: number): Promise<void> {
    return sleep(ms, this.#stop.signal);
  }

  /** A signal that aborts when the loop stops. */
  protected get stopSignal(): AbortSignal {
    return this.#stop.signal;
  }

  /** Runs one request under the request timeout; API and network failures come back as data. */
  protected async request<T>(work: (signal: AbortSignal) => Promise<T>): Promise<Outcome<T>> {
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), this.timings.requestTimeoutMs);
    const signal = AbortSignal.any([this.#stop.signal, timeout.signal]);
    try {
      // Raced against the abort too: a transport that ignores its signal cannot hold up stop().
      return { kind: 'ok', value: await Promise.race([work(signal), rejectOnAbort(signal)]) };
    } catch (error) {
      if (this.stopped) return { kind: 'stopped' };
      if (timeout.signal.aborted) {
        return {
          kind: 'failed',
          failure: {
            status: undefined,
            message: `the API server did not answer within ${this.timings.requestTimeoutMs} ms`,
          },
        };
      }
      if (error instanceof ApiError) return { kind: 'failed', failure: error.failure };
      if (error instanceof TransportError)
        return { kind: 'failed', failure: { status: undefined, message: error.message } };
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Records a failure; returns the wait before the next attempt. A 403 or 404 is configuration
   * (RBAC, an API not served) and is looked at again after the recheck interval; anything else is
   * a fault, retried after the backoff, or after the server's Retry-After when that is longer.
   */
  protected failed(failure: ApiFailure): number {
    if (failure.status === 404) return this.#report(failure, 'not-found', this.recheckWait());
    if (failure.status === 403) return this.#report(failure, 'forbidden', this.recheckWait());
    return this.#report(failure, 'unreachable', Math.max(this.backoff.next(), failure.retryAfterMs ?? 0));
  }

  /** The wait before looking again at an answer that is configuration. */
  protected recheckWait(): number {
    return Math.round(this.timings.recheckMs * (1 - 0.1 * this.random()));
  }

  /**
   * The loop has its answer again: state synced, the last failure forgotten. True when that is worth
   * saying aloud: the first answer, or the end of a failure that was said aloud.
   */
  protected succeeded(): boolean {
    const news = !this.#synced || this.#loud;
    this.#state = 'synced';
    this.#synced = true;
    this.#lastFailure = undefined;
    this.#loud = false;
    return news;
  }

  /** For status: what is read, once known ("networking.k8s.io/v1 servicecidrs"). */
  protected describe(resource: string): void {
    this.#resource = resource;
  }

  /** What a log line says is kept while failing: the objects held, or nothing yet. */
  protected kept(): number | undefined {
    return undefined;
  }

  protected changed(): void {
    for (const listener of this.#listeners) listener();
  }

  async #run(): Promise<void> {
    while (!this.stopped) {
      let wait: number;
      try {
        wait = await this.#attempt();
      } catch (error) {
        if (this.stopped) return;
        wait = this.backoff.next();
        this.#setFailure('error', { status: undefined, message: `unexpected error: ${errorMessage(error)}` });
        this.log.error({ err: error, subject: this.subject.noun, retryInMs: wait }, 'api loop failed unexpectedly');
      }
      this.attempted();
      if (this.stopped) return;
      await this.pause(wait);
    }
  }

  async #attempt(): Promise<number> {
    const connection = this.#connect();
    if (connection.kind === 'none') {
      // Said once by the shared connection, not by every loop.
      this.#setFailure('not-configured', { status: undefined, message: connection.message });
      return this.recheckWait();
    }
    if (connection.kind === 'invalid') {
      return this.#report({ status: undefined, message: connection.message }, 'unreachable', this.backoff.next());
    }
    this.#server = connection.transport.server;
    return this.cycle(connection.transport);
  }

  #report(failure: ApiFailure, state: ApiConnectionState, waitMs: number): number {
    if (this.stopped) return waitMs;
    this.#setFailure(state, failure);
    const fields = {
      subject: this.subject.noun,
      state,
      status: failure.status,
      err: failure.message,
      server: this.#server,
      retryInMs: waitMs,
      ...(state === 'forbidden' ? { permission: this.subject.permission } : {}),
      ...(this.#synced ? { keeping: this.kept() ?? 'the last answer' } : {}),
    };
    // Said when the state or the message changes, or after two quiet minutes; a fault that goes on
    // (even one that lets a list through between failures) is left to the backoff.
    if (this.now() - this.#lastReportAt > this.timings.backoffResetMs) this.#said.forget();
    this.#lastReportAt = this.now();
    const news = this.#said.said('failure', `${state}:${failure.message}`);
    if (news) this.#loud = true;
    const level = news ? 'warn' : 'debug';
    const message =
      state === 'forbidden' ? 'api forbidden' : state === 'not-found' ? 'api not served' : 'api unreachable';
    this.log[level](fields, message);
    return waitMs;
  }

  #setFailure(state: ApiConnectionState, failure: ApiFailure): void {
    this.#state = state;
    this.#lastFailure = failure;
    this.changed();
  }
}

function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_resolve, reject) => {
    signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
  });
}
