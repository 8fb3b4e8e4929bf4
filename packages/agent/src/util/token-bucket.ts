/**
 * A token bucket, as client-go's flowcontrol has it: up to `burst` at once, then one more every
 * `refillMs`. The caller gives the time (milliseconds, any monotonic origin), so it is pure.
 */
export class TokenBucket {
  #tokens: number;
  #at: number | undefined;

  constructor(
    private readonly burst: number,
    private readonly refillMs: number,
  ) {
    this.#tokens = burst;
  }

  /** Whole tokens available at `now`. */
  available(now: number): number {
    this.#refill(now);
    return Math.floor(this.#tokens);
  }

  /** Takes `count` tokens at `now` if there are that many; false (and takes none) otherwise. */
  take(now: number, count = 1): boolean {
    this.#refill(now);
    if (this.#tokens < count) return false;
    this.#tokens -= count;
    return true;
  }

  #refill(now: number): void {
    if (this.#at !== undefined && now > this.#at) {
      this.#tokens = Math.min(this.burst, this.#tokens + (now - this.#at) / this.refillMs);
    }
    this.#at = this.#at === undefined ? now : Math.max(this.#at, now);
  }
}
