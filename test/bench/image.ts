import { fileURLToPath } from 'node:url';
import { type AgentBin, Netns } from '@route-controller/lab';
import { imageCacheDir } from '../src/image-base.js';
import { buildImage } from '../src/image-build.js';
import { Buildah } from '../src/image-storage.js';
import { startKubernetesApi } from '../src/kubernetes-api.js';
import { type MemoryResult, measureMemory } from './memory.js';
import { measureStart, NFT_RULESET, type StartupResult } from './startup.js';

export interface ImageBenchResult {
  readonly nodeVersion: string;
  readonly startup: readonly StartupResult[];
  readonly memory: readonly MemoryResult[];
}

/**
 * The figures inside the container image the Dockerfile builds (its Node 24, its nft, its warmed
 * compile cache): the image's root file system, mounted with buildah, run with `chroot` in a
 * network namespace. The floor is the image's own `node -e 0` and `nft -f`, started the same way.
 */
export async function measureImage(
  runs: number,
  seconds: number,
  log: (line: string) => void,
): Promise<ImageBenchResult> {
  const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
  const buildah = new Buildah(imageCacheDir());
  const tag = `localhost/route-controller:bench-${process.pid}`;
  await buildImage({ repoRoot, buildah, engine: 'buildah', tag, log });
  const container = await buildah.from(tag, `rc-bench-${process.pid}`);
  const ns = await Netns.create('bench-image');
  try {
    const root = await buildah.mount(container);
    const chroot = ['chroot', root];
    const agent: AgentBin = { bin: '', command: [...chroot, '/usr/local/bin/route-controller'] };
    // The image's environment (PATH to its tools, its compile cache), not this machine's.
    const imageEnv = {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      NODE_ENV: 'production',
      NODE_COMPILE_CACHE: '/opt/route-controller/.compile-cache',
    };
    const nodeVersion = (await ns.must('chroot', [root, '/usr/local/bin/node', '--version'])).stdout.trim();
    const reset = async () => {
      await ns.exec('nft', ['delete', 'table', 'inet', 'route-controller']);
    };
    const raw = [{ file: 'nft', args: ['-f', '-'], input: NFT_RULESET }];
    const startup: StartupResult[] = [];
    startup.push(
      await measureStart(
        ns,
        {
          label: `nft, SERVICE_CIDRS (image, Node ${nodeVersion})`,
          agent,
          prefix: chroot,
          node: '/usr/local/bin/node',
          env: { ...imageEnv, SERVICE_CIDRS: '10.96.0.0/16,fd00:10:96::/112', FIREWALL_BACKEND: 'nft' },
          reset,
        },
        raw,
        runs,
      ),
    );
    const api = await startKubernetesApi(ns);
    try {
      api.server.add('kubernetes', ['10.96.0.0/16', 'fd00:10:96::/112']);
      startup.push(
        await measureStart(
          ns,
          {
            label: `Kubernetes source (image, Node ${nodeVersion})`,
            agent,
            prefix: chroot,
            node: '/usr/local/bin/node',
            env: { ...imageEnv, KUBECONFIG: await api.kubeconfigUnder(root), HOME: '/nonexistent' },
            reset,
          },
          raw,
          runs,
        ),
      );
    } finally {
      await api.close();
    }
    const memory = await measureMemory({
      seconds,
      agent,
      root,
      env: imageEnv,
      labelSuffix: ` (image, Node ${nodeVersion})`,
    });
    return { nodeVersion, startup, memory };
  } finally {
    await ns.delete();
    await buildah.removeContainer(container);
    await buildah.removeImage(tag);
  }
}
