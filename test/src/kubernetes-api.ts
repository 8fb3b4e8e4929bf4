import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Netns } from '@route-controller/lab';
import { FakeApiServer, type KubeconfigOptions, kubeconfigFor } from './fake-apiserver.js';
import { NetnsForward } from './netns-forward.js';

export const API_PORT = 6443;

/**
 * The test API server, running in this process on a Unix socket and reachable at 127.0.0.1:6443
 * inside a namespace (a forwarder there), as an API server on a kind node would be; and a
 * kubeconfig for it. For the kernel tests and the bench.
 */
export interface KubernetesApi {
  /** The server answering now (see `serve`). */
  readonly server: FakeApiServer;
  /** Where the server listens; a test that stops and restarts it listens here again. */
  readonly socketPath: string;
  /** The server's address inside the namespace (http://127.0.0.1:6443), as the kubeconfig names it. */
  readonly url: string;
  /** The kubeconfig file on this machine's file system. */
  readonly kubeconfig: string;
  /** Replaces the answering server with `server` (a fresh cluster), on the same socket. */
  serve(server: FakeApiServer): Promise<void>;
  /** Writes the kubeconfig under `root` too (an image's root file system) and returns its path there. */
  kubeconfigUnder(root: string): Promise<string>;
  /**
   * The same server reached from another namespace (its own forwarder, 127.0.0.1:6443 there), with
   * a kubeconfig of its own: a bearer token names its agent in the request log. Ends with close().
   */
  reach(ns: Netns, options?: KubeconfigOptions): Promise<{ readonly url: string; readonly kubeconfig: string }>;
  close(): Promise<void>;
}

export async function startKubernetesApi(ns: Netns): Promise<KubernetesApi> {
  const dir = await mkdtemp(join(tmpdir(), 'rc-kube-api-'));
  let server = new FakeApiServer();
  const socketPath = join(dir, 'apiserver.sock');
  await server.listen({ path: socketPath });
  const forward = await NetnsForward.start(ns, { socketPath, port: API_PORT });
  const kubeconfig = join(dir, 'kubeconfig');
  const text = kubeconfigFor(forward.url);
  await writeFile(kubeconfig, text);
  const forwards = [forward];
  return {
    get server() {
      return server;
    },
    socketPath,
    url: forward.url,
    kubeconfig,
    async serve(next: FakeApiServer) {
      await server.close();
      server = next;
      await server.listen({ path: socketPath });
    },
    async kubeconfigUnder(root: string) {
      const path = '/tmp/route-controller-bench-kubeconfig';
      await writeFile(join(root, path), text);
      return path;
    },
    async reach(other: Netns, options: KubeconfigOptions = {}) {
      const reached = await NetnsForward.start(other, { socketPath, port: API_PORT });
      forwards.push(reached);
      const file = join(dir, `kubeconfig-${forwards.length}`);
      await writeFile(file, kubeconfigFor(reached.url, options));
      return { url: reached.url, kubeconfig: file };
    },
    async close() {
      await Promise.all(forwards.map((each) => each.stop()));
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
