import { desiredState, parseCidrList } from '@route-controller/core';
import { MemoryBackend, MemoryKernel } from '@route-controller/core/testing';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import type { Logger } from '../src/observability/logger.js';
import { AgentMetrics } from '../src/observability/metrics.js';
import type { PodNames, StaleEventSink } from '../src/stale/kubernetes-features.js';
import { StaleReporter } from '../src/stale/stale-reporter.js';
import { scrape } from './metrics-text.js';

const SECOND = 1_000;

function captureLogs(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { logger, lines };
}

/** A reporter over a memory backend with our rules for 10.96.0.0/16, and fakes for pods and Events. */
async function setup(env: Record<string, string> = {}, options: { records?: boolean; recordSize?: number } = {}) {
  const kernel = new MemoryKernel();
  let now = 0;
  kernel.now = () => now;
  const backend = new MemoryBackend(kernel, {
    name: 'nft',
    capabilities: { records: options.records ?? true },
    ...(options.recordSize ? { recordSize: options.recordSize } : {}),
  });
  await backend.apply(desiredState(parseCidrList('10.96.0.0/16').cidrs));
  const asked: string[][] = [];
  const pods: PodNames = {
    names: async (addresses) => {
      asked.push([...addresses]);
      return new Map(addresses.flatMap((a) => (a === '10.244.1.2' ? [[a, 'default/web-7f9c4'] as const] : [])));
    },
  };
  const events: { destination: string; message: string }[] = [];
  const sink: StaleEventSink = { record: async (destination, message) => void events.push({ destination, message }) };
  const { logger, lines } = captureLogs();
  // No spacing between kernel reads: these tests scrape back to back.
  const metrics = new AgentMetrics('test', 0);
  const config = loadConfig({ LISTEN_ADDRESS: 'off', NODE_NAME: 'kind-worker', ...env });
  const reporter = new StaleReporter(config, backend, metrics, pods, sink, logger);
  const hit = (source: string, destination: string, packets: number) =>
    kernel.hit('ipv4', source, destination, packets, packets * 84);
  const read = async (at: number) => {
    now = at;
    await reporter.report(at);
  };
  // The lines about stale ClusterIPs (each names its destination).
  const said = () =>
    lines.filter((line) => line.component === 'stale' && line.destination).map((line) => String(line.msg));
  return { backend, reporter, metrics, hit, read, said, lines, asked, events };
}

describe('StaleReporter', () => {
  it('logs each new pair once, naming the pod behind its source, then each destination at most once a minute', async () => {
    const { hit, read, said, asked, lines } = await setup();
    hit('10.244.1.2', '10.96.5.5', 3);
    hit('10.244.1.3', '10.96.5.5', 2);
    hit('10.244.1.2', '10.96.0.99', 1);
    await read(0);
    expect(said()).toEqual([
      'stale ClusterIP 10.96.5.5 dialled by default/web-7f9c4 (10.244.1.2) (3 packets since it was first recorded): no Service owns this address',
      'stale ClusterIP 10.96.5.5 dialled by 10.244.1.3 (2 packets since it was first recorded): no Service owns this address',
      'stale ClusterIP 10.96.0.99 dialled by default/web-7f9c4 (10.244.1.2) (1 packet since it was first recorded): no Service owns this address',
    ]);
    // Structured too: the pod on the source, for log queries.
    expect(lines.find((line) => line.destination === '10.96.5.5')).toMatchObject({
      level: 40,
      sources: [{ address: '10.244.1.2', packets: 3, pod: 'default/web-7f9c4' }],
      notice: 'new-pair',
    });
    expect(asked).toEqual([['10.244.1.2', '10.244.1.3']]);
    hit('10.244.1.2', '10.96.5.5', 10);
    await read(30 * SECOND);
    expect(said()).toHaveLength(3);
    // Nothing new to say: the pods are not looked up.
    expect(asked).toHaveLength(1);
    hit('10.244.1.2', '10.96.5.5', 5);
    await read(60 * SECOND);
    expect(said().slice(3)).toEqual([
      'stale ClusterIP 10.96.5.5 dialled by default/web-7f9c4 (10.244.1.2) (15 packets in the last minute): no Service owns this address',
    ]);
  });

  it('keeps the stale-destinations gauge from its reads, never reading the records at scrape time', async () => {
    const { backend, metrics, hit, read } = await setup();
    const records = backend.records.bind(backend);
    let reads = 0;
    backend.records = () => {
      reads += 1;
      return records();
    };
    expect(await scrape(metrics, 'route_controller_stale_destinations', 'family="ipv4"')).toBeUndefined();
    hit('10.244.1.2', '10.96.5.5', 3);
    hit('10.244.1.3', '10.96.5.5', 3);
    hit('10.244.1.2', '10.96.0.99', 3);
    await read(0);
    expect(reads).toBe(1);
    for (let round = 0; round < 3; round += 1) {
      expect(await scrape(metrics, 'route_controller_stale_destinations', 'family="ipv4"')).toBe(2);
      expect(await scrape(metrics, 'route_controller_stale_destinations', 'family="ipv6"')).toBe(0);
    }
    expect(reads).toBe(1);
  });

  it('creates one Event per destination per 10 minutes, with the log line as its message', async () => {
    const { hit, read, events } = await setup({ STALE_CLUSTERIP_EVENTS: 'true' });
    hit('10.244.1.2', '10.96.5.5', 3);
    hit('10.244.1.3', '10.96.5.5', 1);
    await read(0);
    expect(events).toEqual([
      {
        destination: '10.96.5.5',
        message:
          'stale ClusterIP 10.96.5.5 dialled by default/web-7f9c4 (10.244.1.2) (3 packets since it was first recorded): no Service owns this address',
      },
    ]);
    for (const at of [60, 120, 540]) {
      hit('10.244.1.2', '10.96.5.5', 1);
      await read(at * SECOND);
    }
    expect(events).toHaveLength(1);
    hit('10.244.1.2', '10.96.5.5', 1);
    await read(600 * SECOND);
    expect(events).toHaveLength(2);
  });

  it('creates no Events unless asked to, nor without the Kubernetes API', async () => {
    for (const env of [{}, { SERVICE_CIDRS: '10.96.0.0/16', STALE_CLUSTERIP_EVENTS: 'false' }]) {
      const { hit, read, events } = await setup(env);
      hit('10.244.1.2', '10.96.5.5', 3);
      await read(0);
      expect(events).toEqual([]);
    }
    const { reporter, lines } = await setup({ STALE_CLUSTERIP_EVENTS: 'true', NODE_NAME: '' });
    reporter.start();
    await reporter.stop();
    expect(lines.map((line) => line.msg)).toContainEqual(
      'STALE_CLUSTERIP_EVENTS=true, but NODE_NAME is not set (the downward API gives it in a pod): no StaleClusterIP Events are created',
    );
  });

  it('says once that a record set is full, and again only after it had room', async () => {
    const { hit, read, lines } = await setup({}, { recordSize: 2 });
    const full = () => lines.filter((line) => String(line.msg).includes('record set is full')).map((line) => line.msg);
    for (const n of [1, 2, 3]) hit('10.244.1.2', `10.96.0.${n}`, 1);
    await read(0);
    await read(30 * SECOND);
    expect(full()).toEqual([
      'the ipv4 record set is full (2 pairs): pairs seen from now on are not recorded until older ones expire (10m after their last packet); every packet is still dropped and counted',
    ]);
    await read(630 * SECOND); // all expired
    for (const n of [4, 5]) hit('10.244.1.2', `10.96.0.${n}`, 1);
    await read(660 * SECOND);
    expect(full()).toHaveLength(2);
  });

  it('with a backend that keeps no records: says so once, and never reads', async () => {
    const { reporter, backend, metrics, lines } = await setup({}, { records: false });
    backend.records = () => Promise.reject(new Error('must not be read'));
    reporter.start();
    await reporter.report(0);
    await reporter.stop();
    expect(lines.map((line) => line.msg)).toContainEqual(
      expect.stringMatching(
        /^nft keeps no record of who dials stale ClusterIPs here: it needs nftables 1\.0\.6 or newer/,
      ),
    );
    expect((await metrics.render()).text).not.toMatch(/^route_controller_stale_destinations/m);
  });

  it('survives a failed read: no line, no throw, the next read works', async () => {
    const { backend, hit, read, said, lines } = await setup();
    const records = backend.records.bind(backend);
    backend.records = () => Promise.reject(new Error('nft -j list table failed'));
    hit('10.244.1.2', '10.96.5.5', 3);
    await read(0);
    expect(said()).toEqual([]);
    expect(lines.map((line) => line.msg)).toContain('cannot read the hit records: nft -j list table failed');
    backend.records = records;
    await read(30 * SECOND);
    expect(said()).toHaveLength(1);
  });
});
