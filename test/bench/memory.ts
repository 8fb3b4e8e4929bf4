import { readdir, readFile } from 'node:fs/promises';
import { type AgentBin, AgentProcess, LAB, Netns } from '@route-controller/lab';
import { AGENT_BIN } from '../src/agent-bin.js';
import { startKubernetesApi } from '../src/kubernetes-api.js';
import { BENCH_CIDRS } from './startup.js';

export interface MemoryResult {
  readonly label: string;
  readonly seconds: number;
  /** VmRSS at the end of the period. */
  readonly idleMib: number;
  /** VmHWM: the most it ever held. */
  readonly peakMib: number;
  /** CPU time used over the period, as a percentage of one core. */
  readonly cpuPercent: number;
  /**
   * The agent's `nft -j monitor ruleset` child (kernel change events), in the same pod and so in the
   * same memory limit; undefined when none runs.
   */
  readonly monitor?: { readonly rssMib: number; readonly cpuPercent: number };
}

/** The children of `pid` named `comm` with `arg` among their arguments (the agent's `nft ... monitor`). */
export async function childrenNamed(pid: number, comm: string, arg?: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'latin1');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent !== pid || name !== comm) continue;
      if (arg && !(await readFile(`/proc/${entry}/cmdline`, 'latin1')).split('\0').includes(arg)) continue;
      found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of /proc/pid/stat (11 and 12 after the command name).
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

export async function memoryMib(pid: number, key: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  return kb / 1024;
}

/** Watches a started agent for `seconds` after its rules are in place (one /metrics scrape first). */
export async function watchAgent(agent: AgentProcess, label: string, seconds: number): Promise<MemoryResult> {
  await agent.waitForMessage('rules applied', 30_000);
  // One scrape, as Prometheus would do, so the metrics code is loaded as it is in production.
  await agent.ns.must(process.execPath, ['-e', 'fetch("http://127.0.0.1:9772/metrics").then((r) => r.text())']);
  const pid = agent.pid;
  if (pid === undefined) throw new Error('the agent has no pid');
  await agent.waitForMessage('following kernel change events', 5_000).catch(() => undefined);
  // By its arguments: a reconcile's `nft -j list` may be running next to it.
  const [monitor] = await childrenNamed(pid, 'nft', 'monitor');
  const startCpu = await cpuSeconds(pid);
  const startMonitor = monitor === undefined ? 0 : await cpuSeconds(monitor);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const cpu = (await cpuSeconds(pid)) - startCpu;
  return {
    label,
    seconds,
    idleMib: await memoryMib(pid, 'VmRSS'),
    peakMib: await memoryMib(pid, 'VmHWM'),
    cpuPercent: (cpu / seconds) * 100,
    ...(monitor === undefined
      ? {}
      : {
          monitor: {
            rssMib: await memoryMib(monitor, 'VmRSS'),
            cpuPercent: (((await cpuSeconds(monitor)) - startMonitor) / seconds) * 100,
          },
        }),
  };
}

export interface MemoryOptions {
  readonly seconds: number;
  readonly agent?: AgentBin;
  /** The root of the agent's file system, when it is not this machine's (an image): for the kubeconfig. */
  readonly root?: string;
  /** Extra environment for the agent (an image's PATH and compile cache). */
  readonly env?: Readonly<Record<string, string>>;
  readonly labelSuffix?: string;
}

/** `run` with SERVICE_CIDRS, then with the Kubernetes source following one ServiceCIDR. */
export async function measureMemory(options: MemoryOptions): Promise<MemoryResult[]> {
  const agentBin = options.agent ?? { bin: AGENT_BIN };
  const suffix = options.labelSuffix ?? '';
  const results: MemoryResult[] = [];
  const env = options.env ?? {};
  const ns = await Netns.create('bench-mem');
  try {
    const withEnv = AgentProcess.start(
      ns,
      {
        ...env,
        SERVICE_CIDRS: BENCH_CIDRS,
        LISTEN_ADDRESS: '127.0.0.1:9771',
        METRICS_LISTEN_ADDRESS: '127.0.0.1:9772',
      },
      [],
      agentBin,
    );
    try {
      results.push(await watchAgent(withEnv, `SERVICE_CIDRS${suffix}`, options.seconds));
    } finally {
      await withEnv.stop('SIGTERM');
    }
    await ns.exec('nft', ['delete', 'table', 'inet', 'route-controller']);
    const api = await startKubernetesApi(ns);
    try {
      api.server.add('kubernetes', [LAB.serviceCidr.ipv4, LAB.serviceCidr.ipv6]);
      const kubeconfig = options.root ? await api.kubeconfigUnder(options.root) : api.kubeconfig;
      const following = AgentProcess.start(
        ns,
        {
          ...env,
          KUBECONFIG: kubeconfig,
          LISTEN_ADDRESS: '127.0.0.1:9771',
          METRICS_LISTEN_ADDRESS: '127.0.0.1:9772',
          HOME: '/nonexistent',
        },
        [],
        agentBin,
      );
      try {
        results.push(await watchAgent(following, `Kubernetes source${suffix}`, options.seconds));
      } finally {
        await following.stop('SIGTERM');
      }
    } finally {
      await api.close();
    }
  } finally {
    await ns.delete();
  }
  return results;
}
