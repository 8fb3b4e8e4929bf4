import { IptablesBackend } from '@route-controller/backend-iptables';
import { NftBackend } from '@route-controller/backend-nft';
import { desiredState, type FirewallBackend, type PlannedCommand, parseCidrList } from '@route-controller/core';
import { type AgentBin, AgentProcess, Netns } from '@route-controller/lab';
import { AGENT_BIN } from '../src/agent-bin.js';
import { type Summary, summarise } from './stats.js';

export type BackendName = 'nft' | 'iptables-nft' | 'iptables-legacy';
export const BACKENDS: readonly BackendName[] = ['nft', 'iptables-nft', 'iptables-legacy'];
export const BENCH_CIDRS = '10.96.0.0/16,fd00:10:96::/112';

export function backendIn(ns: Netns, name: BackendName): FirewallBackend {
  return name === 'nft'
    ? new NftBackend({ runner: ns.runner })
    : new IptablesBackend({ mode: name === 'iptables-nft' ? 'nft' : 'legacy', runner: ns.runner });
}

/** The same rules as the agent installs (hit records included), as plain text for one `nft -f`. */
export const NFT_RULESET = `table inet route-controller {
  set service-cidrs-v4 { type ipv4_addr; flags interval; elements = { 10.96.0.0/16 }; }
  set service-cidrs-v6 { type ipv6_addr; flags interval; elements = { fd00:10:96::/112 }; }
  set stale-v4 { type ipv4_addr . ipv4_addr; flags dynamic,timeout; timeout 10m; size 4096; counter; }
  set stale-v6 { type ipv6_addr . ipv6_addr; flags dynamic,timeout; timeout 10m; size 4096; counter; }
  chain blocked-v4 { update @stale-v4 { ip saddr . ip daddr }; drop; }
  chain blocked-v6 { update @stale-v6 { ip6 saddr . ip6 daddr }; drop; }
  chain forward {
    type filter hook forward priority filter; policy accept;
    ip daddr @service-cidrs-v4 counter goto blocked-v4
    ip6 daddr @service-cidrs-v6 counter goto blocked-v6
  }
}
`;

export interface StartupResult {
  readonly label: string;
  /** Process start (spawn) to the agent's "rules applied" log line, written once the kernel has them. */
  readonly agent: Summary;
  /** `node -e 0`, started the same way. */
  readonly node: Summary;
  /** One raw write of the same rules: `nft -f` or the iptables-restore transactions. */
  readonly raw: Summary;
  readonly floor: number;
  readonly ratio: number;
}

export async function timed(run: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await run();
  return performance.now() - start;
}

export interface StartupSetup {
  readonly label: string;
  /** The agent to start, and how (the checkout's bin by default). */
  readonly agent?: AgentBin;
  /** Prefix for the floor's commands (e.g. chroot into an image root); empty for this machine. */
  readonly prefix?: readonly string[];
  /** The Node of the floor (`node -e 0`): this process's by default. */
  readonly node?: string;
  readonly env: Readonly<Record<string, string>>;
  /** Called before each agent start and each raw write, to start from a node without our rules. */
  readonly reset?: () => Promise<void>;
  /** What the agent must log once the rules are in the kernel. */
  readonly until?: string | RegExp;
}

/**
 * Start-to-enforcement of the real agent next to its floor, in one namespace: agent, `node -e 0` and
 * the raw write interleaved round by round, so load on this shared machine hits all three alike.
 */
export async function measureStart(
  ns: Netns,
  setup: StartupSetup,
  rawCommands: readonly PlannedCommand[],
  runs: number,
): Promise<StartupResult> {
  const prefix = setup.prefix ?? [];
  const agentBin = setup.agent ?? { bin: AGENT_BIN };
  /** A floor command, started the way the agent is (in the namespace, behind the same prefix). */
  const run = (file: string, args: readonly string[], input?: string) => {
    const [head, ...rest] = prefix;
    return head === undefined ? ns.must(file, args, input) : ns.must(head, [...rest, file, ...args], input);
  };
  const agent: number[] = [];
  const node: number[] = [];
  const raw: number[] = [];
  for (let round = -1; round < runs; round += 1) {
    await setup.reset?.();
    const running = AgentProcess.start(ns, setup.env, [], agentBin);
    let startMs: number;
    try {
      const applied = await running.waitForMessage(setup.until ?? 'rules applied', 30_000);
      startMs = running.elapsedAt(applied);
    } finally {
      await running.stop('SIGKILL');
    }
    const nodeMs = await timed(() => run(setup.node ?? process.execPath, ['-e', '0']));
    await setup.reset?.();
    const rawMs = await timed(async () => {
      for (const command of rawCommands) await run(command.file, command.args, command.input);
    });
    // The first round warms caches (page cache, the kernel's netfilter modules): not counted.
    if (round < 0) continue;
    agent.push(startMs);
    node.push(nodeMs);
    raw.push(rawMs);
  }
  await setup.reset?.();
  const [a, n, r] = [summarise(agent), summarise(node), summarise(raw)];
  const floor = n.median + r.median;
  return { label: setup.label, agent: a, node: n, raw: r, floor, ratio: a.median / floor };
}

/** Start-to-enforcement with `SERVICE_CIDRS` and a forced backend, on this machine. */
export async function measureStartup(backend: BackendName, runs: number): Promise<StartupResult> {
  const ns = await Netns.create('bench-start');
  try {
    const library = backendIn(ns, backend);
    const rawCommands: readonly PlannedCommand[] =
      backend === 'nft'
        ? [{ file: 'nft', args: ['-f', '-'], input: NFT_RULESET }]
        : (await library.plan(desiredState(parseCidrList(BENCH_CIDRS).cidrs))).commands;
    return await measureStart(
      ns,
      {
        label: backend,
        env: { SERVICE_CIDRS: BENCH_CIDRS, FIREWALL_BACKEND: backend },
        reset: async () => {
          await library.cleanup();
        },
      },
      rawCommands,
      runs,
    );
  } finally {
    await ns.delete();
  }
}
