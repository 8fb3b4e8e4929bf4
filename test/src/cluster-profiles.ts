import {
  K3S_AGENT,
  k3sAnnotations,
  kubeadmV1beta3Minikube,
  kubeadmV1beta4Kind132,
} from '../../packages/agent/test/discovery-fixtures.js';
import type { FakeApiServer, ResourceName } from './fake-apiserver.js';

/**
 * Local clusters as the test API server imitates them, each from the real thing's conventions
 * (see the issue's research notes): which API versions serve ServiceCIDRs, which version of
 * kubeadm-config is stored, the Nodes' labels and k3s annotations, the wording of the API
 * server's dry-run answer. The Service range is a parameter, so the loop lab can use its own.
 */

export interface ProfileRange {
  readonly ipv4: string;
  readonly ipv6?: string;
}

export interface ClusterProfile {
  readonly name: string;
  /** What the agent's environment adds in such a cluster (the chart sets these). */
  readonly env: Readonly<Record<string, string>>;
  /** The source that should answer, or 'none' (the warning). */
  readonly answers: string;
  /** Resources the agent is forbidden (the 403 cases). */
  readonly forbidden?: readonly ResourceName[];
  apply(server: FakeApiServer, range: ProfileRange): void;
}

const joined = (range: ProfileRange) => [range.ipv4, ...(range.ipv6 ? [range.ipv6] : [])].join(',');
const CONTROL_PLANE_KUBEADM = { 'node-role.kubernetes.io/control-plane': '' };
const CONTROL_PLANE_K3S = {
  'node-role.kubernetes.io/control-plane': 'true',
  'node-role.kubernetes.io/master': 'true',
};

function kindNodes(server: FakeApiServer): void {
  server.putNode('kind-control-plane', {
    labels: CONTROL_PLANE_KUBEADM,
    addresses: [{ type: 'InternalIP', address: '172.18.0.2' }],
  });
  server.putNode('kind-worker', { addresses: [{ type: 'InternalIP', address: '172.18.0.3' }] });
}

function bitmapRange(server: FakeApiServer, range: ProfileRange): void {
  server.serviceClusterIpRange = { ipv4: range.ipv4, ...(range.ipv6 ? { ipv6: range.ipv6 } : {}) };
}

/** kind 1.32: no ServiceCIDR API (beta, off by default); kubeadm 1.31+ stores kubeadm-config as v1beta4. */
export const KIND_132: ClusterProfile = {
  name: 'kind 1.32',
  env: { NODE_NAME: 'kind-worker', POD_NAMESPACE: 'route-controller' },
  answers: 'kubeadm',
  apply(server, range) {
    server.version = '1.32';
    server.serviceCidrVersions = [];
    bitmapRange(server, range);
    server.putConfigMap('kube-system', 'kubeadm-config', kubeadmV1beta4Kind132(joined(range)));
    kindNodes(server);
  },
};

/** kind 1.34: ServiceCIDR v1 (GA in 1.33) with the default object; kubeadm-config is there too. */
export const KIND_134: ClusterProfile = {
  name: 'kind 1.34',
  env: { NODE_NAME: 'kind-worker', POD_NAMESPACE: 'route-controller' },
  answers: 'servicecidr',
  apply(server, range) {
    server.version = '1.34';
    server.serviceCidrVersions = ['v1'];
    server.add('kubernetes', [range.ipv4, ...(range.ipv6 ? [range.ipv6] : [])]);
    server.putConfigMap('kube-system', 'kubeadm-config', kubeadmV1beta4Kind132(joined(range)));
    kindNodes(server);
  },
};

/** minikube on Kubernetes 1.27: kubeadm-config stored as v1beta3, minikube's 10.96.0.0/12. */
export const MINIKUBE_127: ClusterProfile = {
  name: 'minikube 1.27',
  env: { NODE_NAME: 'minikube', POD_NAMESPACE: 'route-controller' },
  answers: 'kubeadm',
  apply(server, range) {
    server.version = '1.27';
    server.serviceCidrVersions = [];
    bitmapRange(server, range);
    server.putConfigMap('kube-system', 'kubeadm-config', kubeadmV1beta3Minikube(joined(range)));
    server.putNode('minikube', {
      labels: CONTROL_PLANE_KUBEADM,
      addresses: [{ type: 'InternalIP', address: '192.168.49.2' }],
    });
  },
};

/** A k3s 1.31 server node: the agent runs on it and reads its own node-args. */
export function k3sServer(withFlag: boolean): ClusterProfile {
  return {
    name: `k3s 1.31 server ${withFlag ? 'with' : 'without'} --service-cidr`,
    env: { NODE_NAME: 'k3s-server', POD_NAMESPACE: 'route-controller' },
    answers: 'node-args',
    apply(server, range) {
      server.version = '1.31';
      server.serviceCidrVersions = [];
      bitmapRange(server, withFlag ? range : { ipv4: '10.43.0.0/16' });
      const args = withFlag
        ? JSON.stringify(['server', '--write-kubeconfig-mode', '644', '--service-cidr', joined(range)])
        : '["server","--write-kubeconfig-mode","644"]';
      server.putNode('k3s-server', {
        labels: { ...CONTROL_PLANE_K3S, 'node-role.kubernetes.io/etcd': 'true' },
        annotations: k3sAnnotations(args),
        addresses: [{ type: 'InternalIP', address: '172.18.0.2' }],
      });
    },
  };
}

/** A k3s 1.31 agent (worker) node: its own node-args are the agent's; the server's are on the server's Node. */
export function k3sAgent(serverHasFlag: boolean): ClusterProfile {
  const server = k3sServer(serverHasFlag);
  return {
    name: `k3s 1.31 agent node (server ${serverHasFlag ? 'with' : 'without'} --service-cidr)`,
    env: { NODE_NAME: 'k3s-agent', POD_NAMESPACE: 'route-controller' },
    answers: 'node-args',
    apply(fake, range) {
      server.apply(fake, range);
      fake.putNode('k3s-agent', {
        annotations: {
          ...k3sAnnotations(K3S_AGENT, '172.18.0.3'),
          'k3s.io/node-env': '{"K3S_TOKEN":"********","K3S_URL":"https://172.18.0.2:6443"}',
        },
        addresses: [{ type: 'InternalIP', address: '172.18.0.3' }],
      });
    },
  };
}

/** Kubernetes 1.32 with the beta API on: ServiceCIDRs served by networking.k8s.io/v1beta1 only. */
export const V1BETA1_132: ClusterProfile = {
  name: '1.32 with only v1beta1 ServiceCIDRs',
  env: { NODE_NAME: 'kind-worker', POD_NAMESPACE: 'route-controller' },
  answers: 'servicecidr',
  apply(server, range) {
    server.version = '1.32';
    server.serviceCidrVersions = ['v1beta1'];
    server.add('kubernetes', [range.ipv4, ...(range.ipv6 ? [range.ipv6] : [])]);
    kindNodes(server);
  },
};

/** None of these: no ServiceCIDR API, no kubeadm-config, no k3s annotations (a managed cluster, say). */
export const NONE_130: ClusterProfile = {
  name: 'a 1.30 cluster with none of these',
  env: { NODE_NAME: 'node-1', POD_NAMESPACE: 'route-controller' },
  answers: 'none',
  apply(server, range) {
    server.version = '1.30';
    server.serviceCidrVersions = [];
    bitmapRange(server, range);
    server.putNode('node-1', { addresses: [{ type: 'InternalIP', address: '10.0.0.5' }] });
  },
};

/** A profile with resources forbidden to the agent (and, where said, the dry-run source on). */
export function forbidding(
  profile: ClusterProfile,
  forbidden: readonly ResourceName[],
  answers: string,
  env: Readonly<Record<string, string>> = {},
): ClusterProfile {
  return {
    ...profile,
    name: `${profile.name}, ${forbidden.join(' and ')} forbidden${env.DISCOVERY_SOURCES ? `, sources ${env.DISCOVERY_SOURCES}` : ''}`,
    env: { ...profile.env, ...env },
    answers,
    forbidden,
    apply(server, range) {
      profile.apply(server, range);
      server.forbid(...forbidden);
    },
  };
}

export const ALL_SOURCES = 'servicecidr,kubeadm,node-args,dry-run';
