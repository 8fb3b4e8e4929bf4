import type { CommandRequest, CommandResult, CommandRunner } from '../command-runner.js';
import { commandNotFound, formatCommand } from '../command-runner.js';
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

/** Commands that may arrive in any order (concurrent reads), each exactly once. */
export interface UnorderedCommands {
  readonly anyOrder: readonly ScriptedCommand[];
}

export type ScriptStep = ScriptedCommand | UnorderedCommands;

function isUnordered(step: ScriptStep): step is UnorderedCommands {
  return 'anyOrder' in step;
}

/** Wraps commands the code under test may run concurrently, so their order is not asserted. */
export function anyOrder(...commands: ScriptedCommand[]): UnorderedCommands {
  return { anyOrder: commands };
}

/**
 * A strict scripted CommandRunner: each call must match the next expected step, in order; an
 * `anyOrder(...)` step accepts its commands in any order (what concurrent code may do), each once.
 * Anything else throws ERR_RC_FAKE_UNEXPECTED_CALL naming what was expected and what came.
 */
export class FakeCommandRunner implements CommandRunner {
  readonly #script: ScriptStep[];
  readonly calls: CommandRequest[] = [];

  constructor(script: readonly ScriptStep[] = []) {
    this.#script = script.map((step) => (isUnordered(step) ? { anyOrder: [...step.anyOrder] } : step));
  }

  expect(...steps: ScriptStep[]): this {
    this.#script.push(...steps.map((step) => (isUnordered(step) ? { anyOrder: [...step.anyOrder] } : step)));
    return this;
  }

  get remaining(): readonly ScriptStep[] {
    return this.#script;
  }

  run(request: CommandRequest): Promise<CommandResult> {
    this.calls.push(request);
    const got = formatCommand(request);
    const step = this.#script[0];
    if (!step) return Promise.reject(unexpected(`unexpected command ${got}: the script is exhausted`, request));
    let expected: ScriptedCommand;
    if (isUnordered(step)) {
      const pending = step.anyOrder as ScriptedCommand[];
      const index = pending.findIndex((candidate) => describeMismatch(candidate, request) === undefined);
      if (index < 0) {
        return Promise.reject(
          unexpected(
            `unexpected command ${got}: expected one of ${pending.map(describeExpected).join('; ')} (in any order)`,
            request,
          ),
        );
      }
      expected = pending.splice(index, 1)[0] as ScriptedCommand;
      if (pending.length === 0) this.#script.shift();
    } else {
      const mismatch = describeMismatch(step, request);
      if (mismatch) {
        return Promise.reject(
          unexpected(`unexpected command ${got}: expected ${describeExpected(step)} (${mismatch})`, request),
        );
      }
      expected = step;
      this.#script.shift();
    }
    if (expected.fails === 'missing') return Promise.reject(commandNotFound(request.file, { command: got }));
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
    const left = this.#script.flatMap((step) => (isUnordered(step) ? step.anyOrder : [step]));
    if (left.length > 0) {
      throw new RouteControllerError(
        ErrorCodes.FakeUnexpectedCall,
        `expected commands were never run: ${left.map(describeExpected).join('; ')}`,
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
