/**
 * Remembers what was last said about each subject, so a state recomputed at every resync or read
 * is logged when it changes, not every time. `said(subject, what)` is true the first time `what` is
 * said about `subject`, and again whenever it differs from the last thing said about it.
 */
export class SaidOnce<S = string> {
  readonly #last = new Map<S, string>();

  /** True when `what` is news about `subject` (and records it as said). */
  said(subject: S, what: string): boolean {
    if (this.#last.get(subject) === what) return false;
    this.#last.set(subject, what);
    return true;
  }

  /** Forgets `subject` (or everything), so the next word about it is news again. */
  forget(subject?: S): void {
    if (subject === undefined) this.#last.clear();
    else this.#last.delete(subject);
  }
}
