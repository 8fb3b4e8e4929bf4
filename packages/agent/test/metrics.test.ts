import { desiredState, parseCidrList } from '@route-controller/core';
import { MemoryBackend, MemoryKernel } from '@route-controller/core/testing';
import { describe, expect, it, vi } from 'vitest';
import { AgentMetrics } from '../src/observability/metrics.js';

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

  it('reads the kernel once for concurrent scrapes, and again only after a second', async () => {
    const { backend } = await installed();
    const observe = vi.spyOn(backend, 'observe');
    let now = 1_000;
    vi.spyOn(performance, 'now').mockImplementation(() => now);
    try {
      const metrics = new AgentMetrics('test');
      metrics.backendChosen(backend);
      await Promise.all(Array.from({ length: 20 }, () => metrics.render()));
      expect(observe).toHaveBeenCalledTimes(1);
      now += 500;
      await metrics.render();
      expect(observe).toHaveBeenCalledTimes(1);
      now += 600;
      await metrics.render();
      expect(observe).toHaveBeenCalledTimes(2);
      expect(metrics.kernelReads).toBe(2);
    } finally {
      vi.restoreAllMocks();
    }
  });

  it('shows each Kubernetes connection by source, the answering source, and an unexpected error as such', async () => {
    const metrics = new AgentMetrics('test');
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
