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
  ruleTokens,
} from './chain-state.js';
import { FILTER_TABLE, FORWARD_CHAIN } from './constants.js';
import { quoteToken, type SaveCounters } from './parse-save.js';

/**
 * iptables-restore payloads. Each family converges in one `--noflush` transaction from whatever it
 * holds now.
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
 * write cannot make us delete the wrong rule: the transaction fails as a whole instead, and the
 * next resync starts over.
 */

/** What one family should hold: nothing when `cidrs` is empty. */
export interface FamilyTarget {
  readonly cidrs: readonly Cidr[];
  readonly action: BlockAction;
}

export function renderRuleSpec(family: IpFamily, cidr: Cidr, action: BlockAction): string {
  return ruleTokens(family, cidr.text, action).map(quoteToken).join(' ');
}

export function renderJumpSpec(chain: string): string {
  return jumpTokens(chain).map(quoteToken).join(' ');
}

/** How our chain changes: not at all, created, flushed and rewritten, or updated rule by rule. */
export type ChainChange =
  | { readonly kind: 'none' }
  | { readonly kind: 'create' | 'rewrite'; readonly lines: readonly string[]; readonly count: number }
  | { readonly kind: 'update'; readonly lines: readonly string[]; readonly added: number; readonly deleted: number };

/** Counters per CIDR of the rules read (duplicates summed), to carry into a rewrite. */
function carriedCounters(state: FamilyChainState): Map<string, SaveCounters> {
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

export function chainChange(state: FamilyChainState, target: FamilyTarget): ChainChange {
  if (chainMatches(state, target.cidrs, target.action)) return { kind: 'none' };
  const { chain, family } = state;
  const wanted = [...target.cidrs].sort(compareCidrs);
  const rewrite = (kind: 'create' | 'rewrite'): ChainChange => {
    const carried = carriedCounters(state);
    const lines = [`:${chain} - [0:0]`];
    for (const cidr of wanted) {
      const counters = carried.get(cidr.text) ?? { packets: 0, bytes: 0 };
      lines.push(`[${counters.packets}:${counters.bytes}] -A ${chain} ${renderRuleSpec(family, cidr, target.action)}`);
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
    .map((cidr) => `-A ${chain} ${renderRuleSpec(family, cidr, target.action)}`);
  return { kind: 'update', lines: [...deletes, ...adds], added: adds.length, deleted: deletes.length };
}

/** `-D` lines for every jump to our chain, in the order iptables-save listed them. */
function deleteJumps(state: FamilyChainState): string[] {
  return state.jumps.map((jump) => `-D ${jump.chain} ${jump.spec}`);
}

/**
 * The restore payload that takes `state` to `target`, or undefined when it is already there
 * (then apply writes nothing).
 */
export function renderRestorePayload(state: FamilyChainState, target: FamilyTarget): string | undefined {
  if (familyInSync(state, target.cidrs, target.action)) return undefined;
  const { chain } = state;
  const lines = [`*${FILTER_TABLE}`];
  if (target.cidrs.length === 0) {
    lines.push(...deleteJumps(state));
    if (state.chainExists) lines.push(`-F ${chain}`, `-X ${chain}`);
  } else {
    const change = chainChange(state, target);
    if (change.kind !== 'none') lines.push(...change.lines);
    if (!jumpsInPlace(state)) {
      lines.push(...deleteJumps(state), `-I ${FORWARD_CHAIN} 1 ${renderJumpSpec(chain)}`);
    }
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** The payload that removes everything of ours in this family, or undefined when there is nothing. */
export function renderRemovalPayload(state: FamilyChainState): string | undefined {
  return renderRestorePayload(state, { cidrs: [], action: 'drop' });
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

/** Long enough to wait out the lock and then write 1,000 rules. */
export function restoreTimeoutMs(options: RestoreOptions): number {
  return options.lockWaitSeconds * 1000 + DEFAULT_COMMAND_TIMEOUT_MS;
}

/** "ipv4: rewrite ROUTE-CONTROLLER with 3 CIDRs (drop); move the jump to position 1 of FORWARD". */
export function describeChange(state: FamilyChainState, target: FamilyTarget): string | undefined {
  if (familyInSync(state, target.cidrs, target.action)) return undefined;
  const { chain, family } = state;
  const parts: string[] = [];
  const jumps = state.jumps.length;
  if (target.cidrs.length === 0) {
    if (state.chainExists) parts.push(`remove chain ${chain}`);
    if (jumps > 0) parts.push(`delete ${jumps} jump${jumps === 1 ? '' : 's'} to it`);
  } else {
    const change = chainChange(state, target);
    const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
    if (change.kind === 'create' || change.kind === 'rewrite') {
      parts.push(`${change.kind} chain ${chain} with ${plural(change.count, 'CIDR')} (${target.action})`);
    } else if (change.kind === 'update') {
      parts.push(`update chain ${chain}: add ${plural(change.added, 'rule')}, delete ${change.deleted}`);
    }
    if (!jumpsInPlace(state)) {
      parts.push(
        jumps === 0
          ? `insert the jump at position 1 of ${FORWARD_CHAIN}`
          : `replace ${jumps} jump${jumps === 1 ? '' : 's'} with one at position 1 of ${FORWARD_CHAIN}`,
      );
    }
  }
  return `${family}: ${parts.join('; ')}`;
}
