import { spawn } from 'node:child_process';
import { ErrorCodes, RouteControllerError } from './errors.js';

export interface CommandRequest {
  readonly file: string;
  readonly args: readonly string[];
  /** Written to stdin. */
  readonly input?: string;
  /** Killed and reported as ERR_RC_COMMAND_TIMEOUT after this long. */
  readonly timeoutMs?: number;
}

/** A command that ran to completion. A non-zero exit code is data, not an error. */
export interface CommandResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * The seam between our code and the processes it runs. Spawn failures, timeouts and unexpected
 * signals reject with coded errors; everything else resolves.
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

/**
 * Runs commands with node:child_process: args as an array, stdin from `input`, never a shell.
 * (execa did this job first; its ~130 modules were a third of the agent's start-up, so the
 * few lines it saved us are written out here.)
 */
export class ProcessCommandRunner implements CommandRunner {
  readonly #defaultTimeoutMs: number;
  readonly #env: NodeJS.ProcessEnv;

  constructor(options: ProcessCommandRunnerOptions = {}) {
    this.#defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    // Parse the tools' messages, never a translation of them.
    this.#env = { ...process.env, ...options.env, LC_ALL: 'C' };
  }

  run(request: CommandRequest): Promise<CommandResult> {
    const timeout = request.timeoutMs ?? this.#defaultTimeoutMs;
    const command = formatCommand(request);
    return new Promise<CommandResult>((resolve, reject) => {
      let settled = false;
      let timedOut = false;
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      const child = spawn(request.file, [...request.args], {
        env: this.#env,
        stdio: [request.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, timeout);
      const settle = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        outcome();
      };
      child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
      child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
      child.once('error', (error: NodeJS.ErrnoException) => settle(() => reject(spawnError(request, command, error))));
      child.once('close', (code, signal) =>
        settle(() => {
          if (timedOut) {
            reject(
              new RouteControllerError(ErrorCodes.CommandTimeout, `${command} did not finish within ${timeout} ms`, {
                hint: 'The system may be overloaded, or another process holds the firewall lock; it will be retried.',
                cause: new Error(
                  `no exit after ${timeout} ms; sent SIGKILL (${signal ?? `exit code ${String(code)}`})`,
                ),
                details: { command, timeoutMs: timeout },
              }),
            );
          } else if (code === null) {
            reject(
              new RouteControllerError(ErrorCodes.CommandKilled, `${command} was killed by ${signal ?? 'a signal'}`, {
                hint: 'Something outside route-controller killed the command; it will be retried.',
                details: { command, signal },
              }),
            );
          } else {
            resolve({
              exitCode: code,
              stdout: Buffer.concat(stdout).toString('utf8'),
              stderr: Buffer.concat(stderr).toString('utf8'),
            });
          }
        }),
      );
      if (request.input !== undefined && child.stdin) {
        // A command may exit before reading all of its input; that is its exit code's business.
        child.stdin.on('error', () => {});
        child.stdin.end(request.input);
      }
    });
  }
}

function spawnError(request: CommandRequest, command: string, error: NodeJS.ErrnoException): RouteControllerError {
  if (error.code === 'ENOENT') return commandNotFound(request.file, { command, cause: error });
  return new RouteControllerError(ErrorCodes.CommandSpawn, `${command} could not be started: ${error.message}`, {
    hint: `Check that ${request.file} is executable by this user.`,
    cause: error,
    details: { command, file: request.file, errno: error.code },
  });
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
