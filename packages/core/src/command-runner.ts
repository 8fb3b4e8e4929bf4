import { execa } from 'execa';
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

export interface ExecaCommandRunnerOptions {
  readonly defaultTimeoutMs?: number;
  /** Extra environment; the process environment is inherited. */
  readonly env?: Readonly<Record<string, string>>;
}

export class ExecaCommandRunner implements CommandRunner {
  readonly #defaultTimeoutMs: number;
  readonly #env: Readonly<Record<string, string>> | undefined;

  constructor(options: ExecaCommandRunnerOptions = {}) {
    this.#defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.#env = options.env;
  }

  async run(request: CommandRequest): Promise<CommandResult> {
    const timeout = request.timeoutMs ?? this.#defaultTimeoutMs;
    const result = await execa(request.file, [...request.args], {
      reject: false,
      timeout,
      stripFinalNewline: false,
      // Parse the tools' messages, never a translation of them.
      env: { ...this.#env, LC_ALL: 'C' },
      ...(request.input === undefined ? { stdin: 'ignore' as const } : { input: request.input }),
    });
    const command = formatCommand(request);
    if (result.timedOut) {
      throw new RouteControllerError(ErrorCodes.CommandTimeout, `${command} did not finish within ${timeout} ms`, {
        hint: 'The system may be overloaded, or another process holds the firewall lock; it will be retried.',
        cause: result,
        details: { command, timeoutMs: timeout },
      });
    }
    if (result.exitCode === undefined) {
      if (result.isTerminated) {
        throw new RouteControllerError(
          ErrorCodes.CommandKilled,
          `${command} was killed by ${result.signal ?? 'a signal'}`,
          {
            hint: 'Something outside route-controller killed the command; it will be retried.',
            cause: result,
            details: { command, signal: result.signal },
          },
        );
      }
      const cause = result.cause;
      const missing = cause instanceof Error && (cause as NodeJS.ErrnoException).code === 'ENOENT';
      throw new RouteControllerError(
        ErrorCodes.CommandSpawn,
        missing ? `${request.file} was not found` : `${command} could not be started: ${result.shortMessage}`,
        {
          hint: missing
            ? `Install the package that provides ${request.file} (nftables or iptables) or put it on PATH.`
            : `Check that ${request.file} is executable by this user.`,
          cause: cause ?? result,
          details: { command, file: request.file },
        },
      );
    }
    return { exitCode: result.exitCode, stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? '') };
  }
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
