import {
  type BlockAction,
  type Cidr,
  compareCidrs,
  DEFAULT_COMMAND_TIMEOUT_MS,
  type IpFamily,
  type PlannedCommand,
} from '@route-controller/core';
import { type IptablesMode, iptablesBinary } from './binaries.js';
import {
  chainMatches,
  type FamilyChainState,
  familyInSync,
  jumpsInPlace,
  jumpTokens,
  otherTable,
  ruleTokens,
  type TableChainState,
  tableHasAnythingOfOurs,
} from './chain-state.js';
import { FORWARD_CHAIN, type IptablesTable, OUR_TABLES } from './constants.js';
import { quoteToken, type SaveCounters } from './parse-save.js';

/**
 * iptables-restore payloads. Each family converges in one `--noflush` restore run from whatever it
 * holds now: a section for the table where our objects belong (its placement: security, or filter
 * where the kernel lacks security), then one removing whatever of ours the other table holds
 * (0.1.0's chain in filter, on an upgrade). Both flavours commit each table at its COMMIT, one
 * transaction per table (iptables-nft-restore 1.8.9 too: a later section that fails leaves an
 * earlier one committed), so the new layout goes in first and the old one comes out second: never a
 * moment without a drop, at worst a moment with two. A failed second section is repaired by the
 * next resync, which finds only the old objects left to remove.
 *
 * Our chain: when it holds only rules in our form, stale rules are deleted by spec and missing
 * ones appended, so the rules that stay keep their counters exactly. When it is missing, holds a
 * rule we did not write, or keeps nothing, `:CHAIN - [0:0]` creates or flushes it and every rule is
 * written anew, with the counters read for each CIDR carried in `[packets:bytes]` (restore
 * --counters; ip6tables-nft-restore 1.8.9 ignores them, so there they restart at zero).
 *
 * The jump: unless it already is exactly one jump of ours at position 1 of FORWARD, every jump to
 * our chain is deleted by its spec as iptables-save printed it, and one is inserted at position 1.
 * Deleting by spec, not by number, means a rule inserted by someone else between our read and our
 * write cannot make us delete the wrong rule: the table's transaction fails as a whole instead, and
 * the next resync starts over.
 */

/** What one family should hold: nothing when `cidrs` is empty. */
export interface FamilyTarget {
  readonly cidrs: readonly Cidr[];
  readonly action: BlockAction;
}

export function renderRuleSpec(family: IpFamily, cidr: Cidr, action: BlockAction): string {
  return ruleTokens(family, cidr.text, action).map(quoteToken).join(' ');
}

export function renderJumpSpec(chain: string, table: IptablesTable): string {
  return jumpTokens(chain, table).map(quoteToken).join(' ');
}

/** How our chain changes: not at all, created, flushed and rewritten, or updated rule by rule. */
export type ChainChange =
  | { readonly kind: 'none' }
  | { readonly kind: 'create' | 'rewrite'; readonly lines: readonly string[]; readonly count: number }
  | { readonly kind: 'update'; readonly lines: readonly string[]; readonly added: number; readonly deleted: number };

/** Counters per CIDR of the rules read (duplicates summed), to carry into a rewrite. */
function carriedCounters(state: TableChainState): Map<string, SaveCounters> {
  const carried = new Map<string, SaveCounters>();
  for (const rule of state.rules) {
    const sum = carried.get(rule.cidr.text) ?? { packets: 0, bytes: 0 };
    carried.set(rule.cidr.text, {
      packets: sum.packets + rule.counters.packets,
      bytes: sum.bytes + rule.counters.bytes,
    });
  }
  return carried;
}

export function chainChange(family: FamilyChainState, table: IptablesTable, target: FamilyTarget): ChainChange {
  const state = family[table];
  if (chainMatches(state, target.cidrs, target.action)) return { kind: 'none' };
  const { chain } = family;
  const wanted = [...target.cidrs].sort(compareCidrs);
  const rewrite = (kind: 'create' | 'rewrite'): ChainChange => {
    // A chain made anew takes the counts of ours in the other table (0.1.0's, on an upgrade).
    const carried = carriedCounters(state.chainExists ? state : family[otherTable(table)]);
    const lines = [`:${chain} - [0:0]`];
    for (const cidr of wanted) {
      const counters = carried.get(cidr.text) ?? { packets: 0, bytes: 0 };
      lines.push(
        `[${counters.packets}:${counters.bytes}] -A ${chain} ${renderRuleSpec(family.family, cidr, target.action)}`,
      );
    }
    return { kind, lines, count: wanted.length };
  };
  if (!state.chainExists) return rewrite('create');
  if (state.unexpected.length > 0) return rewrite('rewrite');
  const wantedTexts = new Set(wanted.map((cidr) => cidr.text));
  const kept = new Set<string>();
  const deletes: string[] = [];
  for (const rule of state.rules) {
    const keep = rule.action === target.action && wantedTexts.has(rule.cidr.text) && !kept.has(rule.cidr.text);
    if (keep) kept.add(rule.cidr.text);
    else deletes.push(`-D ${chain} ${rule.spec}`);
  }
  // Nothing to keep (new CIDRs, or a new action): one flush is shorter than deleting each rule.
  if (kept.size === 0) return rewrite('rewrite');
  const adds = wanted
    .filter((cidr) => !kept.has(cidr.text))
    .map((cidr) => `-A ${chain} ${renderRuleSpec(family.family, cidr, target.action)}`);
  return { kind: 'update', lines: [...deletes, ...adds], added: adds.length, deleted: deletes.length };
}

/** `-D` lines for every jump to our chain, in the order iptables-save listed them. */
function deleteJumps(state: TableChainState): string[] {
  return state.jumps.map((jump) => `-D ${jump.chain} ${jump.spec}`);
}

/** The lines that remove everything of ours from one table: jumps first, then the chain. */
function removalLines(state: TableChainState, chain: string): string[] {
  return [...deleteJumps(state), ...(state.chainExists ? [`-F ${chain}`, `-X ${chain}`] : [])];
}

/** The lines that make `table` hold our chain with `target` and our jump at position 1 of FORWARD. */
function placedLines(family: FamilyChainState, table: IptablesTable, target: FamilyTarget): string[] {
  const state = family[table];
  const lines: string[] = [];
  const change = chainChange(family, table, target);
  if (change.kind !== 'none') lines.push(...change.lines);
  if (!jumpsInPlace(state)) {
    lines.push(...deleteJumps(state), `-I ${FORWARD_CHAIN} 1 ${renderJumpSpec(family.chain, table)}`);
  }
  return lines;
}

/**
 * The restore payload that takes `state` to `target` with our objects in `table` (tableFor: where
 * the action and the kernel put them), or undefined when it is already there (then apply writes
 * nothing).
 */
export function renderRestorePayload(
  state: FamilyChainState,
  table: IptablesTable,
  target: FamilyTarget,
): string | undefined {
  if (familyInSync(state, table, target.cidrs, target.action)) return undefined;
  const sections: [IptablesTable, string[]][] =
    target.cidrs.length === 0
      ? OUR_TABLES.map((each) => [each, removalLines(state[each], state.chain)])
      : [
          [table, placedLines(state, table, target)],
          [otherTable(table), removalLines(state[otherTable(table)], state.chain)],
        ];
  return sections
    .filter(([, lines]) => lines.length > 0)
    .flatMap(([each, lines]) => [`*${each}`, ...lines, 'COMMIT'])
    .concat('')
    .join('\n');
}

/** The payload that removes everything of ours in this family, or undefined when there is nothing. */
export function renderRemovalPayload(state: FamilyChainState): string | undefined {
  return renderRestorePayload(state, 'security', { cidrs: [], action: 'drop' });
}

export interface RestoreOptions {
  readonly lockWaitSeconds: number;
}

/**
 * `--noflush` keeps every other chain and rule of the table; `--counters` takes our `[p:b]`
 * prefixes; `-w` waits for the xtables lock (legacy restore ignores the lock entirely without it,
 * racing kube-proxy; nft restore accepts and ignores it).
 */
export function restoreArgs(options: RestoreOptions): string[] {
  return ['--noflush', '--counters', '-w', String(options.lockWaitSeconds)];
}

export function restoreCommand(
  mode: IptablesMode,
  family: IpFamily,
  payload: string,
  options: RestoreOptions,
): PlannedCommand {
  return { file: iptablesBinary(mode, family, 'restore'), args: restoreArgs(options), input: payload };
}

/** Long enough to wait out the lock and then write the most rules a family may hold. */
export function restoreTimeoutMs(options: RestoreOptions): number {
  return options.lockWaitSeconds * 1000 + DEFAULT_COMMAND_TIMEOUT_MS;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** "remove chain ROUTE-CONTROLLER from filter; delete 1 jump to it", or nothing. */
function describeRemoval(state: TableChainState, chain: string): string[] {
  if (!tableHasAnythingOfOurs(state)) return [];
  const jumps = state.jumps.length;
  const old = state.jumps.some((jump) => jump.old) ? " (route-controller 0.1.0's)" : '';
  return [
    ...(state.chainExists ? [`remove chain ${chain} from ${state.table}${old}`] : []),
    ...(jumps > 0 ? [`delete ${plural(jumps, 'jump')} to it from ${state.table}`] : []),
  ];
}

/**
 * "ipv4: create chain ROUTE-CONTROLLER in security with 3 CIDRs (drop); insert the jump at position
 * 1 of security FORWARD; remove chain ROUTE-CONTROLLER from filter (route-controller 0.1.0's)".
 */
export function describeChange(
  state: FamilyChainState,
  placement: IptablesTable,
  target: FamilyTarget,
): string | undefined {
  if (familyInSync(state, placement, target.cidrs, target.action)) return undefined;
  const { chain, family } = state;
  const parts: string[] = [];
  if (target.cidrs.length === 0) {
    for (const table of OUR_TABLES) parts.push(...describeRemoval(state[table], chain));
  } else {
    const here = state[placement];
    const forward = `${placement} ${FORWARD_CHAIN}`;
    const change = chainChange(state, placement, target);
    if (change.kind === 'create' || change.kind === 'rewrite') {
      parts.push(
        `${change.kind} chain ${chain} in ${placement} with ${plural(change.count, 'CIDR')} (${target.action})`,
      );
    } else if (change.kind === 'update') {
      parts.push(
        `update chain ${chain} in ${placement}: add ${plural(change.added, 'rule')}, delete ${change.deleted}`,
      );
    }
    if (!jumpsInPlace(here)) {
      const jumps = here.jumps.length;
      parts.push(
        jumps === 0
          ? `insert the jump at position 1 of ${forward}`
          : `replace ${plural(jumps, 'jump')} with one at position 1 of ${forward}`,
      );
    }
    parts.push(...describeRemoval(state[otherTable(placement)], chain));
  }
  return `${family}: ${parts.join('; ')}`;
}
