import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NftBackend } from '@route-controller/backend-nft';
import { type AgentProcess, httpGet, Netns } from '@route-controller/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent } from '../src/agent-bin.js';
import { REPO_ROOT } from '../src/helm.js';
import { describeKernel } from '../src/prerequisites.js';

/**
 * The README's metrics table against what a real agent serves, so the two cannot drift: every
 * `route_controller_*` metric the agent declares (its `# TYPE` lines, whether or not it has a sample
 * now) is in the table, and every one in the table is declared; the process metrics the table names
 * have samples. The agent runs with SERVICE_CIDRS, so no discovery source is in use: their metrics
 * are declared, without samples.
 */
const SERVICE_CIDRS = '10.96.0.0/16,fd00:10:96::/112';

/** The metric names in the first column of the README's "## Metrics" table. */
function readmeMetrics(): string[] {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Metrics\n'), readme.indexOf('\n### Reading it\n'));
  return section
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .flatMap((line) => [...(line.split('|')[1] ?? '').matchAll(/`([a-z_]+)(?:\{[^}]*\})?`/g)].map((m) => m[1] ?? ''));
}

describeKernel('the README lists exactly the metrics a real agent exports', () => {
  let ns: Netns;
  let agent: AgentProcess;
  let text: string;

  beforeAll(async () => {
    ns = await Netns.create('metrics-readme');
    agent = startAgent(ns, { SERVICE_CIDRS, FIREWALL_BACKEND: 'nft', METRICS_LISTEN_ADDRESS: '127.0.0.1:9772' });
    await agent.waitForMessage(/rules (applied|already in step)/, 15_000);
    await agent.waitForMessage('serving metrics', 15_000);
    text = (await httpGet(ns, 'http://127.0.0.1:9772/metrics')).body;
  });
  afterAll(async () => {
    await agent?.stop('SIGTERM');
    await new NftBackend({ runner: ns.runner }).cleanup().catch(() => undefined);
    await ns?.delete();
  });

  /** Names declared by `# TYPE` lines. */
  const declared = () => [...text.matchAll(/^# TYPE (\S+) \w+$/gm)].map((m) => m[1] ?? '');
  const sampled = (name: string) => new RegExp(`^${name}(\\{[^}]*\\})? `, 'm').test(text);

  it('every route_controller_* metric the agent declares is in the table, and only those', () => {
    const ours = declared().filter((name) => name.startsWith('route_controller_'));
    expect(ours.length).toBeGreaterThanOrEqual(18);
    const listed = readmeMetrics().filter((name) => name.startsWith('route_controller_'));
    expect([...new Set(listed)].sort()).toEqual([...new Set(ours)].sort());
  });

  it("the process metrics the table names are exported, with samples; Node's nodejs_* too", () => {
    const listed = readmeMetrics().filter((name) => name.startsWith('process_'));
    expect(listed).toEqual(
      expect.arrayContaining(['process_resident_memory_bytes', 'process_cpu_seconds_total', 'process_open_fds']),
    );
    expect(listed).toContain('process_start_time_seconds');
    for (const name of listed) expect(sampled(name), name).toBe(true);
    expect(declared().some((name) => name.startsWith('nodejs_'))).toBe(true);
  });

  it('with SERVICE_CIDRS, the discovery metrics are declared without a sample: absent, not 0', () => {
    for (const name of ['route_controller_kubernetes_servicecidr_objects', 'route_controller_kubernetes_api_state']) {
      expect(declared(), name).toContain(name);
      expect(sampled(name), name).toBe(false);
    }
    expect(text).toContain('route_controller_cidr_source_info{source="env"} 1');
  });
});
