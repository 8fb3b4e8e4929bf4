import { DiscoveryChain, parseCidrList, type ServiceCidrSource, type SourceReading } from '@route-controller/core';
import { MemoryBackend, MemoryKernel } from '@route-controller/core/testing';
import { pino } from 'pino';
import { loadConfig } from '../src/config/config.js';
import type { NodeNetworkReader } from '../src/node/node-network.js';
import type { Logger } from '../src/observability/logger.js';
import { AgentMetrics } from '../src/observability/metrics.js';
import { type ReconcileOutcome, Reconciler } from '../src/reconcile/reconciler.js';

/** A source whose answer the test sets, and which notifies like a live source. */
export class ScriptedSource implements ServiceCidrSource {
  readonly name = 'scripted';
  reading: SourceReading = { kind: 'none', detail: 'nothing yet' };
  readonly listeners = new Set<() => void>();
  reads = 0;
  set(text: string): void {
    this.reading = { kind: 'cidrs', cidrs: parseCidrList(text).cidrs, detail: text };
    for (const listener of this.listeners) listener();
  }
  async read(): Promise<SourceReading> {
    this.reads += 1;
    return this.reading;
  }
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  async close(): Promise<void> {}
}

export const network: NodeNetworkReader = {
  read: async () => ({ addresses: [{ interface: 'eth0', address: '172.18.0.2' }], gateways: ['172.18.0.1'] }),
};

/** JSON log lines, as the agent writes them, kept for assertions. */
export function captureLogs(): { logger: Logger; lines: Record<string, unknown>[]; raw: string[] } {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write: (line: string) => {
        raw.push(line);
        lines.push(JSON.parse(line));
      },
    },
  );
  return { logger, lines, raw };
}

/** A reconciler over a memory kernel, with its outcomes, logs and metrics at hand. */
export function setup(resync = '30s', kernel = new MemoryKernel(), backend = new MemoryBackend(kernel)) {
  const source = new ScriptedSource();
  // No spacing between kernel reads: these tests scrape back to back, some under fake timers.
  const metrics = new AgentMetrics('test', 0);
  const config = loadConfig({ RESYNC_INTERVAL: resync, LISTEN_ADDRESS: 'off' });
  const { logger, lines: logs, raw } = captureLogs();
  // Date.now: vitest's fake timers move it, so tests step the clock with the timers.
  const clock = () => Date.now();
  const reconciler = new Reconciler(config, backend, new DiscoveryChain([source]), network, metrics, logger, clock);
  const outcomes: ReconcileOutcome[] = [];
  reconciler.onOutcome((o) => outcomes.push(o));
  const kernelCidrs = () => [...(kernel.objects.get('route-controller/set/ipv4')?.elements ?? [])];
  const infos = () => logs.filter((line) => line.level === 30).map((line) => String(line.msg));
  return { kernel, backend, source, metrics, reconciler, outcomes, kernelCidrs, logs, raw, infos, config, logger };
}
