import { type AgentProcess, Netns } from '@route-controller/lab';
import { K3S_AGENT, k3sAnnotations } from '../../packages/agent/test/discovery-fixtures.js';
import { startAgent } from '../src/agent-bin.js';
import { KIND_132, k3sServer, type ProfileRange } from '../src/cluster-profiles.js';
import { type FakeApiServer, type RequestRecord, SERVICECIDRS_PATH } from '../src/fake-apiserver.js';
import { type KubernetesApi, startKubernetesApi } from '../src/kubernetes-api.js';
import { kernelTestBlocker } from '../src/prerequisites.js';
import { type Summary, summarise } from './stats.js';

/**
 * A fleet of real agents against one test API server: what the API server pays per node.
 *
 * Each agent runs in a network namespace of its own (never the host's), reaching the server through
 * a forwarder there (127.0.0.1:6443), with a kubeconfig whose bearer token names it in the server's
 * log of requests and connections; its health endpoint is off. The agents start 200 ms apart; once
 * every one has its rules, the server's log is counted over the window (requests, response bytes,
 * connections opened, watches open, sampled every second), then the API server restarts: every
 * connection dropped, down for a while, back with its watch cache started afresh (every older
 * resourceVersion gone), and the re-lists that follow are timed, agent by agent.
 */

export type FleetProfileName = 'servicecidr' | 'k3s-agent' | 'kubeadm';

interface FleetProfile {
  readonly label: string;
  /** Dresses the server as the cluster of `agents` nodes. */
  apply(server: FakeApiServer, agents: number): void;
  /** The environment of agent `i` (the chart sets these). */
  env(i: number): Record<string, string>;
}

const RANGE: ProfileRange = { ipv4: '10.96.0.0/16', ipv6: 'fd00:10:96::/112' };

export const FLEET_PROFILES: Readonly<Record<FleetProfileName, FleetProfile>> = {
  servicecidr: {
    label: 'a cluster serving ServiceCIDRs (1.33+)',
    apply(server) {
      server.version = '1.34';
      server.serviceCidrVersions = ['v1'];
      server.add('kubernetes', [RANGE.ipv4, RANGE.ipv6 as string]);
    },
    env: (i) => ({ NODE_NAME: `node-${i}`, POD_NAMESPACE: 'route-controller' }),
  },
  'k3s-agent': {
    label: 'k3s agent nodes (no ServiceCIDR API)',
    apply(server, agents) {
      k3sServer(true).apply(server, RANGE);
      for (let i = 0; i < agents; i += 1) {
        server.putNode(`k3s-agent-${i}`, {
          annotations: k3sAnnotations(K3S_AGENT, `172.18.${Math.floor(i / 250)}.${(i % 250) + 3}`),
        });
      }
    },
    env: (i) => ({ NODE_NAME: `k3s-agent-${i}`, POD_NAMESPACE: 'route-controller' }),
  },
  kubeadm: {
    label: 'a kubeadm cluster before 1.33 (kind 1.32)',
    apply: (server) => KIND_132.apply(server, RANGE),
    env: (i) => ({ NODE_NAME: `kind-worker-${i}`, POD_NAMESPACE: 'route-controller' }),
  },
};

export interface FleetOptions {
  readonly profile: FleetProfileName;
  readonly agents: number;
  /** The steady window counted, in minutes. */
  readonly minutes: number;
  /** How long the restarted API server stays down. */
  readonly downSeconds: number;
  /** How long the re-lists are followed once it is back. */
  readonly afterRestartSeconds: number;
  readonly log?: (line: string) => void;
}

export interface FleetResult {
  readonly profile: FleetProfileName;
  readonly label: string;
  readonly agents: number;
  readonly minutes: number;
  /** Per agent per hour over the steady window. */
  readonly perAgentHour: {
    readonly requests: number;
    readonly bytes: number;
    readonly connections: number;
  };
  /** Watches open per agent, averaged over the window (sampled every second). */
  readonly watchesPerAgent: number;
  /** Requests by kind over the window, all agents. */
  readonly byKind: Readonly<Record<string, number>>;
  /** The first 2 minutes of each agent (from its start): requests and connections. */
  readonly start: { readonly requests: Summary; readonly connections: Summary };
  readonly restart: {
    readonly downSeconds: number;
    /** Requests per agent from the restart to the end of the follow-up (the downtime included). */
    readonly requestsPerAgent: Summary;
    /** Agents that listed ServiceCIDRs again, and when, in ms after the server came back. */
    readonly relisted: number;
    readonly relistDelayMs: Summary | undefined;
    /** The most requests the server got in any one second after it came back. */
    readonly peakPerSecond: number;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function measureFleet(options: FleetOptions): Promise<FleetResult> {
  const blocker = kernelTestBlocker();
  if (blocker) throw new Error(`the fleet benchmark cannot run here: ${blocker}`);
  const profile = FLEET_PROFILES[options.profile];
  const log = options.log ?? (() => {});
  const { agents: count } = options;
  const namespaces: Netns[] = [];
  const agents: AgentProcess[] = [];
  let api: KubernetesApi | undefined;
  try {
    const home = await Netns.create('fleet-api');
    namespaces.push(home);
    api = await startKubernetesApi(home);
    const { server } = api;
    profile.apply(server, count);

    // Namespaces and forwarders, ten at a time; then the agents, 200 ms apart.
    const reached: { ns: Netns; kubeconfig: string }[] = [];
    for (let first = 0; first < count; first += 10) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(10, count - first) }, async (_, j) => {
          const ns = await Netns.create(`fleet-${first + j}`);
          namespaces.push(ns);
          const { kubeconfig } = await (api as KubernetesApi).reach(ns, { token: `agent-${first + j}` });
          return { ns, kubeconfig };
        }),
      );
      reached.push(...batch);
    }
    const startedAt: number[] = [];
    for (const [i, { ns, kubeconfig }] of reached.entries()) {
      startedAt.push(Date.now());
      agents.push(startAgent(ns, { KUBECONFIG: kubeconfig, RESYNC_INTERVAL: '30s', ...profile.env(i) }));
      await sleep(200);
    }
    await Promise.all(agents.map((agent) => agent.waitForMessage('rules applied', 120_000)));
    log(`${options.profile}: ${count} agents have their rules; counting ${options.minutes} min`);

    // The steady window.
    const from = Date.now();
    const bytesBefore = new Map(server.requests.map((r) => [r, r.bytes]));
    const watchSamples: number[] = [];
    const windowMs = options.minutes * 60_000;
    while (Date.now() - from < windowMs) {
      watchSamples.push(server.openWatches);
      await sleep(1_000);
    }
    const to = Date.now();
    const inWindow = server.requests.filter((r) => r.at >= from && r.at < to);
    const bytes = server.requests.reduce((sum, r) => sum + r.bytes - (bytesBefore.get(r) ?? 0), 0);
    const hours = (to - from) / 3_600_000;
    const connections = server.connections.filter((c) => c.openedAt >= from && c.openedAt < to).length;
    const byKind: Record<string, number> = {};
    for (const r of inWindow) byKind[kindOf(r)] = (byKind[kindOf(r)] ?? 0) + 1;

    const start = {
      requests: summarise(reached.map((_, i) => firstMinutes(server.requests, i, startedAt[i] as number).length)),
      connections: summarise(
        reached.map(
          (_, i) => new Set(firstMinutes(server.requests, i, startedAt[i] as number).map((r) => r.connection)).size,
        ),
      ),
    };

    // The restart: every connection dropped; down; back with its watch caches started afresh.
    log(`${options.profile}: restarting the API server (down ${options.downSeconds} s)`);
    const restartAt = Date.now();
    await server.close();
    // Written meanwhile (leases, events: a real cluster's resourceVersion never stands still), and the
    // new watch cache starts from now: every agent's resourceVersion is too old for it.
    server.advanceResourceVersion();
    server.compact();
    await sleep(options.downSeconds * 1000);
    await server.listen({ path: api.socketPath });
    const backAt = Date.now();
    await sleep(options.afterRestartSeconds * 1000);
    const after = server.requests.filter((r) => r.at >= restartAt);
    const relists = reached.flatMap((_, i) => {
      const relist = after.find((r) => r.user === `agent-${i}` && r.path === SERVICECIDRS_PATH && !r.watch);
      return relist ? [relist.at - backAt] : [];
    });
    const perSecond = new Map<number, number>();
    for (const r of after.filter((r) => r.at >= backAt)) {
      const second = Math.floor((r.at - backAt) / 1000);
      perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
    }
    const result: FleetResult = {
      profile: options.profile,
      label: profile.label,
      agents: count,
      minutes: (to - from) / 60_000,
      perAgentHour: {
        requests: inWindow.length / count / hours,
        bytes: bytes / count / hours,
        connections: connections / count / hours,
      },
      watchesPerAgent: watchSamples.reduce((a, b) => a + b, 0) / Math.max(1, watchSamples.length) / count,
      byKind,
      start,
      restart: {
        downSeconds: options.downSeconds,
        requestsPerAgent: summarise(reached.map((_, i) => after.filter((r) => r.user === `agent-${i}`).length)),
        relisted: relists.length,
        relistDelayMs: relists.length > 0 ? summarise(relists) : undefined,
        peakPerSecond: Math.max(0, ...perSecond.values()),
      },
    };
    log(`${options.profile}: ${JSON.stringify(result)}`);
    return result;
  } finally {
    await Promise.all(agents.map((agent) => agent.stop('SIGKILL')));
    await api?.close();
    await Promise.all(namespaces.map((ns) => ns.delete()));
  }
}

/** Agent `i`'s requests in the first 2 minutes after its start. */
function firstMinutes(requests: readonly RequestRecord[], i: number, startedAt: number): RequestRecord[] {
  return requests.filter((r) => r.user === `agent-${i}` && r.at >= startedAt && r.at < startedAt + 120_000);
}

/** "watch", "list" (a collection, from the cache or etcd), "get" (one object), "discovery" or "create". */
function kindOf(r: RequestRecord): string {
  if (r.method === 'POST') return 'create';
  if (r.watch) return 'watch';
  if (r.read === undefined) return 'discovery';
  const name = /^\/api\/v1\/nodes\/[^/]+$|\/configmaps\/[^/]+$/.test(r.path);
  return name ? 'get' : r.read === 'etcd' ? 'list (etcd)' : 'list';
}

/**
 * kube-proxy's load per node, for comparison, from its conventions rather than measured here: it
 * follows Services, EndpointSlices and its own Node with client-go informers, so 3 lists at start
 * and 3 watches, each re-opened at its timeout (drawn from 5 to 10 minutes: 8 an hour on average),
 * each with a bookmark a minute (~300 bytes). On top comes every Service and EndpointSlice change in
 * the cluster: an EndpointSlice of 100 endpoints is about 10 KB (KEP-752, sample case 1), so one
 * change a second somewhere in the cluster is ~36 MB an hour to every node; and its own Node object
 * (10-30 KB) as the kubelet reports status, at least every 5 minutes (nodeStatusReportFrequency).
 */
export const KUBE_PROXY = {
  watches: 3,
  requestsPerHour: 3 * 8,
  bookmarkBytesPerHour: 3 * 60 * 300,
  endpointSliceBytes: 10_000,
  nodeBytesPerHour: 12 * 20_000,
} as const;
