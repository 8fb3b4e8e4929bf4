import type { HitRecord } from '@route-controller/core';
import { TokenBucket } from '../util/token-bucket.js';
import { packetCount } from './stale-destinations.js';

/**
 * What to say about stale ClusterIPs, decided from successive reads of the hit records (pure: the
 * caller gives the time). A new (destination, source) pair is said at once, once; after that a
 * destination is said at most once per `intervalMs`, while its packets keep coming. A pair that
 * leaves the records (idle for their timeout) is forgotten, and said again if it comes back.
 */

export interface StaleNotice {
  readonly kind: 'new-pair' | 'continuing';
  readonly destination: string;
  /** The sources the line names, most packets first, each with its packets in the window. */
  readonly sources: readonly { readonly address: string; readonly packets: number }[];
  readonly packets: number;
  /**
   * How long the packets were counted over: since the previous read for a new pair (it was not
   * recorded then), since the destination's previous line for a continuing one; undefined for a
   * pair found on the first read (recorded before the agent looked).
   */
  readonly windowMs: number | undefined;
}

interface PairState {
  /** The element's counter at the last read. */
  last: number;
  /** Packets counted since the destination's last line. */
  pending: number;
}

interface DestinationState {
  lastLineAt: number;
  readonly pairs: Map<string, PairState>;
}

export const NOTICE_INTERVAL_MS = 60_000;

export class StaleNotices {
  readonly #destinations = new Map<string, DestinationState>();
  #lastReadAt: number | undefined;

  constructor(private readonly intervalMs = NOTICE_INTERVAL_MS) {}

  /** The notices due for this read of the records, taken at `now` (milliseconds). */
  update(records: readonly HitRecord[], now: number): StaleNotice[] {
    const notices: StaleNotice[] = [];
    const seen = new Map<string, Map<string, number>>();
    for (const record of records) {
      const sources = seen.get(record.destination) ?? new Map<string, number>();
      sources.set(record.source, record.packets);
      seen.set(record.destination, sources);
    }
    for (const [destination, sources] of seen) {
      let state = this.#destinations.get(destination);
      if (!state) {
        state = { lastLineAt: Number.NEGATIVE_INFINITY, pairs: new Map() };
        this.#destinations.set(destination, state);
      }
      let fresh = false;
      for (const [address, packets] of sources) {
        const pair = state.pairs.get(address);
        if (!pair) {
          fresh = true;
          state.pairs.set(address, { last: packets, pending: 0 });
          const windowMs = this.#lastReadAt === undefined ? undefined : now - this.#lastReadAt;
          notices.push({ kind: 'new-pair', destination, sources: [{ address, packets }], packets, windowMs });
          continue;
        }
        // A counter that went down belongs to an element made anew (expired, or the table rebuilt).
        pair.pending += packets >= pair.last ? packets - pair.last : packets;
        pair.last = packets;
      }
      for (const address of [...state.pairs.keys()]) if (!sources.has(address)) state.pairs.delete(address);
      if (fresh) {
        state.lastLineAt = now;
        continue;
      }
      if (now - state.lastLineAt < this.intervalMs) continue;
      const moving = [...state.pairs]
        .filter(([, pair]) => pair.pending > 0)
        .map(([address, pair]) => ({ address, packets: pair.pending }))
        .sort((a, b) => b.packets - a.packets || a.address.localeCompare(b.address));
      if (moving.length === 0) continue;
      const packets = moving.reduce((total, source) => total + source.packets, 0);
      const windowMs = Number.isFinite(state.lastLineAt) ? now - state.lastLineAt : undefined;
      notices.push({ kind: 'continuing', destination, sources: moving, packets, windowMs });
      state.lastLineAt = now;
      for (const pair of state.pairs.values()) pair.pending = 0;
    }
    for (const destination of [...this.#destinations.keys()]) {
      if (!seen.has(destination)) this.#destinations.delete(destination);
    }
    this.#lastReadAt = now;
    return notices;
  }
}

/**
 * The message of a StaleClusterIP Event, for people (the log has the same in fields): `stale
 * ClusterIP 10.96.5.5 dialled by 10.244.0.7 (312 packets in the last minute): no Service owns this
 * address`. `name` turns a source address into what to print for it.
 */
export function formatNotice(notice: StaleNotice, name: (address: string) => string = (a) => a): string {
  const who = notice.sources.map((source) => name(source.address)).join(', ');
  return `stale ClusterIP ${notice.destination} dialled by ${who} (${packetCount(notice.packets)} ${describeWindow(notice.windowMs)}): no Service owns this address`;
}

export function describeWindow(windowMs: number | undefined): string {
  if (windowMs === undefined) return 'since it was first recorded';
  // Reads come once per resync: a window a little over a minute is still "the last minute".
  if (windowMs <= 1.5 * 60_000) return 'in the last minute';
  return `in the last ${Math.round(windowMs / 60_000)} minutes`;
}

/** A new Event, or a bump of the last one, per destination at most this often. */
export const EVENT_DESTINATION_INTERVAL_MS = 10 * 60_000;
/** The node's Events (they are all about its Node object): client-go's spam filter, burst 25, then one per 5 minutes. */
export const EVENT_BURST = 25;
export const EVENT_REFILL_MS = 5 * 60_000;
/** The API server forgets Events after an hour (its --event-ttl): a destination quiet that long starts a new one. */
export const EVENT_TTL_MS = 60 * 60_000;
/** Destinations remembered at most (client-go's event cache holds as many). */
export const EVENT_MEMORY = 4_096;

/**
 * When a StaleClusterIP Event goes to the API server, and with which count: client-go's
 * EventRecorder, applied to the one object our Events are about (this node's Node). Every occurrence
 * of a destination is counted; one Event per destination carries that count (created first, then
 * bumped), at most once per EVENT_DESTINATION_INTERVAL_MS per destination, and all of them through
 * one token bucket (EVENT_BURST, then one per EVENT_REFILL_MS). Pure: the caller gives the time.
 */
export class StaleEventPolicy {
  readonly #bucket = new TokenBucket(EVENT_BURST, EVENT_REFILL_MS);
  readonly #destinations = new Map<string, { count: number; sentAt: number }>();

  /** One more occurrence of `destination` at `now`: the count to send now, or undefined when nothing goes. */
  occurred(destination: string, now: number): number | undefined {
    let entry = this.#destinations.get(destination);
    // An Event last written over EVENT_TTL_MS ago is gone from the API server: the next one is new.
    const expired = entry !== undefined && Number.isFinite(entry.sentAt) && now - entry.sentAt >= EVENT_TTL_MS;
    if (!entry || expired) entry = { count: 0, sentAt: Number.NEGATIVE_INFINITY };
    entry.count += 1;
    // Most recently seen last, so the oldest is the one forgotten.
    this.#destinations.delete(destination);
    this.#destinations.set(destination, entry);
    if (this.#destinations.size > EVENT_MEMORY)
      this.#destinations.delete(this.#destinations.keys().next().value as string);
    if (now - entry.sentAt < EVENT_DESTINATION_INTERVAL_MS || !this.#bucket.take(now)) return undefined;
    entry.sentAt = now;
    return entry.count;
  }
}
