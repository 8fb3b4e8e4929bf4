/**
 * One error type for the whole project, with a stable `code` that callers and tests branch on,
 * a `hint` that tells the user the fix, and the original failure as `cause`.
 */

export const ErrorCodes = {
  /** A Service CIDR entry is not a CIDR at all. */
  InvalidCidr: 'ERR_RC_INVALID_CIDR',
  /** A CIDR is valid but far wider than any Service range can be. */
  CidrTooBroad: 'ERR_RC_CIDR_TOO_BROAD',
  /** More Service CIDRs in one family than any cluster has (MAX_CIDRS_PER_FAMILY). */
  TooManyCidrs: 'ERR_RC_TOO_MANY_CIDRS',
  /** A desired state handed to a backend breaks its invariants (overlap, wrong family, bad action). */
  InvalidDesiredState: 'ERR_RC_INVALID_DESIRED_STATE',
  /** A configuration value (environment variable or flag) is invalid. */
  InvalidConfig: 'ERR_RC_INVALID_CONFIG',
  /** A Service CIDR would cut the node off from its own network. */
  UnsafeCidr: 'ERR_RC_UNSAFE_CIDR',
  /** An explicitly given kubeconfig is missing or cannot be used. */
  InvalidKubeconfig: 'ERR_RC_INVALID_KUBECONFIG',
  /** The command line itself is wrong: an unknown command or flag, a missing argument. */
  Usage: 'ERR_RC_USAGE',
  /** A command's binary does not exist (not installed, not on PATH). */
  CommandNotFound: 'ERR_RC_COMMAND_NOT_FOUND',
  /** A command could not be started for another reason (not executable, out of resources). */
  CommandSpawn: 'ERR_RC_COMMAND_SPAWN',
  /** A command ran longer than its timeout and was killed. */
  CommandTimeout: 'ERR_RC_COMMAND_TIMEOUT',
  /** A command was killed by a signal it did not ask for. */
  CommandKilled: 'ERR_RC_COMMAND_KILLED',
  /** A command was stopped on purpose (its caller's AbortSignal fired: the agent is stopping). */
  CommandCanceled: 'ERR_RC_COMMAND_CANCELED',
  /** A command exited non-zero in a way no more specific code describes. */
  CommandFailed: 'ERR_RC_COMMAND_FAILED',
  /** The firewall refused: an object we referenced does not exist. */
  FirewallNotFound: 'ERR_RC_FIREWALL_NOT_FOUND',
  /** The firewall refused: an object we created already exists. */
  FirewallExists: 'ERR_RC_FIREWALL_EXISTS',
  /** The firewall refused: no permission (not root, no CAP_NET_ADMIN). */
  FirewallPermission: 'ERR_RC_FIREWALL_PERMISSION',
  /** The firewall refused our payload as malformed. */
  FirewallSyntax: 'ERR_RC_FIREWALL_SYNTAX',
  /** The kernel or tool lacks a feature we need. */
  FirewallUnsupported: 'ERR_RC_FIREWALL_UNSUPPORTED',
  /**
   * A firewall tool succeeded but said it could not show everything (iptables-nft-save on a table
   * holding native nft rules, nft leaving out an object it cannot decode). Nothing is written from
   * such a read: writing blind stacks rules.
   */
  FirewallUnreadable: 'ERR_RC_FIREWALL_UNREADABLE',
  /** A tool printed something we could not understand (unknown JSON schema, unparsable listing). */
  UnexpectedOutput: 'ERR_RC_UNEXPECTED_OUTPUT',
  /** No firewall backend can work on this node. */
  BackendUnavailable: 'ERR_RC_BACKEND_UNAVAILABLE',
  /** A Service CIDR source failed to answer. */
  SourceFailed: 'ERR_RC_SOURCE_FAILED',
  /**
   * A route-controller agent already runs in this network namespace (on this node): a second one
   * refuses to start, and `cleanup` refuses to remove rules that agent would put back at once.
   */
  AgentRunning: 'ERR_RC_AGENT_RUNNING',
  /** A scripted fake received a call it was not told to expect (tests only). */
  FakeUnexpectedCall: 'ERR_RC_FAKE_UNEXPECTED_CALL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface RouteControllerErrorOptions {
  /** What the user should do about it. */
  readonly hint?: string | undefined;
  /** The error that caused this one. */
  readonly cause?: unknown;
  /** Structured facts for logs and tests (the bad value, the stderr text, ...). */
  readonly details?: Readonly<Record<string, unknown>>;
}

export class RouteControllerError extends Error {
  override readonly name = 'RouteControllerError';
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: RouteControllerErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }

  /** Message and hint on one line, for people. */
  describe(): string {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, hint: this.hint, details: this.details };
  }
}

export function isRouteControllerError(error: unknown, code?: ErrorCode): error is RouteControllerError {
  return error instanceof RouteControllerError && (code === undefined || error.code === code);
}

/** Wraps anything thrown into a RouteControllerError, keeping coded errors as they are. */
export function toRouteControllerError(
  error: unknown,
  code: ErrorCode,
  message: string,
  options: Omit<RouteControllerErrorOptions, 'cause'> = {},
): RouteControllerError {
  if (error instanceof RouteControllerError) return error;
  return new RouteControllerError(code, `${message}: ${errorMessage(error)}`, { ...options, cause: error });
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
