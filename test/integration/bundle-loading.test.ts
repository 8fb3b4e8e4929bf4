import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { AGENT_BIN } from '../src/agent-bin.js';
import { bundledModules, LOG_LOADS_ENV, loadedPackages, packageOf, sawBundle } from '../src/bundle-loads.js';

/**
 * What a command's help never needs: logging, DI, the firewall backends, metrics, Kubernetes. (core
 * is one chunk since its index names its API export by export, so its command seam, and execa with
 * it, comes along: about 20 ms on --help, nothing on `run`, which loads it anyway.)
 */
const NOT_FOR_HELP = [
  'pino',
  'tsyringe',
  'prom-client',
  '@kubernetes/client-node',
  '@route-controller/backend-nft',
  '@route-controller/backend-iptables',
];

function helpLoads(args: readonly string[]): Set<string> {
  const run = spawnSync(AGENT_BIN, [...args, '--help'], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...LOG_LOADS_ENV },
  });
  expect(run.status, run.stderr).toBe(0);
  expect(run.stdout).toContain('Usage: route-controller');
  expect(sawBundle(run.stderr), 'the load hook saw no bundle file').toBe(true);
  return loadedPackages(run.stderr);
}

describe('the bundled agent loads only what a command uses', () => {
  it('names packages from esbuild input paths', () => {
    expect(packageOf('../../node_modules/.pnpm/pino@10.4.0/node_modules/pino/pino.js')).toBe('pino');
    expect(
      packageOf(
        '../../node_modules/.pnpm/@kubernetes+client-node@1.4.0/node_modules/@kubernetes/client-node/dist/config.js',
      ),
    ).toBe('@kubernetes/client-node');
    expect(packageOf('../backend-nft/dist/nft-backend.js')).toBe('@route-controller/backend-nft');
    expect(packageOf('src/cli.ts')).toBe('@route-controller/agent');
  });

  for (const command of [[], ['run'], ['probe'], ['plan'], ['status'], ['cleanup']]) {
    it(`\`route-controller ${[...command, '--help'].join(' ')}\` loads the CLI and none of ${NOT_FOR_HELP.join(', ')}`, () => {
      const packages = helpLoads(command);
      expect(packages).toContain('commander');
      expect(NOT_FOR_HELP.filter((name) => packages.has(name))).toEqual([]);
    });
  }
});

describe("build.mjs's trim-kubernetes-client plugin", () => {
  // A client-node upgrade that renames its dist/ or declares its side effects would undo the trim
  // silently (the bench's tricks section measures what it buys: ~70 ms and ~7 MiB with the Kubernetes
  // source); one that gains a real side effect would break the agent, which the kernel tests run.
  it("still leaves client-node's exec, attach, cp, port-forward, log, top and metrics modules out, with ws, tar-fs and whatwg-url", () => {
    const modules = bundledModules();
    expect(modules.filter((input) => input.includes('/@kubernetes/client-node/dist/')).length).toBeGreaterThan(0);
    const unused = modules.filter((input) =>
      /@kubernetes\/client-node\/dist\/(exec|attach|cp|portforward|log|top|metrics)\.js$/.test(input),
    );
    expect(unused).toEqual([]);
    const packages = new Set(modules.map(packageOf));
    expect(
      ['ws', 'isomorphic-ws', 'tar-fs', 'tar-stream', 'whatwg-url', 'tr46'].filter((name) => packages.has(name)),
    ).toEqual([]);
  });
});
