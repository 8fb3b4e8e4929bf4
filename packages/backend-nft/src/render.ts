import {
  type BlockAction,
  type Cidr,
  cidrsOf,
  type DesiredState,
  type IpFamily,
  type PlannedCommand,
} from '@route-controller/core';
import {
  DEFAULT_LAYOUT,
  FAMILY_LAYOUTS,
  type FamilyLayout,
  familyLayouts,
  NFT_CHAIN,
  NFT_CHAIN_PRIORITY,
  NFT_FAMILY,
  type NftLayout,
  OWNER_COMMENT,
  type RecordsLayout,
} from './layout.js';
import type {
  NftCommand,
  NftDocument,
  NftElement,
  NftElementRef,
  NftRule,
  NftSet,
  NftStatement,
  NftTable,
} from './nft-json.js';

/** Pure payload rendering: what we write, as libnftables JSON. No I/O here, so goldens can pin it. */

/**
 * How the payload reaches nft: as one command-line argument (`nft -j '<json>'`), not on stdin.
 * nft 1.0.6 reads `-j -f -` by opening /dev/stdin, which fails with ENXIO when stdin is a socket,
 * and Node (libuv) gives every child a socketpair for stdin. The document is small: core caps the
 * Service CIDRs at MAX_CIDRS_PER_FAMILY per family, so the largest transaction is a few dozen KiB,
 * well below the kernel's 128 KiB per argument (MAX_ARG_STRLEN).
 */
export const NFT_JSON_FLAG = '-j';

export function cidrElement(cidr: Cidr): NftElement {
  return { prefix: { addr: cidr.address, len: cidr.prefix } };
}

function tableRef(layout: NftLayout): NftTable {
  return { family: NFT_FAMILY, name: layout.table };
}

export function renderSet(layout: NftLayout, family: FamilyLayout): NftSet {
  return {
    family: NFT_FAMILY,
    table: layout.table,
    name: family.set,
    type: family.type,
    flags: ['interval'],
    comment: OWNER_COMMENT,
  };
}

/**
 * A family's record set: `type ipv4_addr . ipv4_addr; flags timeout; timeout 10m; size 4096;
 * counter;`. nft adds the dynamic flag itself, because the record chain updates it in the same batch.
 */
export function renderRecordSet(layout: NftLayout, family: FamilyLayout, records: RecordsLayout): NftSet {
  return {
    family: NFT_FAMILY,
    table: layout.table,
    name: family.recordSet,
    type: [family.type, family.type],
    flags: ['timeout'],
    timeout: records.timeoutSeconds,
    size: records.size,
    stmt: [{ counter: null }],
    comment: OWNER_COMMENT,
  };
}

/** The `add element` / `delete element` command for one set, or none when there are no CIDRs. */
export function renderElementCommands(
  verb: 'add' | 'delete',
  layout: NftLayout,
  family: IpFamily,
  cidrs: readonly Cidr[],
): NftCommand[] {
  if (cidrs.length === 0) return [];
  const element: NftElementRef = {
    family: NFT_FAMILY,
    table: layout.table,
    name: FAMILY_LAYOUTS[family].set,
    elem: cidrs.map(cidrElement),
  };
  return [verb === 'add' ? { add: { element } } : { delete: { element } }];
}

function verdict(family: FamilyLayout, action: BlockAction): NftStatement {
  return action === 'drop' ? { drop: null } : { reject: { type: family.rejectType, expr: 'admin-prohibited' } };
}

/**
 * `ip daddr @service-cidrs-v4 counter drop` (or `reject with icmp admin-prohibited`); with records,
 * `... counter goto blocked-v4` instead, the chain that records the pair and then blocks.
 */
export function renderRule(layout: NftLayout, family: FamilyLayout, action: BlockAction): NftRule {
  return {
    family: NFT_FAMILY,
    table: layout.table,
    chain: NFT_CHAIN,
    comment: OWNER_COMMENT,
    expr: [
      {
        match: {
          op: '==',
          left: { payload: { protocol: family.protocol, field: 'daddr' } },
          right: `@${family.set}`,
        },
      },
      { counter: null },
      layout.records ? { goto: { target: family.recordChain } } : verdict(family, action),
    ],
  };
}

/**
 * The record chain's two rules: `update @stale-v4 { ip saddr . ip daddr }`, then the verdict. Never
 * one rule: when the set is full the kernel skips the rest of the rule holding the update, and a
 * verdict there would be skipped too (the packet accepted). The verdict's own rule always runs.
 */
export function renderRecordRules(layout: NftLayout, family: FamilyLayout, action: BlockAction): NftRule[] {
  const rule = (statement: NftStatement): NftRule => ({
    family: NFT_FAMILY,
    table: layout.table,
    chain: family.recordChain,
    comment: OWNER_COMMENT,
    expr: [statement],
  });
  const field = (name: 'saddr' | 'daddr') => ({ payload: { protocol: family.protocol, field: name } });
  return [
    rule({ set: { op: 'update', elem: { concat: [field('saddr'), field('daddr')] }, set: `@${family.recordSet}` } }),
    rule(verdict(family, action)),
  ];
}

/**
 * Replaces our table from any prior state in one transaction: `add table` makes the `delete`
 * safe when nothing exists, the `delete` drops whatever was there (a half-made run, a namesake
 * chain on the wrong hook), and the rest builds the table afresh. The kernel commits all or nothing.
 * The record sets start empty again: only an element-only change (decide.ts) keeps them.
 */
export function renderReplaceTransaction(desired: DesiredState, layout: NftLayout = DEFAULT_LAYOUT): NftDocument {
  const families = familyLayouts(layout);
  const { records } = layout;
  const commands: NftCommand[] = [
    { add: { table: tableRef(layout) } },
    { delete: { table: tableRef(layout) } },
    { add: { table: { ...tableRef(layout), comment: OWNER_COMMENT } } },
    // Sets before the rules that reference them.
    ...families.map((family) => ({ add: { set: renderSet(layout, family) } })),
    ...(records ? families.map((family) => ({ add: { set: renderRecordSet(layout, family, records) } })) : []),
    ...families.flatMap((family) =>
      renderElementCommands('add', layout, family.family, cidrsOf(desired.cidrs, family.family)),
    ),
    // Regular chains before the base chain whose rules name them, and their rules before those.
    ...(records
      ? families.map(
          (family): NftCommand => ({
            add: {
              chain: { family: NFT_FAMILY, table: layout.table, name: family.recordChain, comment: OWNER_COMMENT },
            },
          }),
        )
      : []),
    {
      add: {
        chain: {
          family: NFT_FAMILY,
          table: layout.table,
          name: NFT_CHAIN,
          type: 'filter',
          hook: 'forward',
          prio: NFT_CHAIN_PRIORITY,
          policy: 'accept',
          comment: OWNER_COMMENT,
        },
      },
    },
    ...(records
      ? families.flatMap((family) =>
          renderRecordRules(layout, family, desired.action).map((rule) => ({ add: { rule } })),
        )
      : []),
    ...families.map((family) => ({ add: { rule: renderRule(layout, family, desired.action) } })),
  ];
  return { nftables: commands };
}

/** Removes our table, and only it; the leading `add` makes it a no-op error-free when absent. */
export function renderRemoveTransaction(layout: NftLayout = DEFAULT_LAYOUT): NftDocument {
  return { nftables: [{ add: { table: tableRef(layout) } }, { delete: { table: tableRef(layout) } }] };
}

/** CIDRs to take out of and put into one family's set. */
export interface ElementChange {
  readonly family: IpFamily;
  readonly remove: readonly Cidr[];
  readonly add: readonly Cidr[];
}

/**
 * Changes only set elements, so the rules (and their counters) stay untouched. Deletes come first:
 * nft refuses an added interval that overlaps one still in the set, even if it is deleted later on.
 */
export function renderElementTransaction(
  changes: readonly ElementChange[],
  layout: NftLayout = DEFAULT_LAYOUT,
): NftDocument {
  return {
    nftables: [
      ...changes.flatMap((change) => renderElementCommands('delete', layout, change.family, change.remove)),
      ...changes.flatMap((change) => renderElementCommands('add', layout, change.family, change.add)),
    ],
  };
}

/** `nft -j <document>` (plus `extraFlags` such as --check), the document in one argument. */
export function renderWriteCommand(
  document: NftDocument,
  nft = 'nft',
  extraFlags: readonly string[] = [],
): PlannedCommand {
  const flags = [NFT_JSON_FLAG, ...extraFlags];
  return {
    file: nft,
    args: [...flags, JSON.stringify(document)],
    display: { text: JSON.stringify(document, null, 2), afterArgs: flags.length },
  };
}
