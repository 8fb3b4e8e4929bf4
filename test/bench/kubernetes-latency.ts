import { type AgentProcess, LAB, LoopLab } from '@route-controller/lab';
import { startAgent } from '../src/agent-bin.js';
import { type KubernetesApi, startKubernetesApi } from '../src/kubernetes-api.js';
import { kernelTestBlocker } from '../src/prerequisites.js';
import { type Summary, summarise } from './stats.js';

/**
 * Latency from a ServiceCIDR event on the API server to the rule being in the kernel.
 *
 * The real agent runs in the loop lab's node namespace with no SERVICE_CIDRS, watching the test
 * API server (a Unix socket in this process, forwarded to 127.0.0.1:6443 in the namespace). Each
 * sample is one event (a ServiceCIDR with the lab ranges added, then removed): from the moment
 * the server emits it to the timestamp of the agent's "rules applied" log line, which the agent
 * writes once `nft` has committed the transaction. After every sample the kernel is checked
 * independently (`nft list table` in the namespace), so a sample is never a log line alone.
 * Needs root (network namespaces) and nftables. Target: median under 200 ms.
 */

export interface KubernetesLatencyOptions {
  /** Add/remove cycles; each gives two samples. Default 20. */
  readonly cycles?: number;
  /** Pause between events, so no two are coalesced into one reconcile. Default 100 ms. */
  readonly pauseMs?: number;
  /** Progress lines (e.g. console.log); silent by default. */
  readonly log?: (line: string) => void;
}

/** Median, p90, min and max as `pnpm bench` computes them (test/bench/stats.ts), in milliseconds. */
export interface KubernetesLatencyResult extends Summary {
  /** Every sample in milliseconds, in the order measured (add, remove, add, ...). */
  readonly samples: readonly number[];
  readonly add: Summary & { readonly samples: readonly number[] };
  readonly remove: Summary & { readonly samples: readonly number[] };
  /** The firewall backend the agent chose. */
  readonly backend: string;
}

const NAME = 'bench';

export async function measureKubernetesLatency(
  options: KubernetesLatencyOptions = {},
): Promise<KubernetesLatencyResult> {
  const blocker = kernelTestBlocker();
  if (blocker) throw new Error(`the Kubernetes latency benchmark cannot run here: ${blocker}`);
  const cycles = options.cycles ?? 20;
  const pauseMs = options.pauseMs ?? 100;
  const log = options.log ?? (() => {});

  let lab: LoopLab | undefined;
  let api: KubernetesApi | undefined;
  let agent: AgentProcess | undefined;
  try {
    lab = await LoopLab.create();
    api = await startKubernetesApi(lab.node);
    const { server } = api;
    agent = startAgent(lab.node, { KUBECONFIG: api.kubeconfig, RESYNC_INTERVAL: '10m' });
    await agent.waitForMessage('no Service CIDRs found', 20_000);
    const backend = String((await agent.waitForSummary()).backend ?? '?');
    log(`agent ready (backend ${backend}); measuring ${cycles} add/remove cycles`);

    const node = lab.node;
    const installed = async () => {
      const result = await node.exec('nft', ['list', 'table', 'inet', 'route-controller']);
      return result.exitCode === 0 && result.stdout.includes(LAB.serviceCidr.ipv4);
    };
    const running = agent;
    /** Emits one event and returns ms until the agent's next "rules applied" line. */
    const sample = async (event: () => void, expectInstalled: boolean): Promise<number> => {
      const from = running.logs.length;
      const at = Date.now();
      event();
      const line = await running.waitForMessage('rules applied', 5_000, from);
      const ms = Date.parse(line.time) - at;
      if ((await installed()) !== expectInstalled) {
        throw new Error(
          `after "${line.msg}" the kernel does not match (expected the rule ${expectInstalled ? 'present' : 'absent'})`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
      return ms;
    };

    const add: number[] = [];
    const remove: number[] = [];
    for (let i = 0; i < cycles; i += 1) {
      add.push(await sample(() => server.add(NAME, [LAB.serviceCidr.ipv4, LAB.serviceCidr.ipv6]), true));
      remove.push(await sample(() => server.remove(NAME), false));
      log(`cycle ${i + 1}/${cycles}: add ${add.at(-1)} ms, remove ${remove.at(-1)} ms`);
    }
    const samples = add.flatMap((a, i) => [a, remove[i] as number]);
    return {
      ...summarise(samples),
      samples,
      add: { ...summarise(add), samples: add },
      remove: { ...summarise(remove), samples: remove },
      backend,
    };
  } finally {
    await agent?.stop('SIGKILL');
    await api?.close();
    await lab?.destroy();
  }
}

/** One line for a results table: "median 42 ms, p90 61 ms (min 30, max 80, n=40)". */
export function describeLatency(result: Summary): string {
  return `median ${result.median} ms, p90 ${result.p90} ms (min ${result.min}, max ${result.max}, n=${result.runs})`;
}
