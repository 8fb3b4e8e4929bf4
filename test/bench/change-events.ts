import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { desiredState, isInSync, parseCidrList } from '@route-controller/core';
import { type AgentProcess, httpGet, Netns } from '@route-controller/lab';
import { startAgent } from '../src/agent-bin.js';
import { BENCH_CIDRS, backendIn } from './startup.js';
import { type Summary, summarise } from './stats.js';

/**
 * What kernel change events buy and cost, with the real agent in a throwaway namespace and
 * RESYNC_INTERVAL=1h, so that only an event can repair anything within the measurement.
 */

export type EventBackend = 'nft' | 'iptables-nft';
export const EVENT_BACKENDS: readonly EventBackend[] = ['nft', 'iptables-nft'];
export const RESYNC = '1h';
const LISTEN = '127.0.0.1:9771';
const METRICS_LISTEN = '127.0.0.1:9772';
/**
 * Between two drifts: longer than the agent's loop cap allows for a fight (10 repairs from events
 * within 10 s pause them), since here one process does undo every repair, on purpose.
 */
const PAUSE_BETWEEN_MS = 1_100;
/** Rewrites of the churn that may run at once. */
const MAX_IN_FLIGHT = 4;

interface Drift {
  readonly what: string;
  readonly commands: readonly { readonly file: string; readonly args: readonly string[] }[];
}

/** The four drift kinds. For nft, "FORWARD" is our own base chain on the forward hook; for iptables-nft, the security table's. */
export const DRIFTS: Readonly<Record<EventBackend, readonly Drift[]>> = {
  nft: [
    { what: 'ruleset flushed', commands: [{ file: 'nft', args: ['flush', 'ruleset'] }] },
    { what: 'our table deleted', commands: [{ file: 'nft', args: ['delete', 'table', 'inet', 'route-controller'] }] },
    {
      what: 'ACCEPT inserted at the top of our forward chain',
      commands: [{ file: 'nft', args: ['insert', 'rule', 'inet', 'route-controller', 'forward', 'accept'] }],
    },
    {
      what: 'our forward chain flushed',
      commands: [{ file: 'nft', args: ['flush', 'chain', 'inet', 'route-controller', 'forward'] }],
    },
  ],
  // Our chain and jump live in the security table: its FORWARD is the one an ACCEPT can undo.
  'iptables-nft': [
    { what: 'ruleset flushed', commands: [{ file: 'nft', args: ['flush', 'ruleset'] }] },
    { what: 'table ip security deleted', commands: [{ file: 'nft', args: ['delete', 'table', 'ip', 'security'] }] },
    {
      what: 'ACCEPT inserted at the top of security FORWARD',
      commands: [{ file: 'iptables-nft', args: ['-w', '-t', 'security', '-I', 'FORWARD', '1', '-j', 'ACCEPT'] }],
    },
    {
      what: 'security FORWARD flushed',
      commands: [{ file: 'iptables-nft', args: ['-w', '-t', 'security', '-F', 'FORWARD'] }],
    },
  ],
};

export interface RepairRow {
  readonly backend: EventBackend;
  readonly drift: string;
  /** From spawning the foreign command to the timestamp of the agent's "drift repaired" line. */
  readonly latency: Summary;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startWithEvents(
  ns: Netns,
  backend: EventBackend,
  env: Record<string, string> = {},
): Promise<AgentProcess> {
  const agent = startAgent(ns, {
    SERVICE_CIDRS: BENCH_CIDRS,
    FIREWALL_BACKEND: backend,
    RESYNC_INTERVAL: RESYNC,
    LISTEN_ADDRESS: LISTEN,
    METRICS_LISTEN_ADDRESS: METRICS_LISTEN,
    ...env,
  });
  await agent.waitUntilReady(20_000);
  await agent.waitForMessage('following kernel change events', 20_000);
  return agent;
}

/**
 * Each drift kind `runs` times: the sample runs from just before the foreign command is spawned
 * (so its own run time counts against us) to the timestamp of the agent's "drift repaired" line,
 * which it writes once the repairing transaction has returned. After each sample the kernel is
 * checked with a backend instance of this process: a sample is never a log line alone.
 */
export async function measureRepairLatency(backend: EventBackend, runs: number): Promise<RepairRow[]> {
  const ns = await Netns.create('bench-events');
  const agent = await startWithEvents(ns, backend);
  const check = backendIn(ns, backend);
  const desired = desiredState(parseCidrList(BENCH_CIDRS).cidrs);
  const samples = new Map<string, number[]>(DRIFTS[backend].map((drift) => [drift.what, []]));
  try {
    for (let run = 0; run < runs; run += 1) {
      // Interleaved, so a slow moment of the machine spreads over every kind.
      for (const drift of DRIFTS[backend]) {
        await sleep(PAUSE_BETWEEN_MS);
        const from = agent.logs.length;
        const started = Date.now();
        for (const command of drift.commands) await ns.must(command.file, command.args);
        const repaired = await agent.waitForLog(
          (line) => line.msg === 'drift repaired' && line.noticed === 'from a kernel change event',
          10_000,
          from,
        );
        samples.get(drift.what)?.push(Date.parse(repaired.time) - started);
        const observed = await check.observe();
        if (!isInSync(observed, desired)) {
          throw new Error(`after "${drift.what}" the kernel is not whole: ${JSON.stringify(observed.problems)}`);
        }
      }
    }
  } finally {
    await agent.stop('SIGTERM');
    await check.cleanup().catch(() => undefined);
    await ns.delete();
  }
  return DRIFTS[backend].map((drift) => ({
    backend,
    drift: drift.what,
    latency: summarise(samples.get(drift.what) ?? []),
  }));
}

export interface ChurnRow {
  readonly backend: EventBackend;
  /** Rules in the foreign table each rewrite replaces. */
  readonly rules: number;
  readonly seconds: number;
  readonly transactions: number;
  /** Events the rewrites made (2N+4 each), whether the agent followed them or not. */
  readonly eventsPerSecond: number;
  /** CPU of the agent process and every child it ran (its monitor, its reads), % of one core. */
  readonly percent: number;
  /** How the agent noticed drift at the end: following events, or polling for churn. */
  readonly mode: string;
  readonly applies: number;
}

/** Events one rewrite of `rules` rules makes: the table flushed and filled again. */
export const eventsPerRewrite = (rules: number): number => 2 * rules + 4;

/**
 * CPU seconds of `pid` and of every child it ran: its own time, its reaped children's (cutime,
 * cstime) and its live children's, so a monitor that is stopped or a read that ends mid-window is
 * counted once, whenever it ran.
 */
export async function treeCpuSeconds(pid: number): Promise<number> {
  const own = async (of: number | string) => {
    const stat = await readFile(`/proc/${of}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { parent: Number(fields[1]), ticks: [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0) };
  };
  let ticks = (await own(pid)).ticks;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const child = await own(entry).catch(() => undefined);
    if (child?.parent === pid) ticks += child.ticks;
  }
  return ticks / 100; // USER_HZ
}

/** A kube-proxy-like rewrite of a foreign table: flush it, then its chains and `rules` rules again. */
export function churnPayload(rules: number, round: number): string {
  const lines = [
    'add table ip churn',
    'flush table ip churn',
    'add chain ip churn svc',
    'add chain ip churn kfwd { type filter hook forward priority -5; }',
    'add rule ip churn kfwd jump svc',
  ];
  for (let i = 0; i < rules; i += 1) {
    lines.push(
      `add rule ip churn svc ip daddr 10.${(round + i) % 200}.${Math.floor(i / 250)}.${(i % 250) + 1} tcp dport 80 counter accept`,
    );
  }
  return `${lines.join('\n')}\n`;
}

export async function metrics(ns: Netns): Promise<string> {
  return (await httpGet(ns, `http://${METRICS_LISTEN}/metrics`)).body;
}

export function value(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ').at(-1) ?? Number.NaN);
}

/**
 * Another process rewrites a foreign table `rate` times a second for `seconds`: the CPU of the agent
 * and all it runs, how it was following at the end, and whether it applied anything (it must not:
 * nothing of ours changed).
 */
export async function measureChurn(
  backend: EventBackend,
  rules: number,
  seconds: number,
  rate = 50,
): Promise<ChurnRow> {
  const ns = await Netns.create('bench-churn');
  const agent = await startWithEvents(ns, backend);
  try {
    const pid = agent.pid ?? 0;
    // One rewrite first: the chains exist, so every later one has the same shape.
    await ns.must('nft', ['-f', '-'], churnPayload(rules, 0));
    await sleep(500);
    const before = await metrics(ns);
    const cpu0 = await treeCpuSeconds(pid);
    const { transactions, elapsed } = await churn(ns, rules, seconds, rate);
    await sleep(200); // the last events reach the agent
    const cpu1 = await treeCpuSeconds(pid);
    const after = await metrics(ns);
    return {
      backend,
      rules,
      seconds: elapsed,
      transactions,
      eventsPerSecond: (transactions * eventsPerRewrite(rules)) / elapsed,
      percent: ((cpu1 - cpu0) / elapsed) * 100,
      mode: followMode(after),
      // Every apply that changed the kernel, drift repairs included.
      applies: value(after, 'route_controller_applies_total') - value(before, 'route_controller_applies_total'),
    };
  } finally {
    await agent.stop('SIGTERM');
    await backendIn(ns, backend)
      .cleanup()
      .catch(() => undefined);
    await ns.delete();
  }
}

/** "events" or "polling", from the agent's /metrics text. */
export function followMode(text: string): string {
  return /^route_controller_change_follow_mode\{mode="polling"\} 1$/m.test(text) ? 'polling' : 'events';
}

/** Rewrites the foreign table `rate` times a second for `seconds` (see startChurn). */
export async function churn(
  ns: Netns,
  rules: number,
  seconds: number,
  rate: number,
): Promise<{ transactions: number; elapsed: number }> {
  const running = startChurn(ns, rules, rate);
  await sleep(seconds * 1000);
  return running.stop();
}

/**
 * Rewrites the foreign table `rate` times a second until stopped, one `nft -f` process each (as
 * kube-proxy does). A few may overlap (one takes about as long as a tick through ip netns exec);
 * beyond that a tick is skipped, not piled up.
 */
export function startChurn(
  ns: Netns,
  rules: number,
  rate: number,
): { stop(): Promise<{ transactions: number; elapsed: number }> } {
  const started = performance.now();
  let transactions = 0;
  let round = 0;
  let inFlight = 0;
  let failure: Error | undefined;
  const tick = setInterval(() => {
    if (inFlight >= MAX_IN_FLIGHT) return;
    inFlight += 1;
    round += 1;
    const child = spawn('ip', ['netns', 'exec', ns.name, 'nft', '-f', '-'], { stdio: ['pipe', 'ignore', 'inherit'] });
    child.stdin.end(churnPayload(rules, round));
    child.once('error', (error) => {
      failure = error;
    });
    child.once('exit', (code) => {
      inFlight -= 1;
      if (code === 0) transactions += 1;
    });
  }, 1000 / rate);
  return {
    async stop() {
      clearInterval(tick);
      const elapsed = (performance.now() - started) / 1000;
      while (inFlight > 0) await sleep(5);
      if (failure) throw failure;
      return { transactions, elapsed };
    },
  };
}

export interface MonitorVariantRow {
  readonly args: readonly string[];
  readonly rules: number;
  readonly linesPerSecond: number;
  /** The reading node process (the agent's share), % of one core. */
  readonly nodePercent: number;
  readonly monitorPercent: number;
}

/** The monitor variants weighed: what the agent runs, text output, and deletions only. */
export const MONITOR_VARIANTS: readonly (readonly string[])[] = [
  ['-j', 'monitor', 'ruleset'],
  ['monitor', 'ruleset'],
  ['-j', 'monitor', 'destroy'],
];

/**
 * The monitor alone under the same churn, in each variant: a node process reads it exactly as the
 * agent does (test/bench/monitor-reader.mjs), so the variants can be weighed without the agent.
 */
export async function measureMonitorVariants(rules: number, seconds: number, rate = 50): Promise<MonitorVariantRow[]> {
  const ns = await Netns.create('bench-monitor');
  const rows: MonitorVariantRow[] = [];
  try {
    await ns.must('nft', ['-f', '-'], churnPayload(rules, 0));
    for (const args of MONITOR_VARIANTS)
      rows.push({ args, rules, ...(await monitorAlone(ns, args, rules, seconds, rate)) });
  } finally {
    await ns.delete();
  }
  return rows;
}

/**
 * `nft <args>` read as the agent reads it, by a node process in `ns` (test/bench/monitor-reader.mjs),
 * while the foreign table is rewritten `rate` times a second: what following every event costs.
 */
export async function monitorAlone(
  ns: Netns,
  args: readonly string[],
  rules: number,
  seconds: number,
  rate: number,
  options: { readonly node?: readonly string[] } = {},
): Promise<Omit<MonitorVariantRow, 'args' | 'rules'>> {
  const reader = new URL('./monitor-reader.mjs', import.meta.url).pathname;
  // `node`: the node binary and its flags (the agent's shebang flags, to weigh it as the agent runs).
  const node = options.node ?? [process.execPath];
  const child = spawn('ip', ['netns', 'exec', ns.name, ...node, reader, String(seconds), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  child.stdout.setEncoding('utf8');
  let output = '';
  const ready = new Promise<void>((resolve) => {
    child.stdout.on('data', (chunk: string) => {
      output += chunk;
      if (output.includes('ready\n')) resolve();
    });
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  await ready;
  if (rate > 0) await churn(ns, rules, seconds + 0.5, rate);
  await exited;
  return JSON.parse(output.split('\n').filter(Boolean).at(-1) ?? '{}') as Omit<MonitorVariantRow, 'args' | 'rules'>;
}

export interface ScrapeResult {
  readonly scrapes: number;
  readonly seconds: number;
  /** `nft -j list table inet route-controller` runs during the scrapes, counted by a PATH wrapper. */
  readonly reads: number;
  readonly readsPerSecond: number;
}

/**
 * `rate` scrapes a second of /metrics for `seconds`, from one client inside the namespace, while
 * a wrapper first on the agent's PATH logs every nft it runs: the reads of our table are counted
 * from outside the agent. RESYNC_INTERVAL=1h and nothing changes, so only scrapes read.
 */
export async function measureScrapes(seconds: number, rate = 20): Promise<ScrapeResult> {
  const dir = await mkdtemp(join(tmpdir(), 'rc-bench-nft-'));
  const log = join(dir, 'calls');
  await writeFile(join(dir, 'nft'), `#!/bin/sh\nprintf '%s\\n' "$*" >> ${log}\nexec /usr/sbin/nft "$@"\n`, {
    mode: 0o755,
  });
  const ns = await Netns.create('bench-scrape');
  const agent = await startWithEvents(ns, 'nft', { PATH: `${dir}:${process.env.PATH ?? '/usr/sbin:/usr/bin'}` });
  const reads = async () =>
    (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((line) => line.includes('list table inet')).length;
  try {
    await sleep(1_500); // past the last read of start-up and of the stream's first reconcile
    const client = `
      const url = 'http://${METRICS_LISTEN}/metrics';
      let done = 0;
      const started = Date.now();
      const timer = setInterval(() => {
        if (Date.now() - started >= ${seconds * 1000}) {
          clearInterval(timer);
          setTimeout(() => console.log(done), 200);
          return;
        }
        fetch(url).then((r) => r.text()).then(() => { done += 1; });
      }, ${1000 / rate});`;
    const before = await reads();
    const started = performance.now();
    const result = await ns.must(process.execPath, ['-e', client]);
    const elapsed = (performance.now() - started) / 1000;
    const counted = (await reads()) - before;
    return {
      scrapes: Number(result.stdout.trim()),
      seconds: elapsed,
      reads: counted,
      readsPerSecond: counted / elapsed,
    };
  } finally {
    await agent.stop('SIGTERM');
    await ns.must('nft', ['delete', 'table', 'inet', 'route-controller']).catch(() => undefined);
    await ns.delete();
    await rm(dir, { recursive: true, force: true });
  }
}
