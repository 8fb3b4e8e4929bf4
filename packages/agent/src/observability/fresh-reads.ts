import { sleep } from '../util/sleep.js';

/**
 * Reads of a changing value (the kernel's counters) for callers who each must get it as it was
 * while they asked: every get() is answered by a read that *started after* it was called, so the
 * answer is the value at some instant during the call. Callers waiting at the same time share one
 * read; reads never overlap, so they settle in order and a later answer is never an older value;
 * and they start at most once per `intervalMs` however often they are asked for: a storm of
 * callers waits for the next read, it never multiplies them.
 */
export class FreshReads<T> {
  readonly #read: () => Promise<T>;
  readonly #intervalMs: number;
  readonly #now: () => number;
  /** The next read, shared by everyone who asked since the last one started. */
  #next: Promise<T> | undefined;
  #previous: Promise<unknown> = Promise.resolve();
  #lastStartAt = Number.NEGATIVE_INFINITY;

  constructor(read: () => Promise<T>, intervalMs: number, now: () => number = () => performance.now()) {
    this.#read = read;
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  get(): Promise<T> {
    this.#next ??= this.#start();
    return this.#next;
  }

  async #start(): Promise<T> {
    await this.#previous;
    const wait = this.#lastStartAt + this.#intervalMs - this.#now();
    if (wait > 0) await sleep(wait);
    // From here on, callers wait for the read after this one: this one may already have looked.
    this.#next = undefined;
    this.#lastStartAt = this.#now();
    const reading = this.#read();
    this.#previous = reading.catch(() => undefined);
    return reading;
  }
}
