import type { Netns } from '@route-controller/lab';

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

/** The blocks of a listing, each starting where `start` matches, sorted: tools list tables in the order they were made. */
function sortedBlocks(text: string, start: RegExp): string {
  return text.split(start).sort().join('');
}

/**
 * Every rule of the node, as each tool prints it: `nft -s list ruleset`, then `iptables-nft-save`
 * and `iptables-legacy-save` of both families (comment lines and counters left out: timestamps, and
 * traffic the test itself makes). Tables are sorted: a table made anew (kube-proxy restarting) is
 * listed last, with the same rules. Compare before an install and after the cleanup.
 */
export async function nodeRulesets(node: Netns): Promise<string> {
  const parts = [sortedBlocks((await node.must('nft', ['-s', 'list', 'ruleset'])).stdout, /^(?=table )/m)];
  for (const bin of ['iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-save', 'ip6tables-legacy-save']) {
    const saved = (await node.must(bin, [])).stdout.replace(/^#.*\n/gm, '').replace(/ \[\d+:\d+\]$/gm, '');
    parts.push(`## ${bin}\n${sortedBlocks(saved, /^(?=\*)/m)}`);
  }
  return parts.join('\n');
}
