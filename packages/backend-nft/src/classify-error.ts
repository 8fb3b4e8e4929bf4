import { type CommandResult, type ErrorCode, ErrorCodes, RouteControllerError } from '@route-controller/core';

/**
 * Turns a failed nft run into a coded error. nft reports the kernel's errno as text
 * ("Error: Could not process rule: File exists"), and its own parser errors as text too, so the
 * stderr is all we have; it rides along in `details.stderr` for logs.
 */

interface Rule {
  readonly code: ErrorCode;
  readonly pattern: RegExp;
  readonly hint: string;
}

// First match wins: "JSON support not compiled-in" is unsupported, not a syntax error.
const RULES: readonly Rule[] = [
  {
    code: ErrorCodes.FirewallPermission,
    pattern: /Operation not permitted|Permission denied|you must be root/i,
    hint: 'Run route-controller as root or with CAP_NET_ADMIN (in Kubernetes: securityContext.capabilities.add: ["NET_ADMIN"] and hostNetwork: true).',
  },
  {
    code: ErrorCodes.FirewallUnsupported,
    pattern: /not supported|not compiled-in|Unsupported|unknown (?:hook|chain type)/i,
    hint: 'The kernel or nft lacks a feature we need (nf_tables with inet tables, interval sets, reject): load the nf_tables, nft_reject_inet modules, use nftables >= 1.0.1 with JSON, or choose the iptables backend.',
  },
  {
    code: ErrorCodes.FirewallNotFound,
    pattern: /No such file or directory|does not exist/i,
    hint: 'An object of ours changed while we worked (another process edited or deleted it); the next reconcile re-reads our table and retries.',
  },
  {
    code: ErrorCodes.FirewallExists,
    pattern: /File exists|overlaps with an existing/i,
    hint: 'An object or set element collides with one already present (another process edited our table); the next reconcile rebuilds the table.',
  },
  {
    code: ErrorCodes.FirewallSyntax,
    pattern: /syntax error|Parsing |Invalid|Unknown|Expected|must be|Object item not found|JSON/i,
    hint: 'nft refused the payload route-controller generated: this is a bug, please report it with the stderr and the output of nft --version.',
  },
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

export function classifyNftStderr(stderr: string): { code: ErrorCode; hint: string } {
  const rule = RULES.find((candidate) => candidate.pattern.test(stderr));
  return rule ? { code: rule.code, hint: rule.hint } : { code: ErrorCodes.CommandFailed, hint: FALLBACK_HINT };
}

/** A coded error for an nft command that exited non-zero; `what` says what we tried ("apply", "list our table"). */
export function nftCommandError(what: string, command: string, result: CommandResult): RouteControllerError {
  const { code, hint } = classifyNftStderr(result.stderr);
  return new RouteControllerError(code, `nft could not ${what}: ${firstErrorLine(result.stderr)}`, {
    hint,
    details: { command, exitCode: result.exitCode, stderr: result.stderr, stdout: result.stdout.slice(0, 500) },
  });
}
