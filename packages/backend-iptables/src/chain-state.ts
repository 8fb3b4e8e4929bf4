import {
  type BlockAction,
  type Cidr,
  compareCidrs,
  type FamilyObservation,
  type IpFamily,
  NOTHING_OBSERVED,
  type ObservedState,
  parseCidr,
  sameCidrList,
} from '@route-controller/core';
import { FILTER_TABLE, FORWARD_CHAIN, JUMP_COMMENT, REJECT_WITH, RULE_COMMENT } from './constants.js';
import { findTable, type SaveCounters, type SaveDump, type SavedRule, targetOf } from './parse-save.js';

/**
 * What one family's filter table holds of ours: our chain, the rules in it and every jump to it.
 * Nothing else from the table is kept.
 */

/** A rule of our chain in the exact form we write. */
export interface OwnRule {
  readonly cidr: Cidr;
  readonly action: BlockAction;
  readonly counters: SaveCounters;
  readonly spec: string;
}

/** A rule anywhere in the filter table that jumps (or goes) to our chain. */
export interface JumpRule {
  readonly chain: string;
  readonly position: number;
  /** As iptables-save printed it: fed back verbatim to `-D <chain> <spec>`. */
  readonly spec: string;
  /** Exactly the jump we write (our comment, no other match). */
  readonly ours: boolean;
}

export interface FamilyChainState {
  readonly family: IpFamily;
  readonly chain: string;
  readonly chainExists: boolean;
  /** Rules of our chain we recognise, in chain order. */
  readonly rules: readonly OwnRule[];
  /** Rules in our chain that are not in our form: removed at the next write. */
  readonly unexpected: readonly SavedRule[];
  readonly jumps: readonly JumpRule[];
}

export function absentFamilyState(family: IpFamily, chain: string): FamilyChainState {
  return { family, chain, chainExists: false, rules: [], unexpected: [], jumps: [] };
}

/** The tokens of our jump after "-A FORWARD", as iptables-save prints them. */
export function jumpTokens(chain: string): string[] {
  return ['-m', 'comment', '--comment', JUMP_COMMENT, '-j', chain];
}

/** The tokens of our rule for `cidr`, as iptables-save prints them. */
export function ruleTokens(family: IpFamily, cidr: string, action: BlockAction): string[] {
  const target = action === 'drop' ? ['-j', 'DROP'] : ['-j', 'REJECT', '--reject-with', REJECT_WITH[family]];
  return ['-d', cidr, '-m', 'comment', '--comment', RULE_COMMENT, ...target];
}

function sameTokens(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((token, i) => token === b[i]);
}

/** Recognises a rule of our chain, or returns undefined for anything not in our exact form. */
function ownRule(family: IpFamily, rule: SavedRule): OwnRule | undefined {
  const address = rule.tokens[1];
  if (rule.tokens[0] !== '-d' || address === undefined) return undefined;
  let cidr: Cidr;
  try {
    cidr = parseCidr(address).cidr;
  } catch {
    return undefined; // not a CIDR, or one too broad to be a Service range: not ours
  }
  if (cidr.family !== family) return undefined;
  for (const action of ['drop', 'reject'] as const) {
    if (sameTokens(rule.tokens, ruleTokens(family, address, action))) {
      return { cidr, action, counters: rule.counters ?? { packets: 0, bytes: 0 }, spec: rule.spec };
    }
  }
  return undefined;
}

/** Extracts our objects from `<flavour>-save -t filter` output. */
export function familyStateFromSave(dump: SaveDump, family: IpFamily, chain: string): FamilyChainState {
  const table = findTable(dump, FILTER_TABLE);
  if (!table) return absentFamilyState(family, chain);
  const chainExists = table.chains.some((c) => c.name === chain);
  const rules: OwnRule[] = [];
  const unexpected: SavedRule[] = [];
  const jumps: JumpRule[] = [];
  const ourJump = jumpTokens(chain);
  for (const rule of table.rules) {
    if (rule.chain === chain) {
      const own = ownRule(family, rule);
      if (own) rules.push(own);
      else unexpected.push(rule);
    } else if (targetOf(rule) === chain) {
      jumps.push({
        chain: rule.chain,
        position: rule.position,
        spec: rule.spec,
        ours: rule.chain === FORWARD_CHAIN && sameTokens(rule.tokens, ourJump),
      });
    }
  }
  return { family, chain, chainExists, rules, unexpected, jumps };
}

export function hasAnythingOfOurs(state: FamilyChainState): boolean {
  return state.chainExists || state.jumps.length > 0;
}

/** The CIDRs of our rules, sorted, each once. */
export function observedCidrs(state: FamilyChainState): Cidr[] {
  const byText = new Map(state.rules.map((rule) => [rule.cidr.text, rule.cidr]));
  return [...byText.values()].sort(compareCidrs);
}

/** True when the jumps are exactly one jump of ours, first in FORWARD. */
export function jumpsInPlace(state: FamilyChainState): boolean {
  const [only, ...more] = state.jumps;
  return only !== undefined && more.length === 0 && only.ours && only.position === 1;
}

/** True when our chain holds exactly `cidrs` with `action`, once each, and nothing else. */
export function chainMatches(state: FamilyChainState, cidrs: readonly Cidr[], action: BlockAction): boolean {
  if (!state.chainExists || state.unexpected.length > 0 || state.rules.length !== cidrs.length) return false;
  if (state.rules.some((rule) => rule.action !== action)) return false;
  return sameCidrList(observedCidrs(state), [...cidrs].sort(compareCidrs));
}

/** True when this family already is what apply leaves for `cidrs` (nothing at all when empty). */
export function familyInSync(state: FamilyChainState, cidrs: readonly Cidr[], action: BlockAction): boolean {
  if (cidrs.length === 0) return !hasAnythingOfOurs(state);
  return chainMatches(state, cidrs, action) && jumpsInPlace(state);
}

/** Drift the CIDR list and action cannot show, worded for logs and `status`. */
export function familyProblems(state: FamilyChainState): string[] {
  if (!hasAnythingOfOurs(state)) return [];
  const { chain } = state;
  const problems: string[] = [];
  if (!state.chainExists) problems.push(`jumps to ${chain} exist but the chain does not`);
  if (state.chainExists && state.rules.length === 0 && state.unexpected.length === 0) {
    problems.push(`chain ${chain} holds no rules`);
  }
  const forward = state.jumps.filter((jump) => jump.chain === FORWARD_CHAIN);
  if (state.chainExists && forward.length === 0) problems.push(`chain ${chain} has no jump from ${FORWARD_CHAIN}`);
  if (forward.length > 1) {
    const positions = forward.map((jump) => jump.position).join(', ');
    problems.push(`${forward.length} jumps to ${chain} in ${FORWARD_CHAIN} (positions ${positions})`);
  }
  const [first] = forward;
  if (forward.length === 1 && first && first.position !== 1) {
    problems.push(`jump to ${chain} is at position ${first.position} of ${FORWARD_CHAIN}`);
  }
  for (const jump of forward) {
    if (!jump.ours)
      problems.push(`jump to ${chain} at position ${jump.position} of ${FORWARD_CHAIN} is not ours: ${jump.spec}`);
  }
  for (const jump of state.jumps) {
    if (jump.chain !== FORWARD_CHAIN) problems.push(`jump to ${chain} from ${jump.chain}: ${jump.spec}`);
  }
  for (const rule of state.unexpected) problems.push(`unexpected rule in ${chain}: ${rule.spec}`);
  const seen = new Map<string, number>();
  for (const rule of state.rules) seen.set(rule.cidr.text, (seen.get(rule.cidr.text) ?? 0) + 1);
  for (const [cidr, count] of seen) if (count > 1) problems.push(`${cidr} appears ${count} times in ${chain}`);
  return problems;
}

export function sumCounters(rules: readonly OwnRule[]): SaveCounters {
  return rules.reduce(
    (sum, rule) => ({ packets: sum.packets + rule.counters.packets, bytes: sum.bytes + rule.counters.bytes }),
    { packets: 0, bytes: 0 },
  );
}

export function familyObservation(state: FamilyChainState): FamilyObservation {
  const cidrs = observedCidrs(state);
  return state.rules.length > 0 ? { cidrs, counters: sumCounters(state.rules) } : { cidrs };
}

/** Both families' states as the backend-neutral ObservedState. */
export function observedState(ipv4: FamilyChainState, ipv6: FamilyChainState): ObservedState {
  if (!hasAnythingOfOurs(ipv4) && !hasAnythingOfOurs(ipv6)) return NOTHING_OBSERVED;
  const actions = new Set([...ipv4.rules, ...ipv6.rules].map((rule) => rule.action));
  const [action] = actions;
  return {
    present: true,
    action: actions.size === 1 && action !== undefined ? action : null,
    ipv4: familyObservation(ipv4),
    ipv6: familyObservation(ipv6),
    problems: [
      ...familyProblems(ipv4).map((problem) => `ipv4: ${problem}`),
      ...familyProblems(ipv6).map((problem) => `ipv6: ${problem}`),
    ],
  };
}
