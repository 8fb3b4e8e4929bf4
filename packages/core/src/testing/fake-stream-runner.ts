import { commandNotFound, formatCommand } from '../command-runner.js';
import type { RouteControllerError } from '../errors.js';
import type { LineStream, StreamExit, StreamRequest, StreamRunner } from '../stream-runner.js';

let nextPid = 40_000;

/**
 * A scripted streaming process: the test writes its stdout and stderr lines and decides when it
 * ends. Aborting the request's signal ends it as a kill would (SIGTERM).
 */
export class FakeLineStream implements LineStream {
  readonly pid: number | undefined;
  readonly spawned: Promise<number | undefined>;
  readonly exited: Promise<StreamExit>;
  readonly #lines: string[] = [];
  #wake: (() => void) | undefined;
  #ended = false;
  #error: RouteControllerError | undefined;
  #resolve!: (exit: StreamExit) => void;
  #reject!: (error: RouteControllerError) => void;

  constructor(
    readonly request: StreamRequest,
    error?: RouteControllerError,
  ) {
    this.exited = new Promise<StreamExit>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.exited.catch(() => undefined);
    if (error) {
      this.pid = undefined;
      this.spawned = Promise.resolve(undefined);
      this.#error = error;
      this.#ended = true;
      this.#reject(error);
      return;
    }
    nextPid += 1;
    this.pid = nextPid;
    this.spawned = Promise.resolve(this.pid);
    if (request.signal.aborted) this.end({ exitCode: undefined, signal: 'SIGTERM' });
    else request.signal.addEventListener('abort', () => this.end({ exitCode: undefined, signal: 'SIGTERM' }));
  }

  /** The command as it would be run. */
  get command(): string {
    return formatCommand(this.request);
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** True when the caller stopped it through its signal. */
  get stopped(): boolean {
    return this.request.signal.aborted;
  }

  /** Lines on stdout, as the process would print them. */
  emit(...lines: string[]): void {
    if (this.#ended) return;
    this.#lines.push(...lines);
    this.#notify();
  }

  /** A line on stderr. */
  stderr(line: string): void {
    if (!this.#ended) this.request.onStderr?.(line);
  }

  /** Ends the process (exit code 0 unless given), after every line emitted so far is read. */
  end(exit: Partial<StreamExit> = {}): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#notify();
    this.#resolve({ exitCode: exit.signal ? exit.exitCode : (exit.exitCode ?? 0), signal: exit.signal });
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<string> {
    for (;;) {
      const line = this.#lines.shift();
      if (line !== undefined) {
        yield line;
        continue;
      }
      if (this.#ended) break;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
    if (this.#error) throw this.#error;
  }
}

/**
 * A StreamRunner for unit tests: records every start and hands the test a FakeLineStream to drive.
 * `failNext('missing')` makes the next start fail as a missing binary does.
 */
export class FakeStreamRunner implements StreamRunner {
  readonly started: FakeLineStream[] = [];
  #failures: ('missing' | RouteControllerError)[] = [];
  #onStart: ((stream: FakeLineStream) => void) | undefined;

  /** Called with each stream as it starts (to emit lines at once, or end it). */
  onStart(handler: (stream: FakeLineStream) => void): this {
    this.#onStart = handler;
    return this;
  }

  failNext(failure: 'missing' | RouteControllerError): this {
    this.#failures.push(failure);
    return this;
  }

  /** The stream started last. */
  get current(): FakeLineStream | undefined {
    return this.started.at(-1);
  }

  start(request: StreamRequest): LineStream {
    const failure = this.#failures.shift();
    const error = failure === 'missing' ? commandNotFound(request.file, { command: formatCommand(request) }) : failure;
    const stream = new FakeLineStream(request, error);
    this.started.push(stream);
    if (!error) this.#onStart?.(stream);
    return stream;
  }
}
