import type { IpFamily } from './cidr.js';
import type { FirewallBackend } from './firewall-backend.js';

/**
 * Who hit our rule: the kernel's own record of each (source, destination) pair it blocked, kept by
 * backends whose capabilities say `records` (nft: dynamic sets with per-element counters and a
 * timeout). Read on demand, never per packet: the kernel does the counting.
 */

/** One (source, destination) pair the rule blocked within the recording window. */
export interface HitRecord {
  readonly family: IpFamily;
  /** The packet's source address, as the kernel prints it. */
  readonly source: string;
  /** The Service CIDR address that was dialled. */
  readonly destination: string;
  /** Packets and bytes since the pair was first recorded (a pair idle for the window is forgotten). */
  readonly packets: number;
  readonly bytes: number;
  /** Seconds since the pair's last packet, to about a second. */
  readonly lastSeenSecondsAgo: number;
}

/** The state of one family's record set: how many pairs it can hold, and for how long. */
export interface RecordSetStatus {
  readonly family: IpFamily;
  /** The bound: at most this many pairs; when full, new pairs go unrecorded (their packets are still blocked). */
  readonly size: number;
  /** Pairs held now. */
  readonly count: number;
  /** count >= size: pairs seen since it filled are missing from `records`. */
  readonly full: boolean;
  /** A pair is forgotten this long after its last packet. */
  readonly timeoutSeconds: number;
}

export interface HitRecords {
  readonly records: readonly HitRecord[];
  /** One entry per family with a record set installed; empty when nothing of ours is installed. */
  readonly sets: readonly RecordSetStatus[];
}

export const NO_HIT_RECORDS: HitRecords = Object.freeze({ records: Object.freeze([]), sets: Object.freeze([]) });

/**
 * The backend's records, or undefined when it keeps none (its capabilities say so, or it lacks the
 * method): callers need not know which backends record.
 */
export function readHitRecords(backend: FirewallBackend): Promise<HitRecords> | undefined {
  if (!backend.capabilities.records || !backend.records) return undefined;
  return backend.records();
}
