import { desiredState, parseCidrList } from '@route-controller/core';
import { MemoryBackend, MemoryKernel } from '@route-controller/core/testing';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import type { Logger } from '../src/observability/logger.js';
import { AgentMetrics } from '../src/observability/metrics.js';
import type { PodNames, StaleEvent, StaleEventSink } from '../src/stale/kubernetes-features.js';
import { StaleReporter } from '../src/stale/stale-reporter.js';
import { scrape } from './metrics-text.js';

const SECOND = 1_000;

/** The reporter's lines, each stamped with the test's clock. */
function captureLogs(clock: () => number): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'debug', timestamp: () => `,"time":${clock()}` },
    { write: (line: string) => lines.push(JSON.parse(line)) },
  );
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
  const events: StaleEvent[] = [];
  const sink: StaleEventSink = { record: async (event) => void events.push(event) };
  const { logger, lines } = captureLogs(() => now);
  // No spacing between kernel reads: these tests scrape back to back, some under fake timers.
  const metrics = new AgentMetrics('test', 0);
  const config = loadConfig({ LISTEN_ADDRESS: 'off', NODE_NAME: 'kind-worker', ...env });
  const reporter = new StaleReporter(config, backend, metrics, pods, sink, logger);
  const hit = (source: string, destination: string, packets: number) =>
    kernel.hit('ipv4', source, destination, packets, packets * 84);
  const read = async (at: number) => {
    now = at;
    await reporter.report(at);
  };
  // The lines about stale ClusterIPs, in short: "destination <- who: packets (window)".
  const dialled = () => lines.filter((line) => line.msg === 'stale ClusterIP dialled');
  const said = () =>
    dialled().map((line) => {
      const who =
        line.notice === 'new-pair'
          ? `${line.source}${line.pod ? ` (${line.pod})` : ''}`
          : (line.sources as { address: string; pod?: string }[])
              .map((source) => `${source.address}${source.pod ? ` (${source.pod})` : ''}`)
              .join(', ');
      const window = line.windowSeconds === undefined ? 'since recorded' : `in ${line.windowSeconds}s`;
      return `${line.destination} <- ${who}: ${line.packets} ${window}`;
    });
  const summaries = () => lines.filter((line) => line.msg === 'more stale ClusterIPs dialled than logged');
  return { backend, kernel, reporter, metrics, hit, read, said, dialled, summaries, lines, asked, events };
}

describe('StaleReporter', () => {
  it('logs each new pair once, naming the pod behind its source, then each destination at most once a minute', async () => {
    const { hit, read, said, asked, dialled } = await setup();
    hit('10.244.1.2', '10.96.5.5', 3);
    hit('10.244.1.3', '10.96.5.5', 2);
    hit('10.244.1.2', '10.96.0.99', 1);
    await read(0);
    expect(said()).toEqual([
      '10.96.5.5 <- 10.244.1.2 (default/web-7f9c4): 3 since recorded',
      '10.96.5.5 <- 10.244.1.3: 2 since recorded',
      '10.96.0.99 <- 10.244.1.2 (default/web-7f9c4): 1 since recorded',
    ]);
    // A constant message, the values in fields.
    expect(dialled()[0]).toMatchObject({
      level: 40,
      component: 'stale',
      destination: '10.96.5.5',
      source: '10.244.1.2',
      pod: 'default/web-7f9c4',
      packets: 3,
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
    expect(said().slice(3)).toEqual(['10.96.5.5 <- 10.244.1.2 (default/web-7f9c4): 15 in 60s']);
  });

  it('a pod sweeping 2,000 stale ClusterIPs: 10 pair lines and one summary pointing to status, the gauge counts all', async () => {
    const { hit, read, said, summaries, metrics, asked } = await setup();
    await read(0);
    for (let n = 0; n < 2_000; n += 1) hit('10.244.1.2', `10.96.${Math.floor(n / 250)}.${n % 250}`, 1 + (n % 7));
    await read(30 * SECOND);
    expect(said()).toHaveLength(10);
    // The most packets first.
    expect(said().every((line) => line.endsWith(': 7 in 30s'))).toBe(true);
    expect(summaries()).toEqual([
      expect.objectContaining({
        level: 40,
        pairs: 1_990,
        destinations: 1_990,
        see: 'route-controller status',
      }),
    ]);
    expect(await scrape(metrics, 'route_controller_stale_destinations', 'family="ipv4"')).toBe(2_000);
    // Only the sources of the lines are looked up.
    expect(asked).toEqual([['10.244.1.2']]);
  });

  it('a sweep that goes on: at most one line a minute per destination, about 60 a minute in all', async () => {
    const { hit, read, dialled, summaries, lines } = await setup({ RESYNC_INTERVAL: '1s' }, { recordSize: 10_000 });
    await read(0);
    const perDestination = new Map<string, number[]>();
    // Two minutes of reads every second: 50 destinations dialled between every two reads, and 20 new
    // sources each time (new pairs are said at once): far more than the budget lets through.
    let source = 0;
    for (let second = 1; second <= 120; second += 1) {
      for (let n = 0; n < 50; n += 1) hit('10.244.1.2', `10.96.0.${n}`, 1);
      for (let n = 0; n < 20; n += 1, source += 1)
        hit(`10.244.${10 + Math.floor(source / 250)}.${source % 250}`, '10.96.1.1', 1);
      await read(second * SECOND);
    }
    const stale = lines.filter((line) => line.component === 'stale');
    expect(stale).toHaveLength(dialled().length + summaries().length);
    // Every minute of it, summaries included: the budget is 60 a minute plus one read's burst.
    for (let minute = 0; minute < 2; minute += 1) {
      const inMinute = stale.filter((line) => Math.floor(Number(line.time) / 60_000) === minute);
      expect(inMinute.length, `minute ${minute}`).toBeLessThanOrEqual(60 + 11);
    }
    for (const line of dialled()) {
      const at = perDestination.get(String(line.destination)) ?? [];
      at.push(Number(line.time));
      perDestination.set(String(line.destination), at);
    }
    for (const [destination, times] of perDestination) {
      // The first line of a pair is at once; after that, a minute apart at least.
      for (let i = 2; i < times.length; i += 1) {
        expect((times[i] ?? 0) - (times[i - 1] ?? 0), destination).toBeGreaterThanOrEqual(60 * SECOND);
      }
    }
  }, 30_000); // two minutes of reads, each a whole read of the memory kernel's records

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

  it('one Event per destination, its count bumped at most every 10 minutes, with a message naming the pod', async () => {
    const { hit, read, events } = await setup({ STALE_CLUSTERIP_EVENTS: 'true' });
    hit('10.244.1.2', '10.96.5.5', 3);
    hit('10.244.1.3', '10.96.5.5', 1);
    await read(0);
    expect(events).toEqual([
      {
        destination: '10.96.5.5',
        count: 1,
        message:
          'stale ClusterIP 10.96.5.5 dialled by default/web-7f9c4 (10.244.1.2), 10.244.1.3 (4 packets since it was first recorded): no Service owns this address',
      },
    ]);
    for (const at of [60, 120, 540]) {
      hit('10.244.1.2', '10.96.5.5', 1);
      await read(at * SECOND);
    }
    expect(events).toHaveLength(1);
    hit('10.244.1.2', '10.96.5.5', 1);
    await read(600 * SECOND);
    // Every minute it was dialled counts: the first read and the four since.
    expect(events.slice(1)).toEqual([expect.objectContaining({ destination: '10.96.5.5', count: 5 })]);
  });

  it('Events through a per-node token bucket: a burst of 25, then one per 5 minutes, whatever the number of destinations', async () => {
    const { hit, read, events } = await setup({ STALE_CLUSTERIP_EVENTS: 'true' });
    await read(0);
    for (let n = 0; n < 2_000; n += 1) hit('10.244.1.2', `10.96.${Math.floor(n / 250)}.${n % 250}`, 1);
    await read(30 * SECOND);
    expect(events).toHaveLength(25);
    expect(new Set(events.map((event) => event.destination)).size).toBe(25);
    // Thirty minutes of 100 of them dialled on, read every 30 s: six more.
    for (let at = 60; at <= 30 * 60; at += 30) {
      for (let n = 0; n < 100; n += 1) hit('10.244.1.2', `10.96.0.${n}`, 1);
      await read(at * SECOND);
    }
    expect(events.length).toBeGreaterThanOrEqual(25 + 5);
    expect(events.length).toBeLessThanOrEqual(25 + 6);
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
    expect(lines).toContainEqual(
      expect.objectContaining({
        msg: 'no StaleClusterIP Events despite STALE_CLUSTERIP_EVENTS=true',
        reason: 'NODE_NAME is not set (the downward API gives it in a pod)',
      }),
    );
  });

  it('says it is recording once its first read is in, so a pair dialled after that line is news', async () => {
    const { reporter, hit, lines, said } = await setup();
    reporter.start();
    expect(lines.some((line) => line.msg === 'recording who dials stale ClusterIPs')).toBe(false);
    await vi.waitFor(() =>
      expect(lines).toContainEqual(
        expect.objectContaining({ msg: 'recording who dials stale ClusterIPs', podLookup: false, events: false }),
      ),
    );
    hit('10.244.1.3', '10.96.5.5', 2);
    await reporter.report(Date.now());
    await reporter.stop();
    expect(said()).toEqual([expect.stringMatching(/^10\.96\.5\.5 <- 10\.244\.1\.3: 2 in \d+s$/)]);
  });

  it('says once that a record set is full, and again only after it had room', async () => {
    const { hit, read, lines } = await setup({}, { recordSize: 2 });
    const full = () => lines.filter((line) => line.msg === 'stale ClusterIP record set full');
    for (const n of [1, 2, 3]) hit('10.244.1.2', `10.96.0.${n}`, 1);
    await read(0);
    await read(30 * SECOND);
    expect(full()).toEqual([expect.objectContaining({ family: 'ipv4', size: 2, forgetAfter: '10m' })]);
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
    expect(lines).toContainEqual(
      expect.objectContaining({
        msg: 'no record of who dials stale ClusterIPs',
        reason: expect.stringMatching(
          /^nft keeps no record of who dials stale ClusterIPs here: it needs nftables 1\.0\.6/,
        ),
      }),
    );
    expect((await metrics.render()).text).not.toMatch(/^route_controller_stale_destinations/m);
  });

  it('survives a failed read: no line, no throw, the next read works', async () => {
    const { backend, hit, read, said, lines } = await setup();
    const records = backend.records.bind(backend);
    backend.records = () => Promise.reject(new Error('nft -j list table failed'));
    hit('10.244.1.2', '10.96.5.5', 3);
    await read(0);
    await read(1);
    expect(said()).toEqual([]);
    expect(lines.filter((line) => line.msg === 'hit records unreadable')).toEqual([
      expect.objectContaining({ err: expect.objectContaining({ message: 'nft -j list table failed' }) }),
    ]);
    backend.records = records;
    await read(30 * SECOND);
    expect(said()).toHaveLength(1);
  });
});
