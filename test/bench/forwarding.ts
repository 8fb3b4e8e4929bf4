import { type ChildProcess, spawn } from 'node:child_process';
import { NftBackend } from '@route-controller/backend-nft';
import { desiredState, parseCidrList } from '@route-controller/core';
import { LAB, LoopLab } from '@route-controller/lab';
import { cidrList } from './apply-cost.js';
import { type BackendName, backendIn } from './startup.js';
import { summarise } from './stats.js';

export interface ForwardingConfig {
  readonly rules: 'none' | BackendName;
  readonly cidrs: number;
  /** nft only: false for the plain rule (no hit records), true (the default layout) for records. */
  readonly records?: boolean;
}

export interface ForwardingRow extends ForwardingConfig {
  /** Median packets per second delivered pod -> server through the node (UDP, 64-byte payloads). */
  readonly pps: number;
  /** Relative to no rules at all. */
  readonly relative: number;
  /** The slowest and fastest round: how much the machine's noise moves a figure. */
  readonly min: number;
  readonly max: number;
  /** Packets per second of each round, in round order: for paired comparisons between rows. */
  readonly rounds: readonly number[];
}

interface IperfReport {
  end: { sum: { packets: number; lost_packets: number; seconds: number } };
}

/**
 * Packets per second forwarded by the lab node with our rules in place. The traffic goes to a pod
 * address, so every packet is checked against all our CIDRs and matches none: the worst case
 * for a rule chain, the everyday case for a node. The first configuration is the baseline.
 */
export async function measureForwarding(
  configs: readonly ForwardingConfig[],
  seconds: number,
  runs: number,
): Promise<ForwardingRow[]> {
  const lab = await LoopLab.create({ kubeProxy: 'none' });
  let server: ChildProcess | undefined;
  try {
    server = spawn('ip', ['netns', 'exec', lab.server.name, 'iperf3', '-s', '--bind', LAB.server.ipv4], {
      stdio: 'ignore',
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const iperf = async () => {
      const result = await lab.pod.must('iperf3', [
        '-c',
        LAB.server.ipv4,
        '-u',
        '-b',
        '0',
        '-l',
        '64',
        '-t',
        String(seconds),
        '-J',
      ]);
      const report = JSON.parse(result.stdout) as IperfReport;
      const { packets, lost_packets: lost, seconds: elapsed } = report.end.sum;
      return (packets - lost) / elapsed;
    };
    // Rounds go through every configuration in turn, so slow drifts of the machine's load hit
    // them all alike instead of whichever happened to run last; every other round in reverse, so
    // neighbours swap places and a trend within a round cancels out.
    const samples = configs.map(() => [] as number[]);
    for (let round = 0; round < runs; round += 1) {
      const order = [...configs.entries()];
      if (round % 2 === 1) order.reverse();
      for (const [i, config] of order) {
        const backend =
          config.rules === 'none'
            ? undefined
            : config.rules === 'nft'
              ? new NftBackend({ runner: lab.node.runner, ...(config.records === false ? { records: false } : {}) })
              : backendIn(lab.node, config.rules);
        if (backend) await backend.apply(desiredState(parseCidrList(cidrList(config.cidrs)).cidrs));
        samples[i]?.push(await iperf());
        await backend?.cleanup();
      }
    }
    const baseline = summarise(samples[0] ?? [0]).median;
    const rows: ForwardingRow[] = configs.map((config, i) => {
      const rounds = samples[i] ?? [0];
      const { median: pps, min, max } = summarise(rounds);
      return { ...config, pps, min, max, rounds, relative: baseline > 0 ? pps / baseline : 1 };
    });
    return rows;
  } finally {
    server?.kill('SIGTERM');
    await lab.destroy();
  }
}
