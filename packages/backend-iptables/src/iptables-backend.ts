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
  formatCommand,
  IP_FAMILIES,
  type IpFamily,
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
import { absentFamilyState, type FamilyChainState, familyStateFromSave, observedState } from './chain-state.js';
import { classifyIptablesFailure } from './classify-error.js';
import { assertValidChainName, DEFAULT_LOCK_WAIT_SECONDS, FILTER_TABLE, IPTABLES_CHAIN } from './constants.js';
import { iptablesMonitorSpec } from './events.js';
import { parseSave } from './parse-save.js';
import { probeIptables } from './probe.js';
import { iptablesUnreadable, unreadableReasons } from './readability.js';
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
 * The iptables backend, for iptables-legacy and iptables-nft alike: our chain in the filter table
 * of each family, one rule per Service CIDR, and one jump to it at position 1 of FORWARD, where no
 * other tool's ACCEPT can come before it.
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
      this.#capabilities =
        result.families.length === all.families.length
          ? all
          : Object.freeze({ ...all, families: Object.freeze([...result.families]) });
    }
    return result.availability;
  }

  plan(desired: DesiredState): Promise<Plan> {
    return this.#planned(desired).then(({ plan }) => plan);
  }

  apply(desired: DesiredState, options: WriteOptions = {}): Promise<ApplyResult> {
    return this.#serialised(async () => {
      const { plan, writes } = await this.#planned(desired);
      if (!plan.changes) return { changed: false, writes: 0, summary: plan.summary };
      await this.#write(writes, options);
      return { changed: true, writes: writes.length, summary: plan.summary };
    });
  }

  async observe(): Promise<ObservedState> {
    const states = await this.#read();
    return observedState(states.ipv4, states.ipv6);
  }

  cleanup(options: WriteOptions = {}): Promise<CleanupResult> {
    return this.#serialised(async () => {
      const states = await this.#read();
      const writes: FamilyWrite[] = [];
      for (const family of IP_FAMILIES) {
        const state = states[family];
        const payload = renderRemovalPayload(state);
        if (!payload) continue;
        const summary = describeChange(state, { cidrs: [], action: 'drop' }) ?? `${family}: remove`;
        writes.push({ family, command: restoreCommand(this.mode, family, payload, this.#restore), summary });
      }
      if (writes.length === 0) return { removed: false, summary: 'nothing of ours to remove' };
      await this.#write(writes, options);
      return { removed: true, summary: writes.map((write) => write.summary).join('; ') };
    });
  }

  /**
   * nft mode only: follows `nft -j monitor ruleset` (iptables-nft's tables are nf_tables tables).
   * Changes to the filter table itself, its FORWARD chain or our chain are ours; others only counted.
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
    return runChangeStream(this.#streams, iptablesMonitorSpec(this.#nft, this.chain), listener, signal);
  }

  /** Validates, reads both families and renders the writes that would make them match. */
  async #planned(desired: DesiredState): Promise<{ plan: Plan; writes: FamilyWrite[] }> {
    assertEnforceable(this, desired, {
      why: this.#ipv6Limitation,
      hint: `Install the ip6tables binaries (${iptablesBinary(this.mode, 'ipv6', 'restore')} and friends), or leave the IPv6 Service CIDRs out.`,
    });
    const states = await this.#read();
    const writes: FamilyWrite[] = [];
    for (const family of IP_FAMILIES) {
      const target: FamilyTarget = { cidrs: cidrsOf(desired.cidrs, family), action: desired.action };
      const payload = renderRestorePayload(states[family], target);
      if (!payload) continue;
      const summary = describeChange(states[family], target) ?? family;
      writes.push({ family, command: restoreCommand(this.mode, family, payload, this.#restore), summary });
    }
    const plan: Plan = {
      changes: writes.length > 0,
      commands: writes.map((write) => write.command),
      summary: writes.length > 0 ? writes.map((write) => write.summary).join('; ') : 'in sync: nothing to write',
    };
    return { plan, writes };
  }

  /**
   * Reads our objects per supported family; unsupported ones hold nothing. nft: `-save -c -t filter`.
   * legacy: the whole `-save -c` dump, because `-t filter` makes the kernel create the legacy
   * filter table on a node that has none (reading must never change the node). A dump that says it
   * is incomplete throws ERR_RC_FIREWALL_UNREADABLE: nothing is ever written from it.
   */
  async #read(): Promise<FamilyStates> {
    const read = async (family: IpFamily): Promise<FamilyChainState> => {
      if (!this.#families.includes(family)) return absentFamilyState(family, this.chain);
      const file = iptablesBinary(this.mode, family, 'save');
      const args = this.mode === 'nft' ? ['-c', '-t', FILTER_TABLE] : ['-c'];
      const result = await runChecked(this.#runner, { file, args }, ({ exitCode, stderr }) =>
        classifyIptablesFailure({ file, args, exitCode, stderr }),
      );
      const dump = parseSave(result.stdout);
      const reasons = unreadableReasons(dump, result.stderr, this.chain);
      if (reasons.length > 0) {
        throw iptablesUnreadable(this.mode, family, formatCommand({ file, args }), reasons, result.stderr);
      }
      return familyStateFromSave(dump, family, this.chain);
    };
    const [ipv4, ipv6] = await Promise.all([read('ipv4'), read('ipv6')]);
    return { ipv4, ipv6 };
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
