import type { FirewallBackend, IpFamily, ObservedState, ServiceCidrs } from '@route-controller/core';
import type { Registry } from 'prom-client';
import { API_CONNECTION_STATES } from './api-state.js';
import { FreshReads } from './fresh-reads.js';

/**
 * Kernel reads for scrapes start at most this often: a tight scrape loop (or two Prometheus servers)
 * waits for the next read, it never makes the agent fork nft or *-save in a storm.
 */
export const KERNEL_READ_INTERVAL_MS = 1_000;

/** The API loop of a Kubernetes discovery source (its watch or its periodic read). */
interface KubernetesStatus {
  /** servicecidr, kubeadm, node-args, dry-run. */
  readonly source: string;
  readonly state: string;
  readonly objects: number;
}

/**
 * prom-client samples event-loop delay every 10 ms by default: about 6 ms of CPU a second on every
 * node, for a figure nobody needs that finely. Every 100 ms costs nothing measurable.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

/**
 * The agent's Prometheus metrics. The reconciler records plain numbers here; prom-client (and its
 * ~80 modules) is loaded only when /metrics is first rendered, off the start-up path, and so are
 * Node's process metrics (memory, CPU, file descriptors, start time). Drop counters are read from
 * the kernel at scrape time: how many loop packets our rules stopped.
 */
export class AgentMetrics {
  readonly #state = {
    backend: undefined as FirewallBackend | undefined,
    source: 'none',
    cidrs: { ipv4: 0, ipv6: 0 } as Record<IpFamily, number>,
    applies: 0,
    failures: 0,
    driftRepairs: 0,
    lastSuccessSeconds: 0,
    ready: false,
    kubernetes: new Map<string, () => readonly KubernetesStatus[]>(),
    changeEvents: { ours: 0, other: 0 },
    changeStreamUp: false,
    changeStreamRestarts: 0,
    /** How drift is noticed while the backend has change events; undefined until the follower starts. */
    followMode: undefined as 'events' | 'polling' | undefined,
    churnPauses: 0,
    eventRepairPauses: 0,
    /** Distinct destinations per family in the hit records at their last read; empty while never read. */
    staleDestinations: {} as Partial<Record<IpFamily, number>>,
  };
  #registry: Promise<Registry> | undefined;
  /**
   * Our objects as the kernel holds them, for the drop counters: each scrape gets a read that
   * started after it came in, shared with the scrapes waiting beside it (see FreshReads).
   */
  readonly #kernel: FreshReads<ObservedState | undefined>;

  constructor(
    private readonly version: string,
    kernelReadIntervalMs = KERNEL_READ_INTERVAL_MS,
  ) {
    this.#kernel = new FreshReads(
      () => this.#state.backend?.observe().catch(() => undefined) ?? Promise.resolve(undefined),
      kernelReadIntervalMs,
    );
  }

  backendChosen(backend: FirewallBackend): void {
    this.#state.backend = backend;
  }

  cidrs(source: string, cidrs: ServiceCidrs): void {
    this.#state.source = source;
    this.#state.cidrs = { ipv4: cidrs.ipv4.length, ipv6: cidrs.ipv6.length };
  }

  applied(changed: boolean, at: Date): void {
    if (changed) this.#state.applies += 1;
    this.#state.lastSuccessSeconds = at.getTime() / 1000;
  }

  failed(): void {
    this.#state.failures += 1;
  }

  driftRepaired(): void {
    this.#state.driftRepairs += 1;
  }

  ready(ready: boolean): void {
    this.#state.ready = ready;
  }

  /** The hit records' distinct destinations per family, as last read (once per resync, never at scrape time). */
  staleDestinations(counts: Partial<Record<IpFamily, number>>): void {
    this.#state.staleDestinations = counts;
  }

  /** Exposes a Kubernetes source's connection states (only once that source is loaded). */
  kubernetesSource(name: string, statuses: () => readonly KubernetesStatus[]): void {
    this.#state.kubernetes.set(name, statuses);
  }

  /** One kernel change event: `ours` when it touched our objects. Called per event: keep it cheap. */
  changeEvent(scope: 'ours' | 'other'): void {
    this.#state.changeEvents[scope] += 1;
  }

  changeStream(up: boolean): void {
    this.#state.changeStreamUp = up;
  }

  changeStreamRestarted(): void {
    this.#state.changeStreamRestarts += 1;
  }

  /** Following change events, or polling our table because another tool's churn made them too costly. */
  changeFollowMode(mode: 'events' | 'polling'): void {
    if (mode === 'polling' && this.#state.followMode !== 'polling') this.#state.churnPauses += 1;
    this.#state.followMode = mode;
  }

  eventRepairsPaused(): void {
    this.#state.eventRepairPauses += 1;
  }

  /** The Prometheus text exposition, and its content type. */
  async render(): Promise<{ contentType: string; text: string }> {
    this.#registry ??= this.#createRegistry();
    const registry = await this.#registry;
    return { contentType: registry.contentType, text: await registry.metrics() };
  }

  async #createRegistry(): Promise<Registry> {
    // `.default`: prom-client is CommonJS, and a bundle's dynamic import of it has no named exports.
    const { collectDefaultMetrics, Counter, Gauge, Registry } = (await import('prom-client')).default;
    const state = this.#state;
    const registry = new Registry();
    const registers = [registry];
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    // Every metric reads the recorded state when scraped. A gauge whose read sets nothing has no
    // sample: absent, not 0, where what it measures is not in use. Concurrent scrapes share the metric
    // objects: each collect() replaces their values in one synchronous step (reset, then set), never
    // across an await, or overlapping scrapes would see each other's half-done values.
    const gauge = <L extends string>(
      name: string,
      help: string,
      labelNames: readonly L[],
      read: (set: (labels: Partial<Record<L, string>>, value: number) => void) => void,
    ) => {
      const metric = new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        collect() {
          metric.reset();
          let sampled = false;
          read((labels, value) => {
            sampled = true;
            metric.set(labels, value);
          });
          // prom-client keeps a 0 for a gauge without labels; remove() drops it.
          if (!sampled && labelNames.length === 0) metric.remove();
        },
      });
    };
    const counter = (name: string, help: string, read: () => number) => {
      const metric = new Counter({
        name,
        help,
        registers,
        collect() {
          // The count is kept in our state; the Counter only presents it.
          metric.reset();
          metric.inc(read());
        },
      });
    };
    gauge('route_controller_build_info', 'Version of the running agent (value 1)', ['version'], (set) =>
      set({ version: this.version }, 1),
    );
    gauge('route_controller_backend_info', 'The firewall backend in use (value 1)', ['backend'], (set) => {
      if (state.backend) set({ backend: state.backend.name }, 1);
    });
    gauge(
      'route_controller_cidr_source_info',
      'Where the Service CIDRs come from (value 1): env, servicecidr, kubeadm, node-args, dry-run or none',
      ['source'],
      (set) => set({ source: state.source }, 1),
    );
    gauge('route_controller_service_cidrs', 'Service CIDRs enforced, per address family', ['family'], (set) => {
      set({ family: 'ipv4' }, state.cidrs.ipv4);
      set({ family: 'ipv6' }, state.cidrs.ipv6);
    });
    counter('route_controller_applies_total', 'Apply transactions that changed the kernel', () => state.applies);
    counter(
      'route_controller_apply_failures_total',
      'Reconciles that failed (the rules in place were kept)',
      () => state.failures,
    );
    counter(
      'route_controller_drift_repairs_total',
      'Times our rules had been changed or removed by someone else and were put back',
      () => state.driftRepairs,
    );
    gauge(
      'route_controller_last_successful_apply_timestamp_seconds',
      'Unix time of the last reconcile that left the kernel in step',
      [],
      (set) => set({}, state.lastSuccessSeconds),
    );
    gauge('route_controller_ready', '1 when the rules are applied and in step with the desired state', [], (set) =>
      set({}, state.ready ? 1 : 0),
    );
    const changeEvents = new Counter<'scope'>({
      name: 'route_controller_change_events_total',
      help: 'Kernel firewall change events seen: scope "ours" touched our objects (each starts a reconcile, debounced), "other" did not',
      labelNames: ['scope'],
      registers,
      collect() {
        changeEvents.reset();
        changeEvents.inc({ scope: 'ours' }, state.changeEvents.ours);
        changeEvents.inc({ scope: 'other' }, state.changeEvents.other);
      },
    });
    gauge(
      'route_controller_change_events_up',
      '1 while the kernel change event stream is connected; 0 while it restarts, while it is paused for foreign churn (route_controller_change_follow_mode), or where the backend has none (iptables-legacy: the resync finds drift)',
      [],
      (set) => set({}, state.changeStreamUp ? 1 : 0),
    );
    counter(
      'route_controller_change_events_restarts_total',
      'Times the kernel change event stream ended by itself and was started again',
      () => state.changeStreamRestarts,
    );
    gauge(
      'route_controller_change_follow_mode',
      'How drift is noticed (1 for the current mode): "events" follows kernel change events, "polling" reads our table every 0.7 s while another tool changes the ruleset too often to follow (absent without change events)',
      ['mode'],
      (set) => {
        const mode = state.followMode;
        if (mode === undefined) return;
        for (const name of ['events', 'polling'] as const) set({ mode: name }, name === mode ? 1 : 0);
      },
    );
    counter(
      'route_controller_change_events_churn_pauses_total',
      "Times change events were paused for another tool's churn, and our table polled instead",
      () => state.churnPauses,
    );
    counter(
      'route_controller_change_event_repairs_paused_total',
      'Times repairs from change events were paused because our rules kept being changed right after each repair (the resync still repairs)',
      () => state.eventRepairPauses,
    );
    for (const unit of ['packets', 'bytes'] as const) {
      // The kernel's own counters of our rules: they only grow (until the rules are replaced).
      const metric = new Counter<'family'>({
        name: `route_controller_blocked_${unit}_total`,
        help: `Forwarded ${unit} to Service CIDRs that our rules dropped or rejected, per family (read from the kernel)`,
        labelNames: ['family'],
        registers,
        collect: async () => {
          const observed = await this.#kernel.get();
          metric.reset();
          for (const family of ['ipv4', 'ipv6'] as const) {
            const counters = observed?.[family].counters;
            if (counters) metric.inc({ family }, counters[unit]);
          }
        },
      });
    }
    const kubernetes = () => [...state.kubernetes.values()].flatMap((statuses) => statuses());
    gauge(
      'route_controller_kubernetes_api_state',
      `State of each Kubernetes API connection of a discovery source, once the source is loaded: 1 for the current state, 0 for the others (${API_CONNECTION_STATES.join(', ')})`,
      ['source', 'state'],
      (set) => {
        for (const status of kubernetes()) {
          for (const name of API_CONNECTION_STATES)
            set({ source: status.source, state: name }, name === status.state ? 1 : 0);
        }
      },
    );
    gauge(
      'route_controller_kubernetes_servicecidr_objects',
      'ServiceCIDR objects seen on the API server (absent until the servicecidr source is loaded, and with SERVICE_CIDRS set)',
      [],
      (set) => {
        const status = kubernetes().find((s) => s.source === 'servicecidr');
        if (status) set({}, status.objects);
      },
    );
    gauge(
      'route_controller_stale_destinations',
      'Distinct stale ClusterIPs dialled within the recording window, per family (the hit records as last read, once per resync; absent with a backend that records no hits)',
      ['family'],
      (set) => {
        for (const [family, count] of Object.entries(state.staleDestinations)) set({ family }, count);
      },
    );
    return registry;
  }
}
