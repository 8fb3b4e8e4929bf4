import type { CommandRequest, CommandResult, CommandRunner } from '../command-runner.js';
import { formatCommand } from '../command-runner.js';
import { ErrorCodes, RouteControllerError } from '../errors.js';

export type ArgsMatcher = readonly string[] | ((args: readonly string[]) => boolean);
export type InputMatcher = string | RegExp | ((input: string | undefined) => boolean);

/** One expected command and what it does. */
export interface ScriptedCommand {
  readonly file: string;
  /** Exact args, or a predicate; omitted means any. */
  readonly args?: ArgsMatcher;
  /** Exact stdin, a pattern, or a predicate; omitted means any. */
  readonly input?: InputMatcher;
  /** What the command printed and its exit code (defaults: 0, "", ""). */
  readonly result?: Partial<CommandResult>;
  /** Instead of a result: the binary is missing, the command times out, or a given error. */
  readonly fails?: 'missing' | 'timeout' | RouteControllerError;
}

/**
 * A strict scripted CommandRunner: each call must match the next expected command, in order.
 * Anything else throws ERR_RC_FAKE_UNEXPECTED_CALL naming what was expected and what came.
 */
export class FakeCommandRunner implements CommandRunner {
  readonly #script: ScriptedCommand[];
  readonly calls: CommandRequest[] = [];

  constructor(script: readonly ScriptedCommand[] = []) {
    this.#script = [...script];
  }

  expect(...commands: ScriptedCommand[]): this {
    this.#script.push(...commands);
    return this;
  }

  get remaining(): readonly ScriptedCommand[] {
    return this.#script;
  }

  run(request: CommandRequest): Promise<CommandResult> {
    this.calls.push(request);
    const expected = this.#script.shift();
    const got = formatCommand(request);
    if (!expected) return Promise.reject(unexpected(`unexpected command ${got}: the script is exhausted`, request));
    const mismatch = describeMismatch(expected, request);
    if (mismatch) {
      return Promise.reject(
        unexpected(`unexpected command ${got}: expected ${describeExpected(expected)} (${mismatch})`, request),
      );
    }
    if (expected.fails === 'missing') {
      return Promise.reject(
        new RouteControllerError(ErrorCodes.CommandSpawn, `${request.file} was not found`, {
          hint: `Install the package that provides ${request.file} or put it on PATH.`,
          details: { command: got, file: request.file },
        }),
      );
    }
    if (expected.fails === 'timeout') {
      return Promise.reject(
        new RouteControllerError(ErrorCodes.CommandTimeout, `${got} did not finish in time`, {
          details: { command: got },
        }),
      );
    }
    if (expected.fails) return Promise.reject(expected.fails);
    return Promise.resolve({ exitCode: 0, stdout: '', stderr: '', ...expected.result });
  }

  /** Throws unless every scripted command was called. */
  assertDone(): void {
    if (this.#script.length > 0) {
      throw new RouteControllerError(
        ErrorCodes.FakeUnexpectedCall,
        `expected commands were never run: ${this.#script.map(describeExpected).join('; ')}`,
      );
    }
  }
}

function unexpected(message: string, request: CommandRequest): RouteControllerError {
  return new RouteControllerError(ErrorCodes.FakeUnexpectedCall, message, {
    hint: 'Update the test script or the code under test.',
    details: { file: request.file, args: request.args, input: request.input },
  });
}

function describeExpected(expected: ScriptedCommand): string {
  if (Array.isArray(expected.args))
    return formatCommand({ file: expected.file, args: expected.args as readonly string[] });
  return `${expected.file} ${expected.args ? '<args matching a predicate>' : '<any args>'}`;
}

function describeMismatch(expected: ScriptedCommand, request: CommandRequest): string | undefined {
  if (expected.file !== request.file) return `file ${request.file} is not ${expected.file}`;
  const { args, input } = expected;
  if (typeof args === 'function') {
    if (!args(request.args)) return 'args predicate refused';
  } else if (args && (args.length !== request.args.length || args.some((arg, i) => arg !== request.args[i]))) {
    return 'args differ';
  }
  if (input === undefined) return undefined;
  if (typeof input === 'string' && input !== request.input) return 'stdin differs';
  if (input instanceof RegExp && !input.test(request.input ?? '')) return `stdin does not match ${input}`;
  if (typeof input === 'function' && !input(request.input)) return 'stdin predicate refused';
  return undefined;
}
