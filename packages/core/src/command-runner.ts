import { execa } from 'execa';
import { ErrorCodes, RouteControllerError } from './errors.js';

export interface CommandRequest {
  readonly file: string;
  readonly args: readonly string[];
  /** Written to stdin. */
  readonly input?: string;
  /** Stopped and reported as ERR_RC_COMMAND_TIMEOUT after this long. */
  readonly timeoutMs?: number;
  /** Stops the command (ERR_RC_COMMAND_CANCELED) when aborted: a caller that is shutting down. */
  readonly signal?: AbortSignal;
}

/** A command that ran to completion. A non-zero exit code is data, not an error. */
export interface CommandResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * The seam between our code and the processes it runs. Spawn failures, timeouts, cancellation and
 * unexpected signals reject with coded errors; everything else resolves, non-zero exits included.
 */
export interface CommandRunner {
  run(request: CommandRequest): Promise<CommandResult>;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;

export function formatCommand(request: Pick<CommandRequest, 'file' | 'args'>): string {
  return [request.file, ...request.args]
    .map((part) => (/^[\w@%+=:,./-]+$/.test(part) ? part : JSON.stringify(part)))
    .join(' ');
}

export interface ProcessCommandRunnerOptions {
  readonly defaultTimeoutMs?: number;
  /** Extra environment; the process environment is inherited. */
  readonly env?: Readonly<Record<string, string>>;
}

/** A timed-out or cancelled command gets SIGTERM, then SIGKILL after this long. */
const FORCE_KILL_AFTER_MS = 2_000;

/**
 * Runs commands with execa: args as an array, stdin from `input`, never a shell. A non-zero exit
 * is data; a missing binary, a timeout, a cancellation or a foreign signal becomes a coded error
 * with execa's own error as `cause`.
 */
export class ProcessCommandRunner implements CommandRunner {
  readonly #defaultTimeoutMs: number;
  readonly #env: Readonly<Record<string, string>>;

  constructor(options: ProcessCommandRunnerOptions = {}) {
    this.#defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    // Parse the tools' messages, never a translation of them.
    this.#env = { ...options.env, LC_ALL: 'C' };
  }

  async run(request: CommandRequest): Promise<CommandResult> {
    const timeout = request.timeoutMs ?? this.#defaultTimeoutMs;
    const result = await execa(request.file, [...request.args], {
      reject: false,
      env: this.#env,
      // Output exactly as the tool printed it: parsers see the final newline, as with a pipe.
      stripFinalNewline: false,
      timeout,
      forceKillAfterDelay: FORCE_KILL_AFTER_MS,
      ...(request.input === undefined ? { stdin: 'ignore' as const } : { input: request.input }),
      ...(request.signal ? { cancelSignal: request.signal } : {}),
    });
    return toCommandResult(request, result, timeout);
  }
}

/** What we read of execa's result (execa 9 with `reject: false`). */
interface ExecaOutcome {
  readonly failed: boolean;
  readonly exitCode?: number | undefined;
  readonly timedOut: boolean;
  readonly isCanceled: boolean;
  readonly signal?: string | undefined;
  readonly stdout: unknown;
  readonly stderr: unknown;
  readonly cause?: unknown;
  readonly shortMessage?: string | undefined;
  /** The spawn error's errno code ("ENOENT", "EACCES"). */
  readonly code?: string | undefined;
}

function toCommandResult(request: CommandRequest, result: ExecaOutcome, timeoutMs: number): CommandResult {
  const stdout = String(result.stdout ?? '');
  const stderr = String(result.stderr ?? '');
  if (!result.failed || (result.exitCode !== undefined && !result.timedOut && !result.isCanceled)) {
    return { exitCode: result.exitCode ?? 0, stdout, stderr };
  }
  const command = formatCommand(request);
  const cause = result.cause ?? result;
  if (result.timedOut) {
    throw new RouteControllerError(ErrorCodes.CommandTimeout, `${command} did not finish within ${timeoutMs} ms`, {
      hint: 'The system may be overloaded, or another process holds the firewall lock; it will be retried.',
      cause,
      details: { command, timeoutMs },
    });
  }
  if (result.isCanceled) {
    throw new RouteControllerError(ErrorCodes.CommandCanceled, `${command} was stopped: the agent is stopping`, {
      hint: 'Nothing to do: the command is retried at the next start if it is still needed.',
      cause,
      details: { command },
    });
  }
  const { code } = result;
  if (code === 'ENOENT') throw commandNotFound(request.file, { command, cause });
  if (result.signal) {
    throw new RouteControllerError(ErrorCodes.CommandKilled, `${command} was killed by ${result.signal}`, {
      hint: 'Something outside route-controller killed the command; it will be retried.',
      cause,
      details: { command, signal: result.signal },
    });
  }
  throw new RouteControllerError(
    ErrorCodes.CommandSpawn,
    `${command} could not be started: ${result.shortMessage?.split('\n').at(-1) ?? code}`,
    {
      hint: `Check that ${request.file} is executable by this user.`,
      cause,
      details: { command, file: request.file, errno: code },
    },
  );
}

/**
 * The one error for "this binary is not installed": raised by every CommandRunner (and its fakes),
 * so callers branch on ERR_RC_COMMAND_NOT_FOUND, never on message text.
 */
export function commandNotFound(
  file: string,
  options: { command?: string; cause?: unknown } = {},
): RouteControllerError {
  return new RouteControllerError(ErrorCodes.CommandNotFound, `${file} was not found`, {
    hint: `Install the package that provides ${file} (nftables or iptables), or put it on PATH.`,
    cause: options.cause,
    details: { command: options.command ?? file, file },
  });
}

/**
 * Runs a command whose non-zero exit is a failure: returns the result of a zero exit, or throws
 * the coded error `failure` makes of it (each backend classifies its tool's stderr its own way).
 */
export async function runChecked(
  runner: CommandRunner,
  request: CommandRequest,
  failure: (result: CommandResult, command: string) => RouteControllerError,
): Promise<CommandResult> {
  const result = await runner.run(request);
  if (result.exitCode !== 0) throw failure(result, formatCommand(request));
  return result;
}

/**
 * Runs every command behind a prefix, e.g. ["ip", "netns", "exec", "lab-node"], so a backend can be
 * pointed at a network namespace without knowing about it.
 */
export class PrefixedCommandRunner implements CommandRunner {
  constructor(
    private readonly inner: CommandRunner,
    private readonly prefix: readonly [string, ...string[]],
  ) {}

  run(request: CommandRequest): Promise<CommandResult> {
    const [file, ...rest] = this.prefix;
    return this.inner.run({ ...request, file, args: [...rest, request.file, ...request.args] });
  }
}
