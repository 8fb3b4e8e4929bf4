import { writeFile } from 'node:fs/promises';
import { it } from 'vitest';
import { describeKernel } from '../src/prerequisites.js';
import { type ApplyCostRow, measureApplyCost } from './apply-cost.js';
import { type ForwardingRow, measureForwarding } from './forwarding.js';
import { type IdleResult, measureIdle } from './idle.js';
import { type KubernetesLatencyResult, measureKubernetesLatency } from './kubernetes-latency.js';
import { describeMachine } from './machine.js';
import { BACKENDS, measureStartup, type StartupResult } from './startup.js';
import { ms } from './stats.js';

/**
 * `pnpm bench`: every figure is a median over repeated runs, next to its floor measured in the
 * same run, and the whole table is written to bench/RESULTS.md. Nothing here asserts on speed.
 */
const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 30);

describeKernel('pnpm bench', () => {
  it('measures and writes bench/RESULTS.md', async () => {
    const started = new Date();
    const machine = await describeMachine();
    const sections: string[] = [];

    const startup: StartupResult[] = [];
    for (const backend of BACKENDS) startup.push(await measureStartup(backend, RUNS));
    sections.push(startupTable(startup));

    const apply: ApplyCostRow[] = [];
    for (const backend of BACKENDS)
      apply.push(...(await measureApplyCost(backend, [1, 10, 100, 1000], Math.max(3, RUNS / 2))));
    sections.push(applyTable(apply));

    sections.push(latencyTable(await measureKubernetesLatency({ cycles: Math.max(10, RUNS * 2) })));

    const forwarding = await measureForwarding(
      [
        { rules: 'none', cidrs: 0 },
        { rules: 'nft', cidrs: 1 },
        { rules: 'nft', cidrs: 256 },
        { rules: 'iptables-nft', cidrs: 1 },
        { rules: 'iptables-nft', cidrs: 256 },
        { rules: 'iptables-legacy', cidrs: 1 },
        { rules: 'iptables-legacy', cidrs: 256 },
      ],
      2,
      5,
    );
    sections.push(forwardingTable(forwarding));

    sections.push(idleTable(await measureIdle(IDLE_SECONDS)));

    const report = [
      '# route-controller benchmark results',
      '',
      `Produced by \`pnpm bench\` on ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC, on:`,
      '',
      machine,
      '',
      `Medians over ${RUNS} runs unless stated; each figure sits next to its floor measured in the same run.`,
      '',
      ...sections,
    ].join('\n');
    console.log(report);
    await writeFile(new URL('../../bench/RESULTS.md', import.meta.url), `${report}\n`);
  });
});

function startupTable(rows: readonly StartupResult[]): string {
  return [
    '## Start to enforcement',
    '',
    'From spawning `route-controller run` to its "rules applied" log line (written once the kernel holds the rules), next to the floor: `node -e 0` plus one raw write of the same rules (`nft -f`, or the `iptables-restore` transactions), all started through `ip netns exec` in the same namespace. Target for nft: at most 3× the floor.',
    '',
    '| backend | agent (median / p90) | node -e 0 | raw write | floor | agent ÷ floor |',
    '|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.backend} | ${ms(r.agent.median)} / ${ms(r.agent.p90)} | ${ms(r.node.median)} | ${ms(r.raw.median)} | ${ms(r.floor)} | ${r.ratio.toFixed(2)}× |`,
    ),
    '',
  ].join('\n');
}

function applyTable(rows: readonly ApplyCostRow[]): string {
  return [
    '## Apply cost as the CIDR count grows',
    '',
    'One apply onto a node without our rules (reads + write transactions), then the resync that follows (same state again: must write nothing).',
    '',
    '| backend | CIDRs | apply | commands (writes) | no-op resync | commands (writes) |',
    '|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.backend} | ${r.cidrs} | ${ms(r.applyMs)} | ${r.commands} (${r.writes}) | ${ms(r.noopMs)} | ${r.noopCommands} (${r.noopWrites}) |`,
    ),
    '',
  ].join('\n');
}

function latencyTable(result: KubernetesLatencyResult): string {
  return [
    '## Reconcile latency from a ServiceCIDR event to the kernel',
    '',
    `The agent (${result.backend} backend, no SERVICE_CIDRS) watching the test API server; each sample runs from the server emitting the event to the agent's "rules applied" line, checked against the kernel. Target: median under 200 ms.`,
    '',
    '| event | samples | median | p90 | max |',
    '|---|---|---|---|---|',
    `| ServiceCIDR added | ${result.add.runs} | ${ms(result.add.median)} | ${ms(result.add.p90)} | ${ms(result.add.max)} |`,
    `| ServiceCIDR removed | ${result.remove.runs} | ${ms(result.remove.median)} | ${ms(result.remove.p90)} | ${ms(result.remove.max)} |`,
    `| all | ${result.runs} | ${ms(result.median)} | ${ms(result.p90)} | ${ms(result.max)} |`,
    '',
  ].join('\n');
}

function forwardingTable(rows: readonly ForwardingRow[]): string {
  return [
    '## Forwarding cost in the data path',
    '',
    'UDP packets (64-byte payloads, iperf3 -b 0, 2 s runs, median of 5 interleaved rounds) delivered pod → server through the lab node, whose forward hook checks every packet against our CIDRs (none match). "none" is the floor: no rules at all.',
    '',
    '| rules | CIDRs | packets/s | vs no rules |',
    '|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.rules} | ${r.cidrs} | ${Math.round(r.pps).toLocaleString('en-US')} | ${(r.relative * 100).toFixed(0)}% |`,
    ),
    '',
  ].join('\n');
}

function idleTable(result: IdleResult): string {
  return [
    '## Idle cost of `run`',
    '',
    `The agent with the nft backend, default 30 s resync and the endpoint on (scraped once), left alone for ${result.seconds} s. Target: at most 100 MB resident.`,
    '',
    '| resident memory | peak resident | CPU over the period |',
    '|---|---|---|',
    `| ${result.rssMb.toFixed(1)} MB | ${result.peakRssMb.toFixed(1)} MB | ${result.cpuPercent.toFixed(2)}% of one core |`,
    '',
  ].join('\n');
}
