/**
 * Runs tasks one at a time, in the order they were queued; a failed task does not stop the next.
 * Backends put apply() and cleanup() behind one, because each reads the kernel and then writes
 * from what it read: two interleaved calls would each write from a stale read.
 */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(task, task);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}
