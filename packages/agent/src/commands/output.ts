import { type ErrorCode, ErrorCodes, RouteControllerError } from '@route-controller/core';

/** Where one-shot commands print: results on stdout, problems on stderr. */
export interface Output {
  out(text: string): void;
  err(text: string): void;
}

// A reader that stops early (`route-controller --help | head`) closes the pipe: that is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
}

export const processOutput: Output = {
  out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
};

/** Codes that mean "the configuration or the command line is wrong": exit code 2, nothing touched. */
const CONFIGURATION_CODES: ReadonlySet<ErrorCode> = new Set([
  ErrorCodes.InvalidConfig,
  ErrorCodes.InvalidCidr,
  ErrorCodes.CidrTooBroad,
  ErrorCodes.TooManyCidrs,
  ErrorCodes.UnsafeCidr,
  ErrorCodes.InvalidKubeconfig,
  ErrorCodes.Usage,
]);

export const EXIT_RUNTIME_FAILURE = 1;
export const EXIT_CONFIGURATION = 2;

export function isConfigurationError(error: unknown): error is RouteControllerError {
  return error instanceof RouteControllerError && CONFIGURATION_CODES.has(error.code);
}

/**
 * One plain line per problem: "error <code>: <message>. <hint>" (the message names the variable and
 * the value, the hint says the fix). An error holding several problems (every bad setting at once)
 * gives one line each.
 */
export function describeConfigurationError(error: RouteControllerError): string {
  const problems = (error as { problems?: readonly RouteControllerError[] }).problems ?? [error];
  return problems
    .map(
      (problem) =>
        `error ${problem.code}: ${problem.message.replace(/\.+$/, '')}${problem.hint ? `. ${problem.hint}` : ''}`,
    )
    .join('\n');
}

/** "error ERR_RC_...: message" plus the hint on its own line. */
export function describeError(error: unknown): string {
  if (isConfigurationError(error)) return describeConfigurationError(error);
  if (error instanceof RouteControllerError) {
    return `error ${error.code}: ${error.message}${error.hint ? `\n  hint: ${error.hint}` : ''}`;
  }
  return `error: ${error instanceof Error ? error.message : String(error)}`;
}

/** Left-aligned columns, for small human tables. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows
    .map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  '))
    .join('\n');
}

export function json(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2);
}
