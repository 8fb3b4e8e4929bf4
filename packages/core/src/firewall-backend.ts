import type { Cidr, IpFamily } from './cidr.js';
import type { BlockAction, DesiredState } from './desired-state.js';
import { assertValidDesiredState, isEmptyDesiredState } from './desired-state.js';
import { type ErrorCode, ErrorCodes, RouteControllerError } from './errors.js';
import type { HitRecords } from './hit-records.js';
import { sameCidrList } from './service-cidrs.js';

/** What a backend can do; the contract suite runs only the groups a backend claims. */
export interface BackendCapabilities {
  /** Families this backend instance can enforce on this node. */
  readonly families: readonly IpFamily[];
  readonly actions: readonly BlockAction[];
  /** observe() reports packet and byte counters of the drop rules. */
  readonly counters: boolean;
  /** Objects carry an ownership comment. */
  readonly comments: boolean;
  /**
   * The kernel tells this backend when its objects may have changed: watchChanges() works, so drift
   * is repaired at once. Without events only the resync finds drift (iptables-legacy).
   */
  readonly events: boolean;
  /**
   * The kernel records each (source, destination) pair our rule blocks, with counters and a
   * timeout, and records() reads them: who dials stale ClusterIPs. Bounded; see records().
   */
  readonly records: boolean;
}

/** One check of an availability probe, so the agent can explain its choice. */
export interface ProbeCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface Availability {
  readonly available: boolean;
  /** One sentence: why it can or cannot be used ("nft 1.0.6 with JSON, --check passed"). */
  readonly reason: string;
  readonly checks: readonly ProbeCheck[];
  /** Usable, but with a limitation the user should know (e.g. IPv4 only). */
  readonly warnings: readonly string[];
  /**
   * When unavailable, the kind of failure, so a caller can give the right fix: ERR_RC_COMMAND_NOT_FOUND
   * (install it), ERR_RC_FIREWALL_PERMISSION (run as root / CAP_NET_ADMIN), ERR_RC_FIREWALL_UNSUPPORTED, ...
   */
  readonly failure?: ErrorCode;
}

export interface DropCounters {
  readonly packets: number;
  readonly bytes: number;
}

export interface FamilyObservation {
  readonly cidrs: readonly Cidr[];
  /** Undefined where the backend has no counters or no rule for this family. */
  readonly counters?: DropCounters;
}

/** What the kernel holds of ours, and nothing else. */
export interface ObservedState {
  /** Anything of ours exists (a table, a chain, a jump). */
  readonly present: boolean;
  /** The action of our rules; null when there are none, or when they disagree. */
  readonly action: BlockAction | null;
  readonly ipv4: FamilyObservation;
  readonly ipv6: FamilyObservation;
  /**
   * Drift that the fields above cannot show: a missing rule, a jump no longer first in FORWARD,
   * a namesake chain on the wrong hook. Empty when our objects are exactly as apply() leaves them.
   */
  readonly problems: readonly string[];
}

/** A command the backend would run to reach the desired state; `plan` shows them without running. */
export interface PlannedCommand {
  readonly file: string;
  readonly args: readonly string[];
  readonly input?: string;
  /**
   * The payload as people read it, when the arguments carry it in a form they cannot (nft's JSON
   * document, split across arguments): pretty-printed, and equivalent to the arguments that
   * follow the first `afterArgs` of them.
   */
  readonly display?: { readonly text: string; readonly afterArgs: number };
}

export interface Plan {
  /** False when the kernel already matches: apply would write nothing. */
  readonly changes: boolean;
  readonly commands: readonly PlannedCommand[];
  /** A short human summary ("add 2 CIDRs to ipv4 set", "create table"). */
  readonly summary: string;
}

export interface ApplyResult {
  readonly changed: boolean;
  /** Write transactions issued (0 for a no-op). */
  readonly writes: number;
  readonly summary: string;
  /**
   * What this apply found out that the user should know, once: the caller logs each as a warning
   * (the iptables backend falling back to filter FORWARD where the kernel has no security table).
   */
  readonly warnings?: readonly string[];
}

export interface CleanupResult {
  /** True when something of ours was found and removed. */
  readonly removed: boolean;
  readonly summary: string;
}

/** Options of the calls that write. */
export interface WriteOptions {
  /**
   * Aborting stops the command in flight (an iptables-restore waiting for the xtables lock) and
   * rejects with ERR_RC_COMMAND_CANCELED; a transaction is atomic, so nothing half-done remains.
   */
  readonly signal?: AbortSignal;
}

/**
 * Told what a kernel change event stream sees. Calls are synchronous and cheap: most events are
 * other tools' changes, and a busy node makes thousands a second.
 */
export interface ChangeListener {
  /** The stream is subscribed: every change from now on is reported. Once per watchChanges() call. */
  ready(): void;
  /** A change touched our objects, or the tables and chains that hold them; `what` names it, for logs. */
  change(what: string): void;
  /** A change elsewhere: counted, nothing more. */
  other(): void;
  /** The kernel dropped events (its buffer overflowed): changes may have gone unreported. */
  lost(detail: string): void;
  /** A line the stream's tool wrote on stderr. */
  diagnostic(line: string): void;
}

/** Why a change event stream ended. */
export interface ChangeStreamEnd {
  /** True when the caller's signal ended it; false when it ended by itself (and may be restarted). */
  readonly stopped: boolean;
  /** For logs: "nft -j monitor ruleset exited with code 134: E: Contact urgently ..." */
  readonly reason: string;
}

/**
 * A way to drop forwarded packets to Service CIDRs. Implementations stay in their own objects:
 * they never list, flush or modify anything they did not create.
 */
export interface FirewallBackend {
  /** Stable name: "nft", "iptables-nft", "iptables-legacy", ... */
  readonly name: string;
  readonly capabilities: BackendCapabilities;
  /** Can this backend work on this node? Never changes the kernel. */
  probe(): Promise<Availability>;
  /** The commands apply(desired) would run now; reads the kernel, writes nothing. */
  plan(desired: DesiredState): Promise<Plan>;
  /**
   * Makes the kernel match `desired` in one atomic transaction per family at most, from any prior
   * state (nothing, an older run, a crash half-way). Writes nothing when it already matches.
   * An empty desired state removes everything of ours. A state the backend cannot enforce (see
   * assertEnforceable) is refused with a coded error before anything is read or written.
   *
   * Concurrency: apply() and cleanup() may be called while another call of either is still
   * running. The calls take effect one at a time, in the order they were made, each starting from
   * a fresh read of the kernel; so the kernel ends as the last call leaves it.
   */
  apply(desired: DesiredState, options?: WriteOptions): Promise<ApplyResult>;
  /** Reads back only our own objects. Safe to call at any time, also during apply(). */
  observe(): Promise<ObservedState>;
  /** Removes everything we own and nothing else; safe to repeat. Queued with apply() (see there). */
  cleanup(options?: WriteOptions): Promise<CleanupResult>;
  /**
   * Present when `capabilities.events`: follows the kernel's change events until `signal` aborts
   * (resolving with `stopped: true`) or the stream ends by itself (`stopped: false`: the caller
   * decides whether to restart it). Rejects with a coded error when the stream cannot start at all.
   * Events only say that something may have changed; the caller reads the kernel to know what.
   */
  watchChanges?(listener: ChangeListener, signal: AbortSignal): Promise<ChangeStreamEnd>;
  /**
   * Present when `capabilities.records`: the (source, destination) pairs our rules blocked within
   * the recording window, as the kernel counted them. Reads only; one kernel read per call, so
   * callers read it at most once per resync. The records are bounded (see RecordSetStatus), belong
   * to our objects (cleanup removes them), survive a change of CIDRs alone and start afresh when
   * apply rebuilds everything. Churn in them is never drift: observe() does not look at them.
   */
  records?(): Promise<HitRecords>;
}

export const NOTHING_OBSERVED: ObservedState = Object.freeze({
  present: false,
  action: null,
  ipv4: Object.freeze({ cidrs: Object.freeze([]) }),
  ipv6: Object.freeze({ cidrs: Object.freeze([]) }),
  problems: Object.freeze([]),
});

/** True when the observed kernel state is exactly what apply(desired) leaves. */
export function isInSync(observed: ObservedState, desired: DesiredState): boolean {
  if (isEmptyDesiredState(desired)) return !observed.present;
  return (
    observed.present &&
    observed.problems.length === 0 &&
    observed.action === desired.action &&
    sameCidrList(observed.ipv4.cidrs, desired.cidrs.ipv4) &&
    sameCidrList(observed.ipv6.cidrs, desired.cidrs.ipv6)
  );
}

/**
 * The one check every backend runs before touching the kernel: the state is well-formed and within
 * what this backend instance can enforce (its families and actions). `why` explains a narrowed
 * capability ("ip6tables-nft-restore not found"); `hint` overrides the generic fix.
 */
export function assertEnforceable(
  backend: Pick<FirewallBackend, 'name' | 'capabilities'>,
  desired: DesiredState,
  options: { readonly why?: string | undefined; readonly hint?: string | undefined } = {},
): void {
  assertValidDesiredState(desired);
  const { capabilities } = backend;
  const missing = unsupportedFamilies(capabilities, desired);
  if (missing.length > 0) {
    const families = missing.join(' and ');
    throw new RouteControllerError(
      ErrorCodes.FirewallUnsupported,
      `${backend.name} cannot enforce ${families} Service CIDRs${options.why ? `: ${options.why}` : ''}`,
      {
        hint: options.hint ?? `Leave the ${families} Service CIDRs out, or choose a backend that supports ${families}.`,
        details: { backend: backend.name, missing, supported: capabilities.families },
      },
    );
  }
  if (!capabilities.actions.includes(desired.action)) {
    throw new RouteControllerError(
      ErrorCodes.FirewallUnsupported,
      `${backend.name} cannot ${desired.action} packets${options.why ? `: ${options.why}` : ''}`,
      {
        hint: `Use one of the actions it supports: ${capabilities.actions.join(', ')}.`,
        details: { backend: backend.name, action: desired.action, supported: capabilities.actions },
      },
    );
  }
}

/** Families a desired state needs that this backend cannot enforce. */
export function unsupportedFamilies(capabilities: BackendCapabilities, desired: DesiredState): IpFamily[] {
  const needed: IpFamily[] = [];
  if (desired.cidrs.ipv4.length > 0) needed.push('ipv4');
  if (desired.cidrs.ipv6.length > 0) needed.push('ipv6');
  return needed.filter((family) => !capabilities.families.includes(family));
}
