import type { AgentMetrics } from '../src/observability/metrics.js';

/** One sample of the Prometheus text exposition: `sample(text, 'name', 'family="ipv4"')`; undefined when absent. */
export function sample(text: string, name: string, labels = ''): number | undefined {
  const prefix = `${name}${labels ? `{${labels}}` : ''} `;
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(prefix.length));
}

/** Renders /metrics as a scrape does and reads one sample of it. */
export async function scrape(metrics: AgentMetrics, name: string, labels = ''): Promise<number | undefined> {
  return sample((await metrics.render()).text, name, labels);
}
