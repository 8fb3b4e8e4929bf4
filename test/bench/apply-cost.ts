import { IptablesBackend } from '@route-controller/backend-iptables';
import { NftBackend } from '@route-controller/backend-nft';
import { desiredState, parseCidrList } from '@route-controller/core';
import { RecordingCommandRunner } from '@route-controller/core/testing';
import { Netns } from '@route-controller/lab';
import type { BackendName } from './startup.js';
import { repeat, summarise } from './stats.js';

export interface ApplyCostRow {
  readonly backend: BackendName;
  readonly cidrs: number;
  /** Median time of an apply that installs `cidrs` CIDRs on a node without our rules. */
  readonly applyMs: number;
  /** Commands one such apply runs (reads and writes). */
  readonly commands: number;
  readonly writes: number;
  /** The resync that follows: same state again. */
  readonly noopMs: number;
  readonly noopCommands: number;
  /** Must be 0: a no-op resync writes nothing. */
  readonly noopWrites: number;
}

/** n disjoint CIDRs, split between IPv4 /24s and IPv6 /112s. */
export function cidrList(n: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i += 1) {
    out.push(
      i % 2 === 0
        ? `10.${100 + Math.floor(i / 512)}.${(i >> 1) % 256}.0/24`
        : `fd00:100::${(i >> 1).toString(16)}:0/112`,
    );
  }
  return out.join(',');
}

export async function measureApplyCost(
  backend: BackendName,
  counts: readonly number[],
  runs: number,
): Promise<ApplyCostRow[]> {
  const ns = await Netns.create('bench-apply');
  const rows: ApplyCostRow[] = [];
  try {
    const recording = new RecordingCommandRunner(ns.runner);
    const library =
      backend === 'nft'
        ? new NftBackend({ runner: recording })
        : new IptablesBackend({ mode: backend === 'iptables-nft' ? 'nft' : 'legacy', runner: recording });
    for (const count of counts) {
      const desired = desiredState(parseCidrList(cidrList(count)).cidrs);
      let commands = 0;
      let writes = 0;
      let noopCommands = 0;
      let noopWrites = 0;
      const noop: number[] = [];
      const apply = await repeat(runs, async () => {
        await library.cleanup();
        const before = recording.commands.length;
        const start = performance.now();
        const result = await library.apply(desired);
        const elapsed = performance.now() - start;
        commands = recording.commands.length - before;
        writes = result.writes;
        const noopBefore = recording.commands.length;
        const noopStart = performance.now();
        const again = await library.apply(desired);
        noop.push(performance.now() - noopStart);
        noopCommands = recording.commands.length - noopBefore;
        noopWrites = again.writes;
        return elapsed;
      });
      rows.push({
        backend,
        cidrs: count,
        applyMs: summarise(apply).median,
        commands,
        writes,
        noopMs: summarise(noop).median,
        noopCommands,
        noopWrites,
      });
    }
    await library.cleanup();
    return rows;
  } finally {
    await ns.delete();
  }
}
