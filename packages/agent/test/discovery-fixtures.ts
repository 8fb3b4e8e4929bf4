/**
 * Real-shaped inputs of the discovery sources, copied from real clusters' output (see the samples in
 * the issue's research notes): kubeadm-config as kubeadm stores it in each API version, k3s/RKE2
 * node-args annotations, and the API server's 422 answers to a dry-run Service per version.
 */

/** kind, Kubernetes v1.21.1: v1beta2, with the ClusterStatus key of kubeadm 1.21 and older. */
export const KUBEADM_V1BETA2_KIND_121 = {
  ClusterConfiguration: `apiServer:
  certSANs:
  - localhost
  - 127.0.0.1
  extraArgs:
    authorization-mode: Node,RBAC
    runtime-config: ""
  timeoutForControlPlane: 4m0s
apiVersion: kubeadm.k8s.io/v1beta2
certificatesDir: /etc/kubernetes/pki
clusterName: kind
controlPlaneEndpoint: kind-control-plane:6443
controllerManager:
  extraArgs:
    enable-hostpath-provisioner: "true"
dns:
  type: CoreDNS
etcd:
  local:
    dataDir: /var/lib/etcd
imageRepository: k8s.gcr.io
kind: ClusterConfiguration
kubernetesVersion: v1.21.1
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/16
scheduler: {}
`,
  ClusterStatus: `apiEndpoints:
  kind-control-plane:
    advertiseAddress: 172.18.0.2
    bindPort: 6443
apiVersion: kubeadm.k8s.io/v1beta2
kind: ClusterStatus
`,
};

/** minikube, Kubernetes v1.27.3: v1beta3, minikube's default 10.96.0.0/12. */
export const KUBEADM_V1BETA3_MINIKUBE_127 = {
  ClusterConfiguration: `apiServer:
  certSANs:
  - 127.0.0.1
  - localhost
  - 192.168.49.2
  extraArgs:
    authorization-mode: Node,RBAC
    enable-admission-plugins: NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,DefaultTolerationSeconds,NodeRestriction,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ResourceQuota
  timeoutForControlPlane: 4m0s
apiVersion: kubeadm.k8s.io/v1beta3
certificatesDir: /var/lib/minikube/certs
clusterName: mk
controlPlaneEndpoint: control-plane.minikube.internal:8443
controllerManager:
  extraArgs:
    allocate-node-cidrs: "true"
    leader-elect: "false"
dns: {}
etcd:
  local:
    dataDir: /var/lib/minikube/etcd
    extraArgs:
      proxy-refresh-interval: "70000"
imageRepository: registry.k8s.io
kind: ClusterConfiguration
kubernetesVersion: v1.27.3
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
scheduler:
  extraArgs:
    leader-elect: "false"
`,
};

/**
 * kind 1.32: kind feeds kubeadm v1beta3, kubeadm 1.31+ stores v1beta4 (extraArgs as name/value
 * lists). Reconstructed from kind's input and a kind 1.31 v1beta4 sample; serviceSubnet given.
 */
export function kubeadmV1beta4Kind132(serviceSubnet = '10.96.0.0/16'): Record<string, string> {
  return {
    ClusterConfiguration: `apiServer:
  certSANs:
  - localhost
  - 127.0.0.1
  extraArgs:
  - name: runtime-config
    value: ""
apiVersion: kubeadm.k8s.io/v1beta4
caCertificateValidityPeriod: 87600h0m0s
certificateValidityPeriod: 8760h0m0s
certificatesDir: /etc/kubernetes/pki
clusterName: kind
controlPlaneEndpoint: kind-control-plane:6443
controllerManager:
  extraArgs:
  - name: enable-hostpath-provisioner
    value: "true"
dns: {}
encryptionAlgorithm: RSA-2048
etcd:
  local:
    dataDir: /var/lib/etcd
imageRepository: registry.k8s.io
kind: ClusterConfiguration
kubernetesVersion: v1.32.2
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: ${serviceSubnet}
proxy: {}
scheduler: {}
`,
  };
}

/** minikube 1.27's v1beta3 ConfigMap with another serviceSubnet (the loop lab's range, or a dual stack). */
export function kubeadmV1beta3Minikube(serviceSubnet: string): Record<string, string> {
  return {
    ClusterConfiguration: KUBEADM_V1BETA3_MINIKUBE_127.ClusterConfiguration.replace(
      'serviceSubnet: 10.96.0.0/12',
      `serviceSubnet: ${serviceSubnet}`,
    ),
  };
}

/** A hand-made kubeadm-config (seen on RKE2 clusters): networking without serviceSubnet. */
export const KUBEADM_HAND_MADE = {
  ClusterConfiguration: `networking:
  dnsDomain: cluster.local
`,
};

/** k3s server with no arguments beyond the kubeconfig mode. */
export const K3S_SERVER_PLAIN = '["server","--write-kubeconfig-mode","644"]';
/** OrbStack's k3s server: dual-stack --service-cidr as one comma list. */
export const K3S_SERVER_ORBSTACK =
  '["server","--disable","metrics-server,traefik,coredns","--https-listen-port","26443","--lb-server-port","26444","--docker","--container-runtime-endpoint","/var/run/docker.sock","--protect-kernel-defaults","--flannel-backend","host-gw","--cluster-cidr","192.168.194.0/25,fd07:b51a:cc66:a::/72","--service-cidr","192.168.194.128/25,fd07:b51a:cc66:a:8000::/112","--kube-controller-manager-arg","node-cidr-mask-size-ipv4=25","--kube-controller-manager-arg","node-cidr-mask-size-ipv6=72","--write-kubeconfig","/run/kubeconfig.yml"]';
/** k3s v1.21.7 from a cluster-info dump: "server" twice. */
export const K3S_SERVER_TWICE =
  '["server","--etcd-expose-metrics","true","--flannel-backend","host-gw","--cluster-cidr","10.4.0.0/16","--service-cidr","10.5.0.0/16","--cluster-dns","10.5.0.10","--cluster-domain","cpcm.io","server","--cluster-init"]';
/** An RKE2 server provisioned by Rancher (config-file arguments, alphabetical). */
export const RKE2_SERVER =
  '["server","--cluster-cidr","100.72.0.0/16","--cni","calico","--kubelet-arg","anonymous-auth=false","--kubelet-arg","provider-id=metal3://sylva-system/mgmt-cluster-my-bmh-foo/mgmt-cluster-cp-056108e4c3-5b9sj","--node-label","--node-label","node.longhorn.io/create-default-disk=config","--profile","cis-1.23","--service-cidr","100.73.0.0/16","--tls-san","172.18.0.2","--tls-san","192.168.100.2","--token","********"]';
/** A k3s agent: its own arguments only. */
export const K3S_AGENT =
  '["agent","--server","https://cluster1-controlplane:6443","--token","********","--flannel-iface","eth0"]';

/** A k3s 1.31 server Node's annotations, with the given arguments. */
export function k3sAnnotations(args: string, internalIp = '172.18.0.2'): Record<string, string> {
  return {
    'k3s.io/hostname': 'k3s-server',
    'k3s.io/internal-ip': internalIp,
    'k3s.io/node-args': args,
    'k3s.io/node-config-hash': 'NME4CSI4TJQMUMCIGOV4CCH62TS6XKU3X76HI5FBHM5MLGQSQ75Q====',
    'k3s.io/node-env': '{}',
  };
}

/** The 422 Status a dry-run Service create with clusterIP `ip` gets, as `version` words it. */
export function dryRunInvalid(version: '1.23' | '1.27' | '1.34', ip: string, range: string | undefined): unknown {
  const value = version === '1.34' ? `["${ip}"]` : `[]string{"${ip}"}`;
  const reason =
    version === '1.23' ? 'provided IP is not in the valid range' : `the provided IP (${ip}) is not in the valid range`;
  const cause = `Invalid value: ${value}: failed to allocate IP ${ip}: ${reason}${range ? `. The range of valid IPs is ${range}` : ''}`;
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `Service "route-controller-cidr-probe" is invalid: spec.clusterIPs: ${cause}`,
    reason: 'Invalid',
    details: {
      name: 'route-controller-cidr-probe',
      kind: 'Service',
      causes: [{ reason: 'FieldValueInvalid', message: cause, field: 'spec.clusterIPs' }],
    },
    code: 422,
  };
}

/** "IPv6 is not configured on this cluster": the answer to :: on an IPv4-only cluster. */
export function dryRunNoFamily(ip = '::', family = 'IPv6'): unknown {
  const cause = `Invalid value: []string{"${ip}"}: ${family} is not configured on this cluster`;
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `Service "route-controller-cidr-probe" is invalid: spec.clusterIPs[0]: ${cause}`,
    reason: 'Invalid',
    details: {
      name: 'route-controller-cidr-probe',
      kind: 'Service',
      causes: [{ reason: 'FieldValueInvalid', message: cause, field: 'spec.clusterIPs[0]' }],
    },
    code: 422,
  };
}
