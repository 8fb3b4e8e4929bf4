/**
 * The subset of libnftables' JSON schema (libnftables-json(5), json_schema_version 1) that we write
 * and read. Writes are typed strictly; reads arrive as `unknown` and are checked in parse.ts.
 */

/** The schema major version this code understands, from `{"metainfo": {"json_schema_version": 1}}`. */
export const SUPPORTED_JSON_SCHEMA_VERSION = 1;

export type NftAddressFamily = 'ip' | 'ip6' | 'inet' | 'arp' | 'bridge' | 'netdev';

export interface NftTable {
  readonly family: NftAddressFamily;
  readonly name: string;
  readonly handle?: number;
  readonly comment?: string;
}

export interface NftChain {
  readonly family: NftAddressFamily;
  readonly table: string;
  readonly name: string;
  readonly handle?: number;
  readonly type?: string;
  readonly hook?: string;
  /** Numeric priority: "filter" is 0 for the inet forward hook. */
  readonly prio?: number;
  readonly policy?: 'accept' | 'drop';
  readonly comment?: string;
}

export interface NftPrefix {
  readonly prefix: { readonly addr: string; readonly len: number };
}

/** A set element as we write it: a CIDR. nft also prints single addresses as bare strings. */
export type NftElement = NftPrefix;

export interface NftSet {
  readonly family: NftAddressFamily;
  readonly table: string;
  readonly name: string;
  readonly handle?: number;
  /** A key type, or the types of a concatenation (`ipv4_addr . ipv4_addr`). */
  readonly type: string | readonly string[];
  /**
   * Never "dynamic" when writing: nft 1.0.6-1.0.8 refuse it in JSON ("Invalid set flag"), and nft
   * adds it by itself to a set that a rule of the same batch updates.
   */
  readonly flags?: readonly string[];
  /** Seconds an element lives (from its last `update`). */
  readonly timeout?: number;
  /** At most this many elements. */
  readonly size?: number;
  /** Statements every element gets: `[{counter: null}]` is the set's `counter;` (nft >= 1.0.6 in JSON). */
  readonly stmt?: readonly NftCounter[];
  readonly comment?: string;
  readonly elem?: readonly NftElement[];
}

/** Targets of `add element` / `delete element`. */
export interface NftElementRef {
  readonly family: NftAddressFamily;
  readonly table: string;
  readonly name: string;
  readonly elem: readonly NftElement[];
}

export interface NftPayload {
  readonly payload: { readonly protocol: string; readonly field: string };
}

export interface NftMatch {
  readonly match: { readonly op: '=='; readonly left: NftPayload; readonly right: string };
}

/** An anonymous counter: `null` when writing, packets and bytes when read back. */
export interface NftCounter {
  readonly counter: null | { readonly packets: number; readonly bytes: number };
}

export interface NftDrop {
  readonly drop: null;
}

export interface NftReject {
  readonly reject: { readonly type: 'icmp' | 'icmpv6'; readonly expr: 'admin-prohibited' };
}

/** `update @<set> { <payload> . <payload> }`: adds the packet's key to a dynamic set, or refreshes it. */
export interface NftSetUpdate {
  readonly set: {
    readonly op: 'update';
    readonly elem: { readonly concat: readonly NftPayload[] };
    readonly set: string;
  };
}

export interface NftGoto {
  readonly goto: { readonly target: string };
}

export type NftStatement = NftMatch | NftCounter | NftDrop | NftReject | NftSetUpdate | NftGoto;

export interface NftRule {
  readonly family: NftAddressFamily;
  readonly table: string;
  readonly chain: string;
  readonly handle?: number;
  readonly comment?: string;
  readonly expr: readonly NftStatement[];
}

/** Objects a command can name; `add` and `delete` take the same shapes. */
export type NftObject =
  | { readonly table: NftTable }
  | { readonly chain: NftChain }
  | { readonly set: NftSet }
  | { readonly rule: NftRule }
  | { readonly element: NftElementRef };

export type NftCommand = { readonly add: NftObject } | { readonly delete: NftObject };

/** What `nft -j -f -` reads on stdin: one document is one transaction. */
export interface NftDocument {
  readonly nftables: readonly NftCommand[];
}
