import { IptablesBackend } from '@route-controller/backend-iptables';
import { NftBackend } from '@route-controller/backend-nft';
import { desiredState, type FirewallBackend, type PlannedCommand, parseCidrList } from '@route-controller/core';
import { Netns } from '@route-controller/lab';
import { startAgent } from '../src/agent-bin.js';
import { repeat, type Summary, summarise } from './stats.js';

export type BackendName = 'nft' | 'iptables-nft' | 'iptables-legacy';
export const BACKENDS: readonly BackendName[] = ['nft', 'iptables-nft', 'iptables-legacy'];
export const BENCH_CIDRS = '10.96.0.0/16,fd00:10:96::/112';

export function backendIn(ns: Netns, name: BackendName): FirewallBackend {
  return name === 'nft'
    ? new NftBackend({ runner: ns.runner })
    : new IptablesBackend({ mode: name === 'iptables-nft' ? 'nft' : 'legacy', runner: ns.runner });
}

/** The same rules as the agent installs, as plain text for one `nft -f`. */
const NFT_RULESET = `table inet route-controller {
  set service-cidrs-v4 { type ipv4_addr; flags interval; elements = { 10.96.0.0/16 }; }
  set service-cidrs-v6 { type ipv6_addr; flags interval; elements = { fd00:10:96::/112 }; }
  chain forward {
    type filter hook forward priority filter; policy accept;
    ip daddr @service-cidrs-v4 counter drop
    ip6 daddr @service-cidrs-v6 counter drop
  }
}
`;

export interface StartupResult {
  readonly backend: BackendName;
  /** Process start (spawn) to the agent's "rules applied" log line, written once the kernel has them. */
  readonly agent: Summary;
  /** `node -e 0` in the same namespace. */
  readonly node: Summary;
  /** One raw write of the same rules: `nft -f` or the iptables-restore transactions. */
  readonly raw: Summary;
  readonly floor: number;
  readonly ratio: number;
}

async function timed(run: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await run();
  return performance.now() - start;
}

/** Measures start-to-enforcement of the real agent next to its floor, in one throwaway namespace. */
export async function measureStartup(backend: BackendName, runs: number): Promise<StartupResult> {
  const ns = await Netns.create('bench-start');
  try {
    const library = backendIn(ns, backend);
    const rawCommands: readonly PlannedCommand[] =
      backend === 'nft'
        ? [{ file: 'nft', args: ['-f', '-'], input: NFT_RULESET }]
        : (await library.plan(desiredState(parseCidrList(BENCH_CIDRS).cidrs))).commands;

    const agent = await repeat(runs, async () => {
      await library.cleanup();
      const running = startAgent(ns, { SERVICE_CIDRS: BENCH_CIDRS, FIREWALL_BACKEND: backend });
      try {
        const applied = await running.waitForMessage('rules applied', 20_000);
        return running.elapsedAt(applied);
      } finally {
        await running.stop('SIGKILL');
      }
    });
    const node = await repeat(runs, () => timed(() => ns.must(process.execPath, ['-e', '0'])));
    const raw = await repeat(runs, async () => {
      await library.cleanup();
      return timed(async () => {
        for (const command of rawCommands) await ns.must(command.file, command.args, command.input);
      });
    });
    await library.cleanup();
    const [a, n, r] = [summarise(agent), summarise(node), summarise(raw)];
    const floor = n.median + r.median;
    return { backend, agent: a, node: n, raw: r, floor, ratio: a.median / floor };
  } finally {
    await ns.delete();
  }
}
