import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Netns } from '@route-controller/lab';
import { FakeApiServer, kubeconfigFor } from '../src/fake-apiserver.js';
import { NetnsForward } from '../src/netns-forward.js';

export const API_PORT = 6443;

/** The test API server, reachable at 127.0.0.1:6443 inside `ns`, and a kubeconfig for it. */
export interface KubernetesApi {
  readonly server: FakeApiServer;
  /** The kubeconfig file on this machine's file system. */
  readonly kubeconfig: string;
  /** Writes the kubeconfig under `root` too (an image's root file system) and returns its path there. */
  kubeconfigUnder(root: string): Promise<string>;
  close(): Promise<void>;
}

export async function startKubernetesApi(ns: Netns): Promise<KubernetesApi> {
  const dir = await mkdtemp(join(tmpdir(), 'rc-bench-kube-'));
  const server = new FakeApiServer();
  const socketPath = join(dir, 'apiserver.sock');
  await server.listen({ path: socketPath });
  const forward = await NetnsForward.start(ns, { socketPath, port: API_PORT });
  const kubeconfig = join(dir, 'kubeconfig');
  const text = kubeconfigFor(forward.url);
  await writeFile(kubeconfig, text);
  return {
    server,
    kubeconfig,
    async kubeconfigUnder(root: string) {
      const path = '/tmp/route-controller-bench-kubeconfig';
      await writeFile(join(root, path), text);
      return path;
    },
    async close() {
      await forward.stop();
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
