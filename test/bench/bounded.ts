import { type AgentProcess, httpGet, LAB, type LogLine, LoopLab, Netns, nodeCommand } from '@route-controller/lab';
import { AGENT_BIN, agentCli, startAgent } from '../src/agent-bin.js';
import { startKubernetesApi } from '../src/kubernetes-api.js';
import { kernelDropCounter } from '../src/nft-fixture.js';
import {
  churnPayload,
  eventsPerRewrite,
  followMode,
  metrics,
  monitorAlone,
  startChurn,
  startWithEvents,
  treeCpuSeconds,
} from './change-events.js';
import { backendIn } from './startup.js';
import { type Summary, summarise } from './stats.js';

/**
 * Issue 21's "Bounded": what a pod, a scraper or another firewall tool can make the agent do. Each
 * figure comes from the real agent in throwaway namespaces.
 */

const NODE = 'lab-node';
const HEALTH = '127.0.0.1:9773';
const METRICS = '127.0.0.1:9774';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The destinations of a sweep of the Service range: `count` addresses in 10.96.100.0 and up. */
function sweepAddresses(count: number): string[] {
  return Array.from({ length: count }, (_, n) => `10.96.${100 + Math.floor(n / 250)}.${(n % 250) + 1}`);
}

/** One UDP packet from `ns` to each address (the pod's default route leads through the node). */
async function sweep(ns: Netns, addresses: readonly string[]): Promise<void> {
  const script = `
    const socket = require('node:dgram').createSocket('udp4');
    const destinations = ${JSON.stringify(addresses)};
    let sent = 0;
    for (const address of destinations) socket.send('x', 9, address, () => { if (++sent === destinations.length) socket.close(); });`;
  await ns.must(process.execPath, ['-e', script]);
}

export interface SweepResult {
  readonly addresses: number;
  readonly resync: string;
  /** The pairs the kernel recorded, as `status --json` lists them (the anchor: one line each before). */
  readonly recorded: number;
  readonly metric: number;
  /** After one sweep: the read that found it, and the whole watch that followed. */
  readonly firstRead: { readonly lines: number; readonly summaries: number; readonly events: number };
  /** The sweep repeated all along `minutes`: lines (pairs and summaries) per minute, and Events. */
  readonly sustained: {
    readonly minutes: number;
    readonly linesPerMinute: number;
    readonly maxLinesInAMinute: number;
    readonly eventsCreated: number;
    readonly eventsPatched: number;
  };
}

/**
 * A pod of the loop lab sends one UDP packet to each of `count` stale ClusterIPs, with the agent
 * recording them (nft), naming pods and writing Events (the test API server): its log lines and
 * Events for that read; then the sweep goes on every few seconds for `minutes`, and the lines and
 * Events per minute are counted.
 */
export async function measureSweep(count: number, minutes: number): Promise<SweepResult> {
  const resync = '2s';
  const lab = await LoopLab.create();
  const api = await startKubernetesApi(lab.node);
  let agent: AgentProcess | undefined;
  try {
    api.server.add('kubernetes', [LAB.serviceCidr.ipv4, LAB.serviceCidr.ipv6]);
    api.server.putPod('default', 'web-7f9c4', { nodeName: NODE, ips: [LAB.pod.ipv4, LAB.pod.ipv6] });
    const env = { KUBECONFIG: api.kubeconfig, NODE_NAME: NODE, DISCOVERY_SOURCES: 'servicecidr', POD_LOOKUP: 'true' };
    agent = startAgent(lab.node, {
      ...env,
      RESYNC_INTERVAL: resync,
      LISTEN_ADDRESS: HEALTH,
      METRICS_LISTEN_ADDRESS: METRICS,
      STALE_CLUSTERIP_EVENTS: 'true',
    });
    const started = agent;
    await started.waitForMessage('recording who dials stale ClusterIPs', 30_000);
    const stale = (from: number) => started.logs.slice(from).filter((line) => line.component === 'stale');
    const dialled = (lines: readonly LogLine[]) => lines.filter((line) => line.msg === 'stale ClusterIP dialled');
    const summaries = (lines: readonly LogLine[]) =>
      lines.filter((line) => line.msg === 'more stale ClusterIPs dialled than logged');
    const addresses = sweepAddresses(count);
    const from = started.logs.length;
    await sweep(lab.pod, addresses);
    // Every pair either in a line or summed up, then two more reads.
    const deadline = Date.now() + 30_000;
    const said = () =>
      dialled(stale(from)).length + summaries(stale(from)).reduce((sum, line) => sum + Number(line.pairs), 0);
    while (said() < count && Date.now() < deadline) await sleep(100);
    await sleep(5_000);
    const firstRead = {
      lines: dialled(stale(from)).length,
      summaries: summaries(stale(from)).length,
      events: api.server.events().length,
    };
    const status = await agentCli(lab.node, ['status', '--json'], env);
    const recorded = (JSON.parse(status.stdout) as { staleDestinations: unknown[] }).staleDestinations.length;
    const metric = Number(
      /^route_controller_stale_destinations\{family="ipv4"\} (\d+)$/m.exec(
        (await httpGet(lab.node, `http://${METRICS}/metrics`)).body,
      )?.[1],
    );

    // The sweep going on: every address dialled again every few seconds, for minutes.
    const eventRequests = (method: string) =>
      api.server.requests.filter((r) => r.method === method && r.path.startsWith('/api/v1/namespaces/default/events'))
        .length;
    const posts = eventRequests('POST');
    const patches = eventRequests('PATCH');
    const sustainedFrom = started.logs.length;
    const sustainedStart = Date.now();
    while (Date.now() - sustainedStart < minutes * 60_000) {
      await sweep(lab.pod, addresses);
      await sleep(3_000);
    }
    const lines = stale(sustainedFrom).filter((line) => line.destination !== undefined || line.pairs !== undefined);
    const perMinute = new Map<number, number>();
    for (const line of lines) {
      const minute = Math.floor((Date.parse(line.time) - sustainedStart) / 60_000);
      perMinute.set(minute, (perMinute.get(minute) ?? 0) + 1);
    }
    return {
      addresses: count,
      resync,
      recorded,
      metric,
      firstRead,
      sustained: {
        minutes,
        linesPerMinute: lines.length / minutes,
        maxLinesInAMinute: Math.max(0, ...perMinute.values()),
        eventsCreated: eventRequests('POST') - posts,
        eventsPatched: eventRequests('PATCH') - patches,
      },
    };
  } finally {
    await agent?.stop('SIGTERM');
    await api.close();
    await lab.destroy();
  }
}

export interface ScrapeAnswers {
  readonly scrapes: number;
  readonly concurrency: number;
  /** The kernel's counter of our IPv4 rule (read with nft, before and after: it held still). */
  readonly kernel: number;
  /** Answers equal to it, and the largest answer seen. */
  readonly exact: number;
  readonly largest: number;
}

/**
 * `concurrency` scrapes of /metrics at once, `rounds` times, with the blocked-packets counter of
 * our rule standing still: each answer against the kernel's own value.
 */
export async function measureScrapeAnswers(rounds: number, concurrency = 8): Promise<ScrapeAnswers> {
  const lab = await LoopLab.create({ kubeProxy: 'none' });
  const agent = startAgent(lab.node, {
    SERVICE_CIDRS: `${LAB.serviceCidr.ipv4},${LAB.serviceCidr.ipv6}`,
    RESYNC_INTERVAL: '1h',
    LISTEN_ADDRESS: HEALTH,
    METRICS_LISTEN_ADDRESS: METRICS,
  });
  try {
    await agent.waitUntilReady(20_000);
    await lab.measureLoop('ipv4', 20);
    const before = await kernelDropCounter(lab.node);
    const script = `
      const answers = [];
      (async () => {
        for (let round = 0; round < ${rounds}; round += 1) {
          const texts = await Promise.all(Array.from({ length: ${concurrency} }, () => fetch('http://${METRICS}/metrics').then((r) => r.text())));
          for (const text of texts) answers.push(Number(/^route_controller_blocked_packets_total\\{family="ipv4"\\} (\\d+)$/m.exec(text)?.[1]));
        }
        process.stdout.write(JSON.stringify(answers));
      })();`;
    const answers = JSON.parse((await lab.node.must(process.execPath, ['-e', script])).stdout) as number[];
    const after = await kernelDropCounter(lab.node);
    if (after !== before) throw new Error(`the counter moved during the scrapes: ${before} -> ${after}`);
    return {
      scrapes: answers.length,
      concurrency,
      kernel: before,
      exact: answers.filter((answer) => answer === before).length,
      largest: Math.max(...answers),
    };
  } finally {
    await agent.stop('SIGTERM');
    await lab.destroy();
  }
}

/** A foreign churn: a table of `rules` rules rewritten `rate` times a second (0: idle). */
export interface ChurnKind {
  readonly label: string;
  readonly rules: number;
  readonly rate: number;
}

export const CHURN_KINDS: readonly ChurnKind[] = [
  { label: 'idle', rules: 3, rate: 0 },
  { label: '100 events/s (3 rules, 10 rewrites/s)', rules: 3, rate: 10 },
  { label: '500 events/s (a small table replaced 50 times a second)', rules: 3, rate: 50 },
  { label: '1,000 events/s (kube-proxy-like: 500 rules rewritten once a second)', rules: 500, rate: 1 },
  { label: '2,000 events/s (500 rules rewritten twice a second)', rules: 500, rate: 2 },
];

export interface ChurnCostRow {
  readonly kind: ChurnKind;
  readonly seconds: number;
  readonly eventsPerSecond: number;
  /** The agent and every child it ran, % of one core. */
  readonly agentPercent: number;
  readonly mode: string;
  /** The anchor: `nft -j monitor ruleset` read as the agent reads it (its V8 flags), following every event. */
  readonly followEveryEventPercent: number;
}

/** The agent's CPU (with its children) against each churn kind, next to what following every event costs. */
export function measureChurnCost(seconds: number): Promise<ChurnCostRow[]> {
  return withEventAgent('bench-bounded', async (ns, agent) => {
    const rows: ChurnCostRow[] = [];
    const pid = agent.pid ?? 0;
    for (const kind of CHURN_KINDS) {
      const from = agent.logs.length;
      await ns.must('nft', ['-f', '-'], churnPayload(kind.rules, 0));
      await sleep(1_000);
      const cpu0 = await treeCpuSeconds(pid);
      const running = kind.rate > 0 ? startChurn(ns, kind.rules, kind.rate) : undefined;
      const started = performance.now();
      await sleep(seconds * 1000);
      const result = (await running?.stop()) ?? { transactions: 0, elapsed: (performance.now() - started) / 1000 };
      const cpu1 = await treeCpuSeconds(pid);
      const mode = followMode(await metrics(ns));
      const anchor = await monitorAlone(ns, ['-j', 'monitor', 'ruleset'], kind.rules, seconds / 2, kind.rate, {
        node: nodeCommand(AGENT_BIN).slice(0, -1),
      });
      rows.push({
        kind,
        seconds: result.elapsed,
        eventsPerSecond: (result.transactions * eventsPerRewrite(kind.rules)) / result.elapsed,
        agentPercent: ((cpu1 - cpu0) / result.elapsed) * 100,
        mode,
        followEveryEventPercent: anchor.nodePercent + anchor.monitorPercent,
      });
      await ns.exec('nft', ['delete', 'table', 'ip', 'churn']);
      // Back to quiet before the next kind: the agent samples its way back to events.
      if (mode === 'polling') {
        await agent.waitForLog((line) => line.msg === 'change events resumed after foreign churn', 90_000, from);
      }
    }
    return rows;
  });
}

/** An agent following change events (nft) in a throwaway namespace, for `work`; all removed after. */
async function withEventAgent<T>(label: string, work: (ns: Netns, agent: AgentProcess) => Promise<T>): Promise<T> {
  const ns = await Netns.create(label);
  const agent = await startWithEvents(ns, 'nft');
  try {
    return await work(ns, agent);
  } finally {
    await agent.stop('SIGTERM');
    await backendIn(ns, 'nft')
      .cleanup()
      .catch(() => undefined);
    await ns.delete();
  }
}

export interface RepairUnderChurn {
  readonly label: string;
  /** From spawning the foreign command to the agent's "drift repaired" line. */
  readonly latency: Summary;
}

/**
 * Drift repaired (our table deleted by another tool), quiet and during each churn kind given: from
 * spawning the deleting command to the agent's "drift repaired" line, `runs` times each.
 */
export function measureRepairUnderChurn(runs: number, kinds: readonly ChurnKind[]): Promise<RepairUnderChurn[]> {
  return withEventAgent('bench-bounded-repair', async (ns, agent) => {
    const rows: RepairUnderChurn[] = [];
    const repairs = async () => {
      const samples: number[] = [];
      for (let run = 0; run < runs; run += 1) {
        // Longer apart than the loop cap's window allows for a fight (10 repairs within 10 s).
        await sleep(1_100);
        const from = agent.logs.length;
        const started = Date.now();
        await ns.must('nft', ['delete', 'table', 'inet', 'route-controller']);
        const repaired = await agent.waitForLog((line) => line.msg === 'drift repaired', 10_000, from);
        samples.push(Date.parse(repaired.time) - started);
      }
      return summarise(samples);
    };
    rows.push({ label: 'quiet (following events)', latency: await repairs() });
    for (const kind of kinds) {
      // Before the first rewrite: on its own it may be churn enough.
      const from = agent.logs.length;
      await ns.must('nft', ['-f', '-'], churnPayload(kind.rules, 0));
      const running = startChurn(ns, kind.rules, kind.rate);
      try {
        await agent.waitForLog(
          (line) => line.msg === 'change events paused for foreign churn; polling our table instead',
          20_000,
          from,
        );
        rows.push({ label: `during ${kind.label}`, latency: await repairs() });
      } finally {
        await running.stop();
        await ns.exec('nft', ['delete', 'table', 'ip', 'churn']);
      }
      await agent.waitForLog((line) => line.msg === 'change events resumed after foreign churn', 90_000, from);
    }
    return rows;
  });
}
