/**
 * Every injection token of the agent, in one place. Plain symbols with no imports, so any module
 * can name a token without pulling in (or cycling through) the module that provides it; the
 * composition root (container.ts) is the only place that says what each token resolves to.
 */
export const TOKENS = {
  Config: Symbol('AgentConfig'),
  Logger: Symbol('Logger'),
  CommandRunner: Symbol('CommandRunner'),
  /** Starts long-lived processes read line by line (the change event monitor). */
  StreamRunner: Symbol('StreamRunner'),
  /** Every backend by name (BackendSet). */
  Backends: Symbol('BackendSet'),
  FlavourDetector: Symbol('FlavourDetector'),
  Discovery: Symbol('DiscoveryChain'),
  NodeNetwork: Symbol('NodeNetworkReader'),
  /** The outcome of backend selection: only in the run container, which exists once it is known. */
  Selection: Symbol('Selection'),
  /** The backend selection chose: only in the run container. */
  Backend: Symbol('FirewallBackend'),
  /** What /readyz reports (the reconciler's readiness). */
  Readiness: Symbol('ReadinessProbe'),
  /** What /healthz reports (whether the reconcile loop still completes attempts). */
  Liveness: Symbol('LivenessProbe'),
  /** A monotonic clock in milliseconds (performance.now; tests pass their own). */
  Clock: Symbol('Clock'),
  /** The name of the abstract unix socket a running agent holds (one agent per network namespace). */
  AgentSocketName: Symbol('AgentSocketName'),
  /** The firewall commands of every backend (FirewallCommands): stopping interrupts them. */
  FirewallCommands: Symbol('FirewallCommands'),
  /** Opens, once and lazily, the Kubernetes API connection shared by discovery and stale ClusterIP reporting. */
  KubernetesConnection: Symbol('ConnectionLoader'),
  /** Pod names of stale ClusterIP sources (PodNames). */
  PodNames: Symbol('PodNames'),
  /** Where StaleClusterIP Events go (StaleEventSink). */
  StaleEvents: Symbol('StaleEventSink'),
} as const;
