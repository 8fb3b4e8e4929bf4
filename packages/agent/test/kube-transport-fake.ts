import { vi } from 'vitest';
import type { KubeRequest, KubeResponse, KubeTransport, WatchEvent, WatchStream } from '../src/kube-api/transport.js';

/**
 * A scripted KubeTransport for unit tests: no network. Requests are answered by `answer`; each watch
 * opens a FakeWatch the test drives (push events, end, throw), or gets the next scripted refusal.
 */
export class FakeTransport implements KubeTransport {
  readonly server = 'https://fake.test:6443';
  readonly requests: KubeRequest[] = [];
  readonly watchRequests: KubeRequest[] = [];
  readonly watches: FakeWatch[] = [];
  /** Answers for the next watch requests, in order, before any stream is opened (non-200, or a throw). */
  readonly watchRefusals: (KubeResponse | Error)[] = [];
  /** Makes a watch request hang until aborted (its headers never come). */
  hangWatches = false;

  constructor(public answer: (request: KubeRequest) => KubeResponse | Promise<KubeResponse>) {}

  async request(request: KubeRequest): Promise<KubeResponse> {
    this.requests.push(request);
    return this.answer(request);
  }

  async watch(request: KubeRequest): Promise<WatchStream | KubeResponse> {
    this.watchRequests.push(request);
    const refusal = this.watchRefusals.shift();
    if (refusal instanceof Error) throw refusal;
    if (refusal) return refusal;
    if (this.hangWatches) {
      await new Promise((_resolve, reject) => {
        request.signal.addEventListener('abort', () => reject(abortError()), { once: true });
      });
    }
    const watch = new FakeWatch(request.signal);
    this.watches.push(watch);
    return { status: 200, events: watch };
  }

  /** The watch opened last. */
  get current(): FakeWatch | undefined {
    return this.watches.at(-1);
  }

  lists(): KubeRequest[] {
    return this.requests.filter((request) => request.method === 'GET' && !request.path.match(/^\/apis\/[^/]+\/[^/]+$/));
  }

  /** How many requests were made, watches included. */
  get all(): number {
    return this.requests.length + this.watchRequests.length;
  }
}

type Item = { readonly event: WatchEvent } | { readonly error: unknown } | { readonly end: true };

/** One open watch stream: events pushed by the test, ended by it or by the client's abort. */
export class FakeWatch implements AsyncIterable<WatchEvent> {
  readonly #queue: Item[] = [];
  #wake: (() => void) | undefined;
  #aborted = false;

  constructor(readonly signal: AbortSignal) {
    signal.addEventListener('abort', () => {
      this.#aborted = true;
      this.#wake?.();
    });
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  push(type: string, object: unknown): void {
    this.#put({ event: { type, object } });
  }

  end(): void {
    this.#put({ end: true });
  }

  throw(error: unknown): void {
    this.#put({ error });
  }

  #put(item: Item): void {
    this.#queue.push(item);
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    for (;;) {
      if (this.#aborted) throw abortError();
      const item = this.#queue.shift();
      if (!item) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
        this.#wake = undefined;
        continue;
      }
      if ('end' in item) return;
      if ('error' in item) throw item.error;
      yield item.event;
    }
  }
}

function abortError(): Error {
  const error = new Error('The operation was aborted');
  error.name = 'AbortError';
  return error;
}

export function ok(body: unknown): KubeResponse {
  return { status: 200, body };
}

export function status(
  code: number,
  reason: string,
  message: string,
  extra: { details?: unknown; retryAfterMs?: number } = {},
): KubeResponse {
  return {
    status: code,
    body: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason, code, details: extra.details },
    ...(extra.retryAfterMs ? { retryAfterMs: extra.retryAfterMs } : {}),
  };
}

export function list(items: unknown[], resourceVersion: string, kind = 'List'): KubeResponse {
  return ok({ kind, apiVersion: 'v1', metadata: { resourceVersion }, items });
}

/**
 * Under vitest's fake timers: moves the clock on in `stepMs` steps until `check` holds; fails after
 * `maxMs` of fake time. Returns the fake milliseconds it took. No wall-clock time is measured.
 */
export async function until(what: string, check: () => boolean, maxMs = 60_000, stepMs = 10): Promise<number> {
  let elapsed = 0;
  while (!check()) {
    if (elapsed >= maxMs) throw new Error(`not within ${maxMs} ms of fake time: ${what}`);
    await vi.advanceTimersByTimeAsync(stepMs);
    elapsed += stepMs;
  }
  return elapsed;
}

/** Under fake timers: lets every pending promise settle without moving the clock. */
export async function settle(): Promise<void> {
  await vi.advanceTimersByTimeAsync(0);
}

/** An APIResourceList naming these resources (a discovery document). */
export const resources = (names: string[]) =>
  ok({ kind: 'APIResourceList', resources: names.map((name) => ({ name })) });
