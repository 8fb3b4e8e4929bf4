import {
  errorMessage,
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
import { SaidOnce } from '../util/said-once.js';
import { type PodNames, podLookupOff, type StaleEventSink, staleEventsOff } from './kubernetes-features.js';
import { describeSource, noRecordsReason } from './stale-destinations.js';
import { StaleLogBudget } from './stale-log-budget.js';
import { formatNotice, StaleEventPolicy, type StaleNotice, StaleNotices } from './stale-notices.js';

/**
 * Says who dials stale ClusterIPs: reads the backend's hit records once per resync interval (never
 * per packet or per scrape) and keeps the stale-destinations gauge from every pair. The log gets
 * each new (destination, source) pair and each destination still dialled at most once a minute,
 * within a budget (StaleLogBudget: about 10 lines a read, 60 a minute, the rest summed up in one
 * line that points to `route-controller status`, which lists them all), naming the pods of this
 * node behind the sources when asked to. Events, when asked for, follow StaleEventPolicy: one per
 * destination, its count bumped, through the node's token bucket.
 */
@injectable()
export class StaleReporter {
  readonly #log: Logger;
  readonly #notices = new StaleNotices();
  readonly #budget = new StaleLogBudget();
  readonly #eventPolicy = new StaleEventPolicy();
  readonly #said = new SaidOnce<string>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

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

  /** After the first apply: one read now (then it says it is recording), then one per resync interval. */
  start(): void {
    const { backend, config } = this;
    if (!backend.capabilities.records) {
      this.#log.info(
        { backend: backend.name, reason: noRecordsReason(backend.name) },
        'no record of who dials stale ClusterIPs',
      );
      return;
    }
    const pods = podLookupOff(config);
    const events = staleEventsOff(config);
    if (config.staleEvents && events)
      this.#log.warn({ reason: events }, 'no StaleClusterIP Events despite STALE_CLUSTERIP_EVENTS=true');
    // Said once the first read is in: whatever is recorded from then on is news.
    void this.report().then(() => {
      if (this.#stopped) return;
      this.#log.info(
        {
          backend: backend.name,
          readEvery: formatDuration(config.resyncIntervalMs),
          podLookup: pods === undefined,
          ...(pods ? { podLookupOff: pods } : {}),
          events: events === undefined,
          ...(events ? { eventsOff: events } : {}),
        },
        'recording who dials stale ClusterIPs',
      );
    });
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
      this.#said.forget('read');
    } catch (error) {
      // The reconciler reads the same table and says why it fails; say it here once, quietly.
      if (this.#said.said('read', errorMessage(error))) this.#log.debug({ err: error }, 'hit records unreadable');
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
    const { shown, heldBack } = this.#budget.split(notices, now);
    const events = staleEventsOff(this.config) === undefined ? this.#dueEvents(notices, now) : [];
    const addresses = new Set([...shown, ...events.map((event) => event.notice)].flatMap(sourceAddresses));
    const names = addresses.size > 0 ? await this.pods.names([...addresses]) : new Map<string, string>();
    if (this.#stopped) return;
    for (const notice of shown) this.#say(notice, names);
    if (heldBack) {
      this.#log.warn({ ...heldBack, see: 'route-controller status' }, 'more stale ClusterIPs dialled than logged');
    }
    for (const { notice, count } of events) {
      const message = formatNotice(notice, (address) => describeSource(address, names.get(address)));
      await this.events.record({ destination: notice.destination, message, count });
      if (this.#stopped) return;
    }
  }

  #say(notice: StaleNotice, names: ReadonlyMap<string, string>): void {
    const windowSeconds = notice.windowMs === undefined ? undefined : Math.round(notice.windowMs / 1000);
    const sources = notice.sources.map((source) => {
      const pod = names.get(source.address);
      return { ...source, ...(pod ? { pod } : {}) };
    });
    const [first] = sources;
    const who = notice.kind === 'new-pair' && first ? { source: first.address, pod: first.pod } : { sources };
    this.#log.warn(
      { destination: notice.destination, ...who, packets: notice.packets, windowSeconds, notice: notice.kind },
      'stale ClusterIP dialled',
    );
  }

  /** One candidate Event per destination of this read, most packets first, as StaleEventPolicy lets them through. */
  #dueEvents(notices: readonly StaleNotice[], now: number): { notice: StaleNotice; count: number }[] {
    const byDestination = new Map<string, StaleNotice>();
    for (const notice of notices) {
      const known = byDestination.get(notice.destination);
      byDestination.set(
        notice.destination,
        known
          ? { ...known, sources: [...known.sources, ...notice.sources], packets: known.packets + notice.packets }
          : notice,
      );
    }
    const due: { notice: StaleNotice; count: number }[] = [];
    for (const notice of [...byDestination.values()].sort((a, b) => b.packets - a.packets)) {
      const count = this.#eventPolicy.occurred(notice.destination, now);
      if (count !== undefined) due.push({ notice, count });
    }
    return due;
  }

  /** Says once when a record set fills (and again after it has had room). */
  #sayFull(sets: readonly RecordSetStatus[]): void {
    for (const set of sets) {
      if (!set.full) {
        this.#said.forget(`full ${set.family}`);
      } else if (this.#said.said(`full ${set.family}`, 'full')) {
        this.#log.warn(
          {
            family: set.family,
            size: set.size,
            forgetAfter: formatDuration(set.timeoutSeconds * 1000),
            effect: 'new pairs go unrecorded until older ones expire; every packet is still dropped and counted',
          },
          'stale ClusterIP record set full',
        );
      }
    }
  }
}

const sourceAddresses = (notice: StaleNotice) => notice.sources.map((source) => source.address);
