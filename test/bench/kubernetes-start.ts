import { LAB, Netns } from '@route-controller/lab';
import { startKubernetesApi } from '../src/kubernetes-api.js';
import { measureStart, NFT_RULESET, type StartupResult } from './startup.js';

/**
 * Start-to-enforcement with the Kubernetes source (no SERVICE_CIDRS): the agent loads the
 * Kubernetes client, lists the one ServiceCIDR of the test API server and applies it. Next to the
 * same floor as with SERVICE_CIDRS (`node -e 0` plus one `nft -f` of the same rules).
 */
export async function measureKubernetesStart(runs: number): Promise<StartupResult> {
  const ns = await Netns.create('bench-kstart');
  const api = await startKubernetesApi(ns);
  try {
    api.server.add('kubernetes', [LAB.serviceCidr.ipv4, LAB.serviceCidr.ipv6]);
    return await measureStart(
      ns,
      {
        label: 'Kubernetes source (nft)',
        // No ~/.kube/config and not in a pod: only the given kubeconfig.
        env: { KUBECONFIG: api.kubeconfig, HOME: '/nonexistent' },
        reset: async () => {
          await ns.exec('nft', ['delete', 'table', 'inet', 'route-controller']);
        },
      },
      [{ file: 'nft', args: ['-f', '-'], input: NFT_RULESET }],
      runs,
    );
  } finally {
    await api.close();
    await ns.delete();
  }
}
