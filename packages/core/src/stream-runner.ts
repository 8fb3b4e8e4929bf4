import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Readable } from 'node:stream';
import { execa } from 'execa';
import { commandNotFound, formatCommand } from './command-runner.js';
import { ErrorCodes, RouteControllerError } from './errors.js';

/**
 * The seam for long-lived processes whose output is read as it comes (`nft -j monitor`), next to
 * CommandRunner for commands that run to completion. Same rules: args as an array, never a shell.
 */
export interface StreamRequest {
  readonly file: string;
  readonly args: readonly string[];
  /** Ends the process (SIGTERM, then SIGKILL) when aborted; iteration then ends. */
  readonly signal: AbortSignal;
  /**
   * Each line the process writes on stderr. Stderr is drained whether or not this is given, so a
   * chatty process never blocks on a full pipe.
   */
  readonly onStderr?: (line: string) => void;
}

export interface StreamExit {
  /** Undefined when a signal ended the process. */
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
}

/** A running process; iterating it yields its stdout line by line (without the newline). */
export interface LineStream extends AsyncIterable<string> {
  /** The process id, once spawned (undefined when it could not be, or was never started). */
  readonly pid: number | undefined;
  /**
   * Settles once the process has ended and its output has been read: resolves with how it ended,
   * or rejects with a coded error (ERR_RC_COMMAND_NOT_FOUND, ERR_RC_COMMAND_SPAWN) when it could not
   * be started. Iteration rethrows the same error.
   */
  readonly exited: Promise<StreamExit>;
}

export interface StreamRunner {
  /** Starts the process at once. Iterate the result once; abort the request's signal to stop it. */
  start(request: StreamRequest): LineStream;
}

export interface ProcessStreamRunnerOptions {
  /** Extra environment; the process environment is inherited. */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Start the process under `setpriv --pdeathsig KILL` where setpriv supports it (util-linux 2.33+),
   * so the kernel kills it the moment we die, even by SIGKILL. Without it, a child reading from the
   * kernel lives on until its next write fails (EPIPE). Default true.
   */
  readonly dieWithParent?: boolean;
}

/** A stopped process gets SIGTERM, then SIGKILL after this long. */
const FORCE_KILL_AFTER_MS = 2_000;
/** Lines read but not yet consumed beyond which stdout is paused, so memory stays bounded. */
const MAX_QUEUED_LINES = 10_000;

let setprivChecked: boolean | undefined;

/** Whether `setpriv --pdeathsig` works here: checked once, by running it on `true`. */
function setprivWorks(): boolean {
  if (setprivChecked === undefined) {
    try {
      execFileSync('setpriv', ['--pdeathsig', 'KILL', '--', 'true'], { stdio: 'ignore', timeout: 5_000 });
      setprivChecked = true;
    } catch {
      setprivChecked = false;
    }
  }
  return setprivChecked;
}

/** The absolute path `file` runs as, looked up on PATH like execvp; undefined when there is none. */
export function findExecutable(file: string, path = process.env.PATH ?? ''): string | undefined {
  const executable = (candidate: string) => {
    try {
      accessSync(candidate, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (file.includes('/')) return executable(file) ? file : undefined;
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, file);
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Runs streaming processes with execa, as every command is run (args array, no shell, cancellation by
 * AbortSignal with SIGTERM then SIGKILL, cleanup when we exit). Output is not buffered: stdout is read
 * as it comes and split into lines by hand, because a monitor can print thousands of lines a second
 * and each line should cost one string split, nothing more.
 */
export class ProcessStreamRunner implements StreamRunner {
  readonly #env: NodeJS.ProcessEnv;
  readonly #dieWithParent: boolean;

  constructor(options: ProcessStreamRunnerOptions = {}) {
    // Parse the tools' messages, never a translation of them.
    this.#env = { ...process.env, ...options.env, LC_ALL: 'C' };
    this.#dieWithParent = options.dieWithParent ?? true;
  }

  /** Whether processes started here die with this one at once (setpriv --pdeathsig is usable). */
  get diesWithParent(): boolean {
    return this.#dieWithParent && setprivWorks();
  }

  start(request: StreamRequest): LineStream {
    const command = formatCommand(request);
    if (request.signal.aborted) return new ProcessLineStream(undefined, command, request);
    let file = request.file;
    let args = [...request.args];
    if (this.diesWithParent) {
      // setpriv would report a missing binary as its own exit code 127: find it first, as exec would.
      const resolved = findExecutable(request.file, this.#env.PATH);
      if (!resolved) return ProcessLineStream.failed(commandNotFound(request.file, { command }), command);
      file = 'setpriv';
      args = ['--pdeathsig', 'KILL', '--', resolved, ...args];
    }
    const child = execa(file, args, {
      env: this.#env,
      extendEnv: false,
      stdin: 'ignore',
      buffer: false,
      reject: false,
      cancelSignal: request.signal,
      forceKillAfterDelay: FORCE_KILL_AFTER_MS,
    });
    const outcome: Promise<StreamOutcome> = child.then((result) => result);
    return new ProcessLineStream(
      { pid: child.pid, stdout: child.stdout, stderr: child.stderr, outcome },
      command,
      request,
    );
  }
}

/** What execa's result says of a streaming process that ended, or could not start. */
interface StreamOutcome {
  readonly failed: boolean;
  readonly exitCode?: number | undefined;
  readonly signal?: string | undefined;
  readonly isCanceled: boolean;
  readonly shortMessage?: string | undefined;
  readonly code?: string | undefined;
}

/** A started process as the line stream reads it. */
interface StreamChild {
  readonly pid: number | undefined;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  readonly outcome: Promise<StreamOutcome>;
}

class ProcessLineStream implements LineStream {
  readonly exited: Promise<StreamExit>;
  readonly #child: StreamChild | undefined;
  readonly #lines: string[] = [];
  #wake: (() => void) | undefined;
  #ended = false;
  #error: RouteControllerError | undefined;
  #iterating = false;

  constructor(child: StreamChild | undefined, command: string, request: StreamRequest, error?: RouteControllerError) {
    this.#child = child;
    this.#error = error;
    if (!child) {
      this.#ended = true;
      this.exited = error ? Promise.reject(error) : Promise.resolve({ exitCode: undefined, signal: undefined });
      // Whoever iterates gets the error; an unobserved rejection must not crash the process.
      this.exited.catch(() => undefined);
      return;
    }
    const stdout = child.stdout;
    const stderr = child.stderr;
    let pending = '';
    stdout?.setEncoding('utf8');
    stdout?.on('data', (chunk: string) => {
      const parts = (pending + chunk).split('\n');
      pending = parts.pop() ?? '';
      for (const line of parts) this.#lines.push(line);
      if (this.#lines.length > MAX_QUEUED_LINES) stdout.pause();
      this.#notify();
    });
    stdout?.on('end', () => {
      if (pending !== '') this.#lines.push(pending);
      pending = '';
    });
    let errPending = '';
    stderr?.setEncoding('utf8');
    stderr?.on('data', (chunk: string) => {
      const parts = (errPending + chunk).split('\n');
      errPending = parts.pop() ?? '';
      for (const line of parts) request.onStderr?.(line);
    });
    stderr?.on('end', () => {
      if (errPending !== '') request.onStderr?.(errPending);
    });
    // execa settles once the process has ended and its output streams have closed: every line the
    // process wrote has been read by then.
    this.exited = child.outcome.then((result) => {
      const started = result.exitCode !== undefined || result.signal !== undefined || result.isCanceled;
      if (!result.failed || started) {
        this.#finish();
        return { exitCode: result.exitCode, signal: result.signal };
      }
      const { code } = result;
      this.#error =
        code === 'ENOENT'
          ? commandNotFound(request.file, { command, cause: result })
          : new RouteControllerError(
              ErrorCodes.CommandSpawn,
              `${command} could not be started: ${result.shortMessage}`,
              {
                hint: `Check that ${request.file} is executable by this user.`,
                cause: result,
                details: { command, file: request.file, errno: code },
              },
            );
      this.#finish();
      throw this.#error;
    });
    this.exited.catch(() => undefined);
  }

  static failed(error: RouteControllerError, command: string): ProcessLineStream {
    return new ProcessLineStream(
      undefined,
      command,
      { file: '', args: [], signal: new AbortController().signal },
      error,
    );
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #finish(): void {
    this.#ended = true;
    this.#notify();
  }

  /**
   * A hand-written iterator, not an async generator: a monitor's lines come by the thousand a
   * second, and a queued line is handed out with one resolved promise and nothing else.
   */
  [Symbol.asyncIterator](): AsyncIterator<string> {
    if (this.#iterating) throw new Error('a LineStream can be iterated only once');
    this.#iterating = true;
    let index = 0;
    const next = (): Promise<IteratorResult<string, undefined>> => {
      if (index < this.#lines.length) {
        const line = this.#lines[index] as string;
        index += 1;
        // Hand out what is queued, then drop it in one go: shift() per line would be quadratic.
        if (index === this.#lines.length) {
          this.#lines.length = 0;
          index = 0;
          if (this.#child?.stdout?.isPaused()) this.#child.stdout.resume();
        }
        return Promise.resolve({ value: line, done: false });
      }
      if (this.#ended) {
        return this.#error ? Promise.reject(this.#error) : Promise.resolve({ value: undefined, done: true });
      }
      return new Promise<void>((resolve) => {
        this.#wake = resolve;
      }).then(next);
    };
    return { next, return: () => Promise.resolve({ value: undefined, done: true }) };
  }
}

/**
 * Starts every process behind a prefix, e.g. ["ip", "netns", "exec", "lab-node"]: the streaming twin
 * of PrefixedCommandRunner. `ip netns exec` execs its command, so the pid stays the command's own.
 */
export class PrefixedStreamRunner implements StreamRunner {
  constructor(
    private readonly inner: StreamRunner,
    private readonly prefix: readonly [string, ...string[]],
  ) {}

  start(request: StreamRequest): LineStream {
    const [file, ...rest] = this.prefix;
    return this.inner.start({ ...request, file, args: [...rest, request.file, ...request.args] });
  }
}
