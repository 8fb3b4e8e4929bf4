import {
  type FirewallBackend,
  type HitRecords,
  type IpFamily,
  type RecordSetStatus,
  readHitRecords,
} from '@route-controller/core';
import type { AgentConfig } from '../config/config.js';
import { formatDuration } from '../config/duration.js';
import { inject, injectable } from '../di.js';
import type { Logger } from '../observability/logger.js';
import { AgentMetrics } from '../observability/metrics.js';
import { TOKENS } from '../tokens.js';
import { type PodNames, podLookupOff, type StaleEventSink, staleEventsOff } from './kubernetes-features.js';
import { describeSource, noRecordsReason } from './stale-destinations.js';
import { EventLimiter, formatNotice, StaleNotices } from './stale-notices.js';

/**
 * Says who dials stale ClusterIPs: reads the backend's hit records once per resync interval (never
 * per packet or per scrape), keeps the stale-destinations gauge, logs each new (destination, source)
 * pair once and a destination at most once a minute while it is dialled, naming the pods of this
 * node behind the sources, and creates an Event per destination per 10 minutes when asked to.
 */
@injectable()
export class StaleReporter {
  readonly #log: Logger;
  readonly #notices = new StaleNotices();
  readonly #events = new EventLimiter();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #unreadable = '';
  readonly #full = new Set<IpFamily>();

  constructor(
    @inject(TOKENS.Config) private readonly config: AgentConfig,
    @inject(TOKENS.Backend) private readonly backend: FirewallBackend,
    @inject(AgentMetrics) private readonly metrics: AgentMetrics,
    @inject(TOKENS.PodNames) private readonly pods: PodNames,
    @inject(TOKENS.StaleEvents) private readonly events: StaleEventSink,
    @inject(TOKENS.Logger) logger: Logger,
  ) {
    this.#log = logger.child({ component: 'stale' });
  }

  /** After the first apply: one read now, then one per resync interval. */
  start(): void {
    const { backend, config } = this;
    if (!backend.capabilities.records) {
      this.#log.info({ backend: backend.name }, noRecordsReason(backend.name));
      return;
    }
    const pods = podLookupOff(config);
    const events = staleEventsOff(config);
    this.#log.info(
      { podLookup: pods === undefined, events: events === undefined },
      `recording who dials stale ClusterIPs, read every ${formatDuration(config.resyncIntervalMs)}; sources named by pod: ${pods ? `no (${pods})` : 'yes'}; Events: ${events ? `no (${events})` : 'yes'}`,
    );
    if (config.staleEvents && events) {
      this.#log.warn(`STALE_CLUSTERIP_EVENTS=true, but ${events}: no StaleClusterIP Events are created`);
    }
    void this.report();
    this.#timer = setInterval(() => void this.report(), config.resyncIntervalMs);
  }

  /**
   * Stops the timer. A read in flight is not waited for (stopping must stay prompt): once it
   * returns it says nothing, as `#stopped` is checked after each await.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  /** One read of the records at `now`: the gauge, the lines due, the Events due. Never two at once. */
  report(now = Date.now()): Promise<void> {
    this.#running ??= this.#report(now).finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #report(now: number): Promise<void> {
    const reading = readHitRecords(this.backend);
    if (!reading || this.#stopped) return;
    let records: HitRecords;
    try {
      records = await reading;
      if (this.#stopped) return;
      this.#unreadable = '';
    } catch (error) {
      // The reconciler reads the same table and says why it fails; say it here once, quietly.
      const message = error instanceof Error ? error.message : String(error);
      if (message !== this.#unreadable) this.#log.debug({ err: error }, `cannot read the hit records: ${message}`);
      this.#unreadable = message;
      return;
    }
    const counts: Partial<Record<IpFamily, number>> = {};
    for (const set of records.sets) {
      counts[set.family] = new Set(
        records.records.filter((r) => r.family === set.family).map((r) => r.destination),
      ).size;
    }
    this.metrics.staleDestinations(counts);
    this.#sayFull(records.sets);
    const notices = this.#notices.update(records.records, now);
    if (notices.length === 0 || this.#stopped) return;
    const addresses = [...new Set(notices.flatMap((notice) => notice.sources.map((source) => source.address)))];
    const names = await this.pods.names(addresses);
    if (this.#stopped) return;
    const eventsOn = staleEventsOff(this.config) === undefined;
    for (const notice of notices) {
      const message = formatNotice(notice, (address) => describeSource(address, names.get(address)));
      const sources = notice.sources.map((source) => {
        const pod = names.get(source.address);
        return { ...source, ...(pod ? { pod } : {}) };
      });
      this.#log.warn(
        { destination: notice.destination, sources, packets: notice.packets, notice: notice.kind },
        message,
      );
      if (eventsOn && this.#events.take(notice.destination, now)) await this.events.record(notice.destination, message);
    }
  }

  /** Says once when a record set fills (and again after it has had room). */
  #sayFull(sets: readonly RecordSetStatus[]): void {
    for (const set of sets) {
      if (!set.full) {
        this.#full.delete(set.family);
      } else if (!this.#full.has(set.family)) {
        this.#full.add(set.family);
        this.#log.warn(
          { family: set.family, size: set.size },
          `the ${set.family} record set is full (${set.size} pairs): pairs seen from now on are not recorded until older ones expire (${formatDuration(set.timeoutSeconds * 1000)} after their last packet); every packet is still dropped and counted`,
        );
      }
    }
  }
}
