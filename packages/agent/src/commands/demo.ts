import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import type { Output } from './output.js';

/**
 * The demo lives in the private lab package, a devDependency: present in a source checkout, never
 * in the published package or the image. The specifier is a variable so that a bundler leaves the
 * import alone instead of pulling the lab into the agent.
 */
const LAB_DEMO: string = '@route-controller/lab/demo';

export const DEMO_NEEDS_CHECKOUT =
  'route-controller demo runs from a source checkout: git clone <the route-controller repository> && cd route-controller && pnpm install && pnpm exec route-controller demo (as root)';

/** `route-controller demo`: the loop and its end, in throwaway network namespaces. */
export async function demoCommand(options: { json: boolean; pings: number }, output: Output): Promise<number> {
  let lab: typeof import('@route-controller/lab/demo');
  try {
    lab = (await import(LAB_DEMO)) as typeof import('@route-controller/lab/demo');
  } catch (error) {
    if (!labMissing(error)) throw error;
    output.err(DEMO_NEEDS_CHECKOUT);
    return 1;
  }
  return lab.demoCommand({ agentBin: ownBin(), ...options }, output);
}

function labMissing(error: unknown): boolean {
  const { code, message } = error as { code?: unknown; message?: unknown };
  return code === 'ERR_MODULE_NOT_FOUND' && String(message).includes("'@route-controller/lab'");
}

/** This package's `route-controller` bin, from its manifest: the agent the demo runs in its lab. */
function ownBin(): string {
  const require = createRequire(import.meta.url);
  const manifestPath = require.resolve('@route-controller/agent/package.json');
  const manifest = require(manifestPath) as { bin: Record<string, string> };
  return resolve(dirname(manifestPath), manifest.bin['route-controller'] ?? 'bin/route-controller.cjs');
}
