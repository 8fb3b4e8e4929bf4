import type { HitRecord } from '@route-controller/core';

/** One source of packets to a stale ClusterIP, as `status` shows it. */
export interface StaleSource {
  readonly address: string;
  readonly packets: number;
  /** "namespace/name" of the pod of this node that owns the address, when known. */
  readonly pod?: string;
}

/** A stale ClusterIP being dialled, with who dials it: `status --json`'s `staleDestinations`. */
export interface StaleDestination {
  readonly address: string;
  readonly packets: number;
  readonly bytes: number;
  /** Seconds since the last packet from any of its sources. */
  readonly lastSeenSecondsAgo: number;
  /** Most packets first. */
  readonly sources: readonly StaleSource[];
}

/** Pod names by source address; empty when pods are not looked up. */
export type PodNamesByAddress = ReadonlyMap<string, string>;

/**
 * The records grouped by destination, most packets first (then by address, so the order is
 * stable), each with its sources most packets first.
 */
export function staleDestinations(
  records: readonly HitRecord[],
  pods: PodNamesByAddress = new Map(),
): StaleDestination[] {
  const byDestination = new Map<string, HitRecord[]>();
  for (const record of records) {
    const list = byDestination.get(record.destination) ?? [];
    list.push(record);
    byDestination.set(record.destination, list);
  }
  const destinations = [...byDestination].map(([address, hits]): StaleDestination => {
    const sources = hits
      .map((hit): StaleSource => {
        const pod = pods.get(hit.source);
        return { address: hit.source, packets: hit.packets, ...(pod ? { pod } : {}) };
      })
      .sort(byPacketsThenAddress);
    return {
      address,
      packets: sum(hits.map((hit) => hit.packets)),
      bytes: sum(hits.map((hit) => hit.bytes)),
      lastSeenSecondsAgo: Math.min(...hits.map((hit) => hit.lastSeenSecondsAgo)),
      sources,
    };
  });
  return destinations.sort(byPacketsThenAddress);
}

/** "1 packet", "312 packets". */
export function packetCount(count: number): string {
  return `${count} packet${count === 1 ? '' : 's'}`;
}

/** Why a backend has no hit records to show, for the log and `status`. */
export function noRecordsReason(backend: string): string {
  return backend === 'nft'
    ? 'nft keeps no record of who dials stale ClusterIPs here: it needs nftables 1.0.6 or newer and a kernel that takes the record sets (route-controller probe says which is missing); it counts the blocked packets per family all the same'
    : `${backend} keeps no record of who dials stale ClusterIPs, only how many packets it blocks per family; the nft backend (nftables 1.0.6 or newer) records each source and destination`;
}

/** "default/web-7f9c4 (10.244.0.7)" for a pod of this node, else the address alone. */
export function describeSource(address: string, pod: string | undefined): string {
  return pod ? `${pod} (${address})` : address;
}

function byPacketsThenAddress(a: { packets: number; address: string }, b: { packets: number; address: string }) {
  return b.packets - a.packets || a.address.localeCompare(b.address);
}

const sum = (values: readonly number[]) => values.reduce((total, value) => total + value, 0);
