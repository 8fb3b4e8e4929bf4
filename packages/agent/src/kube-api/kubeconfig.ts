import { existsSync } from 'node:fs';
import { delimiter } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { ErrorCodes, errorMessage, firstLine, RouteControllerError } from '@route-controller/core';

/** A loaded, usable connection configuration and where it came from (for the log). */
export interface LoadedKubeconfig {
  readonly config: KubeConfig;
  readonly server: string;
  /** "kubeconfig /path", "in-cluster: the pod's service account", "~/.kube/config", ... */
  readonly origin: string;
}

/**
 * Loads the connection settings. An explicit kubeconfig (KUBECONFIG / --kubeconfig, a file or a
 * KUBECONFIG-style list) must load and name a usable cluster, else ERR_RC_INVALID_KUBECONFIG naming
 * the file and what is wrong: it never falls back to another configuration. Without one, client-node's
 * default order applies (in-cluster, then ~/.kube/config); `undefined` means there is none at all.
 */
export function loadKubeconfig(explicit: string | undefined): LoadedKubeconfig | undefined {
  const config = new KubeConfig();
  let origin: string;
  if (explicit !== undefined) {
    const files = explicit.split(delimiter).filter(Boolean);
    const present = files.filter((file) => existsSync(file));
    // As kubectl does, files of a list that do not exist are skipped; but one must exist.
    if (present.length === 0) {
      throw invalidKubeconfig(explicit, files.length > 1 ? 'none of these files exists' : 'the file does not exist');
    }
    for (const file of present) {
      const one = new KubeConfig();
      try {
        one.loadFromFile(file);
      } catch (error) {
        throw invalidKubeconfig(file, `it is not a readable kubeconfig (${firstLine(errorMessage(error))})`, error);
      }
      if (one.getClusters().length === 0 && one.getContexts().length === 0 && one.getUsers().length === 0) {
        throw invalidKubeconfig(file, 'it holds no clusters, contexts or users: it is not a kubeconfig');
      }
      if (file === present[0]) config.loadFromFile(file);
      else config.mergeConfig(one);
    }
    origin = `kubeconfig ${present.join(delimiter)}`;
    const cluster = config.getCurrentCluster();
    if (!cluster?.server) {
      throw invalidKubeconfig(
        explicit,
        config.currentContext
          ? `its current context "${config.currentContext}" names no cluster with a server`
          : 'it has no current-context',
      );
    }
  } else {
    config.loadFromDefault();
    // client-node's last resort is http://localhost:8080: there is really no configuration.
    if (config.currentContext === 'loaded-context') return undefined;
    origin =
      config.currentContext === 'inClusterContext'
        ? "in-cluster: the pod's service account"
        : process.env.KUBECONFIG
          ? `KUBECONFIG ${process.env.KUBECONFIG}`
          : '~/.kube/config';
  }
  const cluster = config.getCurrentCluster();
  const server = cluster?.server;
  if (!server) throw invalidKubeconfig(origin, 'it has no current cluster');
  if (server.startsWith('http:') && !cluster.skipTLSVerify) {
    // client-node would fail every request with a less helpful message.
    throw invalidKubeconfig(
      origin,
      `the server ${server} is plain HTTP, which the Kubernetes client accepts only with insecure-skip-tls-verify: true in the cluster entry`,
    );
  }
  return { config, server, origin };
}

function invalidKubeconfig(file: string, what: string, cause?: unknown): RouteControllerError {
  return new RouteControllerError(
    ErrorCodes.InvalidKubeconfig,
    `KUBECONFIG=${JSON.stringify(file)} cannot be used: ${what}`,
    {
      hint: 'Point KUBECONFIG (or --kubeconfig) at a working kubeconfig (kubectl --kubeconfig <file> get nodes should work), or unset it to use the in-cluster configuration, or set SERVICE_CIDRS.',
      cause,
      details: { variable: 'KUBECONFIG', value: file },
    },
  );
}
