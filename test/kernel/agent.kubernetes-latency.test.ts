import { expect, it } from 'vitest';
import { describeLatency, measureKubernetesLatency } from '../bench/kubernetes-latency.js';
import { describeKernel } from '../src/prerequisites.js';

/**
 * Keeps the event -> kernel latency benchmark (test/bench/kubernetes-latency.ts) from rotting: a short
 * run in its own lab. It asserts only that every change arrived through the watch, long before the
 * agent's resync (30 s) could have carried it; the latency target is the benchmark's (`pnpm bench`).
 */
const cycles = Number(process.env.KUBERNETES_LATENCY_CYCLES ?? '5');

describeKernel('ServiceCIDR event -> kernel latency', () => {
  it(`follows ${cycles} ServiceCIDR add/remove cycles into the kernel through the watch, each well before a resync`, async () => {
    const result = await measureKubernetesLatency({ cycles });
    console.log(
      `ServiceCIDR event -> kernel (${result.backend}): all ${describeLatency(result)}; add ${describeLatency(result.add)}; remove ${describeLatency(result.remove)}`,
    );
    expect(result.samples).toHaveLength(cycles * 2);
    for (const ms of result.samples) expect(ms).toBeGreaterThanOrEqual(0);
    for (const ms of result.samples) expect(ms).toBeLessThan(10_000);
  });
});
