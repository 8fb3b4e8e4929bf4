import { ErrorCodes, parseCidrList, RouteControllerError } from '@route-controller/core';
import type { AgentConfig } from '../config/config.js';
import { assertSafeServiceCidrs } from '../node/cidr-safety.js';
import type { NodeNetworkReader } from '../node/node-network.js';

/**
 * Checks of the configuration against this node, before anything is probed or installed. Both are
 * configuration errors (exit code 2): a SERVICE_CIDRS range that contains the node's own address or
 * gateway, and an explicit kubeconfig that cannot be used when discovery would need it.
 */
export async function preflight(config: AgentConfig, network: NodeNetworkReader): Promise<void> {
  if (config.serviceCidrs !== undefined) {
    try {
      assertSafeServiceCidrs(parseCidrList(config.serviceCidrs).cidrs, await network.read());
    } catch (error) {
      if (!(error instanceof RouteControllerError) || error.code !== ErrorCodes.UnsafeCidr) throw error;
      throw new RouteControllerError(
        ErrorCodes.UnsafeCidr,
        `SERVICE_CIDRS=${JSON.stringify(config.serviceCidrs)} is invalid: ${error.message}`,
        {
          hint: error.hint,
          cause: error,
          details: { ...error.details, variable: 'SERVICE_CIDRS', value: config.serviceCidrs },
        },
      );
    }
    return;
  }
  if (config.kubeconfig !== undefined) {
    // The Kubernetes client is needed for discovery anyway; load it now to check the file.
    const { loadKubeconfig } = await import('../kube-api/kubeconfig.js');
    loadKubeconfig(config.kubeconfig);
  }
}

/**
 * The one-shot commands (probe, plan, status, cleanup) check only what they use: an explicit
 * kubeconfig when discovery would need it.
 */
export async function checkOneShotConfig(config: AgentConfig): Promise<void> {
  if (config.serviceCidrs === undefined && config.kubeconfig !== undefined) {
    const { loadKubeconfig } = await import('../kube-api/kubeconfig.js');
    loadKubeconfig(config.kubeconfig);
  }
}
