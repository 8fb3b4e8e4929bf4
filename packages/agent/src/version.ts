import { createRequire } from 'node:module';

/** Set by the bundler (build.mjs) at build time; absent when the TypeScript output runs unbundled. */
declare const __RC_VERSION__: string | undefined;

/**
 * The agent package's own version. In the bundle it is a constant (a bundle cannot find
 * ../package.json relative to its chunk); unbundled it is read once from package.json.
 */
export const VERSION: string =
  typeof __RC_VERSION__ === 'string'
    ? __RC_VERSION__
    : (createRequire(import.meta.url)('../package.json') as { version: string }).version;
