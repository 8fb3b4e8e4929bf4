import { type Cidr, cidrContainsAddress, IP_FAMILIES, type IpFamily, parseCidr } from '../cidr.js';
import type { BlockAction, DesiredState } from '../desired-state.js';
import { isEmptyDesiredState } from '../desired-state.js';
import { ErrorCodes, RouteControllerError } from '../errors.js';
import type {
  ApplyResult,
  Availability,
  BackendCapabilities,
  ChangeListener,
  ChangeStreamEnd,
  CleanupResult,
  FamilyObservation,
  FirewallBackend,
  ObservedState,
  Plan,
  WriteOptions,
} from '../firewall-backend.js';
import { assertEnforceable, isInSync, NOTHING_OBSERVED } from '../firewall-backend.js';
import type { HitRecord, HitRecords } from '../hit-records.js';
import { SerialQueue } from '../serial-queue.js';
import { cidrsOf } from '../service-cidrs.js';

/** An object in the in-memory "kernel"; `owner` says which tool made it. */
export interface MemoryObject {
  readonly owner: string;
  readonly kind: 'chain' | 'set' | 'rule' | 'records';
  readonly hook?: string;
  readonly elements?: readonly string[];
  readonly action?: BlockAction;
  readonly packets?: number;
  readonly bytes?: number;
  /** A record set (kind 'records'): the pairs it holds, its bound (none: unbounded) and timeout. */
  readonly pairs?: readonly MemoryPair[];
  readonly size?: number;
  readonly timeoutSeconds?: number;
  /**
   * The record update sits in the blocking rule itself: when the set is full, the rest of that rule
   * is skipped and the packet goes through, as with nft's dynset (a defect a backend can have).
   */
  readonly updateInBlockingRule?: boolean;
}

/** One (source, destination) pair of a record set, with its counters and the time of its last packet. */
export interface MemoryPair {
  readonly source: string;
  readonly destination: string;
  readonly packets: number;
  readonly bytes: number;
  readonly lastSeenMs: number;
}

const OWNER = 'route-controller';
const CHAIN = `${OWNER}/chain`;
const setKey = (family: IpFamily) => `${OWNER}/set/${family}`;
const ruleKey = (family: IpFamily) => `${OWNER}/rule/${family}`;
const familyOf = (key: string): IpFamily | undefined => IP_FAMILIES.find((family) => key.endsWith(`/${family}`));

/** Hears every change of a MemoryKernel: the memory backend's stand-in for `nft monitor`. */
export interface MemoryWatcher {
  /** Objects changed; `ours` when any of them is route-controller's. */
  change(ours: boolean): void;
  lost(detail: string): void;
  /** The stream died (MemoryKernel.endStreams). */
  end(reason: string): void;
}
const recordsKey = (family: IpFamily) => `${OWNER}/records/${family}`;

/**
 * A stand-in for the kernel: named objects, changed only by whole transactions, with a write
 * counter and an injectable failure. Shared by a MemoryBackend and the contract suite's observer.
 */
export class MemoryKernel {
  #objects = new Map<string, MemoryObject>();
  writes = 0;
  /** When set, every transaction fails with this error and changes nothing. */
  failure: Error | undefined;
  /**
   * Families whose objects reads cannot see, as iptables-nft cannot list a filter table that holds
   * native nft rules: a correct backend refuses to work on them.
   */
  readonly unreadable = new Set<IpFamily>();
  /** When set, watchChanges() rejects with it, as a monitor that cannot start. */
  streamFailure: Error | undefined;
  readonly #watchers = new Set<MemoryWatcher>();
  /** The kernel's clock (milliseconds), for record timeouts; tests move it on. */
  now: () => number = () => Date.now();

  get objects(): ReadonlyMap<string, MemoryObject> {
    return this.#objects;
  }

  /** Runs `change` on a copy and swaps it in: all or nothing, like an nft transaction. */
  transact(change: (objects: Map<string, MemoryObject>) => void): void {
    this.writes += 1;
    if (this.failure) throw this.failure;
    this.#swap(change);
  }

  /** Changes objects without counting a write: how tests set the scene, or another tool changes ours. */
  seed(change: (objects: Map<string, MemoryObject>) => void): void {
    this.#swap(change);
  }

  /** Follows every change from now on, until the returned function is called. */
  watch(watcher: MemoryWatcher): () => void {
    this.#watchers.add(watcher);
    return () => this.#watchers.delete(watcher);
  }

  /** Ends every change stream, as a monitor process dying would. */
  endStreams(reason: string): void {
    for (const watcher of [...this.#watchers]) watcher.end(reason);
  }

  /** Tells every change stream that events were lost, as a kernel buffer overflow does. */
  loseEvents(): void {
    for (const watcher of this.#watchers) watcher.lost('memory kernel: events were lost');
  }

  #swap(change: (objects: Map<string, MemoryObject>) => void): void {
    const before = this.#objects;
    const next = new Map(before);
    change(next);
    this.#objects = next;
    const changed = [...new Set([...before.keys(), ...next.keys()])].filter((key) => before.get(key) !== next.get(key));
    if (changed.length === 0) return; // a transaction that changes nothing makes no event, as in nf_tables
    const ours = changed.some((key) => key.startsWith(`${OWNER}/`));
    for (const watcher of this.#watchers) watcher.change(ours);
  }

  /**
   * `packets` forwarded packets from `source` to `destination`, as the kernel meets them: when our
   * rule for the family matches the destination, they are counted, and the pair is recorded in our
   * record set if there is one and it has room (expired pairs make room; a full set leaves new
   * pairs unrecorded). Returns how many of them were blocked.
   */
  hit(family: IpFamily, source: string, destination: string, packets: number, bytes: number): number {
    const rule = this.#objects.get(ruleKey(family));
    const set = this.#objects.get(setKey(family));
    const matches = (set?.elements ?? []).some((text) => cidrContainsAddress(parseCidr(text).cidr, destination));
    if (!rule || !matches) return 0;
    const records = this.#objects.get(recordsKey(family));
    if (records) {
      const now = this.now();
      const live = (records.pairs ?? []).filter((pair) => !expired(pair, records, now));
      const index = live.findIndex((pair) => pair.source === source && pair.destination === destination);
      const full = records.size !== undefined && live.length >= records.size;
      if (index >= 0) {
        const pair = live[index] as MemoryPair;
        live[index] = { ...pair, packets: pair.packets + packets, bytes: pair.bytes + bytes, lastSeenMs: now };
      } else if (!full) {
        live.push({ source, destination, packets, bytes, lastSeenMs: now });
      } else if (records.updateInBlockingRule) {
        this.#objects.set(recordsKey(family), { ...records, pairs: live });
        return 0; // the rest of the rule (counter and verdict) is skipped: the packets go through
      }
      this.#objects.set(recordsKey(family), { ...records, pairs: live });
    }
    this.countBlocked(family, packets, bytes);
    return packets;
  }

  /** Counts traffic against our rule for a family, as the kernel would for dropped packets. */
  countBlocked(family: IpFamily, packets: number, bytes: number): void {
    const rule = this.#objects.get(ruleKey(family));
    if (rule)
      this.#objects.set(ruleKey(family), {
        ...rule,
        packets: (rule.packets ?? 0) + packets,
        bytes: (rule.bytes ?? 0) + bytes,
      });
  }
}

/**
 * Deliberate defects, used by the contract suite's self-test to prove each group can fail.
 * A correct backend has none.
 */
export type MemoryBackendFlaw =
  | 'observe-sees-nothing'
  | 'ignores-ipv6'
  | 'always-writes'
  | 'no-repair'
  | 'never-removes-cidrs'
  | 'ignores-action'
  | 'no-counters'
  | 'resets-counters'
  | 'cleanup-leaves-rule'
  | 'clobbers-foreign'
  | 'uncoded-errors'
  | 'unserialised'
  | 'reads-unreadable-as-empty'
  | 'deaf-to-changes'
  | 'records-reset-on-cidr-change'
  | 'records-unbounded'
  | 'records-update-in-blocking-rule'
  | 'records-churn-as-drift';

export interface MemoryBackendOptions {
  readonly name?: string;
  readonly capabilities?: Partial<BackendCapabilities>;
  readonly flaw?: MemoryBackendFlaw;
  /** The record sets' bound and timeout (capabilities.records); default 4096 pairs, 600 s. */
  readonly recordSize?: number;
  readonly recordTimeoutSeconds?: number;
}

export const MEMORY_CAPABILITIES: BackendCapabilities = Object.freeze({
  families: Object.freeze(['ipv4', 'ipv6'] as IpFamily[]),
  actions: Object.freeze(['drop', 'reject'] as BlockAction[]),
  counters: true,
  comments: true,
  events: true,
  records: true,
});

/** A FirewallBackend over a MemoryKernel, with the same ownership rules a real one follows. */
export class MemoryBackend implements FirewallBackend {
  readonly name: string;
  readonly capabilities: BackendCapabilities;
  readonly #flaw: MemoryBackendFlaw | undefined;
  readonly #queue = new SerialQueue();
  readonly #recordSize: number;
  readonly #recordTimeoutSeconds: number;

  constructor(
    readonly kernel: MemoryKernel = new MemoryKernel(),
    options: MemoryBackendOptions = {},
  ) {
    this.name = options.name ?? 'memory';
    this.capabilities = { ...MEMORY_CAPABILITIES, ...options.capabilities };
    this.#flaw = options.flaw;
    this.#recordSize = options.recordSize ?? 4096;
    this.#recordTimeoutSeconds = options.recordTimeoutSeconds ?? 600;
  }

  probe(): Promise<Availability> {
    return Promise.resolve({
      available: true,
      reason: 'in-memory backend (tests only)',
      checks: [{ name: 'memory', ok: true, detail: 'always available' }],
      warnings: [],
    });
  }

  async plan(desired: DesiredState): Promise<Plan> {
    this.#validate(desired);
    const observed = await this.observe();
    const changes = this.#flaw === 'always-writes' || !this.#matches(observed, desired);
    return {
      changes,
      commands: changes ? [{ file: 'memory', args: ['transact'], input: JSON.stringify(this.#render(desired)) }] : [],
      summary: changes ? `replace our objects: ${isEmptyDesiredState(desired) ? 'remove all' : 'install'}` : 'in sync',
    };
  }

  apply(desired: DesiredState, options: WriteOptions = {}): Promise<ApplyResult> {
    return this.#serialised(() => this.#apply(desired, options));
  }

  async #apply(desired: DesiredState, options: WriteOptions): Promise<ApplyResult> {
    const plan = await this.plan(desired);
    if (!plan.changes) return { changed: false, writes: 0, summary: plan.summary };
    assertNotCanceled(options);
    const target = this.#render(desired);
    try {
      this.kernel.transact((objects) => {
        for (const key of [...objects.keys()]) {
          if (this.#flaw === 'clobbers-foreign' || key.startsWith(`${OWNER}/`)) {
            if (this.#flaw === 'never-removes-cidrs' && key.startsWith(`${OWNER}/set/`)) continue;
            objects.delete(key);
          }
        }
        for (const [key, object] of target) {
          const existing = this.kernel.objects.get(key);
          if (
            object.kind === 'rule' &&
            existing &&
            existing.action === object.action &&
            this.#flaw !== 'resets-counters'
          ) {
            // Like nft, a rule that stays keeps its counters.
            objects.set(key, { ...object, packets: existing.packets ?? 0, bytes: existing.bytes ?? 0 });
          } else if (object.kind === 'records' && existing?.pairs && this.#keepsRecords(key, target)) {
            // Like nft's element-only transaction: a change of CIDRs alone keeps the records.
            objects.set(key, { ...object, pairs: existing.pairs });
          } else if (this.#flaw === 'never-removes-cidrs' && existing?.elements && object.elements) {
            objects.set(key, { ...object, elements: [...new Set([...existing.elements, ...object.elements])] });
          } else {
            objects.set(key, object);
          }
        }
      });
    } catch (error) {
      if (this.#flaw === 'uncoded-errors') throw new Error('write failed');
      throw new RouteControllerError(ErrorCodes.FirewallPermission, 'the memory kernel refused the transaction', {
        hint: 'Tests inject this failure through MemoryKernel.failure.',
        cause: error,
      });
    }
    return { changed: true, writes: 1, summary: plan.summary };
  }

  observe(): Promise<ObservedState> {
    try {
      this.#assertReadable();
    } catch (error) {
      return Promise.reject(error);
    }
    const objects = this.#visible();
    const ours = [...objects.entries()].filter(([key]) => key.startsWith(`${OWNER}/`));
    if (ours.length === 0 || this.#flaw === 'observe-sees-nothing') return Promise.resolve(NOTHING_OBSERVED);
    const problems: string[] = [];
    const chain = objects.get(CHAIN);
    if (!chain) problems.push('our chain is missing');
    else if (chain.hook !== 'forward') problems.push(`our chain is on the ${String(chain.hook)} hook, not forward`);
    const actions = new Set<BlockAction>();
    const family = (f: IpFamily): FamilyObservation => {
      const set = objects.get(setKey(f));
      const rule = objects.get(ruleKey(f));
      if (!set) problems.push(`our ${f} set is missing`);
      if (!rule) problems.push(`our ${f} rule is missing`);
      if (rule?.action) actions.add(rule.action);
      const cidrs = (set?.elements ?? []).map((text) => parseCidr(text).cidr);
      const counters =
        rule && this.#flaw !== 'no-counters' ? { packets: rule.packets ?? 0, bytes: rule.bytes ?? 0 } : undefined;
      return counters ? { cidrs, counters } : { cidrs };
    };
    if (this.capabilities.records) {
      for (const f of IP_FAMILIES) {
        const records = objects.get(recordsKey(f));
        if (!records) problems.push(`our ${f} record set is missing`);
        else if (this.#flaw === 'records-churn-as-drift' && (records.pairs ?? []).length > 0)
          problems.push(`our ${f} record set holds pairs`);
      }
    }
    const ipv4 = family('ipv4');
    const ipv6 = family('ipv6');
    const action = actions.size === 1 ? ([...actions][0] ?? null) : null;
    return Promise.resolve({ present: true, action, ipv4, ipv6, problems });
  }

  cleanup(options: WriteOptions = {}): Promise<CleanupResult> {
    return this.#serialised(() => this.#cleanup(options));
  }

  /** The pairs our record sets hold now (expired ones left out, as the kernel skips them). */
  records(): Promise<HitRecords> {
    const now = this.kernel.now();
    const records: HitRecord[] = [];
    const sets: HitRecords['sets'][number][] = [];
    for (const family of this.capabilities.families) {
      const set = this.kernel.objects.get(recordsKey(family));
      if (!set) continue;
      const live = (set.pairs ?? []).filter((pair) => !expired(pair, set, now));
      const timeoutSeconds = set.timeoutSeconds ?? this.#recordTimeoutSeconds;
      // Reports the bound it meant to set, whatever the kernel holds (so a flawed set shows).
      sets.push({
        family,
        size: this.#recordSize,
        count: live.length,
        full: live.length >= this.#recordSize,
        timeoutSeconds,
      });
      for (const pair of live) {
        records.push({
          family,
          source: pair.source,
          destination: pair.destination,
          packets: pair.packets,
          bytes: pair.bytes,
          lastSeenSecondsAgo: Math.max(0, Math.floor((now - pair.lastSeenMs) / 1000)),
        });
      }
    }
    return Promise.resolve({ records, sets });
  }

  async #cleanup(options: WriteOptions): Promise<CleanupResult> {
    // Reads like a real backend would (asynchronously), so unserialised calls interleave.
    const ours = [...(await this.#keys())].filter((key) => key.startsWith(`${OWNER}/`));
    if (ours.length === 0) return { removed: false, summary: 'nothing of ours to remove' };
    assertNotCanceled(options);
    this.kernel.transact((objects) => {
      for (const key of this.#flaw === 'clobbers-foreign' ? [...objects.keys()] : ours) {
        if (this.#flaw === 'cleanup-leaves-rule' && key === ruleKey('ipv4')) continue;
        objects.delete(key);
      }
    });
    return { removed: true, summary: `removed ${ours.length} objects` };
  }

  #validate(desired: DesiredState): void {
    if (this.#flaw !== 'uncoded-errors') assertEnforceable(this, desired);
  }

  #serialised<T>(task: () => Promise<T>): Promise<T> {
    return this.#flaw === 'unserialised' ? task() : this.#queue.run(task);
  }

  async #keys(): Promise<Iterable<string>> {
    await Promise.resolve();
    this.#assertReadable();
    return this.#visible().keys();
  }

  /** Refuses to read a family the kernel hides from reads: what a correct backend does. */
  #assertReadable(): void {
    if (this.#flaw === 'reads-unreadable-as-empty') return;
    const hidden = this.capabilities.families.filter((family) => this.kernel.unreadable.has(family));
    if (hidden.length === 0) return;
    throw new RouteControllerError(
      ErrorCodes.FirewallUnreadable,
      `the memory kernel cannot list our ${hidden.join(' and ')} objects`,
      {
        hint: 'Tests make a family unreadable through MemoryKernel.unreadable; nothing is written from a read that cannot see everything.',
        details: { families: hidden },
      },
    );
  }

  /** The objects a read sees: those of an unreadable family are left out, as the tools do. */
  #visible(): ReadonlyMap<string, MemoryObject> {
    const objects = this.kernel.objects;
    if (this.kernel.unreadable.size === 0) return objects;
    return new Map(
      [...objects].filter(([key]) => {
        const family = familyOf(key);
        return family === undefined || !this.kernel.unreadable.has(family);
      }),
    );
  }

  watchChanges(listener: ChangeListener, signal: AbortSignal): Promise<ChangeStreamEnd> {
    if (this.kernel.streamFailure) return Promise.reject(this.kernel.streamFailure);
    return new Promise((resolve) => {
      if (signal.aborted) {
        resolve({ stopped: true, reason: 'memory change stream stopped' });
        return;
      }
      const finish = (end: ChangeStreamEnd) => {
        unwatch();
        signal.removeEventListener('abort', onAbort);
        resolve(end);
      };
      const onAbort = () => finish({ stopped: true, reason: 'memory change stream stopped' });
      const unwatch = this.kernel.watch({
        change: (ours) => {
          if (ours && this.#flaw !== 'deaf-to-changes') listener.change('memory kernel: our objects changed');
          else listener.other();
        },
        lost: (detail) => listener.lost(detail),
        end: (reason) => finish({ stopped: false, reason }),
      });
      signal.addEventListener('abort', onAbort, { once: true });
      listener.ready();
    });
  }

  /** A record set stays when its family's rule stays with the same action (nothing but CIDRs changed). */
  #keepsRecords(key: string, target: ReadonlyMap<string, MemoryObject>): boolean {
    if (this.#flaw === 'records-reset-on-cidr-change') return false;
    const family = IP_FAMILIES.find((f) => key === recordsKey(f));
    if (!family) return false;
    const before = this.kernel.objects.get(ruleKey(family));
    return before !== undefined && before.action === target.get(ruleKey(family))?.action;
  }

  #matches(observed: ObservedState, desired: DesiredState): boolean {
    if (this.#flaw === 'no-repair' && observed.present) return true;
    return isInSync(observed, desired);
  }

  #render(desired: DesiredState): Map<string, MemoryObject> {
    const objects = new Map<string, MemoryObject>();
    if (isEmptyDesiredState(desired)) return objects;
    objects.set(CHAIN, { owner: OWNER, kind: 'chain', hook: 'forward' });
    for (const family of IP_FAMILIES) {
      const cidrs: readonly Cidr[] =
        this.#flaw === 'ignores-ipv6' && family === 'ipv6' ? [] : cidrsOf(desired.cidrs, family);
      const action: BlockAction = this.#flaw === 'ignores-action' ? 'drop' : desired.action;
      objects.set(setKey(family), { owner: OWNER, kind: 'set', elements: cidrs.map((c) => c.text) });
      objects.set(ruleKey(family), { owner: OWNER, kind: 'rule', action, packets: 0, bytes: 0 });
      if (this.capabilities.records) {
        objects.set(recordsKey(family), {
          owner: OWNER,
          kind: 'records',
          pairs: [],
          timeoutSeconds: this.#recordTimeoutSeconds,
          ...(this.#flaw === 'records-unbounded' ? {} : { size: this.#recordSize }),
          ...(this.#flaw === 'records-update-in-blocking-rule' ? { updateInBlockingRule: true } : {}),
        });
      }
    }
    return objects;
  }
}

export const MEMORY_OWNER = OWNER;

function expired(pair: MemoryPair, set: MemoryObject, now: number): boolean {
  return set.timeoutSeconds !== undefined && now - pair.lastSeenMs >= set.timeoutSeconds * 1000;
}

/** Like a real command stopped by its signal: nothing is written. */
function assertNotCanceled(options: WriteOptions): void {
  if (options.signal?.aborted) {
    throw new RouteControllerError(ErrorCodes.CommandCanceled, 'the memory transaction was stopped', {
      hint: 'The caller aborted the write.',
    });
  }
}
