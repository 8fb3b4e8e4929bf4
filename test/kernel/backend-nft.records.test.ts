import { NFT_TABLE, NftBackend } from '@route-controller/backend-nft';
import { desiredState, type HitRecords, type IpFamily, parseCidrList } from '@route-controller/core';
import { LAB, LoopLab } from '@route-controller/lab';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { kernelRecords } from '../src/nft-fixture.js';
import { describeKernel } from '../src/prerequisites.js';

/**
 * Hit records at the library level, in the loop lab with two pods: what the kernel records when
 * pods dial stale ClusterIPs, that recording never lets a packet through (not even at the bound),
 * that records time out (a short timeout through the backend option), and that cleanup removes them.
 */

const FAMILIES: readonly IpFamily[] = ['ipv4', 'ipv6'];
const serviceCidrs = parseCidrList(`${LAB.serviceCidr.ipv4},${LAB.serviceCidr.ipv6}`).cidrs;
const desired = desiredState(serviceCidrs, 'drop');

const lines = (records: HitRecords, family?: IpFamily) =>
  records.records
    .filter((r) => family === undefined || r.family === family)
    .map((r) => `${r.source} -> ${r.destination}: ${r.packets}`)
    .sort();

describeKernel('nft hit records in the loop lab, two pods', () => {
  let lab: LoopLab;

  beforeAll(async () => {
    lab = await LoopLab.create({ secondPod: true });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  /** Packets the workstation bounced back so far, both families. */
  const looped = async () => (await lab.loopPackets('ipv4')) + (await lab.loopPackets('ipv6'));

  it('two pods dialling two stale ClusterIPs: nothing loops, and each pair is recorded with its count', async () => {
    const backend = new NftBackend({ runner: lab.node.runner });
    await backend.apply(desired);
    const loopedBefore = await looped();
    const expected: string[] = [];
    for (const family of FAMILIES) {
      const plan: ['pod' | 'secondPod', string, number][] = [
        ['pod', LAB.staleService[family], 4],
        ['pod', LAB.otherStaleService[family], 2],
        ['secondPod', LAB.staleService[family], 3],
      ];
      for (const [from, address, count] of plan) {
        expect(await lab.dial(from, address, count)).toEqual({ sent: count, received: 0 });
        const source = from === 'pod' ? LAB.pod[family] : LAB.secondPod[family];
        expected.push(`${source} -> ${address}: ${count}`);
      }
    }
    expect(await looped()).toBe(loopedBefore);
    const records = await backend.records();
    expect(lines(records)).toEqual(expected.sort());
    for (const record of records.records) expect(record.lastSeenSecondsAgo).toBeLessThan(60);
    // Traffic to a live Service is DNAT'ed before the forward hook: never recorded.
    expect(await lab.pingLiveServiceFromPod('ipv4')).toEqual({ sent: 3, received: 3 });
    expect(lines(await backend.records())).toEqual(expected.sort());
    expect((await backend.observe()).problems).toEqual([]);
  });

  it('a pair idle for the timeout is forgotten, and comes back with a fresh count', async () => {
    // A 2 s window instead of 10 minutes: the option rebuilds the table with it.
    const backend = new NftBackend({ runner: lab.node.runner, records: { timeoutSeconds: 2 } });
    expect((await backend.apply(desired)).changed).toBe(true);
    expect((await backend.records()).records).toEqual([]);
    await lab.dial('secondPod', LAB.otherStaleService.ipv4, 2);
    expect(lines(await backend.records())).toEqual([`${LAB.secondPod.ipv4} -> ${LAB.otherStaleService.ipv4}: 2`]);
    // Generous bounds: the timeout is the kernel's, only the polling is ours.
    await expect.poll(async () => (await backend.records()).records.length, { timeout: 15_000, interval: 250 }).toBe(0);
    expect(await kernelRecords(lab.node)).toEqual([]);
    await lab.dial('secondPod', LAB.otherStaleService.ipv4, 1);
    expect(lines(await backend.records())).toEqual([`${LAB.secondPod.ipv4} -> ${LAB.otherStaleService.ipv4}: 1`]);
  });

  it('at the bound every packet is still dropped and counted: a scan wider than the set loops nothing', async () => {
    const backend = new NftBackend({ runner: lab.node.runner, records: { size: 2 } });
    await backend.apply(desired);
    const loopedBefore = await looped();
    const counted = async (family: IpFamily) => (await backend.observe())[family].counters?.packets ?? 0;
    for (const family of FAMILIES) {
      const before = await counted(family);
      for (let n = 1; n <= 4; n += 1) {
        const address = family === 'ipv4' ? `10.96.7.${n}` : `fd00:10:96::70${n}`;
        expect(await lab.dial('pod', address, 1)).toEqual({ sent: 1, received: 0 });
      }
      expect((await counted(family)) - before).toBe(4);
      const set = (await backend.records()).sets.find((s) => s.family === family);
      expect(set).toMatchObject({ size: 2, count: 2, full: true });
    }
    expect(await looped()).toBe(loopedBefore);
  });

  it('for packets that do not match, the rule with records runs the same bytecode as the plain drop', async () => {
    // The deterministic side of the bench's forwarding figures: only the verdict differs.
    const bytecode = async (records: boolean) => {
      const backend = new NftBackend({ runner: lab.node.runner, ...(records ? {} : { records: false }) });
      await backend.apply(desired);
      const listing = (await lab.node.must('nft', ['--debug=netlink', 'list', 'chain', 'inet', NFT_TABLE, 'forward']))
        .stdout;
      await backend.cleanup();
      // One list of expressions per rule of the forward chain.
      return listing
        .split(/^inet \S+ forward .*$/m)
        .slice(1)
        .map((rule) =>
          rule
            .split('\n')
            .filter((line) => line.trim().startsWith('['))
            .map((line) => line.trim()),
        );
    };
    const plain = await bytecode(false);
    const recording = await bytecode(true);
    expect(plain).toHaveLength(2);
    expect(recording.map((rule) => rule.slice(0, -1))).toEqual(plain.map((rule) => rule.slice(0, -1)));
    expect(plain.map((rule) => rule.at(-1))).toEqual(['[ immediate reg 0 drop ]', '[ immediate reg 0 drop ]']);
    expect(recording.map((rule) => rule.at(-1))).toEqual([
      '[ immediate reg 0 goto -> blocked-v4 ]',
      '[ immediate reg 0 goto -> blocked-v6 ]',
    ]);
    // A packet that does not match stops at the lookup, before the counter and the verdict.
    expect(recording[0]?.slice(0, 4)).toEqual([
      '[ meta load nfproto => reg 1 ]',
      '[ cmp eq reg 1 0x00000002 ]',
      '[ payload load 4b @ network header + 16 => reg 1 ]',
      '[ lookup reg 1 set service-cidrs-v4 0x0 ]',
    ]);
  });

  it('cleanup removes the records with our table', async () => {
    const backend = new NftBackend({ runner: lab.node.runner, records: { size: 2 } });
    await backend.apply(desired);
    await lab.dial('pod', LAB.staleService.ipv6, 1);
    expect((await kernelRecords(lab.node)).length).toBeGreaterThan(0);
    expect(await backend.cleanup()).toMatchObject({ removed: true });
    expect(await kernelRecords(lab.node)).toEqual([]);
    expect((await lab.node.must('nft', ['list', 'tables'])).stdout).not.toContain(NFT_TABLE);
    expect(await backend.records()).toEqual({ records: [], sets: [] });
  });
});
