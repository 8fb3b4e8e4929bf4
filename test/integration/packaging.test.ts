import { access, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProcessCommandRunner } from '@route-controller/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The backends are published and consumed on their own: packed as tarballs and installed into an
 * empty app with npm, each must bring core and nothing of the agent's (above all not the
 * Kubernetes client), and work from its published files alone. backend-iptables also brings
 * backend-nft: its iptables-nft change events are nft's own monitor, specified once there.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
const runner = new ProcessCommandRunner({ defaultTimeoutMs: 180_000 });
const PACKAGES = ['core', 'backend-nft', 'backend-iptables'] as const;

async function must(file: string, args: string[]): Promise<string> {
  const result = await runner.run({ file, args });
  if (result.exitCode !== 0) throw new Error(`${file} ${args.join(' ')} exited ${result.exitCode}: ${result.stderr}`);
  return result.stdout;
}

describe('the backends installed alone from packed tarballs', () => {
  let dir: string;
  const tarballs: Record<string, string> = {};

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rc-pack-'));
    for (const name of PACKAGES) {
      const out = await must('pnpm', ['--dir', join(root, 'packages', name), 'pack', '--pack-destination', dir]);
      const file = out.trim().split('\n').at(-1) ?? '';
      tarballs[name] = file.startsWith('/') ? file : join(dir, file);
    }
  }, 180_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  // What each backend brings with it, besides itself.
  const brings = { 'backend-nft': ['core'], 'backend-iptables': ['core', 'backend-nft'] } as const;
  for (const backend of ['backend-nft', 'backend-iptables'] as const) {
    it(`${backend} with ${brings[backend].join(' and ')}: no Kubernetes client, nothing but dist, and it works`, async () => {
      const app = await mkdtemp(join(dir, `app-${backend}-`));
      // Not on a registry yet: every package it depends on comes from its tarball too.
      const local = [...brings[backend], backend].map((name) => [
        `@route-controller/${name}`,
        `file:${tarballs[name]}`,
      ]);
      await writeFile(
        join(app, 'package.json'),
        JSON.stringify({
          name: 'consumer',
          private: true,
          type: 'module',
          dependencies: Object.fromEntries(local),
        }),
      );
      await must('npm', ['install', '--prefix', app, '--no-audit', '--no-fund', '--loglevel=error']);
      const tree = JSON.parse(await must('npm', ['ls', '--prefix', app, '--all', '--json'])) as {
        dependencies: Record<string, { dependencies?: Record<string, unknown> }>;
      };
      const names = new Set<string>();
      const walk = (deps: Record<string, { dependencies?: Record<string, unknown> }> | undefined) => {
        for (const [name, dep] of Object.entries(deps ?? {})) {
          names.add(name);
          walk(dep.dependencies as Record<string, { dependencies?: Record<string, unknown> }> | undefined);
        }
      };
      walk(tree.dependencies);
      expect([...names].filter((name) => name.startsWith('@kubernetes/'))).toEqual([]);
      expect(names.has('@route-controller/agent')).toBe(false);
      expect([...names].filter((name) => name.startsWith('@route-controller/')).sort()).toEqual(
        [...brings[backend], backend].map((name) => `@route-controller/${name}`).sort(),
      );
      // Published files: dist, the sources its maps point at, the manifest, README and LICENSE; no tests,
      // no build metadata.
      const installed = join(app, 'node_modules', '@route-controller', backend);
      const published = await readdir(installed);
      expect(published.sort()).toEqual(['LICENSE', 'README.md', 'dist', 'package.json', 'src']);
      const dist = await readdir(join(installed, 'dist'));
      expect(dist.filter((file) => file.endsWith('.tsbuildinfo') || file.startsWith('.'))).toEqual([]);
      // Every source map names files that were shipped, so a debugger finds them.
      for (const map of dist.filter((file) => file.endsWith('.map'))) {
        const { sources } = JSON.parse(await readFile(join(installed, 'dist', map), 'utf8')) as { sources: string[] };
        for (const source of sources) {
          await expect(access(join(installed, 'dist', source)), `${map} -> ${source}`).resolves.toBeUndefined();
        }
      }

      const script =
        backend === 'backend-nft'
          ? `const { NftBackend } = await import('@route-controller/backend-nft');
             const b = new NftBackend(); console.log(JSON.stringify({ name: b.name, families: b.capabilities.families }));`
          : `const { IptablesBackend } = await import('@route-controller/backend-iptables');
             const { NFT_MONITOR_ARGS } = await import('@route-controller/backend-nft/monitor');
             if (NFT_MONITOR_ARGS.join(' ') !== '-j monitor ruleset') process.exit(4);
             const b = new IptablesBackend({ mode: 'legacy' }); console.log(JSON.stringify({ name: b.name, families: b.capabilities.families }));`;
      const core = `const { parseCidrList, desiredState } = await import('@route-controller/core');
        const d = desiredState(parseCidrList('10.96.0.0/12').cidrs); if (d.cidrs.ipv4[0].text !== '10.96.0.0/12') process.exit(3);`;
      // A module inside the app, so its imports resolve from the app's node_modules.
      await writeFile(join(app, 'smoke.mjs'), `${core}\n${script}\n`);
      const out = await must(process.execPath, [join(app, 'smoke.mjs')]);
      expect(JSON.parse(out)).toEqual({
        name: backend === 'backend-nft' ? 'nft' : 'iptables-legacy',
        families: ['ipv4', 'ipv6'],
      });
    }, 180_000);
  }
});

/**
 * core's runtime API, pinned: every name here is semver-bound for the published package, so adding
 * or dropping one is a decision made in packages/core/src/index.ts and recorded here (types are
 * checked by attw and the packages that use them).
 */
const CORE_API = [
  'BLOCK_ACTIONS',
  'DEFAULT_COMMAND_TIMEOUT_MS',
  'DiscoveryChain',
  'EnvServiceCidrSource',
  'ErrorCodes',
  'IP_FAMILIES',
  'LazySource',
  'MAX_CIDRS_PER_FAMILY',
  'MAX_PREFIX',
  'NOTHING_OBSERVED',
  'NO_HIT_RECORDS',
  'NO_SERVICE_CIDRS',
  'PERMISSION_DENIED',
  'PrefixedCommandRunner',
  'PrefixedStreamRunner',
  'ProcessCommandRunner',
  'ProcessStreamRunner',
  'RouteControllerError',
  'SerialQueue',
  'assertEnforceable',
  'cidrContains',
  'cidrContainsAddress',
  'cidrTexts',
  'cidrsOf',
  'classifyStderr',
  'commandNotFound',
  'compareCidrs',
  'compareVersions',
  'describeDesiredState',
  'describeNote',
  'desiredState',
  'errorMessage',
  'firstLine',
  'formatCommand',
  'formatServiceCidrs',
  'formatVersion',
  'isEmptyDesiredState',
  'isInSync',
  'isRouteControllerError',
  'normalizeCidrs',
  'once',
  'parseCidr',
  'parseCidrList',
  'parseVersion',
  'readHitRecords',
  'runChangeStream',
  'runChecked',
  'sameCidrList',
  'sameDesiredState',
  'sameServiceCidrs',
  'toRouteControllerError',
  'versionAtLeast',
  'waitForNetlinkSubscription',
];

describe('@route-controller/core', () => {
  it('exports exactly the names of its pinned public API', async () => {
    const core = await import('@route-controller/core');
    expect(Object.keys(core).sort()).toEqual([...CORE_API].sort());
  });
});
