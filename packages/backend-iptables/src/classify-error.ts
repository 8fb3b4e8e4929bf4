import {
  classifyStderr,
  type ErrorCode,
  ErrorCodes,
  formatCommand,
  PERMISSION_DENIED,
  RouteControllerError,
  type StderrRule,
} from '@route-controller/core';
import { unreadableHint } from './readability.js';

/**
 * Turns a failed iptables/ip6tables(-save|-restore) run into a coded error. The messages are the
 * ones iptables 1.8 prints (LC_ALL=C, set by the command runner); stderr always rides along in
 * `details.stderr`, so an unforeseen message is still visible.
 */

export interface IptablesFailure {
  readonly file: string;
  readonly args: readonly string[];
  readonly exitCode: number;
  readonly stderr: string;
  readonly stdout?: string;
  /** The restore payload, to name the line a failure points at. */
  readonly input?: string;
}

interface Classification {
  readonly code: ErrorCode;
  readonly what: string;
  readonly hint: string;
}

type Classifier = (failure: IptablesFailure, failedLine: string | undefined) => Classification;

const MISSING_TABLE = /(?:unable to initialize table|can't initialize ip6?tables table) [`'](\w+)'/;

/** The table a failed run says the kernel cannot make ("security"), if that is what it says. */
export function missingTable(stderr: string): string | undefined {
  return MISSING_TABLE.exec(stderr)?.[1];
}
type Rule = StderrRule<Classifier>;

const permission: Classification = {
  code: ErrorCodes.FirewallPermission,
  what: 'permission denied',
  hint: 'Run route-controller as root, or with CAP_NET_ADMIN and CAP_NET_RAW (and write access to /run/xtables.lock).',
};

// Order matters: a permission error on the lock file mentions the lock too.
const RULES: readonly Rule[] = [
  {
    pattern: PERMISSION_DENIED,
    classification: () => permission,
  },
  {
    // iptables-nft -S/-L (exit 1) on a table or chain holding native nft rules it cannot translate.
    pattern: /is incompatible, use 'nft' tool/i,
    classification: (failure) => ({
      code: ErrorCodes.FirewallUnreadable,
      what: 'the table holds rules iptables-nft cannot read',
      hint: unreadableHint(/-legacy/.test(failure.file) ? 'legacy' : 'nft'),
    }),
  },
  {
    pattern: /holding the xtables lock|Stopped waiting after|Can't lock|xtables lock/i,
    classification: () => ({
      code: ErrorCodes.CommandFailed,
      what: 'the xtables lock is held by another process',
      hint: 'Another iptables user (kube-proxy, Docker, firewalld) held the xtables lock longer than we wait; the next resync retries. If this persists, wait longer for the lock: the lockWaitSeconds option of the backend (IPTABLES_LOCK_WAIT for the agent, Helm: routeController.iptablesLockWait).',
    }),
  },
  {
    // A table the kernel cannot make (iptables-legacy without iptable_security, say): restore says
    // "unable to initialize table 'security'", the CLI "can't initialize iptables table `security'".
    pattern: MISSING_TABLE,
    classification: (failure) => {
      const table = missingTable(failure.stderr) ?? 'this';
      return {
        code: ErrorCodes.FirewallUnsupported,
        what: `the kernel has no ${table} table for this flavour`,
        hint: /-legacy/.test(failure.file)
          ? `Load iptable_${table} (ip6table_${table} for IPv6), or use the nft backend or the iptables nft mode.`
          : 'Load nf_tables and nft_compat, or use the legacy mode.',
      };
    },
  },
  {
    pattern: /Table does not exist \(do you need to insmod\?\)|Protocol not supported|Address family not supported/i,
    classification: (failure) => ({
      code: ErrorCodes.FirewallUnsupported,
      what: 'the kernel lacks this iptables flavour',
      hint: /-legacy/.test(failure.file)
        ? 'Load ip_tables/ip6_tables and iptable_filter/ip6table_filter, or use the nft mode or backend.'
        : 'Load nf_tables and nft_compat, or use the legacy mode.',
    }),
  },
  {
    pattern:
      /No chain\/target\/match by that name|does a matching rule exist|Couldn't load target|Chain '[^']*' does not exist|Couldn't find target/i,
    classification: () => ({
      code: ErrorCodes.FirewallNotFound,
      what: 'a chain, target or rule we referenced does not exist',
      hint: 'The firewall changed between our read and our write (another tool deleted a rule or chain); the next resync reads again and converges.',
    }),
  },
  {
    pattern: /Device or resource busy|Too many links|Directory not empty/i,
    classification: () => ({
      code: ErrorCodes.CommandFailed,
      what: 'our chain is still referenced',
      hint: 'A rule outside FORWARD jumps to our chain; the next resync removes it, or delete it by hand.',
    }),
  },
  {
    pattern: /Chain already exists|File exists/i,
    classification: () => ({
      code: ErrorCodes.FirewallExists,
      what: 'an object we created already exists',
      hint: 'Another process created the same chain concurrently; the next resync converges.',
    }),
  },
  {
    pattern:
      /unknown option|Bad argument|Unknown arg|host\/network .* not found|COMMIT expected|Bad IP address|unknown reject type|parameter problem|invalid|Error occurred at line/i,
    classification: () => ({
      code: ErrorCodes.FirewallSyntax,
      what: 'iptables-restore refused the payload',
      hint: 'This iptables version does not accept a rule route-controller wrote; please report it with details.stderr and the payload.',
    }),
  },
  {
    // iptables-legacy-restore says only "line N failed": the line tells what could not be done.
    pattern: /line \d+ failed/i,
    classification: (_failure, failedLine) => {
      if (failedLine?.startsWith('-D ')) {
        return {
          code: ErrorCodes.FirewallNotFound,
          what: 'a rule we deleted by its spec no longer exists',
          hint: 'Another tool changed the chain between our read and our write; the next resync reads again and converges.',
        };
      }
      if (failedLine?.startsWith('-X ')) {
        return {
          code: ErrorCodes.CommandFailed,
          what: 'our chain could not be deleted',
          hint: 'A rule outside FORWARD still jumps to our chain, or it was removed already; the next resync reads again.',
        };
      }
      return {
        code: ErrorCodes.CommandFailed,
        what: 'iptables-restore refused a line',
        hint: 'See details.stderr and details.failedLine; the next resync retries.',
      };
    },
  },
];

function failedLineNumber(stderr: string): number | undefined {
  const match = /(?:line:?\s+|at line\s+)(\d+)/i.exec(stderr);
  return match ? Number(match[1]) : undefined;
}

export function classifyIptablesFailure(
  failure: IptablesFailure,
  context: Readonly<Record<string, unknown>> = {},
): RouteControllerError {
  const stderr = failure.stderr.trim();
  const line = failedLineNumber(stderr);
  const failedLine = line !== undefined ? failure.input?.split('\n')[line - 1] : undefined;
  const classify = classifyStderr(stderr, RULES);
  const classification: Classification = classify
    ? classify(failure, failedLine)
    : failure.exitCode === 2
      ? { code: ErrorCodes.FirewallSyntax, what: 'bad parameters', hint: 'See details.stderr; please report it.' }
      : {
          code: ErrorCodes.CommandFailed,
          what: `exit code ${failure.exitCode}`,
          hint: 'See details.stderr; the next resync retries.',
        };
  const command = formatCommand(failure);
  const firstLine = stderr.split('\n').find((text) => text.trim() !== '') ?? '';
  return new RouteControllerError(
    classification.code,
    `${command} failed (${classification.what})${firstLine ? `: ${firstLine}` : ''}`,
    {
      hint: classification.hint,
      details: {
        command,
        exitCode: failure.exitCode,
        stderr: failure.stderr,
        ...(line !== undefined ? { line } : {}),
        ...(failedLine !== undefined ? { failedLine } : {}),
        ...context,
      },
    },
  );
}
