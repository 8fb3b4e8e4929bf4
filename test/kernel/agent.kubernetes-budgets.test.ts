import { type AgentProcess, Netns } from '@route-controller/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent } from '../src/agent-bin.js';
import { type ClusterProfile, KIND_134, k3sAgent, type ProfileRange } from '../src/cluster-profiles.js';
import { FakeApiServer, type RequestRecord, SERVICECIDRS_PATH } from '../src/fake-apiserver.js';
import { type KubernetesApi, startKubernetesApi } from '../src/kubernetes-api.js';
import { describeKernel } from '../src/prerequisites.js';

/**
 * Issue 22's budgets per agent, measured on the wire: a real agent process in a namespace of its
 * own, against the test API server, whose log of requests and TCP connections is what is counted.
 * The windows are real time (2 minutes at start, 1 minute per fault): the agent's own clock cannot
 * be sped up honestly. The cases run side by side, each with its own namespace, server and agent.
 */

const RANGE: ProfileRange = { ipv4: '10.96.0.0/16', ipv6: 'fd00:10:96::/112' };
const START_WINDOW_MS = 120_000;
const FAULT_WINDOW_MS = 60_000;

interface Case {
  readonly label: string;
  readonly ns: Netns;
  readonly api: KubernetesApi;
  readonly server: FakeApiServer;
  readonly agent: AgentProcess;
  readonly startedAt: number;
}

const cases: Case[] = [];

/** A namespace, a test API server dressed as `profile`, and an agent started against it. */
async function start(label: string, profile: ClusterProfile): Promise<Case> {
  const ns = await Netns.create(label);
  const api = await startKubernetesApi(ns);
  const server = new FakeApiServer();
  profile.apply(server, RANGE);
  await api.serve(server);
  const startedAt = Date.now();
  const agent = startAgent(ns, { KUBECONFIG: api.kubeconfig, RESYNC_INTERVAL: '30s', ...profile.env });
  const running = { label, ns, api, server, agent, startedAt };
  cases.push(running);
  return running;
}

/** Whether the agent's nft table drops `cidr` now (the kernel, not the agent's log). */
async function drops(ns: Netns, cidr: string): Promise<boolean> {
  const table = await ns.exec('nft', ['list', 'table', 'inet', 'route-controller']);
  return table.exitCode === 0 && table.stdout.includes(cidr);
}

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return Date.now() - started;
}

const sleepUntil = (at: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));
const within = (records: readonly RequestRecord[], from: number, ms: number) =>
  records.filter((r) => r.at >= from && r.at < from + ms);
const show = (records: readonly RequestRecord[]) =>
  records.map((r) => `${r.method} ${r.path}${r.watch ? ' (watch)' : ''} ${r.status} #${r.connection}`).join('\n');

afterAll(async () => {
  for (const running of cases.splice(0)) {
    await running.agent.stop('SIGKILL');
    await running.api.close();
    await running.ns.delete();
  }
});

interface StartWindow {
  readonly requests: readonly RequestRecord[];
  readonly connections: number;
}

/** The first 2 minutes of the agent: what reached the API server. */
async function firstMinutes({ ns, server, startedAt, label }: Case): Promise<StartWindow> {
  await until('the rules', () => drops(ns, RANGE.ipv4), 20_000);
  await sleepUntil(startedAt + START_WINDOW_MS);
  const requests = within(server.requests, startedAt, START_WINDOW_MS);
  const connections = server.connections.filter((c) => c.openedAt < startedAt + START_WINDOW_MS).length;
  console.log(`${label}, first 2 min: ${requests.length} requests, ${connections} connection(s)\n${show(requests)}`);
  return { requests, connections };
}

interface FaultWindow {
  /** The requests of the fault's first minute. */
  readonly requests: readonly RequestRecord[];
  /** Whether the rules were in the kernel at the end of that minute. */
  readonly kept: boolean;
  /** How long a change made once the fault cleared took to reach the kernel (undefined: not within 40 s). */
  readonly changeMs: number | undefined;
}

/** One fault, once the agent has its rules: its first minute on the wire, then a change once it clears. */
async function underFault(
  { ns, server, label }: Case,
  fault: (server: FakeApiServer) => void,
  clear: (server: FakeApiServer) => void,
): Promise<FaultWindow> {
  await until('the rules', () => drops(ns, RANGE.ipv4), 20_000);
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const faultAt = Date.now();
  fault(server);
  server.dropWatches();
  await sleepUntil(faultAt + FAULT_WINDOW_MS);
  const requests = within(server.requests, faultAt, FAULT_WINDOW_MS);
  const kept = (await drops(ns, RANGE.ipv4)) && (await drops(ns, RANGE.ipv6 as string));
  clear(server);
  server.add('after-the-fault', ['10.99.0.0/16']);
  const changeMs = await until('the change in the kernel', () => drops(ns, '10.99.0.0/16'), 40_000).catch(
    () => undefined,
  );
  console.log(
    `${label}: ${requests.length} requests in the fault's first minute; rules kept: ${kept}; a change after it reached the kernel in ${changeMs} ms\n${show(requests)}`,
  );
  return { requests, kept, changeMs };
}

describeKernel('per-agent API budgets, counted on the wire', () => {
  // Every case runs side by side from the start (each its own namespace, API server and agent):
  // the tests below wait for theirs. The agents are the file's, stopped after the last test.
  let scidr: Promise<StartWindow>;
  let k3s: Promise<StartWindow>;
  let expired: Promise<FaultWindow>;
  let closed: Promise<FaultWindow>;
  let throttled: Promise<FaultWindow>;
  let failing: Promise<FaultWindow>;

  beforeAll(async () => {
    // The agents start here, so they are the file's (the process guard holds each test to what it starts).
    const [a, b, c, d, e, f] = await Promise.all([
      start('budget-scidr', KIND_134),
      start('budget-k3s', k3sAgent(true)),
      start('budget-410', KIND_134),
      start('budget-close', KIND_134),
      start('budget-429', KIND_134),
      start('budget-500', KIND_134),
    ]);
    const off = (server: FakeApiServer) => server.failWith(undefined);
    scidr = firstMinutes(a);
    k3s = firstMinutes(b);
    expired = underFault(c, (server) => server.failWith({ code: 410, only: 'watch' }), off);
    closed = underFault(
      d,
      (server) => {
        server.closeWatchesAtOnce = true;
      },
      (server) => {
        server.closeWatchesAtOnce = false;
      },
    );
    throttled = underFault(e, (server) => server.failWith({ code: 429, resource: '*', retryAfterSeconds: 3 }), off);
    failing = underFault(f, (server) => server.failWith({ code: 500, resource: '*' }), off);
    // Awaited by the tests; a failure before a test gets to it is not unhandled.
    for (const pending of [scidr, k3s, expired, closed, throttled, failing]) pending.catch(() => {});
  }, 60_000);

  it('a cluster serving ServiceCIDRs, first 2 minutes: <= 5 requests, <= 2 connections; lists from the watch cache, one watch of 5-10 min', async () => {
    const { requests, connections } = await scidr;
    expect(requests.length, show(requests)).toBeLessThanOrEqual(5);
    expect(connections).toBeLessThanOrEqual(2);
    expect(requests.filter((r) => r.read === 'etcd')).toEqual([]);
    const watches = requests.filter((r) => r.watch);
    expect(watches).toHaveLength(1);
    expect(watches[0]).toMatchObject({ path: SERVICECIDRS_PATH, query: { allowWatchBookmarks: 'true' } });
    const timeout = Number(watches[0]?.query.timeoutSeconds);
    expect(timeout).toBeGreaterThanOrEqual(300);
    expect(timeout).toBeLessThan(600);
    expect(requests.find((r) => r.path === SERVICECIDRS_PATH && !r.watch)?.query.resourceVersion).toBe('0');
  }, 200_000);

  it('a k3s agent node, first 2 minutes: <= 10 requests, <= 3 connections, no label-selected watch (no watch at all)', async () => {
    const { requests, connections } = await k3s;
    expect(requests.length, show(requests)).toBeLessThanOrEqual(10);
    expect(connections).toBeLessThanOrEqual(3);
    expect(requests.filter((r) => r.watch)).toEqual([]);
    expect(requests.filter((r) => r.read === 'etcd')).toEqual([]);
    const byLabel = requests.filter((r) => r.query.labelSelector !== undefined);
    expect(byLabel.map((r) => [r.path, r.query.resourceVersion])).toEqual([['/api/v1/nodes', '0']]);
  }, 200_000);

  /** The budget of every fault. */
  function withinBudget({ requests, kept, changeMs }: FaultWindow): void {
    expect(requests.length, show(requests)).toBeLessThanOrEqual(24);
    expect(kept).toBe(true);
    expect(changeMs).toBeLessThanOrEqual(40_000);
  }

  it('every watch answered 410: <= 24 requests a minute, the rules kept, a change after it in the kernel within 40 s', async () => {
    withinBudget(await expired);
  }, 200_000);

  it('watches accepted and closed at once: <= 24 requests a minute, the rules kept, a change after it within 40 s', async () => {
    withinBudget(await closed);
  }, 200_000);

  it('429 with Retry-After: never sooner than asked, <= 24 requests a minute, the rules kept, a change after it within 40 s', async () => {
    const window = await throttled;
    withinBudget(window);
    const refused = window.requests.filter((r) => r.status === 429);
    expect(refused.length).toBeGreaterThan(1);
    for (const [i, r] of refused.slice(1).entries()) {
      expect(r.at - (refused[i] as RequestRecord).at, show(window.requests)).toBeGreaterThanOrEqual(2_950);
    }
  }, 200_000);

  it('500 on every request: <= 24 requests a minute, the rules kept, a change after it within 40 s', async () => {
    withinBudget(await failing);
  }, 200_000);
});
