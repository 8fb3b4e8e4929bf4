import { describe, expect, it } from 'vitest';
import type { BackendCapabilities } from '../src/firewall-backend.js';
import {
  backendContractSuite,
  CONTRACT_GROUPS,
  type ContractFixture,
  type ContractTestApi,
} from '../src/testing/contract-suite.js';
import { MEMORY_CAPABILITIES, type MemoryBackend, type MemoryBackendFlaw } from '../src/testing/memory-backend.js';
import { memoryFixture } from './memory-fixture.js';

// The suite itself, run against the in-memory backend.
backendContractSuite({
  name: 'memory',
  test: { describe, it },
  capabilities: MEMORY_CAPABILITIES,
  traffic: true,
  unreadable: true,
  setup: async () => memoryFixture(),
});

interface CollectedTest {
  readonly group: string;
  readonly name: string;
  readonly skipped: boolean;
  readonly body: () => Promise<void>;
}

/** Registers the suite with a recording test API instead of vitest, to run it under our control. */
function collect(
  capabilities: BackendCapabilities,
  setup: () => Promise<ContractFixture<MemoryBackend>>,
  traffic = true,
  unreadable: true | { skip: string } = true,
): CollectedTest[] {
  const tests: CollectedTest[] = [];
  const path: string[] = [];
  const register = (skipped: boolean) => (name: string, body: () => Promise<void>) => {
    tests.push({ group: path[1] ?? '', name, skipped, body });
  };
  const it = Object.assign(register(false), { skip: register(true) });
  const api: ContractTestApi = {
    describe: (name, body) => {
      path.push(name);
      body();
      path.pop();
    },
    it,
  };
  // Memory events are synchronous: a short wait keeps the flaw that never reports one quick to catch.
  backendContractSuite({ name: 'memory', test: api, capabilities, traffic, unreadable, setup, eventWaitMs: 200 });
  return tests;
}

async function failingGroups(tests: readonly CollectedTest[]): Promise<Set<string>> {
  const failed = new Set<string>();
  for (const test of tests) {
    if (test.skipped) continue;
    try {
      await test.body();
    } catch {
      failed.add(test.group);
    }
  }
  return failed;
}

// Each flaw is a defect a real backend could have; the group named beside it must catch it.
const mutants: Record<MemoryBackendFlaw, string> = {
  'observe-sees-nothing': CONTRACT_GROUPS.observe.name,
  'always-writes': CONTRACT_GROUPS.idempotence.name,
  'no-repair': CONTRACT_GROUPS.convergence.name,
  'never-removes-cidrs': CONTRACT_GROUPS.cidrChanges.name,
  'ignores-ipv6': CONTRACT_GROUPS.families.name,
  'ignores-action': CONTRACT_GROUPS.actions.name,
  'no-counters': CONTRACT_GROUPS.counters.name,
  'resets-counters': CONTRACT_GROUPS.counterTraffic.name,
  unserialised: CONTRACT_GROUPS.concurrency.name,
  'cleanup-leaves-rule': CONTRACT_GROUPS.cleanup.name,
  'clobbers-foreign': CONTRACT_GROUPS.foreign.name,
  'uncoded-errors': CONTRACT_GROUPS.errors.name,
  'reads-unreadable-as-empty': CONTRACT_GROUPS.unreadable.name,
  'deaf-to-changes': CONTRACT_GROUPS.events.name,
  'records-reset-on-cidr-change': CONTRACT_GROUPS.records.name,
  'records-unbounded': CONTRACT_GROUPS.records.name,
  'records-update-in-blocking-rule': CONTRACT_GROUPS.records.name,
  'records-churn-as-drift': CONTRACT_GROUPS.records.name,
};

describe('contract suite self-test', () => {
  it('a correct backend passes every test', async () => {
    const tests = collect(MEMORY_CAPABILITIES, async () => memoryFixture());
    expect(tests.filter((t) => t.skipped).map((t) => t.name)).toEqual([
      'refuses a family it cannot enforce, changing nothing [skipped: backend supports both families]',
    ]);
    expect([...(await failingGroups(tests))]).toEqual([]);
  });

  it('a correct IPv4-only backend passes too, refusing IPv6', async () => {
    const ipv4Only: BackendCapabilities = { ...MEMORY_CAPABILITIES, families: ['ipv4'] };
    const tests = collect(ipv4Only, async () => memoryFixture(undefined, ipv4Only));
    expect(tests.some((t) => !t.skipped && t.name.startsWith('refuses a family'))).toBe(true);
    expect([...(await failingGroups(tests))]).toEqual([]);
  });

  it('every group is caught out by at least one flaw', () => {
    expect(new Set(Object.values(mutants))).toEqual(new Set(Object.values(CONTRACT_GROUPS).map((g) => g.name)));
  });

  for (const [flaw, group] of Object.entries(mutants) as [MemoryBackendFlaw, string][]) {
    it(`the "${group}" group fails a backend that ${flaw.replaceAll('-', ' ')}`, async () => {
      const failed = await failingGroups(collect(MEMORY_CAPABILITIES, async () => memoryFixture(flaw)));
      expect([...failed]).toContain(group);
    });
  }

  it('groups a backend lacks are registered as visible skips with the reason', () => {
    const limited: BackendCapabilities = {
      ...MEMORY_CAPABILITIES,
      actions: ['drop'],
      counters: false,
      families: ['ipv4'],
    };
    const skipped = collect(limited, async () => memoryFixture()).filter((t) => t.skipped);
    expect(skipped.map((t) => t.name)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^IPv6 only \[skipped: backend lacks ipv6\]$/),
        expect.stringMatching(/^installs reject \[skipped: backend lacks the reject action\]$/),
        expect.stringMatching(/counters .*\[skipped: backend lacks counters\]$/),
      ]),
    );
  });

  it('a fixture without traffic skips the traffic test visibly, and one that claims traffic must send it', async () => {
    const quiet = collect(MEMORY_CAPABILITIES, async () => memoryFixture(), false);
    expect(quiet.filter((t) => t.skipped).map((t) => t.name)).toContain(
      'counters grow with blocked traffic and survive a CIDR change [skipped: the fixture sends no traffic (traffic: false)]',
    );
    const mute = async () => {
      const { sendBlockedTraffic: _unused, ...rest } = memoryFixture();
      return rest;
    };
    const claimed = collect(MEMORY_CAPABILITIES, mute).filter((t) => t.group === CONTRACT_GROUPS.counterTraffic.name);
    expect(claimed).toHaveLength(1);
    await expect(claimed[0]?.body()).rejects.toThrow(/no sendBlockedTraffic/);
  });

  it('a backend whose state cannot be unreadable skips that group visibly, with the reason; one that claims it must provide the fixture hook', async () => {
    const why = 'legacy tables are written only by iptables-legacy, which reads back all it writes';
    const skipped = collect(MEMORY_CAPABILITIES, async () => memoryFixture(), true, { skip: why }).filter(
      (t) => t.group === CONTRACT_GROUPS.unreadable.name,
    );
    expect(skipped.length).toBeGreaterThan(0);
    expect(skipped.every((t) => t.skipped && t.name.endsWith(`[skipped: ${why}]`))).toBe(true);
    const without = async () => {
      const { makeFamilyUnreadable: _unused, ...rest } = memoryFixture();
      return rest;
    };
    const claimed = collect(MEMORY_CAPABILITIES, without).filter((t) => t.group === CONTRACT_GROUPS.unreadable.name);
    await expect(claimed[0]?.body()).rejects.toThrow(/no makeFamilyUnreadable/);
  });

  it('a backend without change events skips that group visibly', () => {
    const quiet: BackendCapabilities = { ...MEMORY_CAPABILITIES, events: false };
    const skipped = collect(quiet, async () => memoryFixture(undefined, quiet)).filter(
      (t) => t.group === CONTRACT_GROUPS.events.name,
    );
    expect(skipped.length).toBeGreaterThan(0);
    expect(skipped.every((t) => t.skipped && /\[skipped: backend lacks change events/.test(t.name))).toBe(true);
  });

  it('a backend without hit records skips that group visibly; a fixture that claims traffic must be able to send hits', async () => {
    const plain: BackendCapabilities = { ...MEMORY_CAPABILITIES, records: false };
    const skipped = collect(plain, async () => memoryFixture(undefined, plain)).filter(
      (t) => t.group === CONTRACT_GROUPS.records.name,
    );
    expect(skipped.length).toBeGreaterThan(0);
    expect(skipped.every((t) => t.skipped && t.name.endsWith('[skipped: backend lacks hit records]'))).toBe(true);
    const mute = async () => {
      const { sendHits: _unused, ...rest } = memoryFixture();
      return rest;
    };
    const claimed = collect(MEMORY_CAPABILITIES, mute).filter((t) => t.group === CONTRACT_GROUPS.records.name);
    await expect(claimed[0]?.body()).rejects.toThrow(/lacks hitSources, sendHits or observeRecords/);
  });

  it('each records flaw fails the test written for it', async () => {
    const failing = async (flaw: MemoryBackendFlaw) => {
      const tests = collect(MEMORY_CAPABILITIES, async () => memoryFixture(flaw)).filter(
        (t) => t.group === CONTRACT_GROUPS.records.name,
      );
      const failed: string[] = [];
      for (const test of tests) await test.body().catch(() => failed.push(test.name));
      return failed;
    };
    expect(await failing('records-reset-on-cidr-change')).toEqual([
      'keeps the records through a change of CIDRs and a re-apply, and never calls them drift',
    ]);
    expect(await failing('records-churn-as-drift')).toEqual([
      'keeps the records through a change of CIDRs and a re-apply, and never calls them drift',
    ]);
    expect(await failing('records-unbounded')).toEqual([
      'at its bound leaves new pairs unrecorded, still blocking and counting every packet',
    ]);
    expect(await failing('records-update-in-blocking-rule')).toEqual([
      'at its bound leaves new pairs unrecorded, still blocking and counting every packet',
    ]);
  });

  it("fails a fixture whose backend's capabilities differ from the manifest", async () => {
    const narrowed: BackendCapabilities = { ...MEMORY_CAPABILITIES, families: ['ipv4'] };
    const tests = collect(MEMORY_CAPABILITIES, async () => memoryFixture(undefined, narrowed));
    const first = tests.find((t) => !t.skipped);
    await expect(first?.body()).rejects.toThrow(/capabilities other than the manifest/);
  });
});
