/**
 * A loader that runs `load` on its first call and shares that promise with every later call. A
 * failed load is forgotten, so the next call tries again (a module that failed to import, an API
 * connection that could not be made yet).
 */
export function once<T>(load: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    pending ??= (async () => load())().catch((error: unknown) => {
      pending = undefined;
      throw error;
    });
    return pending;
  };
}
