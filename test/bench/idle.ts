import { readdir, readFile } from 'node:fs/promises';
import { Netns } from '@route-controller/lab';
import { startAgent } from '../src/agent-bin.js';
import { BENCH_CIDRS } from './startup.js';

export interface IdleResult {
  readonly seconds: number;
  readonly rssMb: number;
  readonly peakRssMb: number;
  /** CPU time used while idle, as a percentage of one core. */
  readonly cpuPercent: number;
  /** The same for the agent's `nft -j monitor ruleset` child (undefined when none runs). */
  readonly monitor?: { readonly rssMb: number; readonly cpuPercent: number };
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of /proc/pid/stat (11 and 12 after the command name).
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

async function memoryMb(pid: number, key: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  return kb / 1024;
}

/** Resident memory and CPU of `run` left alone (default 30 s resync, endpoint on, scraped once). */
export async function measureIdle(seconds: number): Promise<IdleResult> {
  const ns = await Netns.create('bench-idle');
  const agent = startAgent(ns, { SERVICE_CIDRS: BENCH_CIDRS, LISTEN_ADDRESS: '127.0.0.1:9771' });
  try {
    await agent.waitForMessage('rules applied', 20_000);
    // One scrape, as Prometheus would do, so the metrics code is loaded as it is in production.
    await ns.must(process.execPath, ['-e', 'fetch("http://127.0.0.1:9771/metrics").then((r) => r.text())']);
    const pid = agent.pid;
    if (pid === undefined) throw new Error('agent has no pid');
    await agent.waitForMessage('following kernel change events', 20_000);
    // By its arguments: a reconcile's `nft -j list` may be running next to it.
    const [monitor] = await childrenNamed(pid, 'nft', 'monitor');
    const startCpu = await cpuSeconds(pid);
    const startMonitor = monitor === undefined ? 0 : await cpuSeconds(monitor);
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const cpu = (await cpuSeconds(pid)) - startCpu;
    return {
      seconds,
      rssMb: await memoryMb(pid, 'VmRSS'),
      peakRssMb: await memoryMb(pid, 'VmHWM'),
      cpuPercent: (cpu / seconds) * 100,
      ...(monitor === undefined
        ? {}
        : {
            monitor: {
              rssMb: await memoryMb(monitor, 'VmRSS'),
              cpuPercent: (((await cpuSeconds(monitor)) - startMonitor) / seconds) * 100,
            },
          }),
    };
  } finally {
    await agent.stop('SIGTERM');
    await ns.must('nft', ['delete', 'table', 'inet', 'route-controller']).catch(() => undefined);
    await ns.delete();
  }
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
