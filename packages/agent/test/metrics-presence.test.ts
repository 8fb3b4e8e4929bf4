import { describe, expect, it } from 'vitest';
import { AgentMetrics } from '../src/observability/metrics.js';

/** The samples of a rendered exposition: `name{labels}` to value, comments left out. */
function samples(text: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    found.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return found;
}

describe('AgentMetrics: what an operator looks for is there, and what is not in use is absent', () => {
  it("exports Node's process metrics: resident memory, CPU, open file descriptors, start time", async () => {
    const { text } = await new AgentMetrics('test').render();
    const values = samples(text);
    // Real figures of this process, not placeholders.
    expect(values.get('process_resident_memory_bytes')).toBeGreaterThan(1024 * 1024);
    expect(values.get('process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(values.get('process_open_fds')).toBeGreaterThan(0);
    const started = values.get('process_start_time_seconds') ?? 0;
    expect(Math.abs(started - (Date.now() / 1000 - process.uptime()))).toBeLessThan(5);
    expect(text).toContain('# TYPE nodejs_heap_size_used_bytes gauge');
  });

  it('exports no ServiceCIDR object count while the servicecidr source is not loaded (SERVICE_CIDRS set), and the count once it is', async () => {
    const metrics = new AgentMetrics('test');
    const before = samples((await metrics.render()).text);
    expect(before.has('route_controller_kubernetes_servicecidr_objects')).toBe(false);
    // Another source alone does not make it appear either.
    metrics.kubernetesSource('kubeadm', () => [{ source: 'kubeadm', state: 'synced', objects: 1 }]);
    expect(samples((await metrics.render()).text).has('route_controller_kubernetes_servicecidr_objects')).toBe(false);
    metrics.kubernetesSource('servicecidr', () => [{ source: 'servicecidr', state: 'synced', objects: 0 }]);
    expect(samples((await metrics.render()).text).get('route_controller_kubernetes_servicecidr_objects')).toBe(0);
  });

  it('exports the build info with the version', async () => {
    const values = samples((await new AgentMetrics('1.2.3').render()).text);
    expect(values.get('route_controller_build_info{version="1.2.3"}')).toBe(1);
  });
});
