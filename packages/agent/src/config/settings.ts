import { BLOCK_ACTIONS, type BlockAction } from '@route-controller/core';

/** Backend names users can ask for; "auto" lets the agent choose. */
export const BACKEND_CHOICES = ['auto', 'nft', 'iptables-nft', 'iptables-legacy'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];
export type BackendName = Exclude<BackendChoice, 'auto'>;
export const BACKEND_NAMES: readonly BackendName[] = ['nft', 'iptables-nft', 'iptables-legacy'];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const DEFAULT_LISTEN = '0.0.0.0:9771';
/** As kube-proxy's metrics (127.0.0.1:10249): only the node itself can scrape them unless asked otherwise. */
export const DEFAULT_METRICS_LISTEN = '127.0.0.1:9772';

/**
 * Where the Service CIDRs are discovered from when SERVICE_CIDRS is unset, in the order they are
 * asked (the first with CIDRs wins); DISCOVERY_SOURCES switches them on and off, never reorders.
 */
export const DISCOVERY_SOURCE_NAMES = ['servicecidr', 'kubeadm', 'node-args', 'dry-run'] as const;
export type DiscoverySourceName = (typeof DISCOVERY_SOURCE_NAMES)[number];
/** dry-run is opt-in: it needs create on services, and an admission webhook may refuse it. */
export const DEFAULT_DISCOVERY_SOURCES: readonly DiscoverySourceName[] = ['servicecidr', 'kubeadm', 'node-args'];

/**
 * Every setting of the agent, each an environment variable (how the DaemonSet configures it) and
 * a flag (which wins). The CLI builds its options and help from this table.
 */
export interface SettingSpec {
  readonly key: keyof RawSettings;
  readonly env: string;
  readonly flag: string;
  readonly argName: string;
  readonly description: string;
  readonly defaultText?: string;
}

export interface RawSettings {
  readonly serviceCidrs?: string;
  readonly backend?: string;
  readonly action?: string;
  readonly resyncInterval?: string;
  readonly logLevel?: string;
  readonly cleanupOnExit?: string;
  readonly listen?: string;
  readonly kubeconfig?: string;
  readonly iptablesLockWait?: string;
  readonly metricsListen?: string;
  readonly discoverySources?: string;
  readonly nodeName?: string;
  readonly podNamespace?: string;
  readonly podLookup?: string;
  readonly staleEvents?: string;
  readonly daemonSetName?: string;
}

export const SETTINGS: readonly SettingSpec[] = [
  {
    key: 'serviceCidrs',
    env: 'SERVICE_CIDRS',
    flag: '--service-cidrs',
    argName: 'cidrs',
    description:
      'comma-separated Service CIDRs; when unset they are discovered from the cluster (see --discovery-sources)',
  },
  {
    key: 'backend',
    env: 'FIREWALL_BACKEND',
    flag: '--backend',
    argName: 'name',
    description: `firewall backend: ${BACKEND_CHOICES.join(' | ')}`,
    defaultText: 'auto',
  },
  {
    key: 'action',
    env: 'BLOCK_ACTION',
    flag: '--action',
    argName: 'action',
    description: `what to do with forwarded packets to a Service CIDR: ${BLOCK_ACTIONS.join(' | ')}`,
    defaultText: 'drop',
  },
  {
    key: 'resyncInterval',
    env: 'RESYNC_INTERVAL',
    flag: '--resync-interval',
    argName: 'duration',
    description: 'how often to re-check the rules and repair drift (e.g. 30s, 2s, 1m)',
    defaultText: '30s',
  },
  {
    key: 'logLevel',
    env: 'LOG_LEVEL',
    flag: '--log-level',
    argName: 'level',
    description: `log level: ${LOG_LEVELS.join(' | ')}`,
    defaultText: 'info',
  },
  {
    key: 'cleanupOnExit',
    env: 'CLEANUP_ON_EXIT',
    flag: '--cleanup-on-exit',
    argName: 'bool',
    description: 'remove the rules on SIGTERM/SIGINT instead of keeping them (true | false)',
    defaultText: 'false',
  },
  {
    key: 'listen',
    env: 'LISTEN_ADDRESS',
    flag: '--listen',
    argName: 'host:port',
    description: 'address of /healthz and /readyz, for the kubelet\'s probes ("off" disables them)',
    defaultText: DEFAULT_LISTEN,
  },
  {
    key: 'metricsListen',
    env: 'METRICS_LISTEN_ADDRESS',
    flag: '--metrics-listen',
    argName: 'host:port',
    description:
      'address of /metrics: on loopback only the node itself can scrape it; 0.0.0.0:9772 lets a Prometheus elsewhere scrape it; "off" for no metrics',
    defaultText: DEFAULT_METRICS_LISTEN,
  },
  {
    key: 'kubeconfig',
    env: 'KUBECONFIG',
    flag: '--kubeconfig',
    argName: 'path',
    description: 'kubeconfig for Service CIDR discovery (default: in-cluster config, then ~/.kube/config)',
  },
  {
    key: 'discoverySources',
    env: 'DISCOVERY_SOURCES',
    flag: '--discovery-sources',
    argName: 'names',
    description: `the cluster sources asked for the Service CIDRs when SERVICE_CIDRS is unset, comma-separated, always asked in this order: ${DISCOVERY_SOURCE_NAMES.join(', ')} (dry-run is opt-in)`,
    defaultText: DEFAULT_DISCOVERY_SOURCES.join(','),
  },
  {
    key: 'nodeName',
    env: 'NODE_NAME',
    flag: '--node-name',
    argName: 'name',
    description: "this node's name, for the node-args source (the Helm chart sets it from the downward API)",
  },
  {
    key: 'podNamespace',
    env: 'POD_NAMESPACE',
    flag: '--pod-namespace',
    argName: 'namespace',
    description: "the agent's namespace, where the dry-run source sends its dry-run Service (the Helm chart sets it)",
  },
  {
    key: 'podLookup',
    env: 'POD_LOOKUP',
    flag: '--pod-lookup',
    argName: 'bool',
    description:
      'name the pod behind each source of packets to a stale ClusterIP, from the pods of this node (needs NODE_NAME, SERVICE_CIDRS unset and list on pods in every namespace; true | false)',
    defaultText: 'false',
  },
  {
    key: 'staleEvents',
    env: 'STALE_CLUSTERIP_EVENTS',
    flag: '--stale-events',
    argName: 'bool',
    description:
      'create a Kubernetes Event (reason StaleClusterIP) on this node when a stale ClusterIP is dialled, one per address per 10 minutes at most (needs NODE_NAME, SERVICE_CIDRS unset and create on events; true | false)',
    defaultText: 'false',
  },
  {
    key: 'daemonSetName',
    env: 'DAEMONSET_NAME',
    flag: '--daemonset-name',
    argName: 'name',
    description:
      "the agent's own DaemonSet, in POD_NAMESPACE: at SIGTERM the agent reads it and removes its rules when it is gone or being deleted (an uninstall), and keeps them otherwise (a rolling update); needs get on that DaemonSet (the Helm chart sets it with routeController.cleanupOnUninstall)",
  },
  {
    key: 'iptablesLockWait',
    env: 'IPTABLES_LOCK_WAIT',
    flag: '--iptables-lock-wait',
    argName: 'duration',
    description:
      'how long an iptables backend waits for the xtables lock held by kube-proxy or Docker (whole seconds, e.g. 5s, 30s; 1s to 5m)',
    defaultText: '5s',
  },
];

export function settingFor(key: keyof RawSettings): SettingSpec {
  const spec = SETTINGS.find((s) => s.key === key);
  if (!spec) throw new Error(`no setting ${key}`);
  return spec;
}

export type { BlockAction };
