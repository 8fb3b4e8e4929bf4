import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { type AgentBin, AgentProcess, LAB, Netns } from '@route-controller/lab';
import { AGENT_BIN } from '../src/agent-bin.js';
import { startKubernetesApi } from '../src/kubernetes-api.js';
import { memoryMib } from './memory.js';
import { BENCH_CIDRS, timed } from './startup.js';
import { type Summary, summarise } from './stats.js';

const run = promisify(execFile);

/**
 * What each start-up trick of the shipped agent buys, measured by building the agent without it:
 * the same bin and bundle, less one trick, run side by side with the shipped one in interleaved
 * rounds (so the machine's load hits all variants alike). A trick stays only while it buys more than
 * the noise; this section is how anyone can check that it still does.
 */

/** A trick of the shipped agent that a variant leaves out. */
export type Trick = 'max-opt' | 'trim-kubernetes-client';

/** The tricks that are V8 flags in the bin's shebang, and the flag each is. */
const SHEBANG_FLAGS: Partial<Record<Trick, RegExp>> = {
  'max-opt': / --max-opt=\S+/,
};

export interface TrickVariant {
  readonly label: string;
  readonly without?: Trick;
}

const AGENT_ROOT = dirname(dirname(AGENT_BIN));
const BUILD = join(AGENT_ROOT, 'build.mjs');

/** The shipped agent's bin, bundle and manifest, rebuilt without `trick`, in a directory of its own. */
async function buildVariant(without: Trick | undefined, into: string): Promise<AgentBin> {
  await mkdir(join(into, 'bin'), { recursive: true });
  await copyFile(join(AGENT_ROOT, 'package.json'), join(into, 'package.json'));
  let bin = await readFile(AGENT_BIN, 'utf8');
  const flag = without === undefined ? undefined : SHEBANG_FLAGS[without];
  if (flag) {
    const [shebang = '', ...rest] = bin.split('\n');
    if (!flag.test(shebang)) throw new Error(`the bin's shebang has no ${without} flag: ${shebang}`);
    // Without any flag left, `env -S node` is plain `env node`.
    bin = [shebang.replace(flag, '').replace(/ -S node$/, ' node'), ...rest].join('\n');
  }
  const binPath = join(into, 'bin', 'route-controller.cjs');
  await writeFile(binPath, bin, { mode: 0o755 });
  const plugin = without === undefined || flag ? [] : ['--without', without];
  await run(process.execPath, [BUILD, '--outdir', join(into, 'dist', 'bundle'), ...plugin], { cwd: AGENT_ROOT });
  return { bin: binPath };
}

export interface TrickFigures {
  /** Spawn to "rules applied", nft, SERVICE_CIDRS. */
  readonly start: Summary;
  /** Spawn to "rules applied", following one ServiceCIDR of the test API server. */
  readonly kubernetesStart: Summary;
  /** VmRSS after the idle period, SERVICE_CIDRS, and with the Kubernetes source. */
  readonly idleMib: Summary;
  readonly kubernetesIdleMib: Summary;
}

export interface TrickRow {
  readonly variant: TrickVariant;
  readonly figures: TrickFigures;
  /** Per round, this variant's figure less the shipped one's (positive: the trick saves that much). */
  readonly saved?: { readonly [K in keyof TrickFigures]: readonly number[] };
  /** The bundle's JavaScript (entry and chunks), in bytes: the same in every build, so no noise. */
  readonly bundleBytes: number;
}

export interface TricksResult {
  readonly rows: readonly TrickRow[];
  readonly rounds: number;
  readonly idleSeconds: number;
  /** `route-controller --version` as shipped (answered by the CommonJS bin) and through the ESM bundle. */
  readonly version: { readonly bin: Summary; readonly bundle: Summary; readonly saved: readonly number[] };
}

export const TRICK_VARIANTS: readonly TrickVariant[] = [
  { label: 'as shipped' },
  { label: 'without --max-opt=0 (the shebang)', without: 'max-opt' },
  { label: 'without the client-node trim plugin', without: 'trim-kubernetes-client' },
];

async function startTime(ns: Netns, env: Record<string, string>, agent: AgentBin): Promise<number> {
  const started = AgentProcess.start(ns, env, [], agent);
  try {
    return started.elapsedAt(await started.waitForMessage('rules applied', 30_000));
  } finally {
    await started.stop('SIGKILL');
    await ns.exec('nft', ['delete', 'table', 'inet', 'route-controller']);
  }
}

/** Each variant's agent in a namespace of its own, all idling at once; VmRSS after `seconds`. */
async function idleMemory(agents: readonly AgentBin[], seconds: number, kubernetes: boolean): Promise<number[]> {
  const namespaces = await Promise.all(agents.map(() => Netns.create('bench-trick')));
  const apis: Awaited<ReturnType<typeof startKubernetesApi>>[] = [];
  const running: AgentProcess[] = [];
  try {
    for (const [index, agent] of agents.entries()) {
      const ns = namespaces[index] as Netns;
      const listen = { LISTEN_ADDRESS: '127.0.0.1:9771', METRICS_LISTEN_ADDRESS: '127.0.0.1:9772' };
      let env: Record<string, string> = { SERVICE_CIDRS: BENCH_CIDRS, ...listen };
      if (kubernetes) {
        const api = await startKubernetesApi(ns);
        apis.push(api);
        api.server.add('kubernetes', [LAB.serviceCidr.ipv4, LAB.serviceCidr.ipv6]);
        env = { KUBECONFIG: api.kubeconfig, ...listen, HOME: '/nonexistent' };
      }
      running.push(AgentProcess.start(ns, env, [], agent));
    }
    for (const agent of running) {
      await agent.waitForMessage('rules applied', 30_000);
      // One scrape, as Prometheus would do, so the metrics code is loaded as in production.
      await agent.ns.must(process.execPath, ['-e', 'fetch("http://127.0.0.1:9772/metrics").then((r) => r.text())']);
    }
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    return await Promise.all(
      running.map((agent) => {
        if (agent.pid === undefined) throw new Error('an agent has no pid');
        return memoryMib(agent.pid, 'VmRSS');
      }),
    );
  } finally {
    await Promise.all(running.map((agent) => agent.stop('SIGTERM')));
    await Promise.all(apis.map((api) => api.close()));
    await Promise.all(namespaces.map((ns) => ns.delete()));
  }
}

export async function measureTricks(rounds: number, idleSeconds: number): Promise<TricksResult> {
  const dir = await mkdtemp(join(tmpdir(), 'rc-tricks-'));
  try {
    const agents: AgentBin[] = [];
    for (const [index, variant] of TRICK_VARIANTS.entries()) {
      agents.push(
        variant.without === undefined
          ? { bin: AGENT_BIN }
          : await buildVariant(variant.without, join(dir, `variant-${index}`)),
      );
    }
    const samples = TRICK_VARIANTS.map(() => ({
      start: [] as number[],
      kubernetesStart: [] as number[],
      idleMib: [] as number[],
      kubernetesIdleMib: [] as number[],
    }));
    const ns = await Netns.create('bench-tricks');
    const api = await startKubernetesApi(ns);
    try {
      api.server.add('kubernetes', [LAB.serviceCidr.ipv4, LAB.serviceCidr.ipv6]);
      const kubeEnv = { KUBECONFIG: api.kubeconfig, LISTEN_ADDRESS: 'off', HOME: '/nonexistent' };
      const envEnv = { SERVICE_CIDRS: BENCH_CIDRS, FIREWALL_BACKEND: 'nft', LISTEN_ADDRESS: 'off' };
      for (let round = -1; round < rounds; round += 1) {
        // A different variant goes first in each round: none always starts on a cold page cache.
        const order = TRICK_VARIANTS.map((_, index) => (index + Math.max(round, 0)) % TRICK_VARIANTS.length);
        const start: number[] = [];
        const kube: number[] = [];
        for (const index of order) {
          start[index] = await startTime(ns, envEnv, agents[index] as AgentBin);
          kube[index] = await startTime(ns, kubeEnv, agents[index] as AgentBin);
        }
        if (round < 0) continue; // warms the page cache and the kernel's modules
        for (const index of order) {
          samples[index]?.start.push(start[index] as number);
          samples[index]?.kubernetesStart.push(kube[index] as number);
        }
      }
    } finally {
      await api.close();
      await ns.delete();
    }
    for (let round = 0; round < rounds; round += 1) {
      const idle = await idleMemory(agents, idleSeconds, false);
      const kubeIdle = await idleMemory(agents, idleSeconds, true);
      for (const index of TRICK_VARIANTS.keys()) {
        samples[index]?.idleMib.push(idle[index] as number);
        samples[index]?.kubernetesIdleMib.push(kubeIdle[index] as number);
      }
    }
    const bundleSizes = await Promise.all(agents.map((agent) => bundleBytes(agent)));
    const shipped = samples[0];
    if (!shipped) throw new Error('no shipped variant');
    const rows = TRICK_VARIANTS.map((variant, index): TrickRow => {
      const own = samples[index] ?? shipped;
      const less = (key: keyof TrickFigures) => own[key].map((value, i) => value - (shipped[key][i] as number));
      return {
        variant,
        bundleBytes: bundleSizes[index] as number,
        figures: {
          start: summarise(own.start),
          kubernetesStart: summarise(own.kubernetesStart),
          idleMib: summarise(own.idleMib),
          kubernetesIdleMib: summarise(own.kubernetesIdleMib),
        },
        ...(index === 0
          ? {}
          : {
              saved: {
                start: less('start'),
                kubernetesStart: less('kubernetesStart'),
                idleMib: less('idleMib'),
                kubernetesIdleMib: less('kubernetesIdleMib'),
              },
            }),
      };
    });
    return { rows, rounds, idleSeconds, version: await measureVersion(rounds * 4) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The bytes of the .mjs files of the bundle an agent's bin loads. */
async function bundleBytes(agent: AgentBin): Promise<number> {
  const dir = join(dirname(dirname(agent.bin)), 'dist', 'bundle');
  const files = await readdir(dir, { recursive: true });
  const sizes = await Promise.all(
    files.filter((f) => f.endsWith('.mjs')).map(async (f) => (await stat(join(dir, f))).size),
  );
  return sizes.reduce((sum, size) => sum + size, 0);
}

/** `--version` answered by the CommonJS bin, and by the ESM bundle (what the bin would be without it). */
async function measureVersion(runs: number): Promise<TricksResult['version']> {
  const bundle = join(AGENT_ROOT, 'dist', 'bundle', 'route-controller.mjs');
  const flags = /^#!\S*\/env\s+-S\s+node((?:\s+--?[\w-]+(?:=\S+)?)*)/
    .exec(await readFile(AGENT_BIN, 'utf8'))?.[1]
    ?.trim()
    .split(/\s+/)
    .filter(Boolean);
  const bin: number[] = [];
  const esm: number[] = [];
  for (let round = -1; round < runs; round += 1) {
    const b = await timed(() => run(AGENT_BIN, ['--version']));
    const e = await timed(() => run(process.execPath, [...(flags ?? []), bundle, '--version']));
    if (round < 0) continue;
    bin.push(b);
    esm.push(e);
  }
  return { bin: summarise(bin), bundle: summarise(esm), saved: esm.map((value, i) => value - (bin[i] as number)) };
}

/** A sign test's level: chance alone gives a verdict less than once in a hundred measurements. */
const SIGNIFICANCE = 0.01;
/** A saving under 1% of the figure moves no target, request or limit of ours: not worth a trick. */
const MATERIAL = 0.01;

/** P(X >= k) for X ~ Binomial(n, 1/2): how likely chance alone makes k of n rounds go one way. */
export function signTail(k: number, n: number): number {
  let term = 0.5 ** n; // C(n, 0) / 2^n
  let below = 0;
  for (let i = 0; i < k; i += 1) {
    below += term;
    term = (term * (n - i)) / (i + 1);
  }
  return Math.max(0, 1 - below);
}

/** The fewest of `n` rounds going one way that the sign test takes for more than chance. */
export function minimumRounds(n: number): number {
  let k = 0;
  while (k <= n && signTail(k, n) >= SIGNIFICANCE) k += 1;
  return k;
}

/**
 * Whether a trick buys more than the noise, by a sign test over the rounds: the variant without it
 * did worse in so many rounds that chance alone would do that less than once in a hundred times
 * (with 10 rounds: all 10), and by at least 1% of the shipped figure (`reference`). Or it costs, by
 * the same rule the other way, or neither. `median` is the median of the per-round differences.
 */
export function benefit(
  saved: readonly number[],
  reference: number,
): { readonly median: number; readonly verdict: TrickVerdict; readonly rounds: number; readonly n: number } {
  const median = summarise(saved).median;
  const n = saved.length;
  const better = saved.filter((value) => value > 0).length;
  const worse = saved.filter((value) => value < 0).length;
  const material = Math.abs(median) >= MATERIAL * Math.abs(reference);
  if (signTail(better, n) < SIGNIFICANCE)
    return { median, n, rounds: better, verdict: material ? 'saves' : 'negligible' };
  if (signTail(worse, n) < SIGNIFICANCE)
    return { median, n, rounds: worse, verdict: material ? 'costs' : 'negligible' };
  return { median, n, rounds: Math.max(better, worse), verdict: 'noise' };
}

export type TrickVerdict = 'saves' | 'costs' | 'negligible' | 'noise';
