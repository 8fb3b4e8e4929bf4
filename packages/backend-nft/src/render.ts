import {
  type BlockAction,
  type Cidr,
  cidrsOf,
  type DesiredState,
  ErrorCodes,
  type IpFamily,
  type PlannedCommand,
  RouteControllerError,
} from '@route-controller/core';
import {
  DEFAULT_LAYOUT,
  FAMILY_LAYOUTS,
  type FamilyLayout,
  familyLayouts,
  NFT_CHAIN,
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
 * How the payload reaches nft: as command-line arguments (`nft -j '<json>'`), not on stdin.
 * nft 1.0.6 reads `-j -f -` by opening /dev/stdin, which fails with ENXIO when stdin is a socket,
 * and Node (libuv) gives every child a socketpair for stdin. nft joins its arguments with spaces
 * before parsing, so the document can be split between commands to stay under the kernel's
 * 128 KiB limit per argument.
 */
export const NFT_JSON_FLAG = '-j';
/** Well below MAX_ARG_STRLEN (128 KiB). */
export const MAX_ARG_BYTES = 64 * 1024;
/** Well below the usual ARG_MAX (2 MiB with an 8 MiB stack); about 20,000 CIDRs. */
export const MAX_PAYLOAD_BYTES = 1024 * 1024;
/** Elements per `add element` command, so no single command outgrows an argument. */
export const ELEMENTS_PER_COMMAND = 500;

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

/** `add element` / `delete element` commands for one set, in slices of ELEMENTS_PER_COMMAND. */
export function renderElementCommands(
  verb: 'add' | 'delete',
  layout: NftLayout,
  family: IpFamily,
  cidrs: readonly Cidr[],
): NftCommand[] {
  const commands: NftCommand[] = [];
  for (let start = 0; start < cidrs.length; start += ELEMENTS_PER_COMMAND) {
    const element: NftElementRef = {
      family: NFT_FAMILY,
      table: layout.table,
      name: FAMILY_LAYOUTS[family].set,
      elem: cidrs.slice(start, start + ELEMENTS_PER_COMMAND).map(cidrElement),
    };
    commands.push(verb === 'add' ? { add: { element } } : { delete: { element } });
  }
  return commands;
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
          prio: 0,
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

/**
 * The document split into arguments between commands: nft joins them with a space, which JSON
 * allows there, so `args.join(' ')` parses to the same document.
 */
export function documentArgs(document: NftDocument): string[] {
  const commands = document.nftables.map((command) => JSON.stringify(command));
  const args: string[] = [];
  let current = '{"nftables":[';
  commands.forEach((command, index) => {
    const piece = `${command}${index < commands.length - 1 ? ',' : ''}`;
    if (current.length > 0 && current.length + piece.length > MAX_ARG_BYTES) {
      args.push(current);
      current = '';
    }
    current += piece;
  });
  args.push(`${current}]}`);
  return args;
}

/** `nft -j <document>` (plus `extraFlags` such as --check), refusing payloads the kernel could not pass. */
export function renderWriteCommand(
  document: NftDocument,
  nft = 'nft',
  extraFlags: readonly string[] = [],
): PlannedCommand {
  const args = documentArgs(document);
  const bytes = args.reduce((sum, arg) => sum + Buffer.byteLength(arg) + 1, 0);
  if (bytes > MAX_PAYLOAD_BYTES) {
    throw new RouteControllerError(
      ErrorCodes.FirewallUnsupported,
      `the nft transaction is ${bytes} bytes, more than the ${MAX_PAYLOAD_BYTES} one command line can carry`,
      {
        hint: 'Merge the Service CIDRs into fewer, wider ranges; a cluster has a handful, not thousands.',
        details: { bytes, limit: MAX_PAYLOAD_BYTES },
      },
    );
  }
  const flags = [NFT_JSON_FLAG, ...extraFlags];
  return {
    file: nft,
    args: [...flags, ...args],
    display: { text: JSON.stringify(document, null, 2), afterArgs: flags.length },
  };
}
