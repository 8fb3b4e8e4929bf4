import { access, constants } from 'node:fs/promises';
import { ErrorCodes, type IpFamily, RouteControllerError } from '@route-controller/core';
import { type AgentBin, AgentProcess, runCli } from '../agent-process.js';
import { LAB, LoopLab, type PingResult } from '../loop-lab.js';
import { removeLiveNamespacesSync, removeStrayNamespaces } from '../netns.js';
import type { DemoReport, DemoRun, Dialled, Families } from './demo-report.js';
import { allAnswered } from './demo-report.js';

/** Demo namespaces are named rcdemo-<pid>-...: never the tests' and never the host's. */
export const DEMO_PREFIX = 'rcdemo';
const FAMILIES: readonly IpFamily[] = ['ipv4', 'ipv6'];
/** Pings per family from the second pod to the other stale ClusterIP. */
export const SECOND_POD_PINGS = 3;
const SERVICE_CIDRS = `${LAB.serviceCidr.ipv4},${LAB.serviceCidr.ipv6}`;
/** The agent's backends, in its order of preference; `route-controller probe` says which work here. */
export const BACKEND_NAMES = ['nft', 'iptables-nft', 'iptables-legacy'] as const;

export interface DemoOptions {
  /** The agent to run in the lab: `pnpm demo` passes the checkout's bin. */
  readonly agentBin: string;
  readonly pings: number;
  /** Progress lines for people; the JSON output passes a no-op. */
  readonly progress: (line: string) => void;
}

interface ProbeJson {
  readonly backend: string | null;
  readonly reason?: string;
  readonly backends: Record<string, { readonly available: boolean; readonly reason: string }>;
}

interface StatusJson {
  readonly backends: readonly {
    readonly backend: string;
    readonly installed?: { readonly counters: Partial<Families<{ packets: number; bytes: number }>> };
  }[];
  readonly staleDestinations?: readonly Dialled[];
  readonly recording?: { readonly recorded: boolean; readonly reason?: string };
}

/**
 * `pnpm demo`: builds the loop lab in throwaway namespaces, shows the loop to a stale
 * ClusterIP, then runs the real agent in the lab node with every backend this machine supports
 * (the node's own choice first), measuring with packets. Removes its namespaces on every path,
 * including SIGINT/SIGTERM.
 */
export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  const { progress } = options;
  if (process.getuid?.() !== 0) {
    throw new RouteControllerError(
      ErrorCodes.FirewallPermission,
      'the demo needs root: it creates network namespaces',
      {
        hint: 'Run it as root (sudo pnpm demo); it never touches the host network.',
      },
    );
  }
  const missing = [];
  for (const [binary, pkg] of [
    ['ip', 'iproute2'],
    ['ping', 'iputils-ping'],
    ['nft', 'nftables'],
    ['sysctl', 'procps'],
  ]) {
    if (!(await onPath(binary as string))) missing.push([binary, pkg]);
  }
  if (missing.length > 0) {
    throw new RouteControllerError(ErrorCodes.CommandSpawn, `the demo needs ${missing.map(([b]) => b).join(', ')}`, {
      hint: `apt-get install ${[...new Set(missing.map(([, p]) => p))].join(' ')}`,
    });
  }
  removeStrayNamespaces(DEMO_PREFIX);
  const bin: AgentBin = { bin: options.agentBin };
  let agent: AgentProcess | undefined;
  const interrupted = (signal: NodeJS.Signals) => {
    progress(`\n${signal}: removing the demo namespaces`);
    // Kills what runs inside them first (the agent, a CLI command), then deletes them.
    removeLiveNamespacesSync();
    process.exit(130);
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);

  progress('Building the loop lab in throwaway network namespaces (the host network is not touched)...');
  // A second pod: two sources dialling stale ClusterIPs, for the who-dialled-what part.
  const lab = await LoopLab.create({ prefix: DEMO_PREFIX, kubeProxy: await kubeProxyFlavour(), secondPod: true });
  try {
    progress(`  pod ${LAB.pod.ipv4} -> node (forwards; kube-proxy DNAT ${LAB.liveService.ipv4} -> ${LAB.server.ipv4})`);
    progress(`  a second pod ${LAB.secondPod.ipv4} dials another stale ClusterIP, ${LAB.otherStaleService.ipv4}`);
    progress(`  workstation ${LAB.workstation.ipv4} routes ${SERVICE_CIDRS.replace(',', ' and ')} back to the node`);
    const unprotected = await perFamily((family) => lab.measureLoop(family, options.pings));
    progress(
      `Without protection: ${unprotected.ipv4} IPv4 and ${unprotected.ipv6} IPv6 packets looped for ${options.pings} pings`,
    );

    const probe = JSON.parse((await runCli(lab.node, ['probe', '--json'], {}, bin)).stdout) as ProbeJson;
    const supported = BACKEND_NAMES.filter((name) => probe.backends[name]?.available);
    const unsupported = BACKEND_NAMES.filter((name) => !probe.backends[name]?.available).map((backend) => ({
      backend,
      reason: probe.backends[backend]?.reason ?? 'not probed',
    }));
    // The node's own choice first (FIREWALL_BACKEND=auto), then every other backend forced.
    const order = probe.backend ? [probe.backend, ...supported.filter((name) => name !== probe.backend)] : supported;

    const before = await lab.nodeRules();
    const runs: DemoRun[] = [];
    for (const backend of order) {
      const requested = backend === probe.backend ? 'auto' : backend;
      progress(`Running route-controller in the lab node with FIREWALL_BACKEND=${requested}...`);
      agent = AgentProcess.start(
        lab.node,
        { SERVICE_CIDRS, FIREWALL_BACKEND: requested, LISTEN_ADDRESS: 'off' },
        [],
        bin,
      );
      const run = await oneRun(lab, agent, bin, backend, requested, before, options.pings);
      // A forced backend's log only says it was forced: add what its probe found.
      const probed = probe.backends[backend]?.reason;
      runs.push(
        requested === 'auto' || !run.reason || !probed ? run : { ...run, reason: `${run.reason}; probe: ${probed}` },
      );
      agent = undefined;
    }
    return {
      namespaces: lab.namespaces.map((ns) => ns.name),
      serviceCidrs: { ipv4: LAB.serviceCidr.ipv4, ipv6: LAB.serviceCidr.ipv6 },
      staleClusterIp: { ipv4: LAB.staleService.ipv4, ipv6: LAB.staleService.ipv6 },
      liveClusterIp: { ipv4: LAB.liveService.ipv4, ipv6: LAB.liveService.ipv6 },
      pings: options.pings,
      unprotected,
      unsupported,
      runs,
      ok: runs.length > 0 && runs.every((run) => run.ok) && unprotected.ipv4 > 0,
    };
  } finally {
    await agent?.stop('SIGKILL');
    await lab.destroy();
    process.removeListener('SIGINT', interrupted);
    process.removeListener('SIGTERM', interrupted);
  }
}

async function oneRun(
  lab: LoopLab,
  agent: AgentProcess,
  bin: AgentBin,
  backend: string,
  requested: string,
  before: string,
  pings: number,
): Promise<DemoRun> {
  try {
    const applied = await agent.waitForMessage('rules applied', 20_000);
    const summary = agent.logs.find((line) => line.summary === true);
    const chosen = typeof summary?.backend === 'string' ? summary.backend : undefined;
    const reason = typeof summary?.reason === 'string' ? summary.reason : undefined;
    const loop = await perFamily((family) => lab.measureLoop(family, pings));
    const live = await perFamily(async (family) => ({
      fromPod: ratio(await lab.pingLiveServiceFromPod(family)),
      fromNode: ratio(await lab.pingLiveServiceFromNode(family)),
    }));
    // The second pod dials another stale ClusterIP: status shows who dialled what.
    for (const family of FAMILIES) await lab.dial('secondPod', LAB.otherStaleService[family], SECOND_POD_PINGS);
    const status = JSON.parse((await runCli(lab.node, ['status', '--json'], {}, bin)).stdout) as StatusJson;
    const counters = status.backends.find((entry) => entry.backend === backend)?.installed?.counters;
    const dropped = await perFamily(async (family) => counters?.[family] ?? { packets: 0, bytes: 0 });
    const dialled = status.recording?.recorded
      ? { dialled: status.staleDestinations ?? [] }
      : { dialledNote: status.recording?.reason ?? 'route-controller status says nothing of it' };
    await agent.stop('SIGTERM');
    const cleanup = await runCli(lab.node, ['cleanup'], {}, bin);
    const restored = cleanup.exitCode === 0 && (await lab.nodeRules()) === before;
    const ok = chosen === backend && loop.ipv4 === 0 && loop.ipv6 === 0 && allAnswered(live) && restored;
    return {
      backend,
      requested,
      ...(chosen ? { chosen } : {}),
      ...(reason ? { reason } : {}),
      startMs: agent.elapsedAt(applied),
      loop,
      live,
      dropped,
      ...dialled,
      restored,
      ok,
    };
  } catch (error) {
    await agent.stop('SIGKILL');
    await runCli(lab.node, ['cleanup'], {}, bin);
    return { backend, requested, ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

async function perFamily<T>(measure: (family: IpFamily) => Promise<T>): Promise<Families<T>> {
  const values: Partial<Record<IpFamily, T>> = {};
  for (const family of FAMILIES) values[family] = await measure(family);
  return values as Families<T>;
}

const ratio = (result: PingResult): string => `${result.received}/${result.sent}`;

/** kube-proxy's DNAT for the live Service, written the way this machine can: iptables-nft, else nft. */
async function kubeProxyFlavour(): Promise<'iptables-nft' | 'nft'> {
  return (await onPath('iptables-nft-restore')) ? 'iptables-nft' : 'nft';
}

async function onPath(binary: string): Promise<boolean> {
  for (const dir of `${process.env.PATH ?? ''}:/usr/sbin:/sbin`.split(':').filter(Boolean)) {
    try {
      await access(`${dir}/${binary}`, constants.X_OK);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}
