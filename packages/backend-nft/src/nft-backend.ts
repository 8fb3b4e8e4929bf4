import {
  type ApplyResult,
  type Availability,
  assertEnforceable,
  type BackendCapabilities,
  type BlockAction,
  type ChangeListener,
  type ChangeStreamEnd,
  type CleanupResult,
  type CommandRequest,
  type CommandResult,
  type CommandRunner,
  type DesiredState,
  ErrorCodes,
  type FirewallBackend,
  formatCommand,
  type HitRecords,
  type IpFamily,
  NO_HIT_RECORDS,
  NOTHING_OBSERVED,
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
import { classifyNftStderr, nftCommandError, nftUnreadable } from './classify-error.js';
import { decideTransaction } from './decide.js';
import { isOurTableLine } from './events.js';
import {
  DEFAULT_LAYOUT,
  DEFAULT_RECORDS,
  NFT_FAMILY,
  NFT_TABLE,
  type NftLayout,
  type RecordsLayout,
} from './layout.js';
import { nftMonitorSpec } from './monitor.js';
import { parseOurTable } from './parse.js';
import { probeNftFeatures } from './probe.js';
import { parseRecords } from './records.js';
import { renderRemoveTransaction, renderWriteCommand } from './render.js';

export interface NftBackendOptions {
  /** Runs nft; default: a ProcessCommandRunner on this host. Tests pass a namespace's runner. */
  readonly runner?: CommandRunner;
  /** Starts the long-lived `nft -j monitor` of watchChanges(); default: a ProcessStreamRunner on this host. */
  readonly streams?: StreamRunner;
  /** The nft binary; default "nft" from PATH. */
  readonly nft?: string;
  /** Our table's name; default "route-controller". */
  readonly tableName?: string;
  /** Families to enforce; default both. A family left out gets no set and no rule. */
  readonly families?: readonly IpFamily[];
  /**
   * Hit records (who dials stale ClusterIPs): the record sets' bound and timeout, or false for the
   * plain rule alone. Default: 4096 pairs per family, 600 s. A probe that finds nft older than
   * 1.0.6 (or a kernel that refuses the sets) turns them off, with a warning.
   */
  readonly records?: Partial<RecordsLayout> | false;
}

/** The record sets' bound and timeout: the defaults, overridden where given (tests use a short timeout). */
function recordsLayout(given: Partial<RecordsLayout> | undefined): RecordsLayout {
  const layout = { ...DEFAULT_RECORDS, ...given };
  for (const [name, value, max] of [
    ['size', layout.size, 65_535],
    ['timeoutSeconds', layout.timeoutSeconds, 86_400],
  ] as const) {
    if (!Number.isInteger(value) || value < 1 || value > max) {
      throw new RouteControllerError(ErrorCodes.InvalidConfig, `records.${name} ${value} is not usable`, {
        hint: `Give a whole number from 1 to ${max}; the default is ${DEFAULT_RECORDS[name]}.`,
        details: { [name]: value },
      });
    }
  }
  return Object.freeze(layout);
}

// iptables-nft's tables in the ip/ip6 families: a native table of that name breaks iptables-nft
// for every other tool on the node, so none of them is ever ours.
const FORBIDDEN_TABLE_NAMES = new Set(['filter', 'nat', 'mangle', 'raw', 'security', 'broute']);
const TABLE_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

function checkTableName(name: string): string {
  if (!TABLE_NAME.test(name) || FORBIDDEN_TABLE_NAMES.has(name)) {
    throw new RouteControllerError(ErrorCodes.InvalidConfig, `"${name}" cannot be our nft table name`, {
      hint: `Use a name of letters, digits, "-", "_" or "." that no other tool uses (not ${[...FORBIDDEN_TABLE_NAMES].join(', ')}); the default is ${NFT_TABLE}.`,
      details: { tableName: name },
    });
  }
  return name;
}

/** What the nft backend can do with both families (the default); a narrower `families` option narrows it. */
export const NFT_CAPABILITIES: BackendCapabilities = Object.freeze({
  families: DEFAULT_LAYOUT.families,
  actions: Object.freeze(['drop', 'reject'] as BlockAction[]),
  counters: true,
  // Rules carry it on every nft release; the table, chain and sets from nft 1.1 on (see README).
  comments: true,
  // nft -j monitor ruleset.
  events: true,
  // Dynamic sets with per-element counters and a timeout (nft >= 1.0.6); off when the probe says not.
  records: true,
});

/**
 * Native nftables backend: one `inet` table of ours, written as one `nft -j` JSON transaction and
 * read back with `nft -j list table` of that table only.
 */
export class NftBackend implements FirewallBackend {
  readonly name = 'nft';
  #capabilities: BackendCapabilities;
  readonly #runner: CommandRunner;
  readonly #streams: StreamRunner;
  readonly #nft: string;
  #layout: NftLayout;
  /** apply and cleanup read our table, then write from what they read: one at a time. */
  readonly #queue = new SerialQueue();

  constructor(options: NftBackendOptions = {}) {
    this.#runner = options.runner ?? new ProcessCommandRunner();
    this.#streams = options.streams ?? new ProcessStreamRunner();
    this.#nft = options.nft ?? 'nft';
    const families = options.families ?? DEFAULT_LAYOUT.families;
    // Keep the canonical order whatever order the caller gave.
    const ordered = DEFAULT_LAYOUT.families.filter((family) => families.includes(family));
    const records = options.records === false ? undefined : recordsLayout(options.records);
    this.#layout = Object.freeze({ table: checkTableName(options.tableName ?? NFT_TABLE), families: ordered, records });
    this.#capabilities =
      ordered.length === NFT_CAPABILITIES.families.length && records
        ? NFT_CAPABILITIES
        : Object.freeze({ ...NFT_CAPABILITIES, families: Object.freeze(ordered), records: records !== undefined });
  }

  /** NFT_CAPABILITIES, narrowed by the families option, and by a probe that found records impossible. */
  get capabilities(): BackendCapabilities {
    return this.#capabilities;
  }

  get tableName(): string {
    return this.#layout.table;
  }

  async probe(): Promise<Availability> {
    const { availability, records } = await probeNftFeatures(this.#runner, this.#nft, this.#layout);
    if (availability.available && !records && this.#layout.records) {
      // Too old an nft or kernel: the plain rule from now on, and no records claimed.
      this.#layout = Object.freeze({ ...this.#layout, records: undefined });
      this.#capabilities = Object.freeze({ ...this.#capabilities, records: false });
    }
    return availability;
  }

  async plan(desired: DesiredState): Promise<Plan> {
    this.#validate(desired);
    const decision = decideTransaction(await this.observe(), desired, this.#layout);
    return {
      changes: decision.document !== undefined,
      commands: decision.document ? [renderWriteCommand(decision.document, this.#nft)] : [],
      summary: decision.summary,
    };
  }

  apply(desired: DesiredState, options: WriteOptions = {}): Promise<ApplyResult> {
    return this.#queue.run(async () => {
      const plan = await this.plan(desired);
      for (const command of plan.commands) await this.#write(command, 'apply our table', options);
      return { changed: plan.changes, writes: plan.commands.length, summary: plan.summary };
    });
  }

  async observe(): Promise<ObservedState> {
    const result = await this.#list();
    return result ? parseOurTable(result.stdout, this.#layout) : NOTHING_OBSERVED;
  }

  /**
   * The record sets' pairs: one `nft -j list table` of ours (nft 1.0.6 fetches every set's elements
   * for any listing of the table; only this call parses the records out of it).
   */
  async records(): Promise<HitRecords> {
    if (!this.#layout.records) return NO_HIT_RECORDS;
    const result = await this.#list();
    return result ? parseRecords(result.stdout, this.#layout) : NO_HIT_RECORDS;
  }

  cleanup(options: WriteOptions = {}): Promise<CleanupResult> {
    return this.#queue.run(async () => {
      // A plain existence check, not observe(): a table we cannot parse must still be removable.
      const table = `table ${NFT_FAMILY} ${this.#layout.table}`;
      if (!(await this.#list())) return { removed: false, summary: `no ${table} to remove` };
      const command = renderWriteCommand(renderRemoveTransaction(this.#layout), this.#nft);
      await this.#write(command, 'remove our table', options);
      return { removed: true, summary: `removed ${table}` };
    });
  }

  /**
   * Follows `nft -j monitor ruleset`: changes naming our table (its deletion, a flushed ruleset, an
   * edit of our chain, sets or rules) are reported as ours; every other change only counted.
   */
  watchChanges(listener: ChangeListener, signal: AbortSignal): Promise<ChangeStreamEnd> {
    return runChangeStream(
      this.#streams,
      nftMonitorSpec(this.#nft, isOurTableLine(this.#layout.table)),
      listener,
      signal,
    );
  }

  /**
   * Our table's listing, or undefined when it does not exist. A listing nft completes while saying
   * something on stderr left something out (an object it cannot decode): that is unreadable, never
   * the table as it is.
   */
  async #list(): Promise<CommandResult | undefined> {
    const request: CommandRequest = {
      file: this.#nft,
      args: ['-j', 'list', 'table', NFT_FAMILY, this.#layout.table],
    };
    const result = await this.#runner.run(request);
    if (result.exitCode === 0) {
      if (result.stderr.trim() !== '') throw nftUnreadable(formatCommand(request), result);
      return result;
    }
    if (classifyNftStderr(result.stderr).code === ErrorCodes.FirewallNotFound) return undefined;
    throw nftCommandError('list our table', formatCommand(request), result);
  }

  async #write(command: PlannedCommand, what: string, options: WriteOptions): Promise<void> {
    const request: CommandRequest = {
      file: command.file,
      args: command.args,
      ...(options.signal ? { signal: options.signal } : {}),
    };
    await runChecked(this.#runner, request, (result, text) => nftCommandError(what, text, result));
  }

  #validate(desired: DesiredState): void {
    assertEnforceable(this, desired, {
      hint: 'Enable the family in the backend options, or leave its Service CIDRs out of the configuration.',
    });
  }
}
