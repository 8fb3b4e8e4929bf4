import { errorMessage, type FirewallBackend, type RecordSetStatus, readHitRecords } from '@route-controller/core';
import { formatDuration } from '../config/duration.js';
import type { PodNames } from '../stale/kubernetes-features.js';
import {
  describeSource,
  noRecordsReason,
  packetCount,
  type StaleDestination,
  staleDestinations,
} from '../stale/stale-destinations.js';

/** How `status` knows who dials stale ClusterIPs: which backend recorded it, over what window. */
export type Recording =
  | {
      readonly backend: string;
      readonly recorded: true;
      readonly windowSeconds: number;
      /** Per family: the bound, how many pairs are held, whether it is full. */
      readonly sets: readonly RecordSetStatus[];
    }
  | { readonly backend: string | null; readonly recorded: false; readonly reason: string };

export interface StaleReport {
  readonly staleDestinations: readonly StaleDestination[];
  readonly recording: Recording;
}

/**
 * The stale ClusterIPs being dialled, from the first backend that has rules of ours installed and
 * records hits: one read of its records, and one lookup of the pods behind the sources.
 */
export async function staleReport(
  installed: readonly { readonly name: string; readonly backend: FirewallBackend }[],
  pods: PodNames,
): Promise<StaleReport> {
  const recorder = installed.find(({ backend }) => backend.capabilities.records);
  if (!recorder) {
    const first = installed[0];
    return {
      staleDestinations: [],
      recording: first
        ? {
            backend: first.name,
            recorded: false,
            reason: noRecordsReason(first.name),
          }
        : { backend: null, recorded: false, reason: 'no rules of ours are installed' },
    };
  }
  try {
    const records = (await readHitRecords(recorder.backend)) ?? { records: [], sets: [] };
    const addresses = [...new Set(records.records.map((record) => record.source))];
    const names = await pods.names(addresses).catch(() => new Map<string, string>());
    return {
      staleDestinations: staleDestinations(records.records, names),
      recording: {
        backend: recorder.name,
        recorded: true,
        windowSeconds: records.sets[0]?.timeoutSeconds ?? 0,
        sets: records.sets,
      },
    };
  } catch (error) {
    return {
      staleDestinations: [],
      recording: { backend: recorder.name, recorded: false, reason: `cannot read its records: ${errorMessage(error)}` },
    };
  }
}

/** The report for people: most packets first, each destination with its sources. */
export function describeStaleReport(report: StaleReport): string[] {
  const { recording } = report;
  if (!recording.recorded) return [`Stale ClusterIPs dialled: not recorded (${recording.reason})`];
  const window = formatDuration(recording.windowSeconds * 1000);
  const lines: string[] = [];
  if (report.staleDestinations.length === 0) {
    lines.push(`Stale ClusterIPs dialled: none in the last ${window} (recorded by ${recording.backend})`);
  } else {
    lines.push(
      `Stale ClusterIPs dialled (recorded by ${recording.backend} over the last ${window}, most packets first; no Service owns these addresses):`,
    );
    for (const destination of report.staleDestinations) {
      lines.push(
        `  ${destination.address}: ${packetCount(destination.packets)}, ${destination.bytes} bytes, last ${destination.lastSeenSecondsAgo}s ago`,
      );
      for (const source of destination.sources) {
        lines.push(`    from ${describeSource(source.address, source.pod)}: ${packetCount(source.packets)}`);
      }
    }
  }
  for (const set of recording.sets.filter((s) => s.full)) {
    lines.push(
      `  note: the ${set.family} record set is full (${set.size} pairs): newer pairs are not listed until older ones expire (${window} after their last packet); every packet is still dropped and counted`,
    );
  }
  return lines;
}
