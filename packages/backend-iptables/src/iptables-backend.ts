import { nftMonitorSpec } from '@route-controller/backend-nft/monitor';
import {
  type ApplyResult,
  type Availability,
  assertEnforceable,
  type BackendCapabilities,
  type ChangeListener,
  type ChangeStreamEnd,
  type CleanupResult,
  type CommandRunner,
  cidrsOf,
  type DesiredState,
  ErrorCodes,
  type FirewallBackend,
  IP_FAMILIES,
  type IpFamily,
  isRouteControllerError,
  type ObservedState,
  type Plan,
  type PlannedCommand,
  ProcessCommandRunner,
  ProcessStreamRunner,
  RouteControllerError,
  runChangeStream,
  runChecked,
  SerialQueue,
  type StreamRunner,
  type WriteOptions,
} from '@route-controller/core';
import { IPTABLES_MODES, type IptablesMode, iptablesBinary } from './binaries.js';
import { IPTABLES_CAPABILITIES } from './capabilities.js';
import {
  absentFamilyState,
  type FamilyChainState,
  familyStateFromSave,
  observedState,
  tableFor,
} from './chain-state.js';
import { classifyIptablesFailure, missingTable } from './classify-error.js';
import {
  assertValidChainName,
  DEFAULT_LOCK_WAIT_SECONDS,
  IPTABLES_CHAIN,
  type IptablesTable,
  SECURITY_TABLE,
} from './constants.js';
import { isIptablesLine } from './events.js';
import { readFamily } from './family-read.js';
import { fallbackWarning, type Placements, SECURITY_EVERYWHERE } from './placement.js';
import { probeIptables } from './probe.js';
import {
  describeChange,
  type FamilyTarget,
  type RestoreOptions,
  renderRemovalPayload,
  renderRestorePayload,
  restoreCommand,
  restoreTimeoutMs,
} from './render.js';

export interface IptablesBackendOptions {
  readonly mode: IptablesMode;
  /** Runs the iptables binaries; default: a new ProcessCommandRunner. */
  readonly runner?: CommandRunner;
  /** Our chain in the filter table; default ROUTE-CONTROLLER. */
  readonly chain?: string;
  /** Seconds restore waits for the xtables lock (-w); default 5. */
  readonly lockWaitSeconds?: number;
  /** Starts the long-lived `nft -j monitor` of watchChanges() (nft mode); default: a ProcessStreamRunner. */
  readonly streams?: StreamRunner;
  /** The nft binary whose monitor reports iptables-nft's changes; default "nft" from PATH. */
  readonly nft?: string;
}

/** What one read of both families found. */
type FamilyStates = Readonly<Record<IpFamily, FamilyChainState>>;

interface FamilyWrite {
  readonly family: IpFamily;
  readonly command: PlannedCommand;
  readonly summary: string;
}

/**
 * The iptables backend, for iptables-legacy and iptables-nft alike: our chain in the security table
 * of each family, one rule per Service CIDR, and one jump to it at position 1 of that table's
 * FORWARD. Netfilter runs it after filter (priority 50 against 0), so kube-proxy's REJECT for a
 * Service without endpoints answers first and no ACCEPT in filter can let a stale packet past us.
 * Where an iptables-legacy kernel has no security table, the family falls back to position 1 of
 * filter FORWARD, with a warning (placement.ts).
 */
export class IptablesBackend implements FirewallBackend {
  readonly name: string;
  readonly mode: IptablesMode;
  readonly chain: string;
  readonly #runner: CommandRunner;
  readonly #streams: StreamRunner;
  readonly #nft: string;
  readonly #restore: RestoreOptions;
  #families: readonly IpFamily[];
  #ipv6Limitation: string | undefined;
  /** Where our objects belong per family: what observe() judges against. */
  #placements: Placements = SECURITY_EVERYWHERE;
  /**
   * Families the probe found in the fallback (from the kernel's fallback jump): the next apply tries
   * the security table once more, so a kernel that gained it (a module loaded since) is used.
   */
  readonly #retrySecurity = new Set<IpFamily>();
  /** The tables our objects live in since the last apply (filter for reject): what change events watch. */
  #tables: readonly IptablesTable[] = [SECURITY_TABLE];
  /** apply and cleanup run one at a time: each reads, then writes from what it read. */
  readonly #queue = new SerialQueue();
  #capabilities: BackendCapabilities;

  constructor(options: IptablesBackendOptions) {
    if (!IPTABLES_MODES.includes(options.mode)) {
      throw new RouteControllerError(ErrorCodes.InvalidConfig, `"${String(options.mode)}" is not an iptables mode`, {
        hint: `Use one of ${IPTABLES_MODES.join(', ')}, or detectIptablesFlavour() to choose.`,
        details: { mode: options.mode },
      });
    }
    const lockWaitSeconds = options.lockWaitSeconds ?? DEFAULT_LOCK_WAIT_SECONDS;
    if (!Number.isInteger(lockWaitSeconds) || lockWaitSeconds < 1) {
      throw new RouteControllerError(
        ErrorCodes.InvalidConfig,
        `lockWaitSeconds must be a whole number of seconds >= 1`,
        {
          hint: `Leave it unset for ${DEFAULT_LOCK_WAIT_SECONDS} seconds.`,
          details: { lockWaitSeconds },
        },
      );
    }
    this.mode = options.mode;
    this.name = `iptables-${options.mode}`;
    this.chain = options.chain ?? IPTABLES_CHAIN;
    assertValidChainName(this.chain);
    this.#runner = options.runner ?? new ProcessCommandRunner();
    this.#streams = options.streams ?? new ProcessStreamRunner();
    this.#nft = options.nft ?? 'nft';
    this.#restore = { lockWaitSeconds };
    this.#capabilities = IPTABLES_CAPABILITIES[this.mode];
    this.#families = this.#capabilities.families;
  }

  /** Both families until probe() finds the ip6tables binaries missing. */
  get capabilities(): BackendCapabilities {
    return this.#capabilities;
  }

  async probe(): Promise<Availability> {
    const result = await probeIptables(this.#runner, this.mode, this.chain);
    // A failed probe leaves the families alone: the agent will not use the backend anyway.
    if (result.availability.available) {
      const all = IPTABLES_CAPABILITIES[this.mode];
      this.#families = result.families;
      this.#ipv6Limitation = result.ipv6Limitation;
      this.#placements = result.placements;
      this.#retrySecurity.clear();
      for (const family of IP_FAMILIES) if (result.placements[family] === 'filter') this.#retrySecurity.add(family);
      this.#capabilities =
        result.families.length === all.families.length
          ? all
          : Object.freeze({ ...all, families: Object.freeze([...result.families]) });
    }
    return result.availability;
  }

  plan(desired: DesiredState): Promise<Plan> {
    return this.#planned(desired, this.#placements).then(({ plan }) => plan);
  }

  /**
   * Writes what `desired` needs. A family whose write the kernel refuses because it cannot make the
   * security table (iptables-legacy without iptable_security) falls back to filter FORWARD: the same
   * apply plans and writes it there, and reports the fallback in `warnings`, once.
   */
  apply(desired: DesiredState, options: WriteOptions = {}): Promise<ApplyResult> {
    return this.#serialised(async () => {
      const warnings: string[] = [];
      let placements: Placements = { ...this.#placements };
      for (const family of this.#retrySecurity) placements = { ...placements, [family]: 'security' };
      for (;;) {
        const { plan, writes } = await this.#planned(desired, placements);
        try {
          if (plan.changes) await this.#write(writes, options);
        } catch (error) {
          const family = this.#securityMissing(error, placements);
          if (!family) throw error;
          placements = { ...placements, [family]: 'filter' };
          // Known from the probe already (and said there), or news to say now.
          if (!this.#retrySecurity.has(family)) warnings.push(fallbackWarning(family));
          this.#retrySecurity.delete(family);
          continue;
        }
        this.#placements = placements;
        this.#tables = [...new Set(IP_FAMILIES.map((family) => tableFor(desired.action, placements[family])))];
        this.#retrySecurity.clear();
        const result = plan.changes
          ? { changed: true, writes: writes.length, summary: plan.summary }
          : { changed: false, writes: 0, summary: plan.summary };
        return warnings.length > 0 ? { ...result, warnings } : result;
      }
    });
  }

  async observe(): Promise<ObservedState> {
    const states = await this.#read();
    return observedState(states.ipv4, states.ipv6, this.#placements);
  }

  cleanup(options: WriteOptions = {}): Promise<CleanupResult> {
    return this.#serialised(async () => {
      const states = await this.#read();
      const writes: FamilyWrite[] = [];
      for (const family of IP_FAMILIES) {
        const state = states[family];
        const payload = renderRemovalPayload(state);
        if (!payload) continue;
        const summary = describeChange(state, 'security', { cidrs: [], action: 'drop' }) ?? `${family}: remove`;
        writes.push({ family, command: restoreCommand(this.mode, family, payload, this.#restore), summary });
      }
      if (writes.length === 0) return { removed: false, summary: 'nothing of ours to remove' };
      await this.#write(writes, options);
      return { removed: true, summary: writes.map((write) => write.summary).join('; ') };
    });
  }

  /**
   * nft mode only: follows `nft -j monitor ruleset` (iptables-nft's tables are nf_tables tables).
   * Changes to the table our objects live in (security; filter in the fallback), its FORWARD chain
   * or our chain are ours; others only counted.
   */
  watchChanges(listener: ChangeListener, signal: AbortSignal): Promise<ChangeStreamEnd> {
    if (this.mode !== 'nft') {
      return Promise.reject(
        new RouteControllerError(
          ErrorCodes.FirewallUnsupported,
          'iptables-legacy reports no change events: its changes notify nobody',
          { hint: 'Nothing to do: the resync (RESYNC_INTERVAL) finds and repairs drift.' },
        ),
      );
    }
    const tables = () => this.#tables;
    return runChangeStream(
      this.#streams,
      nftMonitorSpec(this.#nft, isIptablesLine(this.chain, tables)),
      listener,
      signal,
    );
  }

  /** Validates, reads both families and renders the writes that would make them match at `placements`. */
  async #planned(desired: DesiredState, placements: Placements): Promise<{ plan: Plan; writes: FamilyWrite[] }> {
    assertEnforceable(this, desired, {
      why: this.#ipv6Limitation,
      hint: `Install the ip6tables binaries (${iptablesBinary(this.mode, 'ipv6', 'restore')} and friends), or leave the IPv6 Service CIDRs out.`,
    });
    const states = await this.#read();
    const writes: FamilyWrite[] = [];
    for (const family of IP_FAMILIES) {
      const target: FamilyTarget = { cidrs: cidrsOf(desired.cidrs, family), action: desired.action };
      const table = tableFor(desired.action, placements[family]);
      const payload = renderRestorePayload(states[family], table, target);
      if (!payload) continue;
      const summary = describeChange(states[family], table, target) ?? family;
      writes.push({ family, command: restoreCommand(this.mode, family, payload, this.#restore), summary });
    }
    const plan: Plan = {
      changes: writes.length > 0,
      commands: writes.map((write) => write.command),
      summary: writes.length > 0 ? writes.map((write) => write.summary).join('; ') : 'in sync: nothing to write',
    };
    return { plan, writes };
  }

  /** Reads our objects per supported family (family-read.ts); unsupported ones hold nothing. */
  async #read(): Promise<FamilyStates> {
    const read = async (family: IpFamily): Promise<FamilyChainState> => {
      if (!this.#families.includes(family)) return absentFamilyState(family, this.chain);
      return familyStateFromSave(await readFamily(this.#runner, this.mode, family, this.chain), family, this.chain);
    };
    const [ipv4, ipv6] = await Promise.all([read('ipv4'), read('ipv6')]);
    return { ipv4, ipv6 };
  }

  /** The family whose write failed because the kernel cannot make the security table it was placed in. */
  #securityMissing(error: unknown, placements: Placements): IpFamily | undefined {
    if (!isRouteControllerError(error, ErrorCodes.FirewallUnsupported)) return undefined;
    const family = error.details.family as IpFamily | undefined;
    if (family === undefined || placements[family] !== SECURITY_TABLE) return undefined;
    return missingTable(String(error.details.stderr ?? '')) === SECURITY_TABLE ? family : undefined;
  }

  async #write(writes: readonly FamilyWrite[], options: WriteOptions): Promise<void> {
    const done: IpFamily[] = [];
    for (const { family, command } of writes) {
      const request = {
        file: command.file,
        args: command.args,
        ...(command.input !== undefined ? { input: command.input } : {}),
        timeoutMs: restoreTimeoutMs(this.#restore),
        ...(options.signal ? { signal: options.signal } : {}),
      };
      // Each family is its own transaction: a failure says which ones were written before it.
      await runChecked(this.#runner, request, ({ exitCode, stderr }) =>
        classifyIptablesFailure({ ...request, exitCode, stderr }, { family, written: [...done] }),
      );
      done.push(family);
    }
  }

  #serialised<T>(task: () => Promise<T>): Promise<T> {
    return this.#queue.run(task);
  }
}
