import { readdirSync, readFileSync } from 'node:fs';
import { NFT_TABLE, NftBackend } from '@route-controller/backend-nft';
import {
  type CommandRunner,
  type DesiredState,
  desiredState,
  ErrorCodes,
  MAX_CIDRS_PER_FAMILY,
  parseCidr,
  parseCidrList,
} from '@route-controller/core';
import { Netns } from '@route-controller/lab';
import { afterEach, expect, it } from 'vitest';
import {
  CapabilityDroppingRunner,
  createNftFixture,
  isNftWrite,
  kernelView,
  type NftContractFixture,
} from '../src/nft-fixture.js';
import { describeKernel } from '../src/prerequisites.js';

const want = (cidrs: string, action: 'drop' | 'reject' = 'drop'): DesiredState =>
  desiredState(parseCidrList(cidrs).cidrs, action);

const GOLDEN = new URL('../../packages/backend-nft/test/golden/', import.meta.url);

/** Our rules' handles and counters, read straight from the kernel. */
async function rules(ns: Netns): Promise<{ handle: number; packets: number }[]> {
  const listing = await ns.must('nft', ['-j', '-a', 'list', 'chain', 'inet', NFT_TABLE, 'forward']);
  const entries = (JSON.parse(listing.stdout) as { nftables: Record<string, unknown>[] }).nftables;
  return entries.flatMap((entry) => {
    const rule = entry.rule as { handle: number; expr: Record<string, { packets?: number }>[] } | undefined;
    if (!rule) return [];
    const counter = rule.expr.find((statement) => 'counter' in statement)?.counter;
    return [{ handle: rule.handle, packets: counter?.packets ?? -1 }];
  });
}

describeKernel('nft backend, real kernel: beyond the contract', () => {
  let fixture: NftContractFixture | undefined;
  const fresh = async () => {
    fixture = await createNftFixture('nftk');
    return fixture;
  };
  afterEach(async () => {
    await fixture?.dispose();
    fixture = undefined;
  });

  it('probe says yes in a namespace, and changes nothing', async () => {
    const f = await fresh();
    const availability = await f.backend.probe();
    expect(availability.available).toBe(true);
    expect(availability.reason).toMatch(/^nft \d+\.\d+\.\d+ with JSON, --check passed$/);
    expect(availability.checks.map((check) => [check.name, check.ok])).toEqual([
      ['binary', true],
      ['version', true],
      ['json', true],
      ['check', true],
      ['placement', true],
    ]);
    expect(availability.checks.at(-1)?.detail).toMatch(/priority filter \+ 20, after filter/);
    expect(f.writeCount()).toBe(0);
    expect((await f.ns.must('nft', ['list', 'ruleset'])).stdout).toBe('');
  });

  it('probe says no, naming the dry run, without CAP_NET_ADMIN', async () => {
    const ns = await Netns.create('nftk-cap');
    try {
      const runner = new CapabilityDroppingRunner(ns.runner, () => true);
      runner.failing = true;
      const availability = await new NftBackend({ runner }).probe();
      expect(availability.available).toBe(false);
      expect(availability.checks.map((check) => check.ok)).toEqual([true, true, true, false]);
      expect(availability.reason).toMatch(/--check failed: .*Operation not permitted/);
    } finally {
      await ns.delete();
    }
  });

  it('observe and apply without CAP_NET_ADMIN fail with ERR_RC_FIREWALL_PERMISSION', async () => {
    const f = await fresh();
    const runner = new CapabilityDroppingRunner(f.ns.runner, () => true);
    runner.failing = true;
    const backend = new NftBackend({ runner });
    await expect(backend.observe()).rejects.toMatchObject({ code: ErrorCodes.FirewallPermission });
    await expect(backend.apply(want('10.96.0.0/16'))).rejects.toMatchObject({ code: ErrorCodes.FirewallPermission });
  });

  it('real nft accepts every golden payload (dry run)', async () => {
    const f = await fresh();
    const check = async (name: string) => {
      const text = readFileSync(new URL(name, GOLDEN), 'utf8');
      const result = await f.ns.exec('nft', ['-j', '--check', JSON.stringify(JSON.parse(text))]);
      expect({ name, exitCode: result.exitCode, stderr: result.stderr }).toEqual({ name, exitCode: 0, stderr: '' });
    };
    const goldens = readdirSync(GOLDEN).filter((name) => name.endsWith('.json'));
    const elementOnly = ['element-change.json', 'decided-element-change.json'];
    expect(goldens.length).toBeGreaterThanOrEqual(9);
    for (const name of goldens.filter((n) => !elementOnly.includes(n))) await check(name);
    // Element changes need the elements they delete: install the states they were rendered from.
    await f.backend.apply(want('10.96.0.0/16'));
    await check('element-change.json');
    await f.backend.apply(want('10.96.0.0/16, 10.100.0.0/24, 10.0.0.1/32, fd00:10:96::/112, fd00::1/128'));
    await check('decided-element-change.json');
  });

  const drifted: Record<string, string> = {
    'a namesake chain at the wrong priority with policy drop': `table inet ${NFT_TABLE} {
  chain forward { type filter hook forward priority -10; policy drop; }
}`,
    'a regular chain and a set of the wrong type': `table inet ${NFT_TABLE} {
  set service-cidrs-v4 { type ipv6_addr; flags interval; }
  chain forward { ip daddr 10.0.0.1 accept; }
}`,
    'our layout plus an accept rule, an extra chain and a range element': `table inet ${NFT_TABLE} {
  set service-cidrs-v4 { type ipv4_addr; flags interval; elements = { 10.96.0.0/16, 10.1.0.1-10.1.0.9 } }
  set service-cidrs-v6 { type ipv6_addr; flags interval; }
  chain forward {
    type filter hook forward priority filter; policy accept;
    ip daddr 10.96.0.10 accept
    ip daddr @service-cidrs-v4 counter drop
    ip6 daddr @service-cidrs-v6 counter drop
  }
  chain mine { counter; }
}`,
  };

  for (const [name, ruleset] of Object.entries(drifted)) {
    it(`converges in one transaction from ${name}, then stays put`, async () => {
      const f = await fresh();
      await f.ns.must('nft', ['-f', '-'], ruleset);
      const before = await f.backend.observe();
      expect(before.present).toBe(true);
      expect(before.problems.length).toBeGreaterThan(0);
      const desired = want('10.96.0.0/16, fd00:10:96::/112');
      const result = await f.backend.apply(desired);
      expect(result).toMatchObject({ changed: true, writes: 1 });
      expect(await f.observeKernel()).toEqual({
        present: true,
        action: 'drop',
        ipv4: ['10.96.0.0/16'],
        ipv6: ['fd00:10:96::/112'],
      });
      expect((await f.backend.observe()).problems).toEqual([]);
      // Exactly our layout: one base chain on forward and a record chain per family, a set of
      // CIDRs and a record set per family.
      const listing = (await f.ns.must('nft', ['-s', 'list', 'table', 'inet', NFT_TABLE])).stdout;
      // filter + 20: nft 1.0.6 prints a priority without a name of its own as a number.
      expect(listing).toContain('type filter hook forward priority 20; policy accept;');
      expect(listing.match(/^\s*chain /gm)).toHaveLength(3);
      expect(listing.match(/^\s*set /gm)).toHaveLength(4);
      const writes = f.writeCount();
      expect(await f.backend.apply(desired)).toMatchObject({ changed: false, writes: 0 });
      expect(f.writeCount()).toBe(writes);
    });
  }

  it('a CIDR change keeps the rules (same handles) and their counters; an action change rebuilds them', async () => {
    const f = await fresh();
    await f.backend.apply(want('10.96.0.0/16, fd00:10:96::/112'));
    await f.sendBlockedTraffic?.('ipv4');
    await f.sendBlockedTraffic?.('ipv6');
    const before = await rules(f.ns);
    expect(before).toHaveLength(2);
    for (const rule of before) expect(rule.packets).toBe(3);

    const writes = f.writeCount();
    const result = await f.backend.apply(want('10.96.0.0/16, 10.97.0.0/16, fd00:10:97::/112'));
    expect(result.summary).toMatch(/rules and counters untouched/);
    expect(f.writeCount()).toBe(writes + 1);
    const sent = JSON.parse(f.recorder.commands.at(-1)?.request.args.slice(1).join(' ') ?? '') as {
      nftables: Record<string, Record<string, unknown>>[];
    };
    // Only element commands: no table, chain, set or rule is touched.
    expect(sent.nftables.flatMap((command) => Object.values(command).flatMap((o) => Object.keys(o)))).toEqual([
      'element',
      'element',
      'element',
    ]);
    expect(await rules(f.ns)).toEqual(before);
    const observed = await f.backend.observe();
    expect(observed.ipv4.counters).toEqual({ packets: 3, bytes: 3 * 84 });
    expect(observed.ipv6.counters?.packets).toBe(3);

    await f.backend.apply(want('10.96.0.0/16, 10.97.0.0/16, fd00:10:97::/112', 'reject'));
    const rebuilt = await rules(f.ns);
    expect(rebuilt.map((rule) => rule.packets)).toEqual([0, 0]);
    expect((await f.backend.observe()).action).toBe('reject');
  });

  it(`applies ${MAX_CIDRS_PER_FAMILY} CIDRs per family, the cap, in one transaction with the document in one argument; one more is refused before anything runs`, async () => {
    const f = await fresh();
    const cidrs: string[] = [];
    for (let i = 0; i < MAX_CIDRS_PER_FAMILY; i += 1) cidrs.push(`10.${64 + Math.floor(i / 256)}.${i % 256}.0/24`);
    for (let i = 0; i < MAX_CIDRS_PER_FAMILY; i += 1) cidrs.push(`fd00:1000::${i.toString(16)}:0/112`);
    const desired = want(cidrs.join(','));
    const plan = await f.backend.plan(desired);
    expect(plan.commands).toHaveLength(1);
    expect(plan.commands[0]?.args).toHaveLength(2);
    expect(await f.backend.apply(desired)).toMatchObject({ changed: true, writes: 1 });
    const view = await kernelView(f.ns);
    expect(view.ipv4).toHaveLength(MAX_CIDRS_PER_FAMILY);
    expect(view.ipv6).toHaveLength(MAX_CIDRS_PER_FAMILY);
    expect((await f.backend.plan(desired)).changes).toBe(false);
    // And shrinking it is an element change too.
    expect((await f.backend.apply(want(cidrs.slice(0, 10).join(',')))).summary).toMatch(
      new RegExp(`remove ${MAX_CIDRS_PER_FAMILY - 10} CIDRs`),
    );
    // One more than the cap, built by hand (desiredState refuses it): refused, nothing run.
    const commands = f.recorder.commands.length;
    const tooMany = [...cidrs.slice(0, MAX_CIDRS_PER_FAMILY), '10.127.0.0/24'].map((text) => parseCidr(text).cidr);
    await expect(f.backend.apply({ action: 'drop', cidrs: { ipv4: tooMany, ipv6: [] } })).rejects.toMatchObject({
      code: ErrorCodes.TooManyCidrs,
    });
    expect(f.recorder.commands.length).toBe(commands);
  });

  it('a transaction that fails part-way changes nothing, and the next apply recovers', async () => {
    const f = await fresh();
    await f.backend.apply(want('10.96.0.0/16'));
    // Between our read and our write, someone adds an element that overlaps one we are about to add.
    let raced = false;
    const racing: CommandRunner = {
      run: async (request) => {
        if (isNftWrite(request) && !raced) {
          raced = true;
          await f.ns.must('nft', ['add', 'element', 'inet', NFT_TABLE, 'service-cidrs-v4', '{ 10.98.0.0/24 }']);
        }
        return f.ns.runner.run(request);
      },
    };
    const backend = new NftBackend({ runner: racing });
    const desired = want('10.96.0.0/16, 10.98.0.0/16, fd00:10:96::/112');
    const error = await backend.apply(desired).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: ErrorCodes.FirewallExists,
      details: { stderr: expect.stringMatching(/overlaps/) },
    });
    // Nothing of the failed transaction landed: not the IPv6 element, not the /16.
    expect(await f.observeKernel()).toEqual({
      present: true,
      action: 'drop',
      ipv4: ['10.96.0.0/16', '10.98.0.0/24'],
      ipv6: [],
    });
    expect(await backend.apply(desired)).toMatchObject({ changed: true, writes: 1 });
    expect(await f.observeKernel()).toEqual({
      present: true,
      action: 'drop',
      ipv4: ['10.96.0.0/16', '10.98.0.0/16'],
      ipv6: ['fd00:10:96::/112'],
    });
  });
});
