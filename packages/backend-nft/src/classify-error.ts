import {
  type CommandResult,
  classifyStderr,
  type ErrorCode,
  ErrorCodes,
  PERMISSION_DENIED,
  RouteControllerError,
  type StderrRule,
} from '@route-controller/core';

/**
 * Turns a failed nft run into a coded error. nft reports the kernel's errno as text
 * ("Error: Could not process rule: File exists"), and its own parser errors as text too, so the
 * stderr is all we have; it rides along in `details.stderr` for logs.
 */

interface Classification {
  readonly code: ErrorCode;
  readonly hint: string;
}

const rule = (pattern: RegExp, code: ErrorCode, hint: string): StderrRule<Classification> => ({
  pattern,
  classification: { code, hint },
});

// First match wins: "JSON support not compiled-in" is unsupported, not a syntax error.
const RULES: readonly StderrRule<Classification>[] = [
  rule(
    PERMISSION_DENIED,
    ErrorCodes.FirewallPermission,
    'Run route-controller as root or with CAP_NET_ADMIN (in Kubernetes: securityContext.capabilities.add: ["NET_ADMIN"] and hostNetwork: true).',
  ),
  rule(
    /not supported|not compiled-in|Unsupported|unknown (?:hook|chain type)/i,
    ErrorCodes.FirewallUnsupported,
    'The kernel or nft lacks a feature we need (nf_tables with inet tables, interval sets, reject): load the nf_tables, nft_reject_inet modules, use nftables >= 1.0.1 with JSON, or choose the iptables backend.',
  ),
  rule(
    /No such file or directory|does not exist/i,
    ErrorCodes.FirewallNotFound,
    'An object of ours changed while we worked (another process edited or deleted it); the next reconcile re-reads our table and retries.',
  ),
  rule(
    /File exists|overlaps with an existing/i,
    ErrorCodes.FirewallExists,
    'An object or set element collides with one already present (another process edited our table); the next reconcile rebuilds the table.',
  ),
  rule(
    /syntax error|Parsing |Invalid|Unknown|Expected|must be|Object item not found|JSON/i,
    ErrorCodes.FirewallSyntax,
    'nft refused the payload route-controller generated: this is a bug, please report it with the stderr and the output of nft --version.',
  ),
];

const FALLBACK_HINT =
  'Run the command by hand (see details.command) to see why nft failed; the next reconcile retries.';

/** The first "Error: ..." line nft printed, for the message. */
export function firstErrorLine(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  const error = lines.find((line) => /Error:/.test(line));
  return (error ?? lines[0] ?? 'no error output').replace(/^.*?Error:\s*/, '');
}

export function classifyNftStderr(stderr: string): Classification {
  return classifyStderr(stderr, RULES) ?? { code: ErrorCodes.CommandFailed, hint: FALLBACK_HINT };
}

/** A coded error for an nft command that exited non-zero; `what` says what we tried ("apply", "list our table"). */
export function nftCommandError(what: string, command: string, result: CommandResult): RouteControllerError {
  const { code, hint } = classifyNftStderr(result.stderr);
  return new RouteControllerError(code, `nft could not ${what}: ${firstErrorLine(result.stderr)}`, {
    hint,
    details: { command, exitCode: result.exitCode, stderr: result.stderr, stdout: result.stdout.slice(0, 500) },
  });
}

/**
 * A listing that exited 0 but printed on stderr: nft 1.0.6 leaves out what it cannot decode (a set
 * whose key type only a newer kernel or nft knows) and says so there, so the read is not the table.
 */
export function nftUnreadable(command: string, result: CommandResult): RouteControllerError {
  return new RouteControllerError(
    ErrorCodes.FirewallUnreadable,
    `nft listed our table but said it could not show all of it: ${firstErrorLine(result.stderr)}`,
    {
      hint: 'Something in our table was made by a newer nft or kernel than this nft understands, so route-controller writes nothing from this read. Use an nftables release that matches the kernel, or delete the table (nft delete table inet route-controller; the agent re-creates it).',
      details: { command, exitCode: result.exitCode, stderr: result.stderr, stdout: result.stdout.slice(0, 500) },
    },
  );
}
