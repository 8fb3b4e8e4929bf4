import { desiredState, parseCidrList } from '@route-controller/core';
import { MemoryBackend, MemoryKernel } from '@route-controller/core/testing';
import { describe, expect, it, vi } from 'vitest';
import { AgentMetrics, KERNEL_READ_INTERVAL_MS } from '../src/observability/metrics.js';
import { sample } from './metrics-text.js';

async function installed() {
  const kernel = new MemoryKernel();
  const backend = new MemoryBackend(kernel);
  await backend.apply(desiredState(parseCidrList('10.96.0.0/16,fd00:10:96::/112').cidrs));
  kernel.countBlocked('ipv4', 31, 2604);
  return { kernel, backend };
}

describe('AgentMetrics', () => {
  it('exposes the kernel drop counters as Prometheus counters named *_total', async () => {
    const { backend } = await installed();
    const metrics = new AgentMetrics('test');
    metrics.backendChosen(backend);
    const { text } = await metrics.render();
    expect(text).toContain('# TYPE route_controller_blocked_packets_total counter');
    expect(text).toContain('# TYPE route_controller_blocked_bytes_total counter');
    expect(text).toContain('route_controller_blocked_packets_total{family="ipv4"} 31');
    expect(text).toContain('route_controller_blocked_bytes_total{family="ipv4"} 2604');
    expect(text).toContain('route_controller_blocked_packets_total{family="ipv6"} 0');
    expect(text).not.toMatch(/^route_controller_blocked_packets\{/m);
  });

  it('reads the kernel once for concurrent scrapes, and a scrape that comes later waits for a fresh read', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    try {
      const { kernel, backend } = await installed();
      const observe = vi.spyOn(backend, 'observe');
      const metrics = new AgentMetrics('test');
      metrics.backendChosen(backend);
      await Promise.all(Array.from({ length: 20 }, () => metrics.render()));
      expect(observe).toHaveBeenCalledTimes(1);
      // Half a second later, 41 more packets: the next scrape must not answer the old read.
      await vi.advanceTimersByTimeAsync(500);
      kernel.countBlocked('ipv4', 41, 3444);
      const later = metrics.render();
      await vi.advanceTimersByTimeAsync(KERNEL_READ_INTERVAL_MS / 2 - 1);
      expect(observe).toHaveBeenCalledTimes(1);
      await vi.advanceTimersByTimeAsync(1);
      expect(observe).toHaveBeenCalledTimes(2);
      expect(sample((await later).text, 'route_controller_blocked_packets_total', 'family="ipv4"')).toBe(72);
    } finally {
      vi.useRealTimers();
    }
  });

  it('answers the kernel counter itself to each of 8 concurrent scrapes, not 8 times it', async () => {
    const { kernel, backend } = await installed();
    kernel.countBlocked('ipv4', 2004 - 31, 0);
    // The read stays open until every scrape is waiting on it.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const observe = backend.observe.bind(backend);
    backend.observe = async () => {
      await gate;
      return observe();
    };
    const metrics = new AgentMetrics('test', 0);
    metrics.backendChosen(backend);
    for (let round = 0; round < 5; round += 1) {
      const scrapes = Array.from({ length: 8 }, () => metrics.render());
      await new Promise((resolve) => setTimeout(resolve, 0));
      release();
      for (const { text } of await Promise.all(scrapes)) {
        expect(sample(text, 'route_controller_blocked_packets_total', 'family="ipv4"')).toBe(2004);
      }
    }
  });

  it('under overlapping scrapes, each answer is the kernel value at an instant of its scrape, and never goes down', async () => {
    const { kernel, backend } = await installed();
    // Each read takes a few turns of the event loop, and packets keep coming meanwhile.
    const observe = backend.observe.bind(backend);
    backend.observe = async () => {
      for (let turn = 0; turn < 3; turn += 1) await new Promise((resolve) => setTimeout(resolve, 0));
      return observe();
    };
    const counter = () => Number(kernel.objects.get('route-controller/rule/ipv4')?.packets);
    const traffic = setInterval(() => kernel.countBlocked('ipv4', 7, 588), 0);
    const metrics = new AgentMetrics('test', 0);
    metrics.backendChosen(backend);
    const answers: { from: number; answer: number; to: number }[] = [];
    try {
      const scrape = async () => {
        const from = counter();
        const { text } = await metrics.render();
        answers.push({
          from,
          answer: sample(text, 'route_controller_blocked_packets_total', 'family="ipv4"') ?? -1,
          to: counter(),
        });
      };
      // 12 scrapers, each scraping 5 times, started at staggered moments: scrapes overlap every way.
      await Promise.all(
        Array.from({ length: 12 }, async (_, scraper) => {
          for (let turn = 0; turn < scraper % 3; turn += 1) await new Promise((resolve) => setTimeout(resolve, 0));
          for (let round = 0; round < 5; round += 1) await scrape();
        }),
      );
    } finally {
      clearInterval(traffic);
    }
    expect(answers).toHaveLength(60);
    for (const { from, answer, to } of answers) {
      expect(answer).toBeGreaterThanOrEqual(from);
      expect(answer).toBeLessThanOrEqual(to);
    }
    // In the order the scrapes finished: a counter that went down would read as a reset.
    for (let i = 1; i < answers.length; i += 1) {
      expect(answers[i]?.answer).toBeGreaterThanOrEqual(answers[i - 1]?.answer ?? 0);
    }
  });

  it('shows each Kubernetes connection by source, the answering source, and an unexpected error as such', async () => {
    const metrics = new AgentMetrics('test', 0);
    const { text: before } = await metrics.render();
    // Nothing about the Kubernetes API before a source is loaded (SERVICE_CIDRS set).
    expect(before).not.toMatch(/^route_controller_kubernetes_api_state\{/m);
    let servicecidr = 'synced';
    metrics.kubernetesSource('servicecidr', () => [{ source: 'servicecidr', state: servicecidr, objects: 0 }]);
    metrics.kubernetesSource('node-args', () => [
      { source: 'node-args', state: 'synced', objects: 1 },
      { source: 'node-args-servers', state: 'forbidden', objects: 0 },
    ]);
    metrics.cidrs('kubeadm', parseCidrList('10.96.0.0/16').cidrs);
    let { text } = await metrics.render();
    expect(text).toContain('route_controller_cidr_source_info{source="kubeadm"} 1');
    expect(text).toContain('route_controller_kubernetes_api_state{source="servicecidr",state="synced"} 1');
    expect(text).toContain('route_controller_kubernetes_api_state{source="node-args-servers",state="forbidden"} 1');
    expect(text).toContain('route_controller_kubernetes_servicecidr_objects 0');
    servicecidr = 'error';
    ({ text } = await metrics.render());
    expect(text).toContain('route_controller_kubernetes_api_state{source="servicecidr",state="error"} 1');
    expect(text).toContain('route_controller_kubernetes_api_state{source="servicecidr",state="synced"} 0');
  });
});
