import {
  type CommandRequest,
  type CommandResult,
  type CommandRunner,
  ErrorCodes,
  formatCommand,
  RouteControllerError,
} from '@route-controller/core';

interface Job {
  readonly request: CommandRequest;
  /** Set for a plain read: an identical one asked meanwhile shares its result. */
  readonly key: string | undefined;
  readonly result: Promise<CommandResult>;
  readonly resolve: (result: CommandResult) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * One backend's firewall commands, one process at a time. The reconciler, the scrapes of /metrics
 * and the stale ClusterIP reports each read the same table on their own schedule; with a firewall
 * tool that hangs, each would start its own process and they would pile up. Here they wait in line
 * instead, and a read identical to one running or waiting (same argv, no stdin, no signal of its
 * own) shares that one's result: the queue holds at most one of each, so it stays short however
 * long the tool hangs. Each command still ends at its own timeout, counted from its start.
 *
 * Sharing a read in flight is safe because nothing runs beside it: any write its caller finished
 * before asking ran before that read started.
 */
export class SerialCommandRunner implements CommandRunner {
  readonly #queue: Job[] = [];
  #running: Job | undefined;
  /** Aborted by interrupt(): ends the command running, whatever its caller passed. */
  #generation = new AbortController();

  constructor(private readonly inner: CommandRunner) {}

  run(request: CommandRequest): Promise<CommandResult> {
    const key = shareKey(request);
    const same = key === undefined ? undefined : [this.#running, ...this.#queue].find((job) => job?.key === key);
    if (same) return same.result;
    if (request.signal?.aborted) return Promise.reject(canceled(request));
    let resolve!: (result: CommandResult) => void;
    let reject!: (error: unknown) => void;
    const result = new Promise<CommandResult>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const job: Job = { request, key, result, resolve, reject };
    // A caller that gives up while its command waits in line leaves the line at once.
    request.signal?.addEventListener('abort', () => this.#drop(job), { once: true });
    this.#queue.push(job);
    this.#next();
    return result;
  }

  /**
   * Ends the command running and every one waiting (ERR_RC_COMMAND_CANCELED): the agent is stopping,
   * and a read that hangs must not hold it up. Commands asked for afterwards run as usual.
   */
  interrupt(): void {
    const generation = this.#generation;
    this.#generation = new AbortController();
    generation.abort();
    for (const job of this.#queue.splice(0)) job.reject(canceled(job.request));
  }

  #drop(job: Job): void {
    const at = this.#queue.indexOf(job);
    if (at < 0) return;
    this.#queue.splice(at, 1);
    job.reject(canceled(job.request));
  }

  #next(): void {
    if (this.#running) return;
    const job = this.#queue.shift();
    if (!job) return;
    this.#running = job;
    const stop = new AbortController();
    const abort = () => stop.abort();
    const sources = [this.#generation.signal, job.request.signal].filter((s): s is AbortSignal => s !== undefined);
    for (const source of sources) source.addEventListener('abort', abort, { once: true });
    this.inner
      .run({ ...job.request, signal: stop.signal })
      .then(job.resolve, job.reject)
      .finally(() => {
        for (const source of sources) source.removeEventListener('abort', abort);
        this.#running = undefined;
        this.#next();
      });
  }
}

function shareKey(request: CommandRequest): string | undefined {
  if (request.input !== undefined || request.signal !== undefined) return undefined;
  return JSON.stringify([request.file, request.args, request.timeoutMs]);
}

/** As the process runner says it when a command is stopped on purpose. */
function canceled(request: CommandRequest): RouteControllerError {
  const command = formatCommand(request);
  return new RouteControllerError(ErrorCodes.CommandCanceled, `${command} was stopped: the agent is stopping`, {
    hint: 'Nothing to do: the command is retried at the next start if it is still needed.',
    details: { command },
  });
}

/** Every backend's commands at once, for the agent's stop. */
export interface FirewallCommands {
  /** Ends every firewall command running or waiting (see SerialCommandRunner.interrupt). */
  interrupt(): void;
}
