import {
  type CommandRunner,
  errorMessage,
  formatCommand,
  type IpFamily,
  ProcessCommandRunner,
} from '@route-controller/core';
import { type IptablesMode, iptablesBinary } from './binaries.js';
import { IPTABLES_CHAIN } from './constants.js';
import { countRules, hasChain, mentionsLegacyTables, parseSave, type SaveDump } from './parse-save.js';

/**
 * Which iptables flavour do this node's kubelet and kube-proxy use? We must write with the same
 * one: a rule inserted "first" with the other flavour still runs after all of theirs.
 *
 * The approach of kubernetes-sigs/iptables-wrappers:
 * 1. kubelet (1.17+) creates KUBE-IPTABLES-HINT / KUBE-KUBELET-CANARY in the mangle table. Look in
 *    `iptables-nft-save -t mangle` (and ip6), which never creates a table: found means nft.
 * 2. The same chains in the full `iptables-legacy-save` (and ip6) mean legacy. Never `-t mangle`
 *    there: the legacy kernel code would instantiate the table just to list it.
 * 3. Otherwise count rules in both flavours (both families); more legacy rules means legacy.
 *    A tie, a blank node included, means nft, the default of current distributions.
 */

export const KUBELET_HINT_CHAINS = ['KUBE-IPTABLES-HINT', 'KUBE-KUBELET-CANARY'] as const;

export interface DetectionRead {
  /** The command as run, e.g. "iptables-nft-save -t mangle". */
  readonly command: string;
  readonly ok: boolean;
  /** Why a read failed (missing binary, permission), or what it found. */
  readonly detail: string;
}

export interface IptablesFlavourEvidence {
  /** A kubelet hint chain exists in iptables-nft's mangle table (either family). */
  readonly nftHint: boolean;
  /** A kubelet hint chain exists in any iptables-legacy table (either family). */
  readonly legacyHint: boolean;
  /** Rules ("-A" lines) in all iptables-nft tables, both families, ours excluded. */
  readonly nftRules: number;
  /** Rules in all iptables-legacy tables, both families, ours excluded. */
  readonly legacyRules: number;
  // The fields below are always filled by detectIptablesFlavour; they are optional in the type so
  // that callers (and their tests) can build a detection from the four facts above alone.
  /** Where hints were found, e.g. "ipv4 nft KUBE-IPTABLES-HINT". */
  readonly hints?: readonly string[];
  /** iptables-nft-save warned that legacy tables are present too. */
  readonly legacyTablesWarning?: boolean;
  /** Rules of our own chain (and jumps to it) left out of the counts: they say nothing about kubelet. */
  readonly ownRulesIgnored?: number;
  /** Every read made, with its outcome. */
  readonly reads?: readonly DetectionRead[];
}

/**
 * What the choice rests on: kubelet's hint chains, a count of rules, nothing at all (a blank node:
 * nft by default), or nothing readable (every -save failed: binaries missing, or not root).
 * Only the first two say anything about what kube-proxy uses.
 */
export type DetectionBasis = 'kubelet-hint' | 'rule-count' | 'blank-node' | 'unreadable';

export interface IptablesFlavourDetection {
  readonly mode: IptablesMode;
  /** One sentence, e.g. "KUBE-IPTABLES-HINT found in iptables-nft-save -t mangle". */
  readonly reason: string;
  /** Absent in hand-built detections (tests), where it counts as evidence. */
  readonly basis?: DetectionBasis;
  readonly evidence: IptablesFlavourEvidence;
}

/** What detectIptablesFlavour returns: a detection with every evidence field filled. */
export interface DetectedIptablesFlavour extends IptablesFlavourDetection {
  readonly basis: DetectionBasis;
  readonly evidence: Required<IptablesFlavourEvidence>;
}

export interface DetectIptablesFlavourOptions {
  /** Our chain, whose rules do not count (default ROUTE-CONTROLLER). */
  readonly chain?: string;
}

interface Read {
  readonly mode: IptablesMode;
  readonly family: IpFamily;
  readonly args: readonly string[];
}

/** The six reads, in the order they run (the order unit tests script). */
export const DETECTION_READS: readonly Read[] = [
  { mode: 'nft', family: 'ipv4', args: ['-t', 'mangle'] },
  { mode: 'nft', family: 'ipv6', args: ['-t', 'mangle'] },
  { mode: 'legacy', family: 'ipv4', args: [] },
  { mode: 'legacy', family: 'ipv6', args: [] },
  { mode: 'nft', family: 'ipv4', args: [] },
  { mode: 'nft', family: 'ipv6', args: [] },
];

const EMPTY: SaveDump = { tables: [], legacyTablesPresent: false, incomplete: [] };

function hintsIn(dump: SaveDump): string[] {
  return KUBELET_HINT_CHAINS.filter((chain) => hasChain(dump, chain));
}

/**
 * Detects the flavour from `-save` reads only. A read that fails (binary missing, not root) counts
 * as an empty flavour and is listed in the evidence; detection itself never throws for it.
 */
export async function detectIptablesFlavour(
  runner: CommandRunner = new ProcessCommandRunner(),
  options: DetectIptablesFlavourOptions = {},
): Promise<DetectedIptablesFlavour> {
  const chain = options.chain ?? IPTABLES_CHAIN;
  const reads: DetectionRead[] = [];
  const dumps: SaveDump[] = [];
  let legacyTablesWarning = false;
  for (const read of DETECTION_READS) {
    const file = iptablesBinary(read.mode, read.family, 'save');
    const command = formatCommand({ file, args: read.args });
    let dump = EMPTY;
    try {
      const result = await runner.run({ file, args: read.args });
      legacyTablesWarning ||= mentionsLegacyTables(result.stderr);
      if (result.exitCode === 0) {
        dump = parseSave(result.stdout);
        const counted = `${countRules(dump)} rules in ${dump.tables.length} table(s)`;
        // A dump that says it left something out (a table iptables-nft cannot read) is evidence
        // with a hole in it: counted, but never a clean read.
        reads.push(
          dump.incomplete.length === 0
            ? { command, ok: true, detail: counted }
            : { command, ok: false, detail: `${counted}, but it is incomplete: ${dump.incomplete.join(' ')}` },
        );
      } else {
        const stderr = result.stderr.trim().split('\n')[0] ?? '';
        reads.push({ command, ok: false, detail: `exit ${result.exitCode}: ${stderr}` });
      }
    } catch (error) {
      reads.push({ command, ok: false, detail: errorMessage(error) });
    }
    dumps.push(dump);
  }
  const [nftMangle4 = EMPTY, nftMangle6 = EMPTY, legacy4 = EMPTY, legacy6 = EMPTY, nft4 = EMPTY, nft6 = EMPTY] = dumps;
  const hints = [
    ...hintsIn(nftMangle4).map((c) => ({ where: `ipv4 nft`, chain: c, command: reads[0]?.command })),
    ...hintsIn(nftMangle6).map((c) => ({ where: `ipv6 nft`, chain: c, command: reads[1]?.command })),
    ...hintsIn(legacy4).map((c) => ({ where: `ipv4 legacy`, chain: c, command: reads[2]?.command })),
    ...hintsIn(legacy6).map((c) => ({ where: `ipv6 legacy`, chain: c, command: reads[3]?.command })),
  ];
  const allLegacy = countRules(legacy4) + countRules(legacy6);
  const allNft = countRules(nft4) + countRules(nft6);
  const legacyRules = countRules(legacy4, chain) + countRules(legacy6, chain);
  const nftRules = countRules(nft4, chain) + countRules(nft6, chain);
  const evidence: Required<IptablesFlavourEvidence> = {
    nftHint: hints.some((hint) => hint.where.endsWith('nft')),
    legacyHint: hints.some((hint) => hint.where.endsWith('legacy')),
    nftRules,
    legacyRules,
    hints: hints.map((hint) => `${hint.where} ${hint.chain}`),
    legacyTablesWarning: legacyTablesWarning || dumps.some((dump) => dump.legacyTablesPresent),
    ownRulesIgnored: allLegacy - legacyRules + (allNft - nftRules),
    reads,
  };
  const nftHint = hints.find((hint) => hint.where.endsWith('nft'));
  if (nftHint) {
    return {
      mode: 'nft',
      basis: 'kubelet-hint',
      reason: `kubelet's ${nftHint.chain} found in ${nftHint.command}`,
      evidence,
    };
  }
  const legacyHint = hints.find((hint) => hint.where.endsWith('legacy'));
  if (legacyHint) {
    return {
      mode: 'legacy',
      basis: 'kubelet-hint',
      reason: `kubelet's ${legacyHint.chain} found in ${legacyHint.command}`,
      evidence,
    };
  }
  if (reads.every((read) => !read.ok)) {
    // Nothing could be read: not a blank node, just no evidence (binaries missing, or not root).
    const why = [...new Set(reads.map((read) => read.detail))].join('; ');
    return {
      mode: 'nft',
      basis: 'unreadable',
      reason: `no iptables flavour could be read (${why}): nft by default`,
      evidence,
    };
  }
  const counts = `${legacyRules} legacy and ${nftRules} nft rules`;
  if (legacyRules > nftRules) {
    return {
      mode: 'legacy',
      basis: 'rule-count',
      reason: `no kubelet hint chain; ${counts}: legacy has more`,
      evidence,
    };
  }
  if (nftRules > legacyRules) {
    return { mode: 'nft', basis: 'rule-count', reason: `no kubelet hint chain; ${counts}: nft has more`, evidence };
  }
  if (nftRules === 0) {
    return {
      mode: 'nft',
      basis: 'blank-node',
      reason: 'no kubelet hint chain and no iptables rules in either flavour (blank node): nft by default',
      evidence,
    };
  }
  return {
    mode: 'nft',
    basis: 'rule-count',
    reason: `no kubelet hint chain; a tie of ${counts}: nft by default`,
    evidence,
  };
}
