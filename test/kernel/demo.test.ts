import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ProcessCommandRunner } from '@route-controller/core';
import { LAB, LabProcess } from '@route-controller/lab';
import { expect, it } from 'vitest';
import { describeKernel } from '../src/prerequisites.js';

const runner = new ProcessCommandRunner({ defaultTimeoutMs: 30_000 });
/** The checkout's demo (`pnpm demo`, scripts/demo.mjs) as a person runs it, tracked by the lab so that it ends with its test. */
const DEMO = fileURLToPath(new URL('../../scripts/demo.mjs', import.meta.url));
function startDemo(args: readonly string[]): { demo: LabProcess; stdout: () => string; stderr: () => string } {
  const env = Object.fromEntries(
    Object.entries(process.env).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
  const demo = new LabProcess(process.execPath, [DEMO, ...args], {
    env,
    description: `pnpm demo ${args.join(' ')}`,
  });
  const out: string[] = [];
  const err: string[] = [];
  demo.stdout.setEncoding('utf8');
  demo.stderr.setEncoding('utf8');
  demo.stdout.on('data', (chunk: string) => out.push(chunk));
  demo.stderr.on('data', (chunk: string) => err.push(chunk));
  return { demo, stdout: () => out.join(''), stderr: () => err.join('') };
}
const demoNamespaces = async () =>
  (await runner.run({ file: 'ip', args: ['netns', 'list'] })).stdout
    .split('\n')
    .filter((line) => line.startsWith(`rcdemo-`));

interface Report {
  ok: boolean;
  pings: number;
  unprotected: { ipv4: number; ipv6: number };
  runs: {
    backend: string;
    requested: string;
    chosen?: string;
    reason?: string;
    loop?: { ipv4: number; ipv6: number };
    live?: Record<string, { fromPod: string; fromNode: string }>;
    dropped?: Record<string, { packets: number }>;
    dialled?: { address: string; packets: number; sources: { address: string; packets: number }[] }[];
    dialledNote?: string;
    restored?: boolean;
  }[];
}

describeKernel('pnpm demo', () => {
  it('shows the loop, ends it with every backend, and leaves no namespace behind', async () => {
    const { demo, stdout, stderr } = startDemo(['--json', '--pings', '5']);
    expect((await demo.exited).exitCode, stderr()).toBe(0);
    const report = JSON.parse(stdout()) as Report;
    expect(report.ok).toBe(true);
    expect(report.unprotected.ipv4).toBeGreaterThan(100);
    expect(report.unprotected.ipv6).toBeGreaterThan(100);
    expect(report.runs.map((run) => run.backend).sort()).toEqual(['iptables-legacy', 'iptables-nft', 'nft']);
    expect(report.runs[0]).toMatchObject({ requested: 'auto', chosen: 'nft' });
    for (const run of report.runs) {
      expect(run.chosen).toBe(run.backend);
      expect(run.reason).toBeTruthy();
      expect(run.loop).toEqual({ ipv4: 0, ipv6: 0 });
      for (const side of Object.values(run.live ?? {})) expect(side).toEqual({ fromPod: '3/3', fromNode: '3/3' });
      // The loop's 5 pings from the pod, and the second pod's 3 to another stale ClusterIP.
      expect(run.dropped?.ipv4?.packets).toBe(8);
      expect(run.dropped?.ipv6?.packets).toBe(8);
      expect(run.restored).toBe(true);
    }
    // Who dialled what: recorded by nft, not by the iptables backends (which say why).
    const nft = report.runs.find((run) => run.backend === 'nft');
    expect(nft?.dialled?.map(({ address, packets, sources }) => ({ address, packets, sources }))).toEqual([
      { address: LAB.staleService.ipv4, packets: 5, sources: [{ address: LAB.pod.ipv4, packets: 5 }] },
      { address: LAB.staleService.ipv6, packets: 5, sources: [{ address: LAB.pod.ipv6, packets: 5 }] },
      { address: LAB.otherStaleService.ipv4, packets: 3, sources: [{ address: LAB.secondPod.ipv4, packets: 3 }] },
      { address: LAB.otherStaleService.ipv6, packets: 3, sources: [{ address: LAB.secondPod.ipv6, packets: 3 }] },
    ]);
    for (const run of report.runs.filter((r) => r.backend !== 'nft')) {
      expect(run.dialled).toBeUndefined();
      expect(run.dialledNote).toMatch(/keeps no record of who dials stale ClusterIPs/);
    }
    expect(await demoNamespaces()).toEqual([]);
  });

  it('removes its namespaces when interrupted', async () => {
    const { demo: child, stdout } = startDemo([]);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no progress: ${stdout()}`)), 60_000);
      child.stdout.on('data', () => {
        if (stdout().includes('Running route-controller')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    expect((await demoNamespaces()).length).toBe(5);
    // The demo's children: the agent it runs in the lab node (and whatever it runs at that moment).
    const children = (await runner.run({ file: 'pgrep', args: ['-P', String(child.pid)] })).stdout
      .split('\n')
      .filter(Boolean)
      .map(Number);
    expect(children.length).toBeGreaterThan(0);
    child.signal('SIGINT');
    expect((await child.exited).exitCode).toBe(130);
    expect(await demoNamespaces()).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Gone, or a zombie waiting for whoever inherited it to reap it: either way no longer running.
    const alive = children.filter((pid) => {
      try {
        return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    });
    expect(alive).toEqual([]);
  });
});
