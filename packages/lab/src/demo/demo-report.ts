import type { IpFamily } from '@route-controller/core';
import { LAB } from '../loop-lab.js';

export type Families<T> = Readonly<Record<IpFamily, T>>;

/** A stale ClusterIP the agent saw dialled, as `route-controller status --json` lists it. */
export interface Dialled {
  readonly address: string;
  readonly packets: number;
  readonly sources: readonly { readonly address: string; readonly packets: number; readonly pod?: string }[];
}

/** One run of the real agent in the lab node, with one backend. */
export interface DemoRun {
  readonly backend: string;
  /** What FIREWALL_BACKEND was set to ("auto" for the node's own choice). */
  readonly requested: string;
  /** The backend the agent chose and its reason, from its own log. */
  readonly chosen?: string;
  readonly reason?: string;
  /** Process start to the rules being in the kernel ("rules applied"). */
  readonly startMs?: number;
  /** Packets that still looped for the pings, per family: 0 when the loop has ended. */
  readonly loop?: Families<number>;
  /** Replies of the live Service's ClusterIP, out of the pings sent, from a pod and from the node. */
  readonly live?: Families<{ readonly fromPod: string; readonly fromNode: string }>;
  /** Drop counters read from the kernel by `route-controller status`. */
  readonly dropped?: Families<{ readonly packets: number; readonly bytes: number }>;
  /** Who dialled which stale ClusterIP, from `status` (backends that record hits). */
  readonly dialled?: readonly Dialled[];
  /** Why `dialled` is missing: the backend keeps no such records. */
  readonly dialledNote?: string;
  /**
   * `route-controller cleanup` left the node's rules exactly as before the run (empty tables that
   * iptables creates on first use and legacy cannot remove are not rules).
   */
  readonly restored?: boolean;
  readonly ok: boolean;
  readonly error?: string;
}

export interface DemoReport {
  readonly namespaces: readonly string[];
  readonly serviceCidrs: Families<string>;
  readonly staleClusterIp: Families<string>;
  readonly liveClusterIp: Families<string>;
  readonly pings: number;
  /** Packets that looped with no protection. */
  readonly unprotected: Families<number>;
  /** Backends this machine cannot run, and why. */
  readonly unsupported: readonly { readonly backend: string; readonly reason: string }[];
  readonly runs: readonly DemoRun[];
  readonly ok: boolean;
}

/** The report as a readable page: what happened, then a table. */
export function formatDemoReport(report: DemoReport): string {
  const lines: string[] = [];
  lines.push(
    '',
    `Without route-controller, ${report.pings} pings from a pod to the stale ClusterIP ${report.staleClusterIp.ipv4} (and ${report.staleClusterIp.ipv6})`,
    `looped ${report.unprotected.ipv4} (IPv4) and ${report.unprotected.ipv6} (IPv6) packets between the node and the workstation.`,
  );
  for (const run of report.runs) {
    lines.push('', `${run.backend} (FIREWALL_BACKEND=${run.requested})`);
    if (run.error) {
      lines.push(`  failed: ${run.error}`);
      continue;
    }
    lines.push(`  chosen: ${run.chosen} — ${run.reason}`);
    if (run.startMs !== undefined)
      lines.push(`  rules in the kernel ${Math.round(run.startMs)} ms after the agent started`);
    if (run.loop) lines.push(`  loop: ${run.loop.ipv4} packets (IPv4), ${run.loop.ipv6} (IPv6)`);
    if (run.live) {
      lines.push(
        `  live Service ${report.liveClusterIp.ipv4}: ${run.live.ipv4.fromPod} replies from a pod, ${run.live.ipv4.fromNode} from the node; ${report.liveClusterIp.ipv6}: ${run.live.ipv6.fromPod}, ${run.live.ipv6.fromNode}`,
      );
    }
    if (run.dropped) {
      lines.push(
        `  dropped by the kernel: ${run.dropped.ipv4.packets} packets (IPv4), ${run.dropped.ipv6.packets} (IPv6)`,
      );
    }
    if (run.dialled) {
      lines.push('  who dialled what (route-controller status):');
      for (const destination of run.dialled) {
        const [only] = destination.sources;
        const from =
          destination.sources.length === 1 && only
            ? `${only.address}${whose(only.address) ? ` (${whose(only.address)})` : ''}`
            : destination.sources
                .map((s) => `${s.address} (${whose(s.address) ? `${whose(s.address)}, ` : ''}${s.packets})`)
                .join(', ');
        lines.push(`    ${destination.address}: ${destination.packets} packets from ${from}`);
      }
    } else if (run.dialledNote) {
      lines.push(`  who dialled what: not recorded (${run.dialledNote})`);
    }
    if (run.restored !== undefined) {
      lines.push(
        `  cleanup: ${run.restored ? "the node's rules are exactly as before" : "the node's rules DIFFER from before"}`,
      );
    }
  }
  for (const { backend, reason } of report.unsupported) lines.push('', `${backend}: not supported here (${reason})`);
  const rows = [
    ['backend', 'start→rules', 'loop IPv4', 'loop IPv6', 'live Service', 'dropped', 'cleanup', 'result'],
    ['(none)', '-', String(report.unprotected.ipv4), String(report.unprotected.ipv6), 'answers', '-', '-', 'loops'],
    ...report.runs.map((run) => [
      run.backend,
      run.startMs === undefined ? '-' : `${Math.round(run.startMs)} ms`,
      String(run.loop?.ipv4 ?? '-'),
      String(run.loop?.ipv6 ?? '-'),
      run.live ? (allAnswered(run.live) ? 'answers' : 'FAILS') : '-',
      run.dropped ? `${run.dropped.ipv4.packets + run.dropped.ipv6.packets} pkts` : '-',
      run.restored === undefined ? '-' : run.restored ? 'restored' : 'DIFFERS',
      run.ok ? 'loop ended' : 'FAILED',
    ]),
  ];
  lines.push(
    '',
    markdownTable(rows),
    '',
    report.ok ? 'Every backend ended the loop.' : 'Something went wrong: see above.',
  );
  return lines.join('\n');
}

/** "the pod" for the lab's pod addresses: the demo runs the agent without Kubernetes, so no pod names. */
function whose(address: string): string {
  if (Object.values(LAB.pod).includes(address as never)) return 'the pod';
  if (Object.values(LAB.secondPod).includes(address as never)) return 'the second pod';
  return '';
}

export function allAnswered(live: NonNullable<DemoRun['live']>): boolean {
  return Object.values(live).every(({ fromPod, fromNode }) => answered(fromPod) && answered(fromNode));
}

const answered = (ratio: string): boolean => {
  const [got, sent] = ratio.split('/');
  return got === sent && got !== '0';
};

function markdownTable(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
  const line = (row: readonly string[]) => `| ${row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  const [head, ...body] = rows;
  return [line(head ?? []), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}
