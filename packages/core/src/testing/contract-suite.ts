import assert from 'node:assert/strict';
import { type IpFamily, parseCidr } from '../cidr.js';
import type { BlockAction, DesiredState } from '../desired-state.js';
import { desiredState, MAX_CIDRS_PER_FAMILY } from '../desired-state.js';
import { ErrorCodes, RouteControllerError } from '../errors.js';
import type { BackendCapabilities, ChangeListener, FirewallBackend } from '../firewall-backend.js';
import { isInSync } from '../firewall-backend.js';
import type { HitRecords } from '../hit-records.js';
import { cidrTexts, normalizeCidrs } from '../service-cidrs.js';

/**
 * The backend contract suite: one set of behaviours every FirewallBackend must show, run by each
 * implementation against its real kernel. The test runner is injected (vitest's describe/it fit),
 * so core does not depend on a test framework.
 */

/** What the kernel holds of ours, read without the backend's code (nft -j list, iptables-save). */
export interface KernelView {
  readonly present: boolean;
  readonly action: BlockAction | null;
  readonly ipv4: readonly string[];
  readonly ipv6: readonly string[];
}

/** A fresh node for one test, and the independent means to inspect and disturb it. */
export interface ContractFixture<B extends FirewallBackend = FirewallBackend> {
  readonly backend: B;
  /** The independent oracle: reads our objects straight from the kernel. */
  observeKernel(): Promise<KernelView>;
  /** Write transactions sent to the kernel so far, counted at the command seam. */
  writeCount(): number;
  /** Leaves a half-made state of ours, as a crash in the middle of an older run would. */
  seedPartialState(): Promise<void>;
  /** Adds objects that belong to other tools (a user's table, kube-proxy's chains). */
  seedForeignState(): Promise<void>;
  /** Everything that is not ours, as text: must be byte-identical before and after our work. */
  snapshotForeign(): Promise<string>;
  /** From now on the kernel refuses our writes (as without permission). */
  failWrites(): void;
  /** Sends packets our rule for `family` should count; required when the suite's `traffic` is true. */
  sendBlockedTraffic?(family: IpFamily): Promise<void>;
  /**
   * Makes `family` unreadable to the backend the way other software does on real nodes, so that its
   * tools succeed while showing less than there is (iptables-nft: a native nft rule in `ip filter`).
   * Resolves with an independent dump of what the backend can no longer read, taken with a tool that
   * still can (`nft list table ip filter`), to prove it unchanged. Required when the suite's
   * `unreadable` is true.
   */
  makeFamilyUnreadable?(family: IpFamily): Promise<() => Promise<string>>;
  /**
   * Two source addresses per family that sendHits can send from. With sendHits and observeRecords,
   * required when the suite's `traffic` is true and the backend records hits.
   */
  readonly hitSources?: Readonly<Record<IpFamily, readonly [string, string]>>;
  /** Sends `packets` packets from `source` (one of hitSources) to `destination`, through the node. */
  sendHits?(family: IpFamily, source: string, destination: string, packets: number): Promise<void>;
  /** The record sets' pairs as the kernel holds them, read without the backend's code. */
  observeRecords?(): Promise<readonly KernelRecord[]>;
  dispose(): Promise<void>;
}

/** One recorded pair as the oracle reads it. */
export interface KernelRecord {
  readonly source: string;
  readonly destination: string;
  readonly packets: number;
}

type TestBody = () => Promise<void>;
/** The subset of vitest's `it` the suite uses. */
export interface ContractIt {
  (name: string, body: TestBody, timeoutMs?: number): void;
  skip(name: string, body: TestBody): void;
}
export interface ContractTestApi {
  describe(name: string, body: () => void): void;
  it: ContractIt;
}

export interface BackendContractOptions<B extends FirewallBackend> {
  /** Shown in the report: "nft", "iptables-legacy", ... */
  readonly name: string;
  readonly test: ContractTestApi;
  /**
   * Decides which groups run; groups a backend lacks are registered as visible skips. Pass the
   * manifest the backend package exports (NFT_CAPABILITIES, IPTABLES_CAPABILITIES, ...): every
   * test checks that the fixture's backend reports exactly these capabilities.
   */
  readonly capabilities: BackendCapabilities;
  /** The fixtures implement sendBlockedTraffic (real packets); without it traffic tests are skipped visibly. */
  readonly traffic?: boolean;
  /**
   * Whether this backend's reads can be made to succeed while seeing less than there is, and its
   * fixtures implement makeFamilyUnreadable: `true`, or `{ skip }` saying why it cannot happen or
   * cannot be produced for this backend (shown in the skipped test's name).
   */
  readonly unreadable?: true | { readonly skip: string };
  readonly setup: () => Promise<ContractFixture<B>>;
  readonly timeoutMs?: number;
  /** How long the events group waits for a subscription or an event (default 10 s: only a hang reaches it). */
  readonly eventWaitMs?: number;
}

/** What decides whether a group applies: the backend's capabilities and what its fixtures can do. */
export interface ContractContext {
  readonly capabilities: BackendCapabilities;
  readonly traffic: boolean;
  /** Undefined when the fixtures can make a family unreadable, else why not. */
  readonly unreadableSkip: string | undefined;
}

export interface ContractGroup {
  readonly name: string;
  /** Why the group would be skipped, or undefined when it applies. */
  readonly skipReason: (context: ContractContext) => string | undefined;
}

const always = (): undefined => undefined;
const needs =
  (what: string, has: (c: BackendCapabilities) => boolean) =>
  (context: ContractContext): string | undefined =>
    has(context.capabilities) ? undefined : `backend lacks ${what}`;

export const CONTRACT_GROUPS = {
  observe: { name: 'observe', skipReason: always },
  idempotence: { name: 'idempotence', skipReason: always },
  convergence: { name: 'convergence', skipReason: always },
  cidrChanges: { name: 'cidr set changes', skipReason: always },
  families: { name: 'address families', skipReason: always },
  actions: { name: 'actions', skipReason: needs('the reject action', (c) => c.actions.includes('reject')) },
  counters: { name: 'counters', skipReason: needs('counters', (c) => c.counters) },
  counterTraffic: {
    name: 'counters with traffic',
    skipReason: (context) =>
      needs('counters', (c) => c.counters)(context) ??
      (context.traffic ? undefined : 'the fixture sends no traffic (traffic: false)'),
  },
  records: {
    name: 'records hits',
    skipReason: (context) =>
      needs('hit records', (c) => c.records)(context) ??
      (context.traffic ? undefined : 'the fixture sends no traffic (traffic: false)'),
  },
  concurrency: { name: 'concurrency', skipReason: always },
  cleanup: { name: 'cleanup', skipReason: always },
  foreign: { name: 'foreign objects', skipReason: always },
  errors: { name: 'errors', skipReason: always },
  unreadable: { name: 'unreadable state', skipReason: (context) => context.unreadableSkip },
  events: {
    name: 'change events',
    skipReason: needs('change events (drift is found by the resync only)', (c) => c.events),
  },
} as const satisfies Record<string, ContractGroup>;

/** Builds a desired state from CIDR text, through the same normalisation the agent uses. */
export function desired(cidrs: readonly string[], action: BlockAction = 'drop'): DesiredState {
  return desiredState(normalizeCidrs(cidrs).cidrs, action);
}

export const SAMPLE_CIDRS: Readonly<Record<IpFamily, readonly string[]>> = {
  ipv4: ['10.96.0.0/16', '10.100.0.0/24', '192.168.240.0/20'],
  ipv6: ['fd00:10:96::/112', 'fd00:10:97::/112', 'fd00:aaaa::/64'],
};

export function backendContractSuite<B extends FirewallBackend>(options: BackendContractOptions<B>): void {
  const { test, capabilities } = options;
  const unreadableSkip =
    options.unreadable === true
      ? undefined
      : (options.unreadable?.skip ?? 'the suite was not told whether this backend can meet an unreadable state');
  const context: ContractContext = { capabilities, traffic: options.traffic === true, unreadableSkip };
  const timeout = options.timeoutMs ?? 30_000;
  const eventWait = options.eventWaitMs ?? 10_000;
  const families = capabilities.families;
  const v4 = families.includes('ipv4');
  const v6 = families.includes('ipv6');
  // CIDRs the backend can enforce, so groups that are not about families run everywhere.
  const some = (count = 1): string[] => [
    ...(v4 ? SAMPLE_CIDRS.ipv4.slice(0, count) : []),
    ...(v6 ? SAMPLE_CIDRS.ipv6.slice(0, count) : []),
  ];
  const other = (): string[] => [...(v4 ? ['10.200.0.0/16'] : []), ...(v6 ? ['fd00:200::/112'] : [])];

  const run = (body: (f: ContractFixture<B>) => Promise<void>): TestBody => {
    return async () => {
      const fixture = await options.setup();
      try {
        assert.deepEqual(
          { ...fixture.backend.capabilities },
          { ...capabilities },
          `${fixture.backend.name} reports capabilities other than the manifest the suite was given`,
        );
        await body(fixture);
      } finally {
        await fixture.dispose();
      }
    };
  };

  const group = (
    spec: ContractGroup,
    body: (it: (name: string, test: (f: ContractFixture<B>) => Promise<void>, why?: string) => void) => void,
  ) => {
    test.describe(spec.name, () => {
      const groupSkip = spec.skipReason(context);
      body((name, fn, why) => {
        const reason = groupSkip ?? why;
        if (reason) test.it.skip(`${name} [skipped: ${reason}]`, run(fn));
        else test.it(name, run(fn), timeout);
      });
    });
  };

  test.describe(`${options.name} backend contract`, () => {
    group(CONTRACT_GROUPS.observe, (it) => {
      it('a fresh node has nothing of ours', async (f) => {
        const observed = await f.backend.observe();
        assert.equal(observed.present, false, 'observe() reports objects on a fresh node');
        assert.equal((await f.observeKernel()).present, false, 'the kernel holds our objects on a fresh node');
      });
      it('apply then observe returns exactly the desired state', async (f) => {
        const want = desired(some(2));
        const result = await f.backend.apply(want);
        assert.equal(result.changed, true, 'apply on a fresh node reported no change');
        await expectKernel(f, want);
        const observed = await f.backend.observe();
        assert.deepEqual(observed.problems, [], 'observe() reports problems right after apply');
        assert.ok(
          isInSync(observed, want),
          `observe() does not match what was applied: ${JSON.stringify(summarise(observed))}`,
        );
      });
    });

    group(CONTRACT_GROUPS.idempotence, (it) => {
      it('a second apply of the same state writes nothing', async (f) => {
        const want = desired(some(2));
        await f.backend.apply(want);
        const writes = f.writeCount();
        const before = await f.observeKernel();
        const again = await f.backend.apply(want);
        assert.equal(again.changed, false, 'the second apply reported a change');
        assert.equal(f.writeCount(), writes, 'the second apply wrote to the kernel');
        assert.deepEqual(await f.observeKernel(), before);
      });
      it('probe, plan and observe write nothing', async (f) => {
        const want = desired(some(1));
        await f.backend.apply(want);
        const writes = f.writeCount();
        await f.backend.probe();
        await f.backend.observe();
        const plan = await f.backend.plan(desired(other()));
        assert.equal(plan.changes, true, 'plan() for a different state reports no changes');
        assert.ok(plan.commands.length > 0, 'plan() for a different state has no commands');
        assert.equal((await f.backend.plan(want)).changes, false, 'plan() for the applied state reports changes');
        assert.equal(f.writeCount(), writes, 'probe/plan/observe wrote to the kernel');
        await expectKernel(f, want);
      });
      it('applying nothing on a fresh node writes nothing', async (f) => {
        const result = await f.backend.apply(desired([]));
        assert.equal(result.changed, false);
        assert.equal(f.writeCount(), 0, 'an empty apply on a fresh node wrote to the kernel');
      });
    });

    group(CONTRACT_GROUPS.convergence, (it) => {
      it('converges from a half-made state of ours', async (f) => {
        await f.seedPartialState();
        const want = desired(some(2));
        await f.backend.apply(want);
        await expectKernel(f, want);
        assert.ok(
          isInSync(await f.backend.observe(), want),
          'observe() is not in sync after repairing a half-made state',
        );
        const writes = f.writeCount();
        await f.backend.apply(want);
        assert.equal(f.writeCount(), writes, 'the repaired state is not stable: the next apply wrote again');
      });
      it("converges from an older run's state", async (f) => {
        const older = desired(other(), capabilities.actions.includes('reject') ? 'reject' : 'drop');
        await f.backend.apply(older);
        const want = desired(some(3));
        await f.backend.apply(want);
        await expectKernel(f, want);
      });
      it('plan shows the work before apply and none after', async (f) => {
        const want = desired(some(1));
        assert.equal((await f.backend.plan(want)).changes, true);
        await f.backend.apply(want);
        assert.equal((await f.backend.plan(want)).changes, false);
      });
    });

    group(CONTRACT_GROUPS.cidrChanges, (it) => {
      it('grows the CIDR set', async (f) => {
        await f.backend.apply(desired(some(1)));
        const want = desired(some(3));
        await f.backend.apply(want);
        await expectKernel(f, want);
      });
      it('shrinks the CIDR set', async (f) => {
        await f.backend.apply(desired(some(3)));
        const want = desired(some(1));
        await f.backend.apply(want);
        await expectKernel(f, want);
      });
      it('replaces every CIDR', async (f) => {
        await f.backend.apply(desired(some(2)));
        const want = desired(other());
        await f.backend.apply(want);
        await expectKernel(f, want);
      });
      it('an empty set removes everything of ours', async (f) => {
        await f.backend.apply(desired(some(2)));
        await f.backend.apply(desired([]));
        assert.equal((await f.observeKernel()).present, false, 'objects of ours remain after applying no CIDRs');
        assert.equal((await f.backend.observe()).present, false);
      });
      it('applies the most CIDRs a family may hold (MAX_CIDRS_PER_FAMILY each) in one transaction per family at most', async (f) => {
        const most = cidrsUpTo(MAX_CIDRS_PER_FAMILY, families);
        const want = desired(most);
        const result = await f.backend.apply(want);
        assert.ok(result.writes <= families.length, `apply used ${result.writes} write transactions`);
        const view = await f.observeKernel();
        assert.equal(view.ipv4.length + view.ipv6.length, most.length);
        await expectKernel(f, want);
      });
    });

    group(CONTRACT_GROUPS.families, (it) => {
      const only = (family: IpFamily) => async (f: ContractFixture<B>) => {
        const want = desired(SAMPLE_CIDRS[family]);
        await f.backend.apply(want);
        await expectKernel(f, want);
        const observed = await f.backend.observe();
        const otherFamily: IpFamily = family === 'ipv4' ? 'ipv6' : 'ipv4';
        assert.deepEqual(cidrTexts(observed[otherFamily].cidrs), [], `observe() reports ${otherFamily} CIDRs`);
      };
      it('IPv4 only', only('ipv4'), v4 ? undefined : 'backend lacks ipv4');
      it('IPv6 only', only('ipv6'), v6 ? undefined : 'backend lacks ipv6');
      it(
        'dual-stack',
        async (f) => {
          const want = desired([...SAMPLE_CIDRS.ipv4, ...SAMPLE_CIDRS.ipv6]);
          await f.backend.apply(want);
          await expectKernel(f, want);
          assert.ok(isInSync(await f.backend.observe(), want));
        },
        v4 && v6 ? undefined : 'backend lacks one family',
      );
      it(
        'refuses a family it cannot enforce, changing nothing',
        async (f) => {
          const missing: IpFamily = v6 ? 'ipv4' : 'ipv6';
          await expectCodedRejection(f, desired(SAMPLE_CIDRS[missing]), [ErrorCodes.FirewallUnsupported]);
        },
        v4 && v6 ? 'backend supports both families' : undefined,
      );
    });

    group(CONTRACT_GROUPS.actions, (it) => {
      for (const action of ['drop', 'reject'] as const) {
        it(`installs ${action}`, async (f) => {
          const want = desired(some(1), action);
          await f.backend.apply(want);
          await expectKernel(f, want);
          assert.equal((await f.backend.observe()).action, action);
        });
      }
      it('switches drop -> reject -> drop', async (f) => {
        for (const action of ['drop', 'reject', 'drop'] as const) {
          const want = desired(some(2), action);
          await f.backend.apply(want);
          await expectKernel(f, want);
        }
      });
    });

    group(CONTRACT_GROUPS.counters, (it) => {
      it('observe reports packet and byte counters per family', async (f) => {
        await f.backend.apply(desired(some(1)));
        const observed = await f.backend.observe();
        for (const family of families) {
          const counters = observed[family].counters;
          assert.ok(counters, `no counters for ${family}`);
          assert.ok(
            Number.isInteger(counters.packets) && counters.packets >= 0,
            `bad packet counter ${counters.packets}`,
          );
          assert.ok(Number.isInteger(counters.bytes) && counters.bytes >= 0, `bad byte counter ${counters.bytes}`);
        }
      });
    });

    group(CONTRACT_GROUPS.counterTraffic, (it) => {
      it('counters grow with blocked traffic and survive a CIDR change', async (f) => {
        const send = f.sendBlockedTraffic?.bind(f);
        assert.ok(send, 'the suite was told the fixture sends traffic, but it has no sendBlockedTraffic');
        await f.backend.apply(desired(some(1)));
        for (const family of families) await send(family);
        await f.backend.apply(desired(some(2)));
        const observed = await f.backend.observe();
        for (const family of families) {
          assert.ok((observed[family].counters?.packets ?? 0) > 0, `${family} packet counter did not grow`);
        }
      });
    });

    group(CONTRACT_GROUPS.records, (it) => {
      // Destinations inside the first sample CIDR of each family (10.96.0.0/16, fd00:10:96::/112).
      const inSample = (family: IpFamily, n: number) =>
        family === 'ipv4' ? `10.96.0.${n}` : `fd00:10:96::${n.toString(16)}`;
      const tools = (f: ContractFixture<B>) => {
        const { hitSources, observeRecords } = f;
        const send = f.sendHits?.bind(f);
        const read = f.backend.records?.bind(f.backend);
        assert.ok(
          hitSources && send && observeRecords,
          'the suite was told the fixture sends traffic, but it lacks hitSources, sendHits or observeRecords',
        );
        assert.ok(read, `${f.backend.name} claims records but has no records()`);
        return { sources: hitSources, send, read, oracle: observeRecords };
      };
      const pairs = (records: HitRecords, family?: IpFamily) =>
        records.records
          .filter((r) => family === undefined || r.family === family)
          .map((r) => `${r.source} -> ${r.destination}: ${r.packets}`)
          .sort();

      it('records each (source, destination) pair it blocks, with counts, as the kernel holds them', async (f) => {
        const { sources, send, read, oracle } = tools(f);
        await f.backend.apply(desired(some(1)));
        const expected: string[] = [];
        for (const family of families) {
          const [one, two] = sources[family];
          const plan: [string, number, number][] = [
            [one, 1, 3],
            [two, 1, 2],
            [one, 2, 1],
          ];
          for (const [source, n, packets] of plan) {
            await send(family, source, inSample(family, n), packets);
            expected.push(`${source} -> ${inSample(family, n)}: ${packets}`);
          }
        }
        const records = await read();
        assert.deepEqual(pairs(records), expected.sort(), 'records() does not list each pair with its packets');
        for (const record of records.records) {
          assert.ok(record.bytes >= record.packets * 20, `bytes ${record.bytes} too few for ${record.packets} packets`);
          assert.ok(
            record.lastSeenSecondsAgo >= 0 && record.lastSeenSecondsAgo <= 60,
            `lastSeenSecondsAgo ${record.lastSeenSecondsAgo} for a pair seen just now`,
          );
        }
        const kernel = (await oracle()).map((r) => `${r.source} -> ${r.destination}: ${r.packets}`).sort();
        assert.deepEqual(kernel, expected.sort(), 'the kernel holds other records than records() reports');
        assert.deepEqual(
          records.sets.map((set) => [set.family, set.count, set.full]).sort(),
          families.map((family) => [family, 3, false]).sort(),
        );
        for (const set of records.sets) assert.ok(set.size >= 3 && set.timeoutSeconds > 0, JSON.stringify(set));
      });

      it('keeps the records through a change of CIDRs and a re-apply, and never calls them drift', async (f) => {
        const { sources, send, read } = tools(f);
        await f.backend.apply(desired(some(1)));
        for (const family of families) await send(family, sources[family][0], inSample(family, 7), 2);
        const before = pairs(await read());
        assert.equal(before.length, families.length);
        const want = desired(some(2));
        assert.equal((await f.backend.apply(want)).changed, true, 'the CIDR change was not applied');
        assert.deepEqual(pairs(await read()), before, 'a change of CIDRs alone lost or changed the records');
        const observed = await f.backend.observe();
        assert.deepEqual(observed.problems, [], 'observe() reports recorded hits as drift');
        const writes = f.writeCount();
        assert.equal((await f.backend.apply(want)).changed, false, 'recorded hits make apply rewrite the rules');
        assert.equal(f.writeCount(), writes, 'recorded hits make apply write');
        assert.deepEqual(pairs(await read()), before);
      });

      it('at its bound leaves new pairs unrecorded, still blocking and counting every packet', async (f) => {
        const { sources, send, read } = tools(f);
        await f.backend.apply(desired(some(1)));
        const fresh = await read();
        for (const family of families) {
          const size = fresh.sets.find((set) => set.family === family)?.size ?? 0;
          assert.ok(
            size > 0 && size <= 64,
            `the ${family} record set holds ${size} pairs: give the fixture's backend a small bound (<= 64) so a test can fill it`,
          );
          const counted = async () => (await f.backend.observe())[family].counters?.packets ?? 0;
          const before = await counted();
          for (let n = 1; n <= size + 2; n += 1) await send(family, sources[family][0], inSample(family, n), 1);
          const records = await read();
          const set = records.sets.find((s) => s.family === family);
          assert.equal(set?.count, size, `the ${family} record set holds more pairs than its bound`);
          assert.equal(set?.full, true, `the ${family} record set is not reported full`);
          assert.equal(pairs(records, family).length, size);
          if (capabilities.counters) {
            assert.equal(
              (await counted()) - before,
              size + 2,
              'packets that found the record set full were not blocked',
            );
          }
          // A pair recorded before the set filled keeps counting.
          const first = records.records.find((r) => r.family === family && r.destination === inSample(family, 1));
          assert.ok(first, 'the first pair is not recorded');
          await send(family, sources[family][0], inSample(family, 1), 1);
          const again = (await read()).records.find(
            (r) => r.family === family && r.destination === inSample(family, 1),
          );
          assert.equal(again?.packets, first.packets + 1, 'a recorded pair stopped counting once the set was full');
        }
      });

      it('cleanup removes the records, and a new apply starts without them', async (f) => {
        const { sources, send, read, oracle } = tools(f);
        assert.deepEqual(await read(), { records: [], sets: [] }, 'records() on a fresh node');
        assert.equal(f.writeCount(), 0, 'records() wrote to the kernel');
        await f.backend.apply(desired(some(1)));
        for (const family of families) await send(family, sources[family][1], inSample(family, 9), 1);
        assert.equal((await read()).records.length, families.length);
        await f.backend.cleanup();
        assert.deepEqual(await read(), { records: [], sets: [] }, 'records remain after cleanup');
        assert.deepEqual(await oracle(), [], 'the kernel holds records after cleanup');
        await f.backend.apply(desired(some(1)));
        const again = await read();
        assert.deepEqual(again.records, []);
        assert.deepEqual(
          again.sets.map((set) => set.count),
          families.map(() => 0),
        );
      });
    });

    group(CONTRACT_GROUPS.concurrency, (it) => {
      it('overlapping apply and cleanup calls take effect one at a time, in call order', async (f) => {
        const first = desired(some(1));
        const second = desired(some(2));
        await Promise.all([f.backend.apply(first), f.backend.apply(second), f.backend.cleanup()]);
        assert.equal((await f.observeKernel()).present, false, 'the cleanup called last did not win');
        await Promise.all([f.backend.apply(first), f.backend.cleanup(), f.backend.apply(second)]);
        await expectKernel(f, second);
      });
      it('each call starts from a fresh read: the same apply twice at once writes once', async (f) => {
        const want = desired(some(2));
        const [one, two] = await Promise.all([f.backend.apply(want), f.backend.apply(want)]);
        assert.equal(one.changed, true, 'the first apply reported no change');
        assert.equal(two.changed, false, 'the second apply did not see what the first one wrote');
        assert.equal(f.writeCount(), one.writes, 'the second apply wrote to the kernel');
        await expectKernel(f, want);
      });
    });

    group(CONTRACT_GROUPS.cleanup, (it) => {
      it('removes everything of ours', async (f) => {
        await f.backend.apply(desired(some(2)));
        const result = await f.backend.cleanup();
        assert.equal(result.removed, true);
        assert.equal((await f.observeKernel()).present, false, 'objects of ours remain after cleanup');
        assert.equal((await f.backend.observe()).present, false);
      });
      it('is safe to repeat and safe on a fresh node', async (f) => {
        assert.equal((await f.backend.cleanup()).removed, false);
        await f.backend.apply(desired(some(1)));
        await f.backend.cleanup();
        assert.equal((await f.backend.cleanup()).removed, false);
        assert.equal((await f.observeKernel()).present, false);
      });
      it('removes a half-made state too', async (f) => {
        await f.seedPartialState();
        await f.backend.cleanup();
        assert.equal((await f.observeKernel()).present, false);
      });
      it('apply works again after cleanup', async (f) => {
        await f.backend.apply(desired(some(1)));
        await f.backend.cleanup();
        const want = desired(some(2));
        await f.backend.apply(want);
        await expectKernel(f, want);
      });
    });

    group(CONTRACT_GROUPS.foreign, (it) => {
      it('leaves foreign objects byte-identical through apply, re-apply and cleanup', async (f) => {
        await f.seedForeignState();
        const before = await f.snapshotForeign();
        assert.notEqual(before.trim(), '', 'the fixture seeded no foreign objects');
        await f.backend.apply(desired(some(1)));
        assert.equal(await f.snapshotForeign(), before, 'apply changed foreign objects');
        await f.backend.apply(desired(some(3), capabilities.actions.includes('reject') ? 'reject' : 'drop'));
        assert.equal(await f.snapshotForeign(), before, 're-apply changed foreign objects');
        await f.backend.cleanup();
        assert.equal(await f.snapshotForeign(), before, 'cleanup changed foreign objects');
      });
      it('foreign objects do not count as ours', async (f) => {
        await f.seedForeignState();
        assert.equal((await f.backend.observe()).present, false, 'observe() reports foreign objects as ours');
        assert.equal((await f.backend.cleanup()).removed, false, 'cleanup() claims to have removed something');
      });
    });

    group(CONTRACT_GROUPS.errors, (it) => {
      it('refuses an invalid desired state with ERR_RC_INVALID_DESIRED_STATE, writing nothing', async (f) => {
        const family: IpFamily = v4 ? 'ipv4' : 'ipv6';
        const [wide, narrow] = family === 'ipv4' ? ['10.96.0.0/12', '10.96.1.0/24'] : ['fd00:10::/64', 'fd00:10::/112'];
        const overlapping = parseCidrs([wide, narrow]);
        const bad: DesiredState = {
          action: 'drop',
          cidrs: family === 'ipv4' ? { ipv4: overlapping, ipv6: [] } : { ipv4: [], ipv6: overlapping },
        };
        await expectCodedRejection(f, bad, [ErrorCodes.InvalidDesiredState]);
      });
      it('refuses more than MAX_CIDRS_PER_FAMILY CIDRs in a family with ERR_RC_TOO_MANY_CIDRS, writing nothing', async (f) => {
        const family: IpFamily = v4 ? 'ipv4' : 'ipv6';
        // Built by hand: desiredState() itself refuses so many.
        const many = parseCidrs(cidrsUpTo(MAX_CIDRS_PER_FAMILY + 1, [family]));
        const bad: DesiredState = {
          action: 'drop',
          cidrs: family === 'ipv4' ? { ipv4: many, ipv6: [] } : { ipv4: [], ipv6: many },
        };
        await expectCodedRejection(f, bad, [ErrorCodes.TooManyCidrs]);
      });
      it('reports a refused write as a coded error with a hint and keeps the rules in place', async (f) => {
        const installed = desired(some(1));
        await f.backend.apply(installed);
        f.failWrites();
        await expectCodedRejection(f, desired(some(3)), undefined, installed);
      });
    });

    group(CONTRACT_GROUPS.unreadable, (it) => {
      const unreadable = async (f: ContractFixture<B>, family: IpFamily) => {
        const make = f.makeFamilyUnreadable?.bind(f);
        assert.ok(
          make,
          'the suite was told the fixture can make a family unreadable, but it has no makeFamilyUnreadable',
        );
        return make(family);
      };
      for (const family of families) {
        it(`over our rules in an unreadable ${family} state, every call refuses with ERR_RC_FIREWALL_UNREADABLE and writes nothing`, async (f) => {
          const installed = desired(some(2));
          await f.backend.apply(installed);
          const dump = await unreadable(f, family);
          const before = await dump();
          const writes = f.writeCount();
          const calls: [string, () => Promise<unknown>][] = [
            ['observe()', () => f.backend.observe()],
            ['plan()', () => f.backend.plan(installed)],
            ['apply() of the installed state', () => f.backend.apply(installed)],
            ['apply() of another state', () => f.backend.apply(desired(other()))],
            ['apply() of nothing', () => f.backend.apply(desired([]))],
            ['cleanup()', () => f.backend.cleanup()],
          ];
          // Twice: a backend that writes blind stacks one more copy each time.
          for (const [name, call] of [...calls, ...calls]) await expectUnreadable(name, call());
          assert.equal(f.writeCount(), writes, 'a call over an unreadable state wrote to the kernel');
          assert.equal(await dump(), before, 'the unreadable state changed');
        });
      }
      it('on a fresh node whose state is unreadable, apply refuses and writes nothing', async (f) => {
        const family = families[0] as IpFamily;
        const dump = await unreadable(f, family);
        const before = await dump();
        await expectUnreadable('apply()', f.backend.apply(desired(some(1))));
        await expectUnreadable('cleanup()', f.backend.cleanup());
        assert.equal(f.writeCount(), 0, 'apply over an unreadable state wrote to the kernel');
        assert.equal(await dump(), before, 'the unreadable state changed');
      });
    });

    group(CONTRACT_GROUPS.events, (it) => {
      it("reports its own apply's changes once subscribed, and stops when aborted", async (f) => {
        const watch = watcher(f, eventWait);
        try {
          await watch.ready();
          await f.backend.apply(desired(some(1)));
          await watch.change();
        } finally {
          await watch.stop();
        }
      });
      it("reports another tool's change to our objects", async (f) => {
        const watch = watcher(f, eventWait);
        try {
          await watch.ready();
          await f.seedPartialState();
          await watch.change();
        } finally {
          await watch.stop();
        }
      });
    });
  });

  async function expectCodedRejection(
    f: ContractFixture<B>,
    want: DesiredState,
    codes: readonly string[] | undefined,
    installed?: DesiredState,
  ): Promise<void> {
    const before = await f.observeKernel();
    const writes = f.writeCount();
    let caught: unknown;
    try {
      await f.backend.apply(want);
    } catch (error) {
      caught = error;
    }
    assert.ok(
      caught instanceof RouteControllerError,
      `apply did not reject with a RouteControllerError: ${String(caught)}`,
    );
    assert.match(caught.code, /^ERR_RC_/);
    if (codes) assert.ok(codes.includes(caught.code), `code ${caught.code} is not one of ${codes.join(', ')}`);
    assert.ok(caught.hint, `error ${caught.code} has no hint`);
    if (!installed) assert.equal(f.writeCount(), writes, 'a refused apply wrote to the kernel');
    assert.deepEqual(await f.observeKernel(), before, 'a failed apply changed the kernel');
  }
}

async function expectUnreadable(name: string, call: Promise<unknown>): Promise<void> {
  let caught: unknown;
  try {
    await call;
  } catch (error) {
    caught = error;
  }
  assert.ok(
    caught instanceof RouteControllerError,
    `${name} over an unreadable state did not reject with a RouteControllerError: ${String(caught)}`,
  );
  assert.equal(caught.code, ErrorCodes.FirewallUnreadable, `${name}: ${caught.message}`);
  assert.ok(caught.hint, `${name}: error ${caught.code} has no hint`);
}

/** watchChanges() on the fixture's backend, with waits (up to `waitMs`) for readiness and for a change of ours. */
function watcher(f: ContractFixture, waitMs: number) {
  const controller = new AbortController();
  let subscribed = false;
  let changes = 0;
  const watchChanges = f.backend.watchChanges?.bind(f.backend);
  assert.ok(watchChanges, `${f.backend.name} claims events but has no watchChanges()`);
  const listener: ChangeListener = {
    ready: () => {
      subscribed = true;
    },
    change: () => {
      changes += 1;
    },
    other: () => {},
    lost: () => {},
    diagnostic: () => {},
  };
  const running = watchChanges(listener, controller.signal);
  let ended = false;
  running.then(
    () => {
      ended = true;
    },
    () => {
      ended = true;
    },
  );
  const until = async (what: string, done: () => boolean) => {
    const deadline = Date.now() + waitMs;
    while (!done()) {
      if (ended) {
        const end = await running;
        assert.fail(`the change stream ended before ${what}: ${end.reason}`);
      }
      assert.ok(Date.now() < deadline, `no ${what} within ${waitMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };
  return {
    ready: () => until('subscription', () => subscribed),
    /** Waits for a change of ours reported since the stream started. */
    change: () => until('change of ours', () => changes > 0),
    stop: async () => {
      controller.abort();
      const end = await running;
      assert.equal(end.stopped, true, `the stream did not report that it was stopped: ${end.reason}`);
    },
  };
}

async function expectKernel(f: ContractFixture, want: DesiredState): Promise<void> {
  const view = await f.observeKernel();
  const expected: KernelView = {
    present: true,
    action: want.action,
    ipv4: cidrTexts(want.cidrs.ipv4),
    ipv6: cidrTexts(want.cidrs.ipv6),
  };
  assert.deepEqual(
    { ...view, ipv4: [...view.ipv4].sort(), ipv6: [...view.ipv6].sort() },
    { ...expected, ipv4: [...expected.ipv4].sort(), ipv6: [...expected.ipv6].sort() },
    'the kernel does not hold the desired state',
  );
}

function parseCidrs(texts: readonly string[]) {
  return texts.map((text) => parseCidr(text).cidr);
}

function summarise(observed: {
  present: boolean;
  action: unknown;
  ipv4: { cidrs: readonly { text: string }[] };
  ipv6: { cidrs: readonly { text: string }[] };
  problems: readonly string[];
}) {
  return {
    present: observed.present,
    action: observed.action,
    ipv4: observed.ipv4.cidrs.map((c) => c.text),
    ipv6: observed.ipv6.cidrs.map((c) => c.text),
    problems: observed.problems,
  };
}

/** `perFamily` disjoint /24s (IPv4) and /112s (IPv6) for each family the backend has, sorted. */
function cidrsUpTo(perFamily: number, families: readonly IpFamily[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < perFamily; i += 1) {
    if (families.includes('ipv4')) out.push(`10.${64 + Math.floor(i / 256)}.${i % 256}.0/24`);
    if (families.includes('ipv6')) out.push(`fd00:1000::${i.toString(16)}:0/112`);
  }
  return out;
}
