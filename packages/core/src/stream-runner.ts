import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import { commandNotFound, formatCommand } from './command-runner.js';
import { ErrorCodes, RouteControllerError } from './errors.js';
import { once } from './once.js';

/**
 * The seam for long-lived processes whose output is read as it comes (`nft -j monitor`), next to
 * CommandRunner for commands that run to completion. Same rules: args as an array, never a shell.
 */
export interface StreamRequest {
  readonly file: string;
  readonly args: readonly string[];
  /** Ends the process (SIGTERM, then SIGKILL) when aborted; iteration then ends. */
  readonly signal: AbortSignal;
  /** Each line the process writes on stderr; without it, stderr is not read at all (ignored). */
  readonly onStderr?: (line: string) => void;
}

export interface StreamExit {
  /** Undefined when a signal ended the process. */
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
}

/** A running process; iterating it yields its stdout line by line (without the newline). */
export interface LineStream extends AsyncIterable<string> {
  /** The process id once spawned: undefined before, and when it could not be, or was never started. */
  readonly pid: number | undefined;
  /** Resolves with the process id once it is spawned, or undefined when it was not. Never rejects. */
  readonly spawned: Promise<number | undefined>;
  /**
   * Settles once the process has ended and its output has been read: resolves with how it ended,
   * or rejects with a coded error (ERR_RC_COMMAND_NOT_FOUND, ERR_RC_COMMAND_SPAWN) when it could not
   * be started. Iteration rethrows the same error.
   */
  readonly exited: Promise<StreamExit>;
}

export interface StreamRunner {
  /**
   * Starts the process (at once, or as soon as the runner knows how). Iterate the result once;
   * leaving the loop early ends the process, as aborting the request's signal does.
   */
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
const SETPRIV_PROBE_TIMEOUT_MS = 5_000;

/**
 * Whether `setpriv --pdeathsig` works here: probed once per process, asynchronously (a spawn must
 * never block the event loop), by running it on `true`.
 */
const setprivWorks = once(async (): Promise<boolean> => {
  const probe = await execa('setpriv', ['--pdeathsig', 'KILL', '--', 'true'], {
    stdio: 'ignore',
    reject: false,
    timeout: SETPRIV_PROBE_TIMEOUT_MS,
  });
  return probe.exitCode === 0;
});

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
 * Runs streaming processes with execa, as every command is run (args as an array, no shell,
 * cancellation by AbortSignal with SIGTERM then SIGKILL, cleanup when we exit), and reads their
 * output with execa's own line iteration, unbuffered.
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
  async diesWithParent(): Promise<boolean> {
    return this.#dieWithParent && (await setprivWorks());
  }

  start(request: StreamRequest): LineStream {
    return new ProcessLineStream(this.#spawn(request), request);
  }

  /** The started process (boxed: a bare subprocess is a promise, and would be awaited); none when aborted first. */
  async #spawn(request: StreamRequest): Promise<{ readonly subprocess: Subprocess } | undefined> {
    const command = formatCommand(request);
    if (request.signal.aborted) return undefined;
    let file = request.file;
    let args = [...request.args];
    if (this.#dieWithParent && (await setprivWorks())) {
      if (request.signal.aborted) return undefined;
      // setpriv would report a missing binary as its own exit code 127: find it first, as exec would.
      const resolved = findExecutable(request.file, this.#env.PATH);
      if (!resolved) throw commandNotFound(request.file, { command });
      file = 'setpriv';
      args = ['--pdeathsig', 'KILL', '--', resolved, ...args];
    }
    return { subprocess: spawnStreaming(file, args, this.#env, request) };
  }
}

function spawnStreaming(file: string, args: readonly string[], env: NodeJS.ProcessEnv, request: StreamRequest) {
  return execa(file, args, {
    env,
    extendEnv: false,
    stdin: 'ignore',
    stderr: request.onStderr ? 'pipe' : 'ignore',
    buffer: false,
    reject: false,
    cancelSignal: request.signal,
    forceKillAfterDelay: FORCE_KILL_AFTER_MS,
  });
}

type Subprocess = ReturnType<typeof spawnStreaming>;

/** What execa's result says of a streaming process that ended, or could not start. */
interface StreamOutcome {
  readonly failed: boolean;
  readonly exitCode?: number | undefined;
  readonly signal?: string | undefined;
  readonly isCanceled: boolean;
  readonly shortMessage?: string | undefined;
  readonly code?: string | undefined;
}

class ProcessLineStream implements LineStream {
  readonly spawned: Promise<number | undefined>;
  readonly exited: Promise<StreamExit>;
  /** The process and its stdout lines, read from the moment it is spawned (execa: "right away"). */
  readonly #output: Promise<{ readonly subprocess: Subprocess; readonly lines: AsyncIterator<string> } | undefined>;
  #pid: number | undefined;
  #iterating = false;

  constructor(launch: Promise<{ readonly subprocess: Subprocess } | undefined>, request: StreamRequest) {
    this.#output = launch.then(
      (launched) => {
        if (!launched) return undefined;
        const { subprocess } = launched;
        this.#pid = subprocess.pid;
        if (request.onStderr) void drainLines(subprocess, request.onStderr);
        return { subprocess, lines: subprocess.iterable()[Symbol.asyncIterator]() };
      },
      () => undefined,
    );
    this.spawned = this.#output.then(() => this.#pid);
    // execa settles once the process has ended and its output streams have closed: every line the
    // process wrote has been read by then.
    this.exited = launch.then(async (launched) => {
      if (!launched) return { exitCode: undefined, signal: undefined };
      return exitOf(await launched.subprocess, request);
    });
    // Whoever iterates gets the error; an unobserved rejection must not crash the process.
    this.exited.catch(() => undefined);
  }

  get pid(): number | undefined {
    return this.#pid;
  }

  [Symbol.asyncIterator](): AsyncIterator<string> {
    if (this.#iterating) throw new Error('a LineStream can be iterated only once');
    this.#iterating = true;
    return this.#lines();
  }

  async *#lines(): AsyncGenerator<string, void, undefined> {
    const output = await this.#output;
    if (output) {
      try {
        for (;;) {
          const next = await output.lines.next();
          if (next.done) break;
          yield next.value;
        }
      } finally {
        // A consumer that leaves early (break, throw) must not leave the process behind: end it
        // first, as execa's own cleanup (destroy stdout, await the process) waits for it to end.
        output.subprocess.kill();
        await output.lines.return?.();
      }
    }
    await this.exited;
  }
}

/** Hands each line of the process's stderr to `onLine`, until the process ends. */
async function drainLines(subprocess: Subprocess, onLine: (line: string) => void): Promise<void> {
  try {
    for await (const line of subprocess.iterable({ from: 'stderr' })) onLine(line);
  } catch {
    // The process's end is reported through `exited`.
  }
}

/** How a process ended, or the coded error when it could not be started. */
function exitOf(result: StreamOutcome, request: StreamRequest): StreamExit {
  const started = result.exitCode !== undefined || result.signal !== undefined || result.isCanceled;
  if (!result.failed || started) return { exitCode: result.exitCode, signal: result.signal };
  const command = formatCommand(request);
  const { code } = result;
  if (code === 'ENOENT') throw commandNotFound(request.file, { command, cause: result });
  throw new RouteControllerError(ErrorCodes.CommandSpawn, `${command} could not be started: ${result.shortMessage}`, {
    hint: `Check that ${request.file} is executable by this user.`,
    cause: result,
    details: { command, file: request.file, errno: code },
  });
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
