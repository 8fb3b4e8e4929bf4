/** Exponential backoff: initial, doubled after each failure, capped; reset by a success. */
export class Backoff {
  #failures = 0;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
  ) {}

  /** Delay before the next retry, counting this failure. */
  next(): number {
    const delay = Math.min(this.maxMs, this.initialMs * 2 ** this.#failures);
    this.#failures += 1;
    return delay;
  }

  get failures(): number {
    return this.#failures;
  }

  reset(): void {
    this.#failures = 0;
  }
}
