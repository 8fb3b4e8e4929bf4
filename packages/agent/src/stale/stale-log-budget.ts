import { TokenBucket } from '../util/token-bucket.js';
import type { StaleNotice } from './stale-notices.js';

/** Lines about pairs or destinations one read may log; the rest are summed up in one more line. */
export const MAX_LINES_PER_READ = 10;
/** The stale ClusterIP log as a whole, summaries included, in the long run. */
export const LINES_PER_MINUTE = 60;

/** What a read did not log line by line: `route-controller status` lists all of it. */
export interface HeldBack {
  /** (destination, source) pairs. */
  readonly pairs: number;
  readonly destinations: number;
  readonly packets: number;
}

/**
 * How much of each read's notices reaches the log, so that no pod can flood it (one sweeping the
 * Service range makes thousands of new pairs at once): new pairs first, then the destinations
 * dialled most; at most MAX_LINES_PER_READ of them and one summary of the rest, all from one token
 * bucket refilled at LINES_PER_MINUTE. A read that has no token left even for its summary hands
 * what it held back to the next summary. Pure: the caller gives the time.
 */
export class StaleLogBudget {
  readonly #bucket = new TokenBucket(MAX_LINES_PER_READ + 1, 60_000 / LINES_PER_MINUTE);
  #carried: HeldBack = { pairs: 0, destinations: 0, packets: 0 };

  /** The notices to log at `now`, and the summary line to add (undefined when nothing is held back). */
  split(notices: readonly StaleNotice[], now: number): { shown: StaleNotice[]; heldBack: HeldBack | undefined } {
    const ordered = [...notices].sort(
      (a, b) =>
        Number(b.kind === 'new-pair') - Number(a.kind === 'new-pair') ||
        b.packets - a.packets ||
        a.destination.localeCompare(b.destination),
    );
    let count = Math.min(MAX_LINES_PER_READ, ordered.length, this.#bucket.available(now));
    const holding = count < ordered.length || this.#carried.pairs > 0;
    // Keep a token for the summary, when there is one to write.
    if (holding && count > 0 && count === this.#bucket.available(now)) count -= 1;
    this.#bucket.take(now, count);
    const shown = ordered.slice(0, count);
    const held = ordered.slice(count);
    const total: HeldBack = {
      pairs: this.#carried.pairs + held.reduce((sum, notice) => sum + notice.sources.length, 0),
      destinations: this.#carried.destinations + new Set(held.map((notice) => notice.destination)).size,
      packets: this.#carried.packets + held.reduce((sum, notice) => sum + notice.packets, 0),
    };
    if (total.pairs === 0) return { shown, heldBack: undefined };
    if (!this.#bucket.take(now)) {
      this.#carried = total;
      return { shown, heldBack: undefined };
    }
    this.#carried = { pairs: 0, destinations: 0, packets: 0 };
    return { shown, heldBack: total };
  }
}
