import { readFile, writeFile } from 'node:fs/promises';
import { MAX_CIDRS_PER_FAMILY } from '@route-controller/core';
import { it } from 'vitest';
import { describeKernel } from '../src/prerequisites.js';
import { type ApplyCostRow, measureApplyCost } from './apply-cost.js';
import {
  CHURN_KINDS,
  type ChurnCostRow,
  measureChurnCost,
  measureRepairUnderChurn,
  measureScrapeAnswers,
  measureSweep,
  type RepairUnderChurn,
  type ScrapeAnswers,
  type SweepResult,
} from './bounded.js';
import {
  type ChurnRow,
  EVENT_BACKENDS,
  type MonitorVariantRow,
  measureChurn,
  measureMonitorVariants,
  measureRepairLatency,
  measureScrapes,
  RESYNC,
  type RepairRow,
  type ScrapeResult,
} from './change-events.js';
import { type CliStartResult, measureCliStart } from './cli-start.js';
import { type FleetProfileName, type FleetResult, KUBE_PROXY, measureFleet } from './fleet.js';
import { type ForwardingRow, measureForwarding } from './forwarding.js';
import { type ImageBenchResult, measureImage } from './image.js';
import { type KubernetesLatencyResult, measureKubernetesLatency } from './kubernetes-latency.js';
import { measureKubernetesStart } from './kubernetes-start.js';
import { describeMachine } from './machine.js';
import { type MemoryResult, measureMemory } from './memory.js';
import { BACKENDS, measureStartup, type StartupResult } from './startup.js';
import { ms, summarise } from './stats.js';
import { formatFigure, type Target, verdict } from './targets.js';
import { benefit, measureTricks, minimumRounds, type TrickRow, type TricksResult } from './tricks.js';

/**
 * `pnpm bench`: every figure is a median over repeated runs, next to its floor measured in the
 * same run, and the whole table is written to bench/RESULTS.md. Nothing here asserts on speed.
 */
const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 30);

/** BENCH_IMAGE=0 skips the figures inside the container image (they build it with buildah first). */
const IMAGE = process.env.BENCH_IMAGE !== '0';
/** Rounds of the forwarding section (each runs every configuration for 2 s). */
const FORWARDING_ROUNDS = Number(process.env.BENCH_FORWARDING_ROUNDS ?? 5);
/** CIDR counts of the apply-cost section, both families together: up to the cap, MAX_CIDRS_PER_FAMILY each. */
const APPLY_COUNTS = [1, 2, 16, 2 * MAX_CIDRS_PER_FAMILY];

/** Issue 12's targets: ratios to the floor measured in the same run, and resident memory. */
const NFT_START_TARGET: Target = { atMost: 1.8, unit: '×' };
const IPTABLES_START_TARGET: Target = { atMost: 2.0, unit: '×' };
const startTarget = (label: string): Target =>
  label.startsWith('iptables') ? IPTABLES_START_TARGET : NFT_START_TARGET;
const KUBERNETES_START_TARGET: Target = { atMost: 4, unit: '×' };
const VERSION_TARGET: Target = { atMost: 1.3, unit: '×' };
const MEMORY_TARGETS: Readonly<Record<string, { idle: Target; peak?: Target }>> = {
  SERVICE_CIDRS: { idle: { atMost: 48, unit: ' MiB', digits: 1 } },
  'Kubernetes source': { idle: { atMost: 64, unit: ' MiB', digits: 1 }, peak: { atMost: 80, unit: ' MiB', digits: 1 } },
};

/** The sections, in report order; BENCH_SECTIONS=events,churn runs only those (see below). */
const SECTION_KEYS = [
  'startup',
  'cli',
  'memory',
  'image',
  'apply',
  'kubernetes',
  'forwarding',
  'events',
  'churn',
  'scrapes',
  'bounded',
  'tricks',
  'fleet',
] as const;
type SectionKey = (typeof SECTION_KEYS)[number];
const SELECTED = process.env.BENCH_SECTIONS?.split(',')
  .map((key) => key.trim())
  .filter(Boolean);
const EVENT_RUNS = Number(process.env.BENCH_EVENT_RUNS ?? RUNS);
const CHURN_SECONDS = Number(process.env.BENCH_CHURN_SECONDS ?? 20);
const SCRAPE_SECONDS = Number(process.env.BENCH_SCRAPE_SECONDS ?? 10);
/** The bounded section: seconds per churn kind, minutes of a sweep that goes on, the sweep's size. */
const BOUNDED_SECONDS = Number(process.env.BENCH_BOUNDED_SECONDS ?? 20);
const BOUNDED_MINUTES = Number(process.env.BENCH_BOUNDED_MINUTES ?? 2);
const SWEEP_ADDRESSES = 2_000;
const RESULTS = new URL('../../bench/RESULTS.md', import.meta.url);
/** The fleet: agents, minutes counted per profile (at least 10 for the report), the profiles, the restart's downtime. */
const FLEET_AGENTS = Number(process.env.BENCH_FLEET_AGENTS ?? 50);
const FLEET_MINUTES = Number(process.env.BENCH_FLEET_MINUTES ?? 10);
const FLEET_PROFILES = (process.env.BENCH_FLEET_PROFILES ?? 'servicecidr,k3s-agent,kubeadm')
  .split(',')
  .map((name) => name.trim()) as FleetProfileName[];
const FLEET_DOWN_SECONDS = Number(process.env.BENCH_FLEET_DOWN_SECONDS ?? 10);

describeKernel('pnpm bench', () => {
  it('measures and writes bench/RESULTS.md', async () => {
    for (const key of SELECTED ?? []) {
      if (!(SECTION_KEYS as readonly string[]).includes(key)) {
        throw new Error(`BENCH_SECTIONS: no section "${key}" (sections: ${SECTION_KEYS.join(', ')})`);
      }
    }
    const want = (key: SectionKey) => !SELECTED || SELECTED.includes(key);
    const started = new Date();
    const machine = await describeMachine();
    const sections = new Map<SectionKey, string>();

    if (want('startup')) {
      const startup: StartupResult[] = [];
      for (const backend of BACKENDS) startup.push(await measureStartup(backend, RUNS));
      sections.set('startup', startupTable(startup, await measureKubernetesStart(RUNS)));
    }

    if (want('cli')) sections.set('cli', cliTable(await measureCliStart(RUNS * 2)));

    if (want('memory')) {
      sections.set('memory', memoryTable(await measureMemory({ seconds: IDLE_SECONDS }), process.version));
    }

    if (want('image') && IMAGE) {
      const log = (line: string) => console.log(`[image] ${line}`);
      sections.set('image', imageTable(await measureImage(RUNS, IDLE_SECONDS, log)));
    }

    if (want('apply')) {
      const apply: ApplyCostRow[] = [];
      for (const backend of BACKENDS)
        apply.push(...(await measureApplyCost(backend, APPLY_COUNTS, Math.max(3, RUNS / 2))));
      sections.set('apply', applyTable(apply));
    }

    if (want('kubernetes')) {
      sections.set('kubernetes', latencyTable(await measureKubernetesLatency({ cycles: Math.max(10, RUNS * 2) })));
    }

    if (want('forwarding')) {
      const forwarding = await measureForwarding(
        [
          { rules: 'none', cidrs: 0 },
          // The plain drop, and the default layout that records who hits it (a goto to a record chain).
          { rules: 'nft', cidrs: 1, records: false },
          { rules: 'nft', cidrs: 1, records: true },
          // The most a node can hold: MAX_CIDRS_PER_FAMILY in each family.
          { rules: 'nft', cidrs: 2 * MAX_CIDRS_PER_FAMILY, records: false },
          { rules: 'nft', cidrs: 2 * MAX_CIDRS_PER_FAMILY, records: true },
          { rules: 'iptables-nft', cidrs: 1 },
          { rules: 'iptables-nft', cidrs: 2 * MAX_CIDRS_PER_FAMILY },
          { rules: 'iptables-legacy', cidrs: 1 },
          { rules: 'iptables-legacy', cidrs: 2 * MAX_CIDRS_PER_FAMILY },
        ],
        2,
        FORWARDING_ROUNDS,
      );
      sections.set('forwarding', forwardingTable(forwarding));
    }

    if (want('events')) {
      const rows: RepairRow[] = [];
      for (const backend of EVENT_BACKENDS) rows.push(...(await measureRepairLatency(backend, EVENT_RUNS)));
      sections.set('events', repairTable(rows, EVENT_RUNS));
    }

    if (want('churn')) {
      const rows: ChurnRow[] = [];
      for (const backend of EVENT_BACKENDS) {
        for (const rules of [3, 20]) rows.push(await measureChurn(backend, rules, CHURN_SECONDS));
      }
      sections.set('churn', churnTable(rows, await measureMonitorVariants(20, CHURN_SECONDS / 2)));
    }

    if (want('scrapes')) sections.set('scrapes', scrapeTable(await measureScrapes(SCRAPE_SECONDS)));

    if (want('bounded')) {
      const sweep = await measureSweep(SWEEP_ADDRESSES, BOUNDED_MINUTES);
      const answers = await measureScrapeAnswers(Math.max(5, RUNS), 8);
      const cost = await measureChurnCost(BOUNDED_SECONDS);
      const repairs = await measureRepairUnderChurn(
        Math.max(3, RUNS),
        CHURN_KINDS.filter((kind) => kind.rate > 0 && kind.label !== CHURN_KINDS[1]?.label),
      );
      sections.set('bounded', boundedTable(sweep, answers, cost, repairs));
    }

    if (want('tricks')) sections.set('tricks', tricksTable(await measureTricks(RUNS, Math.min(IDLE_SECONDS, 15))));
    if (want('fleet')) {
      const rows: FleetResult[] = [];
      for (const profile of FLEET_PROFILES) {
        rows.push(
          await measureFleet({
            profile,
            agents: FLEET_AGENTS,
            minutes: FLEET_MINUTES,
            downSeconds: FLEET_DOWN_SECONDS,
            afterRestartSeconds: 60,
            log: (line) => console.log(`[fleet] ${line}`),
          }),
        );
      }
      sections.set('fleet', fleetTable(rows));
    }

    const when = started.toISOString().slice(0, 16).replace('T', ' ');
    const report = SELECTED
      ? merge(await readFile(RESULTS, 'utf8'), sections, when, machine)
      : [
          '# route-controller benchmark results',
          '',
          `Produced by \`pnpm bench\` on ${when} UTC, on:`,
          '',
          machine,
          '',
          `Medians over ${RUNS} runs unless stated; each figure sits next to its floor measured in the same run.`,
          '',
          ...SECTION_KEYS.flatMap((key) => sections.get(key) ?? []),
        ].join('\n');
    console.log(report);
    await writeFile(RESULTS, `${report.trimEnd()}\n`);
  });
});

/**
 * A partial run (BENCH_SECTIONS) replaces only its sections in the existing report, matched by
 * their "## " heading, and adds new ones in report order. Each section it writes says under its
 * heading when, how and on what it was measured, so sections refreshed at different times each
 * keep their own account; the header stays the whole run's.
 */
function merge(existing: string, fresh: ReadonlyMap<SectionKey, string>, when: string, machine: string): string {
  const parts = existing.split(/^(?=## )/m);
  // Reports written before sections carried their own stamp said it once in the header.
  const header = (parts.shift() ?? '')
    .replace(/\n*Sections refreshed by `BENCH_SECTIONS=[^`]*`[^\n]*\n\n?(- .*(\n|$))*/g, '')
    .trimEnd();
  const heading = (text: string) => text.split('\n')[0] ?? '';
  const byHeading = new Map(parts.map((part) => [heading(part), part.trimEnd()]));
  const on = machine
    .split('\n')
    .map((line) => line.replace(/^- /, '').trim())
    .filter(Boolean)
    .join('; ');
  const stamp = `_Refreshed alone by \`BENCH_SECTIONS=${SELECTED?.join(',')}\` on ${when} UTC, medians over ${RUNS} runs unless stated, on: ${on}._`;
  // Existing sections keep their place; sections new to the report follow, in report order.
  for (const key of SECTION_KEYS) {
    const section = fresh.get(key);
    if (!section) continue;
    const [title = '', ...body] = section.trimEnd().split('\n');
    byHeading.set(heading(section), [title, '', stamp, ...body].join('\n'));
  }
  return [header, '', ...[...byHeading.values()].map((section) => `${section}\n`)].join('\n');
}

function startupRow(r: StartupResult, target: Target): string {
  return `| ${r.label} | ${ms(r.agent.median)} / ${ms(r.agent.p90)} | ${ms(r.node.median)} | ${ms(r.raw.median)} | ${ms(r.floor)} | ${formatFigure(r.ratio, target)} | ${verdict(r.ratio, target)} |`;
}

function startupTable(rows: readonly StartupResult[], kubernetes: StartupResult): string {
  return [
    '## Start to enforcement',
    '',
    'From spawning `route-controller run` (the bundled bin, with the V8 flags of its shebang) to its "rules applied" log line (written once the kernel holds the rules), next to the floor: `node -e 0` plus one raw write of the same rules (`nft -f`, or the `iptables-restore` transactions), all started through `ip netns exec` in the same namespace, interleaved round by round. With `SERVICE_CIDRS` and a forced backend; then with no `SERVICE_CIDRS`, the Kubernetes source listing one ServiceCIDR from the test API server.',
    '',
    '| start | agent (median / p90) | node -e 0 | raw write | floor | agent ÷ floor | target |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => startupRow(r, startTarget(r.label))),
    startupRow(kubernetes, KUBERNETES_START_TARGET),
    '',
  ].join('\n');
}

function cliTable(result: CliStartResult): string {
  return [
    '## `route-controller --version`',
    '',
    'The bin run as a program (as a user or the image does), next to `node -e 0`, both spawned directly, interleaved.',
    '',
    '| route-controller --version | node -e 0 | ratio | target |',
    '|---|---|---|---|',
    `| ${ms(result.version.median)} | ${ms(result.node.median)} | ${formatFigure(result.ratio, VERSION_TARGET)} | ${verdict(result.ratio, VERSION_TARGET)} |`,
    '',
  ].join('\n');
}

function memoryRows(rows: readonly MemoryResult[]): string[] {
  return rows.map((r) => {
    const targets = MEMORY_TARGETS[r.label.replace(/ \(.*\)$/, '')];
    const idle = targets ? verdict(r.idleMib, targets.idle) : '';
    const peak = targets?.peak ? verdict(r.peakMib, targets.peak) : '';
    const monitor = r.monitor
      ? `${r.monitor.rssMib.toFixed(1)} MiB, ${r.monitor.cpuPercent.toFixed(2)}% of one core`
      : 'not running';
    return `| ${r.label} | ${r.idleMib.toFixed(1)} MiB | ${idle} | ${r.peakMib.toFixed(1)} MiB | ${peak} | ${r.cpuPercent.toFixed(2)}% of one core | ${monitor} |`;
  });
}

function memoryTable(rows: readonly MemoryResult[], node: string): string {
  return [
    '## Resident memory of `run`',
    '',
    `Node.js ${node}. The agent (nft backend, default 30 s resync, endpoint on and scraped once) left alone for ${rows[0]?.seconds ?? '?'} s after its rules are in place: with \`SERVICE_CIDRS\`, then following one ServiceCIDR of the test API server. Idle is VmRSS at the end, peak is VmHWM. About 40 MiB of it is the node binary and a bare Node process (\`node -e 'setTimeout(() => {}, 1e9)'\`).`,
    '',
    '| configuration | idle | target | peak | target | CPU over the period | its nft monitor child |',
    '|---|---|---|---|---|---|---|',
    ...memoryRows(rows),
    '',
  ].join('\n');
}

function imageTable(result: ImageBenchResult): string {
  return [
    `## Inside the container image (Node ${result.nodeVersion})`,
    '',
    "The image the Dockerfile builds (buildah, the stand-in base of the image test), its root file system run with `chroot` in a network namespace: the image's Node, nft and warmed compile cache. The floor is the image's own `node -e 0` and `nft -f`, started the same way. These figures set the chart's memory request and limit.",
    '',
    '| start | agent (median / p90) | node -e 0 | raw write | floor | agent ÷ floor | target |',
    '|---|---|---|---|---|---|---|',
    ...result.startup.map((r) =>
      startupRow(r, r.label.startsWith('Kubernetes') ? KUBERNETES_START_TARGET : NFT_START_TARGET),
    ),
    '',
    '| configuration | idle | target | peak | target | CPU over the period | its nft monitor child |',
    '|---|---|---|---|---|---|---|',
    ...memoryRows(result.memory),
    '',
  ].join('\n');
}

function applyTable(rows: readonly ApplyCostRow[]): string {
  return [
    '## Apply cost as the CIDR count grows',
    '',
    `One apply onto a node without our rules (reads + write transactions), then the resync that follows (same state again: must write nothing). CIDRs are split between the families, up to ${2 * MAX_CIDRS_PER_FAMILY}: the cap of ${MAX_CIDRS_PER_FAMILY} per family, beyond which desiredState refuses (ERR_RC_TOO_MANY_CIDRS).`,
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

/**
 * Issue 16's target: recording hits must not slow traffic that does not match. A slowdown of the nft
 * rule with records against the plain nft drop, measured in the same rounds; 1.10× is inside this
 * machine's run-to-run noise (about ±15%): the bytecode a non-matching packet runs is the same.
 */
const RECORDS_TARGET: Target = { atMost: 1.1, unit: '×' };

const kpps = (pps: number) => Math.round(pps / 1000).toString();

function forwardingTable(rows: readonly ForwardingRow[]): string {
  const label = (r: ForwardingRow) =>
    r.rules === 'nft' && r.records !== undefined ? `nft, ${r.records ? 'with hit records' : 'plain drop'}` : r.rules;
  const recordsCost = (r: ForwardingRow) => {
    if (r.rules !== 'nft' || r.records !== true) return ' | ';
    const plain = rows.find((p) => p.rules === 'nft' && p.records === false && p.cidrs === r.cidrs);
    if (!plain || r.pps <= 0) return ' | ';
    // Paired by round (the two ran next to each other), then the median: the machine's load moves
    // both of a pair alike, where it moves whole rounds apart.
    const ratios = r.rounds.flatMap((records, round) => {
      const base = plain.rounds[round];
      return base !== undefined && records > 0 ? [base / records] : [];
    });
    const slowdown = summarise(ratios.length > 0 ? ratios : [plain.pps / r.pps]).median;
    return `${formatFigure(slowdown, RECORDS_TARGET)} | ${verdict(slowdown, RECORDS_TARGET)}`;
  };
  return [
    '## Forwarding cost in the data path',
    '',
    `UDP packets (64-byte payloads, iperf3 -b 0, 2 s runs, median of ${FORWARDING_ROUNDS} interleaved rounds, every other one in reverse order) delivered pod → server through the lab node, whose forward hook checks every packet against our CIDRs (none match). "none" is the floor: no rules at all. "with hit records" is what the agent installs (the rule jumps to a chain that records the pair, then drops); "plain drop" is the rule alone (nft older than 1.0.6). For packets that do not match, both run the same bytecode (test/kernel/backend-nft.records.test.ts compares it), so "plain ÷ records", the median of the ratios of runs side by side, should sit at 1× within noise; "rounds min–max" shows how much noise there is.`,
    '',
    '| rules | CIDRs | packets/s | rounds min–max | vs no rules | plain ÷ records | target |',
    '|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${label(r)} | ${r.cidrs} | ${Math.round(r.pps).toLocaleString('en-US')} | ${kpps(r.min)}–${kpps(r.max)}k | ${(r.relative * 100).toFixed(0)}% | ${recordsCost(r)} |`,
    ),
    '',
  ].join('\n');
}

const REPAIR_MEDIAN_TARGET_MS = 100;
const REPAIR_MAX_TARGET_MS = 500;

function repairTable(rows: readonly RepairRow[], runs: number): string {
  return [
    '## Drift repaired from kernel change events',
    '',
    `The agent with RESYNC_INTERVAL=${RESYNC}, so only a kernel change event can repair anything within the measurement. Each sample runs from spawning another tool's command (through \`ip netns exec\`; its own run time counts) to the timestamp of the agent's "drift repaired" line, written once the repairing transaction has returned, and the kernel is checked after each. ${runs} samples per case, the cases interleaved, 1.1 s apart. Target: median ≤ ${REPAIR_MEDIAN_TARGET_MS} ms and max ≤ ${REPAIR_MAX_TARGET_MS} ms. For nft, "FORWARD" is our own base chain on the forward hook (an ACCEPT in another table cannot undo an nft drop).`,
    '',
    '| backend | drift | median | p90 | max | target (median / max) | resync interval | met |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => {
      const met = r.latency.median <= REPAIR_MEDIAN_TARGET_MS && r.latency.max <= REPAIR_MAX_TARGET_MS;
      return `| ${r.backend} | ${r.drift} | ${ms(r.latency.median)} | ${ms(r.latency.p90)} | ${ms(r.latency.max)} | ≤ ${REPAIR_MEDIAN_TARGET_MS} ms / ≤ ${REPAIR_MAX_TARGET_MS} ms | ${RESYNC} | ${met ? 'yes' : 'NO'} |`;
    }),
    '',
  ].join('\n');
}

const CHURN_TARGET_PERCENT = 5;

function churnTable(rows: readonly ChurnRow[], variants: readonly MonitorVariantRow[]): string {
  const pct = (value: number) => `${value.toFixed(2)}%`;
  return [
    '## Cost of foreign churn',
    '',
    `Another process rewrites a foreign nft table (flush it, two chains, a jump and N rules: 2N+4 events per rewrite) ${rows[0] ? Math.round(rows[0].transactions / rows[0].seconds) : 50} times a second for ${rows[0]?.seconds.toFixed(0) ?? 20} s, one \`nft -f\` each, while the agent (RESYNC_INTERVAL=${RESYNC}) follows kernel change events, or, past 100 events a second, polls its own table instead. CPU is % of one core from /proc, for the agent and every child it ran (its \`nft -j monitor ruleset\`, its reads). Target: under ${CHURN_TARGET_PERCENT}%, and no apply (nothing of ours changed).`,
    '',
    '| backend | rules per rewrite | rewrites/s | events made/s | agent + children | target | mode at the end | applies |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => {
      const met = r.percent < CHURN_TARGET_PERCENT && r.applies === 0 ? '' : ' (missed)';
      return `| ${r.backend} | ${r.rules} | ${(r.transactions / r.seconds).toFixed(1)} | ${Math.round(r.eventsPerSecond).toLocaleString('en-US')} | ${pct(r.percent)}${met} | < ${CHURN_TARGET_PERCENT}% | ${r.mode} | ${r.applies} |`;
    }),
    '',
    `The monitor alone under the 20-rule churn, in the variants weighed (a node process reading it as the agent does, test/bench/monitor-reader.mjs; ${variants[0]?.rules ?? 20} rules, the same rate): what following every event would cost. The agent runs the first: text output names objects unquoted, so a substring filter is less safe on it, and \`destroy\` misses an inserted ACCEPT.`,
    '',
    '| monitor | lines/s | reader | monitor child | together |',
    '|---|---|---|---|---|',
    ...variants.map(
      (v) =>
        `| \`nft ${v.args.join(' ')}\` | ${Math.round(v.linesPerSecond).toLocaleString('en-US')} | ${pct(v.nodePercent)} | ${pct(v.monitorPercent)} | ${pct(v.nodePercent + v.monitorPercent)} |`,
    ),
    '',
  ].join('\n');
}

function scrapeTable(result: ScrapeResult): string {
  return [
    '## /metrics scrapes and kernel reads',
    '',
    `One client scrapes /metrics 20 times a second for ${result.seconds.toFixed(0)} s (nft backend, RESYNC_INTERVAL=${RESYNC}, nothing changing); a wrapper first on the agent's PATH logs every nft it runs, so the reads of our table are counted outside the agent. Target: at most one read per second (a scrape waits for a read that starts after it, shared with the scrapes beside it, at most one a second).`,
    '',
    '| scrapes answered | over | reads of our table | reads per second | target |',
    '|---|---|---|---|---|',
    `| ${result.scrapes} | ${result.seconds.toFixed(1)} s | ${result.reads} | ${result.readsPerSecond.toFixed(2)} | ≤ 1 |`,
    '',
  ].join('\n');
}

/** Issue 21's targets. */
const LINES_PER_READ_TARGET = 11;
const LINES_PER_MINUTE_TARGET = 71;
const EVENT_BURST_TARGET = 25;
const BOUNDED_CPU_TARGET_PERCENT = 5;
const CHURN_REPAIR_TARGET_MS = 1_000;
const QUIET_REPAIR_TARGET_MS = 150;

function boundedTable(
  sweep: SweepResult,
  answers: ScrapeAnswers,
  cost: readonly ChurnCostRow[],
  repairs: readonly RepairUnderChurn[],
): string {
  const pct = (value: number) => `${value.toFixed(2)}%`;
  const meets = (ok: boolean) => (ok ? 'meets' : '**misses**');
  const firstLines = sweep.firstRead.lines + sweep.firstRead.summaries;
  const events = sweep.sustained.eventsCreated + sweep.sustained.eventsPatched;
  return [
    '## Bounded: what a pod, a scraper or another firewall tool can make the agent do',
    '',
    `**A pod sweeping ${sweep.addresses.toLocaleString('en-US')} stale ClusterIPs.** In the loop lab, the pod sends one UDP packet to each of ${sweep.addresses.toLocaleString('en-US')} addresses of the Service range; the agent (nft, RESYNC_INTERVAL=${sweep.resync}, pod lookup and Events on, the test API server) records them. Then the sweep goes on, every address again every few seconds, for ${sweep.sustained.minutes} minutes. The anchor: the kernel records every pair, and so do \`status --json\` and the metric; before this issue the log had one line per pair.`,
    '',
    '| figure | measured | anchor | target | |',
    '|---|---|---|---|---|',
    `| pairs recorded (\`status --json\`, \`route_controller_stale_destinations\`) | ${sweep.recorded.toLocaleString('en-US')}, ${sweep.metric.toLocaleString('en-US')} | ${sweep.addresses.toLocaleString('en-US')} sent | all | ${meets(sweep.recorded >= sweep.addresses && sweep.metric >= sweep.addresses)} |`,
    `| stale lines for the sweep (pair lines + summaries) | ${sweep.firstRead.lines} + ${sweep.firstRead.summaries} | ${sweep.addresses.toLocaleString('en-US')} (one per pair) | ≤ ${LINES_PER_READ_TARGET} a read | ${meets(firstLines <= LINES_PER_READ_TARGET * Math.max(1, sweep.firstRead.summaries))} |`,
    `| Events for the sweep (one per destination, created) | ${sweep.firstRead.events} | ${sweep.addresses.toLocaleString('en-US')} (one per destination) | ≤ ${EVENT_BURST_TARGET} (the node's burst) | ${meets(sweep.firstRead.events <= EVENT_BURST_TARGET)} |`,
    `| stale lines a minute while it goes on (mean / most in one minute) | ${sweep.sustained.linesPerMinute.toFixed(1)} / ${sweep.sustained.maxLinesInAMinute} | | ≤ ${LINES_PER_MINUTE_TARGET} | ${meets(sweep.sustained.maxLinesInAMinute <= LINES_PER_MINUTE_TARGET)} |`,
    `| Events written in those ${sweep.sustained.minutes} minutes (created + count bumps) | ${sweep.sustained.eventsCreated} + ${sweep.sustained.eventsPatched} | up to 4,096 per 10 min before | ≤ ${EVENT_BURST_TARGET} + 1 per 5 min | ${meets(events <= EVENT_BURST_TARGET + Math.ceil(sweep.sustained.minutes / 5))} |`,
    '',
    `**Concurrent scrapes.** ${answers.concurrency} scrapes of /metrics at once, ${answers.scrapes / answers.concurrency} rounds, the kernel's counter of our IPv4 rule standing still at ${answers.kernel} (read with nft before and after).`,
    '',
    '| scrapes | answers equal to the kernel counter | largest answer | target |',
    '|---|---|---|---|',
    `| ${answers.scrapes} | ${answers.exact} | ${answers.largest} (kernel: ${answers.kernel}) | every answer the kernel's: ${meets(answers.exact === answers.scrapes)} |`,
    '',
    `**CPU against the foreign event rate.** The agent (nft, RESYNC_INTERVAL=1h) while another process rewrites a foreign table, ${cost[0]?.seconds.toFixed(0) ?? BOUNDED_SECONDS} s per rate; CPU of the agent and every child it ran (monitor, reads), % of one core. Past 100 events a second the agent stops its monitor and polls its own table every 0.7 s. The anchor: \`nft -j monitor ruleset\` read by a node process with the agent's V8 flags, as the agent reads it: what following every event costs.`,
    '',
    '| foreign churn | events made/s | agent + children | mode at the end | following every event | target |',
    '|---|---|---|---|---|---|',
    ...cost.map(
      (r) =>
        `| ${r.kind.label} | ${Math.round(r.eventsPerSecond).toLocaleString('en-US')} | ${pct(r.agentPercent)} | ${r.mode} | ${pct(r.followEveryEventPercent)} | ≤ ${BOUNDED_CPU_TARGET_PERCENT}%: ${meets(r.agentPercent <= BOUNDED_CPU_TARGET_PERCENT)} |`,
    ),
    '',
    '**Drift repaired during churn and when quiet.** Another tool deletes our table; from spawning its command to the agent\'s "drift repaired" line.',
    '',
    '| when | samples | median | p90 | max | target | |',
    '|---|---|---|---|---|---|---|',
    ...repairs.map((r) => {
      const quiet = r.label.startsWith('quiet');
      const ok = quiet ? r.latency.median <= QUIET_REPAIR_TARGET_MS : r.latency.max <= CHURN_REPAIR_TARGET_MS;
      const target = quiet ? `median ≤ ${QUIET_REPAIR_TARGET_MS} ms` : `every one ≤ ${CHURN_REPAIR_TARGET_MS} ms`;
      return `| ${r.label} | ${r.latency.runs} | ${ms(r.latency.median)} | ${ms(r.latency.p90)} | ${ms(r.latency.max)} | ${target} | ${meets(ok)} |`;
    }),
    '',
  ].join('\n');
}

function savedCell(
  row: TrickRow,
  shipped: TrickRow,
  key: keyof TrickRow['figures'],
  unit: (value: number) => string,
): string {
  const saved = row.saved?.[key];
  if (!saved) return '';
  return describeBenefit(benefit(saved, shipped.figures[key].median), unit);
}

function describeBenefit(
  { median, verdict, rounds, n }: ReturnType<typeof benefit>,
  unit: (value: number) => string,
): string {
  const count = `${rounds} of ${n} rounds`;
  if (verdict === 'saves') return `saves ${unit(median)} (${count})`;
  if (verdict === 'costs') return `**costs** ${unit(-median)} (${count})`;
  if (verdict === 'negligible') return `negligible: ${unit(median)}, under 1% (${count})`;
  return `within noise (${unit(median)}; ${count} one way)`;
}

const kibOf = (bytes: number) => `${Math.round(bytes / 1024)} KiB`;

/** What the sign test takes with `rounds` rounds. */
function signTestNeeds(rounds: number): string {
  const needed = minimumRounds(rounds);
  return needed > rounds ? `${rounds} rounds are too few for any verdict` : `${needed} of ${rounds} rounds`;
}

function tricksTable(result: TricksResult): string {
  const mib = (value: number) => `${value.toFixed(1)} MiB`;
  const figure = (summary: { median: number; min: number; max: number }, unit: (value: number) => string) =>
    `${unit(summary.median)} (${unit(summary.min)}–${unit(summary.max)})`;
  const shipped = result.rows[0];
  if (!shipped) throw new Error('no shipped variant');
  return [
    '## Start-up tricks and what each buys',
    '',
    `The shipped agent next to builds of it without one trick each (test/bench/tricks.ts), interleaved over ${result.rounds} rounds: spawn to "rules applied" with \`SERVICE_CIDRS\` (nft) and following one ServiceCIDR of the test API server; VmRSS after ${result.idleSeconds} s idle (all variants idling side by side, scraped once); the bundle's JavaScript, which every build makes the same. "Saved" is the median of the per-round differences, variant less shipped: a trick buys more than the noise when it saves in so many rounds that chance alone would do that less than once in a hundred times (a sign test: ${signTestNeeds(result.rounds)}), and costs by the same rule the other way; a saving under 1% of the figure is negligible (it moves no target, request or limit of ours). A trick stays only while it saves beyond the noise.`,
    '',
    '| variant | start | saved | start, Kubernetes source | saved | idle RSS | saved | idle RSS, Kubernetes source | saved | bundle | saved |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...result.rows.map(
      (row) =>
        `| ${row.variant.label} | ${figure(row.figures.start, ms)} | ${savedCell(row, shipped, 'start', ms)} | ${figure(row.figures.kubernetesStart, ms)} | ${savedCell(row, shipped, 'kubernetesStart', ms)} | ${figure(row.figures.idleMib, mib)} | ${savedCell(row, shipped, 'idleMib', mib)} | ${figure(row.figures.kubernetesIdleMib, mib)} | ${savedCell(row, shipped, 'kubernetesIdleMib', mib)} | ${kibOf(row.bundleBytes)} | ${row === shipped ? '' : `${kibOf(row.bundleBytes - shipped.bundleBytes)} (the same in every build)`} |`,
    ),
    '',
    '| `route-controller --version` | answered by the CommonJS bin | through the ESM bundle | saved |',
    '|---|---|---|---|',
    `| median (min–max) | ${figure(result.version.bin, ms)} | ${figure(result.version.bundle, ms)} | ${describeBenefit(benefit(result.version.saved, result.version.bin.median), ms)} |`,
    '',
  ].join('\n');
}

const kib = (bytes: number) =>
  bytes >= 10 * 1024 * 1024
    ? `${(bytes / 1024 / 1024).toFixed(0)} MiB`
    : `${(bytes / 1024).toFixed(bytes < 10_240 ? 1 : 0)} KiB`;
const fixed = (value: number, digits = 1) => value.toFixed(digits);
const perSecond = (perHour: number, nodes: number) => fixed((perHour * nodes) / 3600, 2);

function fleetTable(rows: readonly FleetResult[]): string {
  const first = rows[0];
  const kubeProxyBytes = KUBE_PROXY.bookmarkBytesPerHour + KUBE_PROXY.nodeBytesPerHour;
  const sliceChurn = KUBE_PROXY.endpointSliceBytes * 3600;
  return [
    '## API server load of a fleet',
    '',
    `${first?.agents ?? '?'} real agents, each in a network namespace of its own with its health endpoint off, against one test API server (test/bench/fleet.ts): started 200 ms apart, then counted on the server's own log for ${first ? fixed(first.minutes, 1) : '?'} minutes once every agent had its rules (requests, response body bytes, TCP connections opened, watches open sampled every second), then the API server restarts: every connection dropped, down ${first?.restart.downSeconds ?? '?'} s, back with its watch cache started afresh (every older resourceVersion gone), followed for 60 s. Issue 22's targets: a ServiceCIDR cluster's agent, at most 5 requests on 2 connections in its first 2 minutes; a k3s agent node's, at most 10 on 3, and no label-selected watch. A window shorter than 10 minutes misses the watch re-opened every 5 to 10 minutes and the reads every ~10 minutes: its hourly figures are low.`,
    '',
    '| cluster | requests / agent / h | bytes / agent / h | connections / agent / h | watches open / agent | requests by kind (window, all agents) | first 2 min per agent: requests, connections (median / max) |',
    '|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.label} | ${fixed(r.perAgentHour.requests)} | ${kib(r.perAgentHour.bytes)} | ${fixed(r.perAgentHour.connections)} | ${fixed(r.watchesPerAgent, 2)} | ${
          Object.entries(r.byKind)
            .map(([kind, n]) => `${kind} ${n}`)
            .join(', ') || 'none'
        } | ${r.start.requests.median} / ${r.start.requests.max}, ${r.start.connections.median} / ${r.start.connections.max} |`,
    ),
    '',
    'After the API server restart (every watch dropped at once): how many agents listed again, and how the re-lists spread once it was back.',
    '',
    '| cluster | requests / agent, restart + 60 s (median / max) | agents that re-listed | re-list after the server was back: min / median / p90 / max | peak requests in one second |',
    '|---|---|---|---|---|',
    ...rows.map((r) => {
      const d = r.restart.relistDelayMs;
      const spread = d
        ? `${ms(d.min)} / ${ms(d.median)} / ${ms(d.p90)} / ${ms(d.max)}`
        : 'none (nothing watched: nothing to re-list)';
      return `| ${r.label} | ${r.restart.requestsPerAgent.median} / ${r.restart.requestsPerAgent.max} | ${r.restart.relisted} of ${r.agents} | ${spread} | ${r.restart.peakPerSecond} |`;
    }),
    '',
    `Extrapolated to 1,000 and 5,000 nodes (the per-agent figures above times the node count), next to kube-proxy on every node. kube-proxy's figures are not measured here but follow from its conventions: 3 client-go informers (Services, EndpointSlices, its own Node), so 3 watches, each re-opened at a timeout drawn from 5 to 10 minutes (${KUBE_PROXY.requestsPerHour} requests an hour), each with a bookmark a minute; its own Node object (10-30 KB) at least every 5 minutes (nodeStatusReportFrequency); and every Service and EndpointSlice change in the cluster, an EndpointSlice of 100 endpoints being about 10 KB (KEP-752, sample case 1): one change a second somewhere in the cluster is ${kib(sliceChurn)} an hour to every node.`,
    '',
    '| per node | requests / s at 1,000 nodes | at 5,000 nodes | bytes / h per node | watches open at 5,000 nodes |',
    '|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| route-controller, ${r.label} | ${perSecond(r.perAgentHour.requests, 1000)} | ${perSecond(r.perAgentHour.requests, 5000)} | ${kib(r.perAgentHour.bytes)} | ${Math.round(r.watchesPerAgent * 5000).toLocaleString('en-US')} |`,
    ),
    `| kube-proxy, no endpoint churn | ${perSecond(KUBE_PROXY.requestsPerHour, 1000)} | ${perSecond(KUBE_PROXY.requestsPerHour, 5000)} | ${kib(kubeProxyBytes)} | ${(KUBE_PROXY.watches * 5000).toLocaleString('en-US')} |`,
    `| kube-proxy, one EndpointSlice change a second in the cluster | ${perSecond(KUBE_PROXY.requestsPerHour, 1000)} | ${perSecond(KUBE_PROXY.requestsPerHour, 5000)} | ${kib(kubeProxyBytes + sliceChurn)} | ${(KUBE_PROXY.watches * 5000).toLocaleString('en-US')} |`,
    '',
  ].join('\n');
}
