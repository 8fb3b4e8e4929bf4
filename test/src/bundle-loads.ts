import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { AGENT_BIN } from './agent-bin.js';

/**
 * Which packages a command of the bundled agent loads. A preload (`NODE_OPTIONS=--import=...`)
 * registers a module hook that prints every file module Node loads on stderr; the bundle's metafile
 * (dist/bundle-meta.json, written by build.mjs) says which packages went into each of those files.
 */

const MARK = 'route-controller-test loaded ';

/** The hook, as a data: URL module, so nothing is written to disk. */
const HOOK = `export async function load(url, context, next) {
  if (url.startsWith('file:')) process.stderr.write(${JSON.stringify(MARK)} + url + '\\n');
  return next(url, context);
}`;
const PRELOAD = `data:text/javascript,${encodeURIComponent(
  `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOK)}`)});`,
)}`;

/** Environment that makes the agent print what it loads (merge into the command's environment). */
export const LOG_LOADS_ENV: Readonly<Record<string, string>> = { NODE_OPTIONS: `--import=${PRELOAD}` };

const AGENT_ROOT = resolve(dirname(AGENT_BIN), '..');

interface Metafile {
  readonly outputs: Record<string, { readonly inputs: Record<string, unknown> }>;
}

function metafile(): Metafile {
  return JSON.parse(readFileSync(join(AGENT_ROOT, 'dist', 'bundle-meta.json'), 'utf8')) as Metafile;
}

/** The package an esbuild input path belongs to ("src/cli.ts" is the agent's own). */
export function packageOf(input: string): string {
  const modules = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (modules?.[1]) return modules[1];
  const workspace = /^\.\.\/([^/]+)\//.exec(input);
  if (workspace?.[1]) return `@route-controller/${workspace[1]}`;
  return '@route-controller/agent';
}

/** The bundle files named in `stderr` (relative to the agent package), in load order. */
export function loadedFiles(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith(MARK))
    .map((line) => relative(AGENT_ROOT, new URL(line.slice(MARK.length)).pathname));
}

/** Every package with code in the bundle files named in `stderr`. */
export function loadedPackages(stderr: string): Set<string> {
  const { outputs } = metafile();
  const packages = new Set<string>();
  for (const file of loadedFiles(stderr)) {
    for (const input of Object.keys(outputs[file]?.inputs ?? {})) packages.add(packageOf(input));
  }
  return packages;
}

/** Whether `stderr` shows that the hook ran at all (so an empty result means something). */
export function sawBundle(stderr: string): boolean {
  return loadedFiles(stderr).some((file) => file.startsWith('dist/bundle/'));
}

/** Every module (esbuild input path) with code in some file of the bundle. */
export function bundledModules(): string[] {
  return Object.values(metafile().outputs).flatMap((output) => Object.keys(output.inputs));
}
