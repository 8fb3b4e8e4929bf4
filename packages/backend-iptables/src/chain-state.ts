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
import {
  FILTER_TABLE,
  FORWARD_CHAIN,
  type IptablesTable,
  jumpComment,
  OUR_TABLES,
  REJECT_WITH,
  RULE_COMMENT,
  SECURITY_TABLE,
} from './constants.js';
import { findTable, type SaveCounters, type SaveDump, type SavedRule, targetOf } from './parse-save.js';

/**
 * What one family holds of ours, per table we use (security, and filter for the fallback and for
 * 0.1.0's leftovers): our chain, the rules in it and every jump to it. Nothing else is kept.
 */

/** A rule of our chain in the exact form we write. */
export interface OwnRule {
  readonly cidr: Cidr;
  readonly action: BlockAction;
  readonly counters: SaveCounters;
  readonly spec: string;
}

/** A rule anywhere in the table that jumps (or goes) to our chain. */
export interface JumpRule {
  readonly chain: string;
  readonly position: number;
  /** As iptables-save printed it: fed back verbatim to `-D <chain> <spec>`. */
  readonly spec: string;
  /** Exactly the jump we write in this table (its comment, no other match). */
  readonly ours: boolean;
  /** route-controller 0.1.0's jump: in filter FORWARD with the comment security's jump now carries. */
  readonly old: boolean;
}

/** Our objects in one table. */
export interface TableChainState {
  readonly table: IptablesTable;
  readonly chainExists: boolean;
  /** Rules of our chain we recognise, in chain order. */
  readonly rules: readonly OwnRule[];
  /** Rules in our chain that are not in our form: removed at the next write. */
  readonly unexpected: readonly SavedRule[];
  readonly jumps: readonly JumpRule[];
}

export interface FamilyChainState {
  readonly family: IpFamily;
  readonly chain: string;
  readonly security: TableChainState;
  readonly filter: TableChainState;
}

/**
 * Where a drop belongs in one family: security, or filter where the kernel lacks it. The reject
 * action always lives in filter (tableFor).
 */
export type Placement = IptablesTable;

/** The table our objects belong in for `action`: REJECT is a filter-table target. */
export function tableFor(action: BlockAction, placement: Placement): IptablesTable {
  return action === 'reject' ? FILTER_TABLE : placement;
}

/**
 * The table a family's objects are judged against when the action is not known (observe): filter
 * when every rule of ours is a reject, else the drop's placement.
 */
export function expectedTable(state: FamilyChainState, placement: Placement): IptablesTable {
  const rules = [...state.security.rules, ...state.filter.rules];
  return rules.length > 0 && rules.every((rule) => rule.action === 'reject') ? FILTER_TABLE : placement;
}

export function otherTable(table: IptablesTable): IptablesTable {
  return table === SECURITY_TABLE ? FILTER_TABLE : SECURITY_TABLE;
}

function absentTable(table: IptablesTable): TableChainState {
  return { table, chainExists: false, rules: [], unexpected: [], jumps: [] };
}

export function absentFamilyState(family: IpFamily, chain: string): FamilyChainState {
  return { family, chain, security: absentTable(SECURITY_TABLE), filter: absentTable(FILTER_TABLE) };
}

/** The tokens of our jump in `table` after "-A FORWARD", as iptables-save prints them. */
export function jumpTokens(chain: string, table: IptablesTable): string[] {
  return ['-m', 'comment', '--comment', jumpComment(table), '-j', chain];
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

function tableStateFromSave(dump: SaveDump, table: IptablesTable, family: IpFamily, chain: string): TableChainState {
  const saved = findTable(dump, table);
  if (!saved) return absentTable(table);
  const chainExists = saved.chains.some((c) => c.name === chain);
  const rules: OwnRule[] = [];
  const unexpected: SavedRule[] = [];
  const jumps: JumpRule[] = [];
  const ourJump = jumpTokens(chain, table);
  const oldJump = jumpTokens(chain, SECURITY_TABLE);
  for (const rule of saved.rules) {
    if (rule.chain === chain) {
      const own = ownRule(family, rule);
      if (own) rules.push(own);
      else unexpected.push(rule);
    } else if (targetOf(rule) === chain) {
      const forward = rule.chain === FORWARD_CHAIN;
      jumps.push({
        chain: rule.chain,
        position: rule.position,
        spec: rule.spec,
        ours: forward && sameTokens(rule.tokens, ourJump),
        old: forward && table === FILTER_TABLE && sameTokens(rule.tokens, oldJump),
      });
    }
  }
  return { table, chainExists, rules, unexpected, jumps };
}

/**
 * Extracts our objects from `-save` output holding the security and filter tables (one legacy dump,
 * or iptables-nft's two `-t` reads joined); a table the dump lacks holds nothing of ours.
 */
export function familyStateFromSave(dump: SaveDump, family: IpFamily, chain: string): FamilyChainState {
  return {
    family,
    chain,
    security: tableStateFromSave(dump, SECURITY_TABLE, family, chain),
    filter: tableStateFromSave(dump, FILTER_TABLE, family, chain),
  };
}

export function tableHasAnythingOfOurs(state: TableChainState): boolean {
  return state.chainExists || state.jumps.length > 0;
}

export function hasAnythingOfOurs(state: FamilyChainState): boolean {
  return OUR_TABLES.some((table) => tableHasAnythingOfOurs(state[table]));
}

/** The CIDRs of our rules, sorted, each once. */
export function observedCidrs(state: TableChainState): Cidr[] {
  const byText = new Map(state.rules.map((rule) => [rule.cidr.text, rule.cidr]));
  return [...byText.values()].sort(compareCidrs);
}

/** True when the table's jumps are exactly one jump of ours, first in FORWARD. */
export function jumpsInPlace(state: TableChainState): boolean {
  const [only, ...more] = state.jumps;
  return only !== undefined && more.length === 0 && only.ours && only.position === 1;
}

/** True when our chain in the table holds exactly `cidrs` with `action`, once each, and nothing else. */
export function chainMatches(state: TableChainState, cidrs: readonly Cidr[], action: BlockAction): boolean {
  if (!state.chainExists || state.unexpected.length > 0 || state.rules.length !== cidrs.length) return false;
  if (state.rules.some((rule) => rule.action !== action)) return false;
  return sameCidrList(observedCidrs(state), [...cidrs].sort(compareCidrs));
}

/**
 * True when this family already is what apply leaves for `cidrs` at `placement`: our chain and jump
 * there and nothing of ours in the other table (nothing at all when `cidrs` is empty).
 */
export function familyInSync(
  state: FamilyChainState,
  placement: Placement,
  cidrs: readonly Cidr[],
  action: BlockAction,
): boolean {
  if (cidrs.length === 0) return !hasAnythingOfOurs(state);
  const here = state[placement];
  return (
    chainMatches(here, cidrs, action) && jumpsInPlace(here) && !tableHasAnythingOfOurs(state[otherTable(placement)])
  );
}

/** Drift in the table where our objects belong. */
function placedProblems(state: TableChainState, chain: string): string[] {
  if (!tableHasAnythingOfOurs(state)) return [];
  const { table } = state;
  const forwardName = `${table} ${FORWARD_CHAIN}`;
  const problems: string[] = [];
  if (!state.chainExists) problems.push(`jumps to ${chain} exist in ${table} but the chain does not`);
  if (state.chainExists && state.rules.length === 0 && state.unexpected.length === 0) {
    problems.push(`chain ${chain} holds no rules`);
  }
  const forward = state.jumps.filter((jump) => jump.chain === FORWARD_CHAIN);
  if (state.chainExists && forward.length === 0) problems.push(`chain ${chain} has no jump from ${forwardName}`);
  if (forward.length > 1) {
    const positions = forward.map((jump) => jump.position).join(', ');
    problems.push(`${forward.length} jumps to ${chain} in ${forwardName} (positions ${positions})`);
  }
  const [first] = forward;
  if (forward.length === 1 && first && first.position !== 1) {
    problems.push(`jump to ${chain} is at position ${first.position} of ${forwardName}`);
  }
  for (const jump of forward) {
    if (!jump.ours)
      problems.push(`jump to ${chain} at position ${jump.position} of ${forwardName} is not ours: ${jump.spec}`);
  }
  for (const jump of state.jumps) {
    if (jump.chain !== FORWARD_CHAIN) problems.push(`jump to ${chain} from ${table} ${jump.chain}: ${jump.spec}`);
  }
  for (const rule of state.unexpected) problems.push(`unexpected rule in ${chain}: ${rule.spec}`);
  const seen = new Map<string, number>();
  for (const rule of state.rules) seen.set(rule.cidr.text, (seen.get(rule.cidr.text) ?? 0) + 1);
  for (const [cidr, count] of seen) if (count > 1) problems.push(`${cidr} appears ${count} times in ${chain}`);
  return problems;
}

/** Our objects in the table where they do not belong: one line saying what and why they go. */
function misplacedProblem(state: TableChainState, chain: string): string[] {
  if (!tableHasAnythingOfOurs(state)) return [];
  const what = [
    ...(state.chainExists ? [`chain ${chain}`] : []),
    ...state.jumps.map((jump) => `a jump to it at position ${jump.position} of ${jump.chain}`),
  ].join(', ');
  const why = state.jumps.some((jump) => jump.old)
    ? ": route-controller 0.1.0's layout, which drops before kube-proxy's REJECT"
    : state.table === FILTER_TABLE
      ? ': filter FORWARD, though the security table can be used'
      : '';
  return [`${what} in table ${state.table}${why}; the next apply removes it`];
}

/** Drift the CIDR list and action cannot show, worded for logs and `status`, against `table`. */
export function familyProblems(state: FamilyChainState, table: IptablesTable): string[] {
  return [...placedProblems(state[table], state.chain), ...misplacedProblem(state[otherTable(table)], state.chain)];
}

export function sumCounters(rules: readonly OwnRule[]): SaveCounters {
  return rules.reduce(
    (sum, rule) => ({ packets: sum.packets + rule.counters.packets, bytes: sum.bytes + rule.counters.bytes }),
    { packets: 0, bytes: 0 },
  );
}

/**
 * The table whose chain the observation reports: where our objects belong, or, while only the other
 * table holds a chain of ours (0.1.0's, before the first apply), that one, so `status` shows its rules.
 */
function reportedTable(state: FamilyChainState, table: IptablesTable): TableChainState {
  const here = state[table];
  const there = state[otherTable(table)];
  return !here.chainExists && there.chainExists ? there : here;
}

export function familyObservation(state: FamilyChainState, expected: IptablesTable): FamilyObservation {
  const table = reportedTable(state, expected);
  const cidrs = observedCidrs(table);
  return table.rules.length > 0 ? { cidrs, counters: sumCounters(table.rules) } : { cidrs };
}

/**
 * Both families' states as the backend-neutral ObservedState, each judged against the table its
 * rules belong in (expectedTable: the drop's placement, or filter for reject rules).
 */
export function observedState(
  ipv4: FamilyChainState,
  ipv6: FamilyChainState,
  placement: Readonly<Record<IpFamily, Placement>>,
): ObservedState {
  if (!hasAnythingOfOurs(ipv4) && !hasAnythingOfOurs(ipv6)) return NOTHING_OBSERVED;
  const expected = {
    ipv4: expectedTable(ipv4, placement.ipv4),
    ipv6: expectedTable(ipv6, placement.ipv6),
  };
  const rules = [ipv4, ipv6].flatMap((state) => reportedTable(state, expected[state.family]).rules);
  const actions = new Set(rules.map((rule) => rule.action));
  const [action] = actions;
  return {
    present: true,
    action: actions.size === 1 && action !== undefined ? action : null,
    ipv4: familyObservation(ipv4, expected.ipv4),
    ipv6: familyObservation(ipv6, expected.ipv6),
    problems: [
      ...familyProblems(ipv4, expected.ipv4).map((problem) => `ipv4: ${problem}`),
      ...familyProblems(ipv6, expected.ipv6).map((problem) => `ipv6: ${problem}`),
    ],
  };
}

/**
 * True when the family holds the fallback layout: our jump in filter FORWARD (its own comment) to a
 * chain that drops. (Reject rules live in filter whatever the kernel has: they say nothing.)
 */
export function holdsFallbackLayout(state: FamilyChainState): boolean {
  return state.filter.jumps.some((jump) => jump.ours) && state.filter.rules.some((rule) => rule.action === 'drop');
}
