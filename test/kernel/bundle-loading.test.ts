import { NftBackend } from '@route-controller/backend-nft';
import { httpGet, Netns } from '@route-controller/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { agentCli, startAgent } from '../src/agent-bin.js';
import { LOG_LOADS_ENV, loadedPackages, sawBundle } from '../src/bundle-loads.js';
import { describeKernel } from '../src/prerequisites.js';

const SERVICE_CIDRS = '10.96.0.0/16,fd00:10:96::/112';
/** What SERVICE_CIDRS makes unnecessary: the Kubernetes sources and their YAML parser. */
const KUBERNETES = ['@kubernetes/client-node', 'js-yaml'];
/** The first run leaves its rules in place (SIGTERM keeps them): later runs find them in step. */
const ENFORCED = /rules (applied|already in step)/;

describeKernel('the bundled agent, with SERVICE_CIDRS, loads no Kubernetes client', () => {
  let ns: Netns;

  beforeAll(async () => {
    ns = await Netns.create('bundle-loads');
  });
  afterAll(async () => {
    await new NftBackend({ runner: ns.runner }).cleanup().catch(() => undefined);
    await ns?.delete();
  });

  it('`run` without an endpoint: the backend, execa and pino, and neither the Kubernetes client nor prom-client', async () => {
    const agent = startAgent(ns, { SERVICE_CIDRS, ...LOG_LOADS_ENV });
    try {
      await agent.waitForMessage(ENFORCED, 15_000);
      // Past the start-up chores (leftovers of other backends) and the first read of the hit records.
      await agent.waitForMessage('following kernel change events', 15_000);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    } finally {
      await agent.stop('SIGTERM');
    }
    const stderr = agent.stderr.join('');
    expect(sawBundle(stderr), 'the load hook saw no bundle file').toBe(true);
    const packages = loadedPackages(stderr);
    expect([...packages]).toEqual(expect.arrayContaining(['execa', 'pino', '@route-controller/backend-nft']));
    expect([...KUBERNETES, 'prom-client'].filter((name) => packages.has(name))).toEqual([]);
  });

  it('`run` serving /metrics (the default loopback address) loads prom-client only once scraped, and no Kubernetes client', async () => {
    const agent = startAgent(ns, { SERVICE_CIDRS, METRICS_LISTEN_ADDRESS: '127.0.0.1:9772', ...LOG_LOADS_ENV });
    try {
      await agent.waitForMessage(ENFORCED, 15_000);
      await agent.waitForMessage('serving metrics', 15_000);
      // Listening costs node:http alone: prom-client and Node's process metrics wait for a scrape.
      expect(loadedPackages(agent.stderr.join('')).has('prom-client')).toBe(false);
      const text = (await httpGet(ns, 'http://127.0.0.1:9772/metrics')).body;
      expect(text).toContain('route_controller_ready 1');
      expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
    } finally {
      await agent.stop('SIGTERM');
    }
    const packages = loadedPackages(agent.stderr.join(''));
    expect(packages.has('prom-client')).toBe(true);
    expect(KUBERNETES.filter((name) => packages.has(name))).toEqual([]);
  });

  for (const command of [
    ['probe', '--json'],
    ['plan', '--json'],
    ['status', '--json'],
  ]) {
    it(`\`${command.join(' ')}\` loads neither the Kubernetes client nor prom-client`, async () => {
      const result = await agentCli(ns, command, { SERVICE_CIDRS, ...LOG_LOADS_ENV });
      expect(result.exitCode, result.stderr).toBe(0);
      expect(sawBundle(result.stderr), 'the load hook saw no bundle file').toBe(true);
      const packages = loadedPackages(result.stderr);
      expect([...KUBERNETES, 'prom-client'].filter((name) => packages.has(name))).toEqual([]);
    });
  }
});
