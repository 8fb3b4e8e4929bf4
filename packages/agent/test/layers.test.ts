import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The agent's source tree shows the flow: each folder sits on a floor, and a module imports only
 * from its own floor or those below it. Data flows down: the command line and its commands, the
 * composition root, the loops (reconcile, stale ClusterIP reports), what they read (discovery
 * sources, firewall backends), the Kubernetes API client, and the ground everyone stands on.
 */
const FLOORS: readonly (readonly string[])[] = [
  ['cli.ts', 'main.ts', 'index.ts'],
  ['commands'],
  ['container.ts', 'agent.ts', 'startup'],
  ['reconcile', 'stale'],
  // lifecycle: what the agent asks about its own life (another agent on the node, its DaemonSet going away).
  ['discovery', 'backends', 'lifecycle'],
  ['kube-api'],
  ['observability', 'node', 'config', 'util', 'di.ts', 'tokens.ts', 'version.ts'],
];

const src = fileURLToPath(new URL('../src', import.meta.url));

function floorOf(file: string): number {
  const top = relative(src, file).split('/')[0] ?? '';
  const floor = FLOORS.findIndex((names) => names.includes(top));
  if (floor < 0) throw new Error(`${relative(src, file)} is on no floor: add its folder to FLOORS`);
  return floor;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

/** Relative imports, static and dynamic, type-only ones included. */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((match) =>
    resolve(dirname(file), (match[1] ?? '').replace(/\.js$/, '.ts')),
  );
}

describe('the agent source tree', () => {
  it('has every module on a floor, importing only from its own floor or the ones below', () => {
    const upward = sources(src).flatMap((file) =>
      imports(file)
        .filter((target) => floorOf(target) < floorOf(file))
        .map((target) => `${relative(src, file)} imports ${relative(src, target)}`),
    );
    expect(upward).toEqual([]);
  });
});
