import {
  type ApplyResult,
  type Availability,
  assertValidDesiredState,
  type BackendCapabilities,
  type BlockAction,
  type CleanupResult,
  type CommandRequest,
  type CommandResult,
  type CommandRunner,
  type DesiredState,
  ErrorCodes,
  type FirewallBackend,
  formatCommand,
  type IpFamily,
  NOTHING_OBSERVED,
  type ObservedState,
  type Plan,
  ProcessCommandRunner,
  RouteControllerError,
  unsupportedFamilies,
} from '@route-controller/core';
import { classifyNftStderr, nftCommandError } from './classify-error.js';
import { decideTransaction } from './decide.js';
import { DEFAULT_LAYOUT, NFT_FAMILY, NFT_TABLE, type NftLayout } from './layout.js';
import { parseOurTable } from './parse.js';
import { probeNft } from './probe.js';
import { renderRemoveTransaction, renderWriteCommand } from './render.js';

export interface NftBackendOptions {
  /** Runs nft; default: a ProcessCommandRunner on this host. Tests pass a namespace's runner. */
  readonly runner?: CommandRunner;
  /** The nft binary; default "nft" from PATH. */
  readonly nft?: string;
  /** Our table's name; default "route-controller". */
  readonly tableName?: string;
  /** Families to enforce; default both. A family left out gets no set and no rule. */
  readonly families?: readonly IpFamily[];
}

// Names other tools own: iptables-nft's tables, and the names the brief forbids outright.
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

/**
 * Native nftables backend: one `inet` table of ours, written as one `nft -j` JSON transaction and
 * read back with `nft -j list table` of that table only.
 */
export class NftBackend implements FirewallBackend {
  readonly name = 'nft';
  readonly capabilities: BackendCapabilities;
  readonly #runner: CommandRunner;
  readonly #nft: string;
  readonly #layout: NftLayout;

  constructor(options: NftBackendOptions = {}) {
    this.#runner = options.runner ?? new ProcessCommandRunner();
    this.#nft = options.nft ?? 'nft';
    const families = options.families ?? DEFAULT_LAYOUT.families;
    // Keep the canonical order whatever order the caller gave.
    const ordered = DEFAULT_LAYOUT.families.filter((family) => families.includes(family));
    this.#layout = Object.freeze({ table: checkTableName(options.tableName ?? NFT_TABLE), families: ordered });
    this.capabilities = Object.freeze({
      families: ordered,
      actions: ['drop', 'reject'] as readonly BlockAction[],
      counters: true,
      // Rules carry it on every nft release; the table, chain and sets from nft 1.1 on (see README).
      comments: true,
    });
  }

  get tableName(): string {
    return this.#layout.table;
  }

  probe(): Promise<Availability> {
    return probeNft(this.#runner, this.#nft, this.#layout);
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

  async apply(desired: DesiredState): Promise<ApplyResult> {
    const plan = await this.plan(desired);
    for (const command of plan.commands) await this.#write(command, 'apply our table');
    return { changed: plan.changes, writes: plan.commands.length, summary: plan.summary };
  }

  async observe(): Promise<ObservedState> {
    const result = await this.#list();
    return result ? parseOurTable(result.stdout, this.#layout) : NOTHING_OBSERVED;
  }

  async cleanup(): Promise<CleanupResult> {
    // A plain existence check, not observe(): a table we cannot parse must still be removable.
    const table = `table ${NFT_FAMILY} ${this.#layout.table}`;
    if (!(await this.#list())) return { removed: false, summary: `no ${table} to remove` };
    await this.#write(renderWriteCommand(renderRemoveTransaction(this.#layout), this.#nft), 'remove our table');
    return { removed: true, summary: `removed ${table}` };
  }

  /** Our table's listing, or undefined when it does not exist. */
  async #list(): Promise<CommandResult | undefined> {
    const request: CommandRequest = {
      file: this.#nft,
      args: ['-j', 'list', 'table', NFT_FAMILY, this.#layout.table],
    };
    const result = await this.#runner.run(request);
    if (result.exitCode === 0) return result;
    if (classifyNftStderr(result.stderr).code === ErrorCodes.FirewallNotFound) return undefined;
    throw nftCommandError('list our table', formatCommand(request), result);
  }

  async #write(request: CommandRequest, what: string): Promise<void> {
    const result = await this.#runner.run(request);
    if (result.exitCode !== 0) throw nftCommandError(what, formatCommand(request), result);
  }

  #validate(desired: DesiredState): void {
    assertValidDesiredState(desired);
    const missing = unsupportedFamilies(this.capabilities, desired);
    if (missing.length > 0) {
      throw new RouteControllerError(
        ErrorCodes.FirewallUnsupported,
        `the nft backend is configured without ${missing.join(' and ')}, but the desired state has ${missing.join(' and ')} CIDRs`,
        {
          hint: 'Enable the family in the backend options, or leave its Service CIDRs out of the configuration.',
          details: { missing, families: this.capabilities.families },
        },
      );
    }
  }
}
