import {
  cidrsOf,
  type DesiredState,
  describeDesiredState,
  isEmptyDesiredState,
  isInSync,
  type ObservedState,
} from '@route-controller/core';
import { familyLayouts, NFT_FAMILY, type NftLayout } from './layout.js';
import type { NftDocument } from './nft-json.js';
import {
  type ElementChange,
  renderElementTransaction,
  renderRemoveTransaction,
  renderReplaceTransaction,
} from './render.js';

/** What apply must do to go from what the kernel holds to what is desired. */
export type TransactionKind = 'none' | 'remove' | 'elements' | 'replace';

export interface TransactionDecision {
  readonly kind: TransactionKind;
  /** Absent for `none`: nothing is written. */
  readonly document?: NftDocument;
  readonly summary: string;
}

/**
 * Pure: picks the smallest transaction that reaches `desired`. Only when our table is exactly as
 * apply leaves it (no problems) and the action is unchanged do we touch set elements alone, which
 * keeps the rules and their counters; any other difference rebuilds the whole table atomically.
 */
export function decideTransaction(
  observed: ObservedState,
  desired: DesiredState,
  layout: NftLayout,
): TransactionDecision {
  const table = `table ${NFT_FAMILY} ${layout.table}`;
  if (isInSync(observed, desired)) {
    return { kind: 'none', summary: observed.present ? 'in sync: nothing to change' : 'nothing of ours installed' };
  }
  if (isEmptyDesiredState(desired)) {
    return { kind: 'remove', document: renderRemoveTransaction(layout), summary: `remove ${table}` };
  }
  if (observed.present && observed.problems.length === 0 && observed.action === desired.action) {
    const changes = elementChanges(observed, desired, layout);
    return {
      kind: 'elements',
      document: renderElementTransaction(changes, layout),
      summary: changes
        .map((c) => `${c.family} set: add ${c.add.length}, remove ${c.remove.length} CIDRs`)
        .concat('rules and counters untouched')
        .join('; '),
    };
  }
  const why = !observed.present
    ? `create ${table}`
    : `replace ${table} (${[
        ...observed.problems,
        ...(observed.action !== desired.action ? [`action ${observed.action ?? 'none'} -> ${desired.action}`] : []),
      ].join('; ')})`;
  return {
    kind: 'replace',
    document: renderReplaceTransaction(desired, layout),
    summary: `${why}: ${describeDesiredState(desired)}`,
  };
}

/** Per family, the CIDRs to delete and add; families whose set already matches are left out. */
export function elementChanges(observed: ObservedState, desired: DesiredState, layout: NftLayout): ElementChange[] {
  const changes: ElementChange[] = [];
  for (const { family } of familyLayouts(layout)) {
    const have = observed[family].cidrs;
    const want = cidrsOf(desired.cidrs, family);
    const haveTexts = new Set(have.map((c) => c.text));
    const wantTexts = new Set(want.map((c) => c.text));
    const remove = have.filter((c) => !wantTexts.has(c.text));
    const add = want.filter((c) => !haveTexts.has(c.text));
    if (remove.length > 0 || add.length > 0) changes.push({ family, remove, add });
  }
  return changes;
}
