/**
 * The node's firewall as LoopLab.nodeFirewall() prints it, without the empty `security` tables an
 * iptables backend leaves after cleanup: iptables-legacy cannot remove a table once the kernel made
 * it, and iptables-nft's `ip security` table is shared with every other iptables-nft user. Such a
 * table holds no rule and accepts everything: it changes no packet's fate. Anything else in it is
 * kept, so a rule of ours left behind still shows.
 */
export function withoutEmptySecurityTables(firewall: string): string {
  return (
    firewall
      // nft -s list ruleset: iptables-nft's tables, built-in chains with no rules.
      .replace(
        /^table ip6? security \{\n(?:\tchain (?:INPUT|FORWARD|OUTPUT) \{\n\t\ttype filter hook \w+ priority 150; policy accept;\n\t\}\n\n?)*\}\n/gm,
        '',
      )
      // iptables-legacy-save: the table with its built-in chains only.
      .replace(/^\*security\n(?::(?:INPUT|FORWARD|OUTPUT) ACCEPT(?: \[\d+:\d+\])?\n)+COMMIT\n/gm, '')
  );
}
