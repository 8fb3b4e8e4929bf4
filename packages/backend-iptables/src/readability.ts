import { ErrorCodes, type IpFamily, RouteControllerError } from '@route-controller/core';
import type { IptablesMode } from './binaries.js';
import { FORWARD_CHAIN, OUR_TABLES } from './constants.js';
import { findTable, mentionsLegacyTables, type SaveDump, targetOf } from './parse-save.js';

/**
 * `-save` can exit 0 while showing less than the kernel holds: iptables-nft-save prints only
 * ``# Table `filter' is incompatible, use 'nft' tool.`` for a filter table holding a native nft rule
 * it cannot translate, and iptables-nft-restore then writes anyway, so a backend that read that as
 * "nothing of ours" would stack one more jump per resync. Every such sign makes the read unreadable.
 */

/** Why a dump of one family cannot be taken as the whole truth about our objects; empty when it can. */
export function unreadableReasons(dump: SaveDump, stderr: string, chain: string): string[] {
  const reasons = dump.incomplete.map((line) =>
    /incompatible/.test(line)
      ? `it printed "${line}": the table holds rules written with nft that iptables-nft cannot translate`
      : `it printed "${line}"`,
  );
  for (const rule of OUR_TABLES.flatMap((table) => findTable(dump, table)?.rules ?? [])) {
    // Elsewhere an unprintable rule is not our concern; in FORWARD or our chain it hides what we must see.
    if (!rule.unsupported) continue;
    if (rule.chain === FORWARD_CHAIN || rule.chain === chain || targetOf(rule) === chain) {
      reasons.push(`it printed rule "-A ${rule.chain} ${rule.spec}" of ${rule.table}, which it cannot show in full`);
    }
  }
  for (const line of stderr.split('\n').map((text) => text.trim())) {
    // The one stderr line known to be harmless: the nft listing is complete, legacy tables exist too.
    if (line === '' || mentionsLegacyTables(line)) continue;
    reasons.push(`it said "${line}"`);
  }
  return reasons;
}

/** "table ip security" for a read of one table (iptables-nft's `-t`), "the ip tables" for a whole dump. */
export function readWhat(family: IpFamily, table: string | undefined): string {
  const prefix = family === 'ipv4' ? 'ip' : 'ip6';
  return table === undefined ? `the ${prefix} tables` : `table ${prefix} ${table}`;
}

export function unreadableHint(mode: IptablesMode): string {
  return mode === 'nft'
    ? "The table holds rules written with nft that iptables-nft cannot translate (a user's nftables.conf, firewalld, a newer iptables), and iptables-nft-restore would write blind, stacking our jump. route-controller writes nothing there: use the nft backend (FIREWALL_BACKEND=nft, or auto, which picks it where it works), or remove the native rules (nft -a list table ip filter shows them; ip security, ip6 filter and ip6 security likewise)."
    : 'iptables-legacy-save printed something route-controller does not know to be harmless (see details.reasons), so it writes nothing from this read. Please report it with the output of iptables-legacy-save.';
}

/**
 * The coded error for a read that cannot be trusted; `command` is the -save run that showed it and
 * `table` the table it read (undefined for a whole dump).
 */
export function iptablesUnreadable(
  mode: IptablesMode,
  family: IpFamily,
  table: string | undefined,
  command: string,
  reasons: readonly string[],
  stderr: string,
): RouteControllerError {
  const more = reasons.length > 1 ? ` (and ${reasons.length - 1} more)` : '';
  return new RouteControllerError(
    ErrorCodes.FirewallUnreadable,
    `${command} cannot show ${readWhat(family, table)} in full: ${reasons[0] ?? 'no reason given'}${more}`,
    { hint: unreadableHint(mode), details: { command, family, reasons, stderr } },
  );
}
